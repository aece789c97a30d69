"""The `vllm` agent: vLLM's offline engine (`vllm.LLM`) in the arena process, on a GPU.

Same interface as the `transformers` agent: chat template, per-request sampling (seeded per row),
stop strings, token log-probabilities when asked, an optional LoRA adapter (a learner's
checkpoint) and `score_continuations` for the LLM judge (teacher forcing through vLLM's
`prompt_logprobs`). One engine is loaded per set of engine settings and shared by every player
and judge naming it (each request carries its own LoRA adapter, so a learner's checkpoint plays
its base model on one GPU). Requests of all matches in flight are gathered by a `Batcher` and
handed to one `LLM.generate` call in a worker thread; vLLM's scheduler then runs them with
continuous batching and paged attention, so larger `max_batch` values are the norm here.

For many players, or a model shared between processes, serving it once with `vllm serve` and
pointing `openai-compatible` players at it is usually simpler; this agent avoids the HTTP hop
when one tournament process owns the GPU.

vLLM is an optional extra (`pip install 'arena-debate[vllm]'`, GPU machines); it is imported when
the agent is built, and a missing install is a clear error naming the extra. Not exercised in CI
(no GPU there): the tests check that error and the options.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from typing import Any

from arena_plugins.agents.batching import Batcher
from arena_plugins.agents.hf_agent import row_seed
from arena_plugins.agents.shared import SharedModels
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Agent
from arena_core.types import Message, Request, Response


class VLLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="local directory (or hub name) of the model")
    tokenizer: str | None = Field(None, description="tokenizer directory; default: `model`")
    adapter: str | None = Field(None, description="a LoRA adapter directory (enables LoRA)")
    enable_lora: bool = Field(
        False, description="load the engine with LoRA support (agents with adapters share it)"
    )
    max_lora_rank: int = Field(64, ge=1, description="largest LoRA rank the engine accepts")
    dtype: str = Field("auto", description="auto, bfloat16, float16, float32")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs to shard the model over")
    gpu_memory_utilization: float = Field(
        0.85, gt=0, le=1, description="share of GPU memory vLLM may take"
    )
    max_model_len: int | None = Field(None, ge=16, description="context length cap")
    max_batch: int = Field(256, ge=1, description="requests handed to one generate call")
    gather_ms: float = Field(10.0, ge=0, description="how long a request waits for others")
    max_new_tokens: int | None = Field(None, ge=1, description="cap on each request's max_tokens")
    min_new_tokens: int = Field(1, ge=0, description="end of sequence is banned before this")
    temperature: float | None = Field(None, ge=0, description="overrides the request's")
    top_logprobs: int = Field(
        0, ge=0, le=20, description="alternatives per token kept in meta when logprobs are asked"
    )
    chat_template: str | None = Field(None, description="a Jinja template replacing the model's")
    trust_remote_code: bool = Field(False, description="allow custom model code")
    engine: dict[str, Any] = Field(
        default_factory=dict, description="further keyword arguments for vllm.LLM"
    )


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "the vllm agent needs vLLM, an optional extra for GPU machines: "
            "pip install 'arena-debate[vllm]' (or serve the model with `vllm serve` and use the "
            "openai-compatible agent)"
        ) from exc
    return vllm


class Engine:
    """One `vllm.LLM` and its batchers, shared by every agent naming the same engine settings
    (two debaters and a judge on one model must not load it three times on one GPU). Each
    batch item carries its own LoRA request, so players with different adapters share it."""

    def __init__(self, o: VLLMOptions, key: str) -> None:
        vllm = import_vllm()
        self.key = key
        self.vllm = vllm
        kwargs: dict[str, Any] = {
            "model": o.model,
            "tokenizer": o.tokenizer or o.model,
            "dtype": o.dtype,
            "tensor_parallel_size": o.tensor_parallel_size,
            "gpu_memory_utilization": o.gpu_memory_utilization,
            "trust_remote_code": o.trust_remote_code,
            **o.engine,
        }
        if o.max_model_len:
            kwargs["max_model_len"] = o.max_model_len
        if o.enable_lora or o.adapter:
            kwargs.update(enable_lora=True, max_lora_rank=o.max_lora_rank)
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.generate_batcher: Batcher[tuple[list[int], Any, Any], Any] = Batcher(
            self._generate, max_batch=o.max_batch, gather_ms=o.gather_ms, name="vllm:generate"
        )
        self.score_batcher: Batcher[tuple[list[int], int, Any], float] = Batcher(
            self._score, max_batch=o.max_batch, gather_ms=o.gather_ms, name="vllm:score"
        )

    @staticmethod
    def _loras(items: Sequence[tuple[Any, ...]]) -> Any:
        loras = [item[-1] for item in items]
        return None if all(x is None for x in loras) else loras

    def _generate(self, items: list[tuple[list[int], Any, Any]]) -> list[Any]:
        """Blocking; the batcher runs it in a thread."""
        return self.llm.generate(
            [{"prompt_token_ids": ids} for ids, _, _ in items],
            [p for _, p, _ in items],
            use_tqdm=False,
            lora_request=self._loras(items),
        )

    def _score(self, items: list[tuple[list[int], int, Any]]) -> list[float]:
        """Sum of the last `k` prompt tokens' log-probabilities for each (ids, k, lora)."""
        params = self.vllm.SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0.0)
        outs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids, _, _ in items],
            params,
            use_tqdm=False,
            lora_request=self._loras(items),
        )
        totals = []
        for (ids, k, _), out in zip(items, outs, strict=True):
            plp = out.prompt_logprobs or []
            totals.append(float(sum(plp[p][ids[p]].logprob for p in range(len(ids) - k, len(ids)))))
        return totals


