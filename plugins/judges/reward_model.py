"""`reward-model` and `cost-model` judges: scores from an AutoModelForSequenceClassification.

Each option's text (or the speeches of the seat that argued it; see `gold.option_texts`) is
scored together with the question, as the model was trained to read it: through the
tokenizer's chat template (user: question, assistant: text) when it has one, else as a
(question, text) pair, which is how DeBERTa-style reward models (OpenAssistant's, the tiny test
one) take it. Scores of every match in flight are gathered into padded batches (`Batcher`), one
forward pass per batch in a worker thread; one copy of the weights serves every judge naming
the same checkpoint.

Reward: higher is better, P(option) = softmax(sharpness * reward), so for two options
P(A) = sigmoid(r_A - r_B), the Bradley-Terry model reward models are trained with. Cost
(safe-RLHF's convention): an option is safe when its cost <= `threshold` (0), lower cost is
preferred, P = softmax(-sharpness * cost); `meta["safe"]` flags each option. The checkpoint must
load with AutoModelForSequenceClassification (as TRL's RewardTrainer and this project's
safe-RLHF learner save them); safe-rlhf's own `LlamaForScore` checkpoints need converting.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

from arena_plugins.agents.batching import Batcher
from arena_plugins.agents.shared import SharedModels
from arena_plugins.judges.gold import TextSource, option_texts
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Judge
from arena_core.types import Decision, JudgeView


class RewardModelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="directory (or hub name) of a sequence-classification model")
    tokenizer: str | None = Field(None, description="tokenizer directory; default: `model`")
    device: str = Field("auto", description="auto (cuda, mps, cpu), cpu, cuda, cuda:1")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16/float16 on GPU, float32 on CPU"
    )
    text: TextSource = Field("auto", description="score the option text or its seat's speeches")
    format: Literal["auto", "chat", "pair"] = Field(
        "auto", description="auto: chat template if the tokenizer has one, else a text pair"
    )
    output: int = Field(0, ge=0, description="which logit is the score (num_labels > 1)")
    sharpness: float = Field(1.0, gt=0, description="softmax inverse temperature over scores")
    threshold: float = Field(0.0, description="cost model: cost <= threshold is safe")
    max_length: int = Field(1024, ge=8, description="longer inputs are truncated")
    max_batch: int = Field(32, ge=1, description="texts per forward pass")
    gather_ms: float = Field(5.0, ge=0, description="how long a score waits for others to batch")


def render(tokenizer: Any, question: str, text: str, fmt: str) -> tuple[str, str | None]:
    """(text, pair text or None): how a classifier reads an answer to a question. The reward and
    cost learners encode their training pairs with this too, so a model is judged on inputs
    laid out exactly as it was trained on."""
    if fmt == "chat" or (fmt == "auto" and getattr(tokenizer, "chat_template", None)):
        chat = [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
        return str(tokenizer.apply_chat_template(chat, tokenize=False)), None
    return question, text


def encode(tokenizer: Any, question: str, text: str, fmt: str, max_length: int) -> list[int]:
    """Token ids of one (question, answer) as `LoadedClassifier.scores` encodes it in a batch."""
    first, pair = render(tokenizer, question, text, fmt)
    kw: dict[str, Any] = {"truncation": True, "max_length": max_length}
    if pair is not None:
        return list(tokenizer(first, pair, **kw)["input_ids"])
    has_template = bool(getattr(tokenizer, "chat_template", None))
    return list(tokenizer(first, add_special_tokens=not has_template, **kw)["input_ids"])


@dataclass(frozen=True)
class ClassifierKey:
    model: str
    tokenizer: str | None
    device: str
    dtype: str


class LoadedClassifier:
    """Weights, tokenizer and batchers of one classifier checkpoint (shared via `acquire`)."""

    def __init__(self, key: ClassifierKey) -> None:
        import torch
        from arena_plugins.agents.hf_agent import pick_dtype
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.key = key
        self.tokenizer = AutoTokenizer.from_pretrained(key.tokenizer or key.model)
        model = AutoModelForSequenceClassification.from_pretrained(
            key.model, dtype=pick_dtype(key.dtype, key.device)
        )
        if self.tokenizer.pad_token_id is None:  # decoder reward models often have none
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(key.device).eval()
        self.lock = threading.Lock()
        self.batchers: dict[tuple[Any, ...], Batcher[Any, float]] = {}
        self._torch = torch

    def render(self, question: str, text: str, fmt: str) -> tuple[str, str | None]:
        """(text, pair text or None) as the tokenizer should read them."""
        return render(self.tokenizer, question, text, fmt)

    def scores(
        self, items: list[tuple[str, str | None]], output: int, max_length: int
    ) -> list[float]:
        """One padded forward pass over (text, pair) items; blocking, run it in a thread."""
        torch = self._torch
        firsts = [a for a, _ in items]
        pairs = [b for _, b in items]
        kw: dict[str, Any] = {
            "padding": True,
            "truncation": True,
            "max_length": max_length,
            "return_tensors": "pt",
        }
        if all(p is not None for p in pairs):
            enc = self.tokenizer(firsts, pairs, **kw)
        else:
            has_template = bool(getattr(self.tokenizer, "chat_template", None))
            enc = self.tokenizer(firsts, add_special_tokens=not has_template, **kw)
        enc = {k: v.to(self.key.device) for k, v in enc.items()}
        with self.lock, torch.inference_mode():
            logits = self.model(**enc).logits.float()
        return logits[:, output].tolist()

    def batcher(self, o: RewardModelOptions) -> Batcher[Any, float]:
        key = (o.max_batch, o.gather_ms, o.output, o.max_length, o.format)
        if key not in self.batchers:

            def run(items: list[tuple[str, str | None]]) -> list[float]:
                return self.scores(items, o.output, o.max_length)

            self.batchers[key] = Batcher(
                run, max_batch=o.max_batch, gather_ms=o.gather_ms, name=f"{self.key.model}:score"
            )
        return self.batchers[key]


_LOADED: SharedModels[ClassifierKey, LoadedClassifier] = SharedModels()


def acquire(o: RewardModelOptions) -> LoadedClassifier:
    from arena_plugins.agents.hf_agent import pick_device

    key = ClassifierKey(o.model, o.tokenizer, pick_device(o.device), o.dtype)
    return _LOADED.acquire(key, LoadedClassifier)


def release(model: LoadedClassifier) -> bool:
    return _LOADED.release(model.key, model)


class RewardModelJudge(Judge):
    """Scores options with a sequence-classification model; see the module docstring."""

    kind: Literal["reward", "cost"] = "reward"

    def __init__(self, options: RewardModelOptions) -> None:
        self.opts = options
        self._model: LoadedClassifier | None = acquire(options)

    @property
    def model(self) -> LoadedClassifier:
        if self._model is None:
            self._model = acquire(self.opts)
        return self._model

    async def score(self, question: str, texts: list[str]) -> list[float]:
        """Scores of `texts` as answers to `question`, batched with every other caller."""
        model = self.model
        items = [model.render(question, t, self.opts.format) for t in texts]
        return await model.batcher(self.opts).submit_many(items)

    async def decide(self, view: JudgeView) -> Decision:
        import math

        scores = await self.score(view.question, option_texts(view, self.opts.text))
        sign = -1.0 if self.kind == "cost" else 1.0
        logits = [sign * self.opts.sharpness * s for s in scores]
        top = max(logits)
        e = [math.exp(x - top) for x in logits]
        probs = [v / sum(e) for v in e]
        meta: dict[str, Any] = {"scores": scores, "kind": self.kind}
        if self.kind == "cost":
            meta["safe"] = [s <= self.opts.threshold for s in scores]
        listing = ", ".join(
            f"{o.label}: {s:.4g}" for o, s in zip(view.options, scores, strict=True)
        )
        return Decision(probs=probs, raw=f"{self.kind} {listing}", meta=meta)

    async def aclose(self) -> None:
        model, self._model = self._model, None
        if model is not None and release(model):
            for b in model.batchers.values():
                await b.aclose()


class CostModelJudge(RewardModelJudge):
    """Lower cost wins; cost <= threshold is safe (safe-RLHF)."""

    kind: Literal["reward", "cost"] = "cost"


def reward_model(options: RewardModelOptions) -> Judge:
    """A sequence-classification reward model (higher is better), batched across matches."""
    return RewardModelJudge(options)


def cost_model(options: RewardModelOptions) -> Judge:
    """A safe-RLHF cost model: lower cost wins, cost <= 0 is safe; batched across matches."""
    return CostModelJudge(options)
