"""The `transformers` agent: a local causal LM that batches requests from every match in flight.

One set of weights is loaded per (model, adapter, device, dtype) in a process and shared by every
player and judge that names it, so two debaters and an LLM judge on the same model cost one
copy in memory and their requests land in the same padded batches. A `Batcher` per model
gathers requests for `gather_ms` (or until `max_batch` rows wait) and runs one left-padded
`generate` call in a worker thread, keeping the event loop free to gather the next batch.

Decoding is done by one logits processor that picks every row's token itself: greedy rows take
the argmax, sampled rows draw from their own `torch.Generator` seeded from the request's seed,
so a request gives the same text alone or in any batch, and every row may have its own
temperature, minimum length, token budget and stop strings. The same processor records each
chosen token's log-probability (under the model, temperature 1) without keeping the full
logits, which for a 128k vocabulary would cost gigabytes per batch.

`score_continuations` is teacher forcing: the log-probability of given continuations after a
prompt, in one forward pass (the LLM judge scores its answer labels this way, never by sampling).
torch, transformers and peft are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from arena_plugins.agents.batching import Batcher
from arena_plugins.agents.shared import SharedModels
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Agent
from arena_core.types import Message, Request, Response

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class HFOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="local directory (or hub name) of a causal LM")
    gguf_file: str | None = Field(
        None,
        description="a GGUF file name inside `model` (read with the gguf package, dequantised); "
        "`arena model smollm2` converts one to a plain checkpoint once instead",
    )
    adapter: str | None = Field(
        None, description="a peft LoRA adapter directory on top of `model` (a learner's output)"
    )
    merge_adapter: bool = Field(
        False, description="merge the adapter into the weights once loaded (faster generation)"
    )
    tokenizer: str | None = Field(None, description="tokenizer directory; default: `model`")
    device: str = Field("auto", description="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1")
    dtype: Dtype = Field("auto", description="auto: bfloat16/float16 on GPU, float32 on CPU")
    max_batch: int = Field(16, ge=1, description="most rows (requests x n) in one generate call")
    gather_ms: float = Field(
        5.0, ge=0, description="how long the first waiting request waits for others to batch"
    )
    max_new_tokens: int | None = Field(
        None, ge=1, description="cap on each request's max_tokens (protocols ask for ~300)"
    )
    min_new_tokens: int = Field(
        1, ge=0, description="end-of-sequence is suppressed before this many tokens"
    )
    temperature: float | None = Field(
        None, ge=0, description="overrides the request's temperature (0: greedy)"
    )
    top_logprobs: int = Field(
        0, ge=0, le=20, description="alternatives per token kept in meta when logprobs are asked"
    )
    chat_template: str | None = Field(
        None, description="a Jinja chat template replacing the tokenizer's own"
    )
    trust_remote_code: bool = Field(False, description="allow custom model code from the dir")


# --- devices --------------------------------------------------------------------------------------


def pick_device(name: str = "auto") -> str:
    """cuda if present, then Apple's mps, else cpu; an explicit name is kept as given."""
    import torch

    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(name: str, device: str) -> Any:
    """bfloat16 where the GPU has it (float16 otherwise, and on mps); float32 on CPU, where
    half precision is slow and tiny models lose their argmax to rounding."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


# --- jobs -----------------------------------------------------------------------------------------


@dataclass
class GenJob:
    """One row of a batch: one sample of one request."""

    prompt_ids: list[int]
    max_new: int
    min_new: int = 1
    temperature: float = 0.0
    seed: int = 0
    logprobs: bool = False
    top_logprobs: int = 0
    stop: list[str] = field(default_factory=list)


@dataclass
class GenResult:
    text: str
    token_ids: list[int]
    finish: str  # "stop" (end of sequence or a stop string) or "length"
    logprobs: list[float] | None = None
    top: list[dict[str, float]] | None = None
    tokens: list[str] | None = None  # each generated token as text, when `top` is kept


@dataclass
class ScoreJob:
    """Teacher forcing: the log-probability of each continuation after the prompt."""

    prompt_ids: list[int]
    continuations: list[list[int]]


class _RowDecoder:
    """A logits processor that chooses every row's next token (see the module docstring)."""

    def __init__(self, jobs: list[GenJob], prompt_len: int, eos_ids: list[int]) -> None:
        self.jobs = jobs
        self.prompt_len = prompt_len
        self.eos = eos_ids
        self.gens: list[Any] = [None] * len(jobs)
        self.lps: list[list[float]] = [[] for _ in jobs]
        self.top: list[list[tuple[list[int], list[float]]]] = [[] for _ in jobs]
        self.sampled = [i for i, j in enumerate(jobs) if j.temperature > 0]
        self.want_lp = [i for i, j in enumerate(jobs) if j.logprobs]
        self.max_min = max(j.min_new for j in jobs)

    def _gen(self, i: int, device: Any) -> Any:
        import torch

        if self.gens[i] is None:
            try:
                g = torch.Generator(device=device)
            except RuntimeError:  # a backend without device generators samples on the CPU
                g = torch.Generator()
            self.gens[i] = g.manual_seed(self.jobs[i].seed)
        return self.gens[i]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        step = input_ids.shape[1] - self.prompt_len
        raw = scores.float()
        work = raw
        if step < self.max_min and self.eos:
            rows = [i for i, j in enumerate(self.jobs) if step < j.min_new]
            work = raw.clone()
            work[torch.tensor(rows)[:, None], torch.tensor(self.eos)[None, :]] = float("-inf")
        toks = work.argmax(dim=-1)
        for i in self.sampled:
            probs = torch.softmax(work[i] / self.jobs[i].temperature, dim=-1)
            g = self._gen(i, probs.device)
            if g.device != probs.device:
                probs = probs.cpu()
            toks[i] = int(torch.multinomial(probs, 1, generator=g).item())
        if self.want_lp:
            logp = torch.log_softmax(raw, dim=-1)
            chosen = logp.gather(1, toks[:, None])[:, 0].tolist()
            for i in self.want_lp:
                self.lps[i].append(chosen[i])
                k = self.jobs[i].top_logprobs
                if k:
                    vals, ids = torch.topk(logp[i], k)
                    self.top[i].append((ids.tolist(), vals.tolist()))
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, toks[:, None], 0.0)
        return out