_ENGINES: SharedModels[str, Engine] = SharedModels()
_PER_AGENT = {
    "adapter",
    "max_new_tokens",
    "min_new_tokens",
    "temperature",
    "top_logprobs",
    "chat_template",
}


def acquire(o: VLLMOptions) -> Engine:
    """The shared engine for these settings (everything but the per-agent options)."""
    settings = o.model_dump(mode="json", exclude=_PER_AGENT)
    settings["enable_lora"] = bool(o.enable_lora or o.adapter)
    key = json.dumps(settings, sort_keys=True)
    return _ENGINES.acquire(key, lambda k: Engine(o, k))


def release(engine: Engine) -> bool:
    return _ENGINES.release(engine.key, engine)


class VLLMAgent(Agent):
    """See the module docstring."""

    def __init__(self, options: VLLMOptions) -> None:
        self.opts = options
        self.engine: Engine | None = acquire(options)
        self.lora = None
        if options.adapter:
            from vllm.lora.request import LoRARequest

            # vLLM tells adapters apart by name and integer id: derive both from the path.
            lora_id = 1 + zlib.crc32(options.adapter.encode()) % (2**31 - 2)
            self.lora = LoRARequest(f"arena-{lora_id}", lora_id, options.adapter)

    @property
    def live(self) -> Engine:
        if self.engine is None:  # used again after aclose
            self.engine = acquire(self.opts)
        return self.engine

    @property
    def tokenizer(self) -> Any:
        return self.live.tokenizer

    # -- prompts --

    def render(self, messages: Sequence[Message]) -> str:
        msgs = [{"role": m.role, "content": m.content} for m in messages]
        kw: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
        if self.opts.chat_template:
            kw["chat_template"] = self.opts.chat_template
        return str(self.tokenizer.apply_chat_template(msgs, **kw))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def params(self, request: Request) -> Any:
        o = self.opts
        max_new = min(request.max_tokens, o.max_new_tokens or request.max_tokens)
        logprobs = (o.top_logprobs or 0) if request.logprobs else None
        return self.live.vllm.SamplingParams(
            n=request.n,
            temperature=request.temperature if o.temperature is None else o.temperature,
            max_tokens=max_new,
            min_tokens=min(o.min_new_tokens, max_new),
            seed=row_seed(request, 0),
            stop=list(request.stop) or None,
            logprobs=logprobs,
        )

    # -- the agent --

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        start = time.perf_counter()
        items = [
            (self.encode(self.render(r.messages)), self.params(r), self.lora) for r in requests
        ]
        outs = await self.live.generate_batcher.submit_many(items)
        latency = time.perf_counter() - start
        responses = []
        for (ids, _, _), r, out in zip(items, requests, outs, strict=True):
            samples = list(out.outputs)
            completion = sum(len(s.token_ids) for s in samples)
            first = samples[0]
            meta: dict[str, Any] = {
                "prompt_tokens": len(ids),
                "completion_tokens": completion,
                "finish_reason": first.finish_reason,
            }
            logprobs = None
            if r.logprobs and first.logprobs:
                logprobs = [
                    float(step[t].logprob)
                    for t, step in zip(first.token_ids, first.logprobs, strict=False)
                ]
                if self.opts.top_logprobs:
                    meta["tokens"] = [
                        step[t].decoded_token
                        for t, step in zip(first.token_ids, first.logprobs, strict=False)
                    ]
                    meta["top_logprobs"] = [
                        {lp.decoded_token: float(lp.logprob) for lp in step.values()}
                        for step in first.logprobs
                    ]
            responses.append(
                Response(
                    texts=[s.text for s in samples],
                    tokens=completion,
                    logprobs=logprobs,
                    latency=latency,
                    meta=meta,
                )
            )
        return responses

    async def score_continuations(
        self, messages: Sequence[Message], prefix: str, continuations: Sequence[str]
    ) -> list[float]:
        """Teacher forcing: log-probability of each continuation after the prompt + prefix."""
        prompt = self.render(messages) + prefix
        base = self.encode(prompt)
        items = []
        for c in continuations:
            full = self.encode(prompt + c)
            k = len(full) - len(base) if full[: len(base)] == base else len(self.encode(c))
            if full[: len(base)] != base:
                full = base + self.encode(c)
            items.append((full, max(1, k), self.lora))
        return await self.live.score_batcher.submit_many(items)

    async def aclose(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None and release(engine):  # the last holder frees the GPU
            await engine.generate_batcher.aclose()
            await engine.score_batcher.aclose()
            del engine.llm


def vllm_agent(options: VLLMOptions) -> Agent:
    """vLLM's offline engine on a GPU (optional extra), batched across matches."""
    return VLLMAgent(options)