class _RowStops:
    """Stopping criteria per row: its own token budget and its own stop strings."""

    def __init__(self, jobs: list[GenJob], prompt_len: int, tokenizer: Any) -> None:
        self.jobs = jobs
        self.prompt_len = prompt_len
        self.tok = tokenizer
        self.tail = [max((len(s) for s in j.stop), default=0) + 16 for j in jobs]
        self.ended: list[int | None] = [None] * len(jobs)  # tokens generated when a row stopped

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        step = input_ids.shape[1] - self.prompt_len
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for i, job in enumerate(self.jobs):
            if step >= job.max_new:
                done[i] = True
            elif job.stop:
                # Decode only the last few tokens: enough to contain any stop string.
                tail = input_ids[i, max(self.prompt_len, input_ids.shape[1] - self.tail[i]) :]
                text = self.tok.decode(tail.tolist(), skip_special_tokens=True)
                done[i] = any(s in text for s in job.stop)
            if done[i] and self.ended[i] is None:
                self.ended[i] = step
        return done


def _cut_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


# --- the shared model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelKey:
    model: str
    adapter: str | None
    merge_adapter: bool
    tokenizer: str | None
    device: str
    dtype: str
    trust_remote_code: bool
    gguf_file: str | None = None


class LoadedModel:
    """Weights and tokenizer of one model, with its batchers; shared through `acquire`."""

    def __init__(self, key: ModelKey) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # it would tear the tournament's progress display
        self.key = key
        self.device = key.device
        dtype = pick_dtype(key.dtype, key.device)
        gguf: dict[str, Any] = {}
        if key.gguf_file:
            import importlib.util

            if importlib.util.find_spec("gguf") is None:
                raise ImportError(
                    f"gguf_file = {key.gguf_file!r} needs the gguf package: "
                    "pip install 'arena[hf,smol]'"
                )
            gguf = {"gguf_file": key.gguf_file}
        self.tokenizer = AutoTokenizer.from_pretrained(
            key.tokenizer or key.model,
            trust_remote_code=key.trust_remote_code,
            **({} if key.tokenizer else gguf),
        )
        model = AutoModelForCausalLM.from_pretrained(
            key.model, dtype=dtype, trust_remote_code=key.trust_remote_code, **gguf
        )
        if key.adapter:
            try:
                from peft import PeftModel
            except ImportError as exc:  # pragma: no cover - peft is in the hf extra
                raise ImportError(
                    "a LoRA adapter needs peft: pip install 'arena-debate[hf]'"
                ) from exc
            model = PeftModel.from_pretrained(model, key.adapter)
            if key.merge_adapter:
                model = model.merge_and_unload()
        self.model = model.to(key.device).eval()
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        self.pad_id = int(tok.pad_token_id)
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = tok.eos_token_id
        self.eos_ids: list[int] = (
            [] if eos is None else [int(e) for e in (eos if isinstance(eos, list) else [eos])]
        )
        self.lock = threading.Lock()  # one forward pass at a time, whichever batcher asks
        self.batchers: dict[tuple[str, int, float], Batcher[Any, Any]] = {}
        self._torch = torch

    # -- prompts --

    def render(self, messages: Sequence[Message], template: str | None = None) -> str:
        """The prompt text: the chat template with the assistant's turn opened.

        A template that rejects a system message (some do) gets it folded into the first user
        message; a tokenizer without any template gets a plain `Role: text` transcript.
        """
        msgs = [{"role": m.role, "content": m.content} for m in messages]
        tok = self.tokenizer
        if template is None and not getattr(tok, "chat_template", None):
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in msgs]
            return "\n\n".join([*lines, "Assistant:"])
        kw: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
        if template is not None:
            kw["chat_template"] = template
        try:
            return str(tok.apply_chat_template(msgs, **kw))
        except Exception:
            if not msgs or msgs[0]["role"] != "system":
                raise
            system, rest = msgs[0]["content"], msgs[1:]
            if rest and rest[0]["role"] == "user":
                rest[0] = {"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}
            else:
                rest.insert(0, {"role": "user", "content": system})
            return str(tok.apply_chat_template(rest, **kw))

    def templated(self, template: str | None = None) -> bool:
        """Whether prompts go through a chat template (which then holds the special tokens)."""
        return template is not None or bool(getattr(self.tokenizer, "chat_template", None))

    def encode(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids; `special` adds the tokenizer's BOS etc. (plain prompts, no template)."""
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def continuation_ids(
        self, prompt: str, continuation: str, *, special: bool = False
    ) -> tuple[list[int], list[int]]:
        """(prompt ids, continuation ids) such that their concatenation tokenizes `prompt +
        continuation` as the model would see it (BPE may merge across the boundary)."""
        p = self.encode(prompt, special=special)
        full = self.encode(prompt + continuation, special=special)
        if full[: len(p)] == p and len(full) > len(p):
            return p, full[len(p) :]
        return p, self.encode(continuation)

    # -- batches --

    def batcher(self, kind: str, max_batch: int, gather_ms: float) -> Batcher[Any, Any]:
        """The shared batcher for this kind of call and these settings."""
        key = (kind, max_batch, gather_ms)
        if key not in self.batchers:
            fn = self.generate if kind == "generate" else self.score
            self.batchers[key] = Batcher(
                fn, max_batch=max_batch, gather_ms=gather_ms, name=f"{self.key.model}:{kind}"
            )
        return self.batchers[key]

    def _left_pad(self, rows: list[list[int]]) -> tuple[Any, Any]:
        torch = self._torch
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
                mask[i, width - len(r) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def generate(self, jobs: list[GenJob]) -> list[GenResult]:
        """One padded `generate` call for all rows (blocking; run it in a thread)."""
        from transformers import GenerationConfig

        torch = self._torch
        ids, mask = self._left_pad([j.prompt_ids for j in jobs])
        width = ids.shape[1]
        decoder = _RowDecoder(jobs, width, self.eos_ids)
        stops = _RowStops(jobs, width, self.tokenizer)
        config = GenerationConfig(
            max_new_tokens=max(j.max_new for j in jobs),
            do_sample=False,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids or None,
        )
        with self.lock, torch.inference_mode():
            seqs = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=config,
                logits_processor=[decoder],
                stopping_criteria=[stops],
            )
        out = []
        for i, job in enumerate(jobs):
            # After a row stops, generate pads it while the others go on: cut it where it ended.
            gen = seqs[i, width:].tolist()[: stops.ended[i] or job.max_new]
            n = len(gen)
            finish = "length"
            for k, t in enumerate(gen):
                if t in self.eos_ids:
                    n, finish = k, "stop"
                    break
            kept = gen[:n]
            decoded = self.tokenizer.decode(kept, skip_special_tokens=True)
            text, stopped = _cut_stop(decoded, job.stop)
            if stopped:
                finish = "stop"
            res = GenResult(text=text, token_ids=kept, finish=finish)
            if job.logprobs:
                res.logprobs = decoder.lps[i][:n]
                if job.top_logprobs:
                    dec = self.tokenizer.decode
                    res.tokens = [dec([t]) for t in kept]
                    res.top = [
                        {dec([t]): lp for t, lp in zip(tids, vals, strict=True)}
                        for tids, vals in decoder.top[i][:n]
                    ]
            out.append(res)
        return out

    def score(self, jobs: list[ScoreJob]) -> list[list[float]]:
        """Log-probability of each job's continuations, in one left-padded forward pass.

        When every continuation is a single token, a job needs one row (the logits at the end
        of its prompt); otherwise one row per continuation. Left padding aligns all rows at
        the right edge, so only the last few positions' logits are computed.
        """
        torch = self._torch
        rows: list[list[int]] = []
        plan: list[tuple[int, int, int]] = []  # (job, continuation, row)
        for j, job in enumerate(jobs):
            if all(len(c) == 1 for c in job.continuations):
                rows.append(job.prompt_ids)
                plan.extend((j, k, len(rows) - 1) for k in range(len(job.continuations)))
            else:
                for k, c in enumerate(job.continuations):
                    rows.append(job.prompt_ids + c)
                    plan.append((j, k, len(rows) - 1))
        ids, mask = self._left_pad(rows)
        multi = [len(c) for job in jobs for c in job.continuations if len(c) > 1]
        keep = 1 + max(multi, default=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with self.lock, torch.inference_mode():
            try:
                logits = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
                ).logits
            except TypeError:  # a model without logits_to_keep: all positions
                logits = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions
                ).logits
            logp = torch.log_softmax(logits[:, -keep:].float(), dim=-1)
        out = [[0.0] * len(job.continuations) for job in jobs]
        for j, k, r in plan:
            cont = jobs[j].continuations[k]
            if len(rows[r]) == len(jobs[j].prompt_ids):  # single tokens: logits after the prompt
                out[j][k] = float(logp[r, -1, cont[0]])
            else:
                c = len(cont)
                # the token at position -c-1+t+1 is predicted by the logits at position -c-1+t
                out[j][k] = float(sum(logp[r, keep - c - 1 + t, tok] for t, tok in enumerate(cont)))
        return out


_LOADED: SharedModels[ModelKey, LoadedModel] = SharedModels()


def acquire(opts: HFOptions) -> LoadedModel:
    """The shared model for these options, loading it on first use (reference counted)."""
    device = pick_device(opts.device)
    key = ModelKey(
        model=opts.model,
        adapter=opts.adapter,
        merge_adapter=opts.merge_adapter,
        tokenizer=opts.tokenizer,
        device=device,
        dtype=opts.dtype,
        trust_remote_code=opts.trust_remote_code,
        gguf_file=opts.gguf_file,
    )
    return _LOADED.acquire(key, LoadedModel)


def release(model: LoadedModel) -> bool:
    """Drop one reference; True when it was the last (the weights are then freed)."""
    if not _LOADED.release(model.key, model):
        return False
    if model.device.startswith("cuda"):
        with contextlib.suppress(Exception):
            model._torch.cuda.empty_cache()
    return True


def row_seed(request: Request, sample: int) -> int:
    """A per-row seed from the request's seed, its try number and the sample index."""
    return (request.seed * 1_000_003 + request.attempt * 7919 + sample) % (2**63 - 1)


# --- the agent ------------------------------------------------------------------------------------


class HFAgent(Agent):
    """A local transformers causal LM; see the module docstring."""

    def __init__(self, options: HFOptions) -> None:
        self.opts = options
        self._model: LoadedModel | None = acquire(options)

    @property
    def model(self) -> LoadedModel:
        if self._model is None:  # used again after aclose (a second run of the same tournament)
            self._model = acquire(self.opts)
        return self._model

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        m, template = self.model, self.opts.chat_template
        return m.encode(m.render(messages, template), special=not m.templated(template))

    def jobs_for(self, request: Request) -> list[GenJob]:
        o = self.opts
        max_new = min(request.max_tokens, o.max_new_tokens or request.max_tokens)
        temperature = request.temperature if o.temperature is None else o.temperature
        ids = self.prompt_ids(request.messages)
        return [
            GenJob(
                prompt_ids=ids,
                max_new=max(1, max_new),
                min_new=min(o.min_new_tokens, max_new),
                temperature=temperature,
                seed=row_seed(request, i),
                logprobs=request.logprobs,
                top_logprobs=o.top_logprobs if request.logprobs else 0,
                stop=list(request.stop),
            )
            for i in range(request.n)
        ]

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        start = time.perf_counter()
        model = self.model
        per_request = [self.jobs_for(r) for r in requests]
        batcher = model.batcher("generate", self.opts.max_batch, self.opts.gather_ms)
        flat = await batcher.submit_many([j for jobs in per_request for j in jobs])
        latency = time.perf_counter() - start
        out: list[Response] = []
        pos = 0
        for jobs in per_request:
            results = flat[pos : pos + len(jobs)]
            pos += len(jobs)
            first = results[0]
            completion = sum(len(r.token_ids) for r in results)
            meta: dict[str, Any] = {
                "prompt_tokens": len(jobs[0].prompt_ids),
                "completion_tokens": completion,
                "finish_reason": first.finish,
            }
            if first.top is not None:
                meta["tokens"] = first.tokens
                meta["top_logprobs"] = first.top
            out.append(
                Response(
                    texts=[r.text for r in results],
                    tokens=completion,
                    logprobs=first.logprobs,
                    latency=latency,
                    cost=None,
                    meta=meta,
                )
            )
        return out

    async def score_continuations(
        self, messages: Sequence[Message], prefix: str, continuations: Sequence[str]
    ) -> list[float]:
        """Total log-probability of each continuation after the prompt and `prefix` (teacher
        forcing, batched with other callers)."""
        if not continuations or not all(continuations):
            raise ValueError("score_continuations needs non-empty continuations")
        model, template = self.model, self.opts.chat_template
        prompt = model.render(messages, template) + prefix
        special = not model.templated(template)
        pairs = [model.continuation_ids(prompt, c, special=special) for c in continuations]
        base = pairs[0][0]
        conts = [c if p == base else (p + c)[len(base) :] for p, c in pairs]
        batcher = model.batcher("score", self.opts.max_batch, self.opts.gather_ms)
        return await batcher.submit(ScoreJob(prompt_ids=base, continuations=conts))

    async def aclose(self) -> None:
        model, self._model = self._model, None
        if model is not None and release(model):  # the last holder stops the batch workers
            for b in model.batchers.values():
                await b.aclose()


def transformers_agent(options: HFOptions) -> Agent:
    """A local transformers causal LM (optional LoRA adapter), batched across matches."""
    return HFAgent(options)
