"""`pairrm`: PairRM (llm-blender's DeBERTa-v3 pairwise ranker) as a judge.

Why a reimplementation and not llm-blender: llm-blender 0.0.2 (the last release on PyPI) does
not import with transformers 5 (`transformers.utils.hub.TRANSFORMERS_CACHE` is gone) and its
collator calls `tokenizer.batch_encode_plus`, which transformers 5 removed; both can be patched
at run time, but a shim would pin the judge to monkeypatches of a package that also pulls
dataclasses-json, pycocoevaluation and friends, and whose loader downloads the backbone
(`microsoft/deberta-v3-large`) by name from the hub even for a local checkpoint. The model
itself is small: a DeBERTa-v2 encoder plus a two-layer head. So this module is a faithful
reimplementation of the inference path of llm-blender's `CrossCompareReranker`
(`pair_ranker/ranker.py`, `collator.py`, `Blender.rank` / `compare`), loading the published
checkpoint files from a local directory, with no extra dependency.

What it reproduces, step by step:

- texts: `"<|source|>" + question` and `"<|candidate|>" + candidate`, with any literal sep token
  (`[SEP]`) replaced by a space; each tokenized alone with the tokenizer's specials
  (`[CLS] ... [SEP]`), the source truncated to `source_maxlength` tokens and each candidate to
  `candidate_maxlength + (source_maxlength - source length) // 2`;
- the pair input `source + candidate1 + candidate2` (each with its own [CLS] and [SEP]), where
  the `<|candidate|>` token becomes `<|candidate1|>` in the left and `<|candidate2|>` in the right
  candidate; no token type ids;
- the encoder's last hidden states at the three prefix tokens; `head_layer` =
  Dropout, Linear(2h, h), Tanh, Dropout, Linear(h, n_tasks) on [source; candidate] for each
  side; the comparison logit C_ij = mean over tasks of (left score - right score);
- ranking (`Blender.rank`, "max_logits"): C over all ordered pairs (both orders), scores
  s_i = mean_j (C_ij - C_ji). For two options s_A - s_B = C_AB - C_BA, which is what
  `Blender.compare(mode="[A,B]+[B,A]")` returns.

The judge's probabilities are softmax(s / 2): for two options P(A) = sigmoid((C_AB - C_BA) / 2),
the mean of the two orders' log-odds (the head is trained with -log sigmoid(left - right)).
`meta` keeps the comparison matrix and the scores (SPPO's preference uses them directly).
One difference, for determinism: llm-blender truncates candidates by the longest source in its
data-loader batch; here each item is truncated by its own source, as llm-blender does with
`batch_size=1`, so results never depend on what else is being judged.

Checkpoint layouts read (both with weights `pytorch_model.bin` or `model.safetensors` under the
keys `pretrained_model.*` and `head_layer.{1,4}.*`):

- llm-blender/PairRM: `config.json` is llm-blender's RankerConfig (`ranker_type`,
  `model_name`, `source_maxlength` ...). The encoder's architecture and tokenizer come from
  `backbone` (a local copy of microsoft/deberta-v3-large: config.json and tokenizer) or from
  `model_name` when that is a local directory; tokenizer files in the checkpoint directory
  take precedence. The four prefix tokens are added as llm-blender adds them when missing.
- llm-blender/PairRM-hf: `config.json` is a DebertaV2Config carrying `source_prefix_id`,
  `cand1_prefix_id`, `cand2_prefix_id`, `cand_prefix_id` and `n_tasks`; tokenizer alongside.

Comparisons of every match in flight are batched into padded forward passes (`Batcher`).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from arena_plugins.agents.batching import Batcher
from arena_plugins.agents.shared import SharedModels
from arena_plugins.judges.gold import TextSource, option_texts
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Judge
from arena_core.types import Decision, JudgeView

SOURCE, CAND1, CAND2, CAND = "<|source|>", "<|candidate1|>", "<|candidate2|>", "<|candidate|>"


class PairRMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="local directory of a PairRM checkpoint (either layout)")
    backbone: str | None = Field(
        None, description="local microsoft/deberta-v3-large (config, tokenizer) for PairRM"
    )
    device: str = Field("auto", description="auto (cuda, mps, cpu), cpu, cuda, cuda:1")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float16 on GPU (as llm-blender), float32 on CPU"
    )
    text: TextSource = Field("auto", description="compare the option texts or the speeches")
    both_orders: bool = Field(
        True, description="compare each pair in both orders (llm-blender's default)"
    )
    source_max_length: int | None = Field(
        None, ge=8, description="default: the checkpoint's (PairRM: 1224)"
    )
    candidate_max_length: int | None = Field(
        None, ge=8, description="default: the checkpoint's (PairRM: 412)"
    )
    max_batch: int = Field(16, ge=1, description="comparisons per forward pass")
    gather_ms: float = Field(5.0, ge=0, description="how long a comparison waits to batch")


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _has_tokenizer(path: Path) -> bool:
    return any(
        (path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "spm.model")
    )


def _load_state(path: Path) -> dict[str, Any]:
    import torch

    if (path / "model.safetensors").exists():
        from safetensors.torch import load_file

        return load_file(str(path / "model.safetensors"))
    if (path / "pytorch_model.bin").exists():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin")


@dataclass(frozen=True)
class RankerKey:
    model: str
    backbone: str | None
    device: str
    dtype: str


class LoadedPairRM:
    """Encoder, head and tokenizer of one checkpoint; shared through `acquire`."""

    def __init__(self, key: RankerKey) -> None:
        import torch
        from arena_plugins.agents.hf_agent import pick_dtype
        from transformers import AutoTokenizer, DebertaV2Config, DebertaV2Model
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.key = key
        path = Path(key.model)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path}: no config.json (is this a PairRM checkpoint?)")
        raw = _read_json(path / "config.json")
        if "ranker_type" in raw:  # llm-blender/PairRM: a RankerConfig
            if raw.get("ranker_type") != "pairranker":
                raise ValueError(f"{path}: ranker_type {raw.get('ranker_type')!r}, not pairranker")
            backbone = Path(key.backbone or raw.get("model_name") or "")
            if not (backbone / "config.json").exists():
                raise FileNotFoundError(
                    f"{path} names its encoder {raw.get('model_name')!r}; pass `backbone` = a "
                    f"local directory with that model's config.json and tokenizer"
                )
            config = DebertaV2Config.from_pretrained(backbone)
            tok_dir = path if _has_tokenizer(path) else backbone
            self.source_max = int(raw.get("source_maxlength") or 1224)
            self.candidate_max = int(raw.get("candidate_maxlength") or 412)
            n_tasks = int(raw.get("n_tasks") or 1)
        else:  # llm-blender/PairRM-hf: a DebertaV2Config with the prefix ids
            config = DebertaV2Config.from_pretrained(path)
            tok_dir = path
            self.source_max, self.candidate_max = 1224, 412
            n_tasks = int(getattr(config, "n_tasks", 1) or 1)
        tok = AutoTokenizer.from_pretrained(tok_dir)
        missing = [t for t in (SOURCE, CAND1, CAND2, CAND) if t not in tok.get_vocab()]
        if missing:  # llm-blender's collator adds them (as normal added tokens) in this order
            tok.add_tokens(missing)
        self.tokenizer = tok
        self.ids = {t: tok.convert_tokens_to_ids(t) for t in (SOURCE, CAND1, CAND2, CAND)}
        for name, tid in (
            ("source_prefix_id", SOURCE),
            ("cand1_prefix_id", CAND1),
            ("cand2_prefix_id", CAND2),
            ("cand_prefix_id", CAND),
        ):
            declared = getattr(config, name, None)
            if declared is not None and int(declared) != int(self.ids[tid]):
                raise ValueError(
                    f"{path}: {name} is {declared} in config.json but {self.ids[tid]} in the "
                    f"tokenizer"
                )
        self.sep = tok.sep_token if tok.sep_token is not None else tok.eos_token
        state = _load_state(path)
        emb = state.get("pretrained_model.embeddings.word_embeddings.weight")
        if emb is None:
            raise ValueError(f"{path}: no pretrained_model.* weights (not a PairRM checkpoint)")
        config.vocab_size = int(emb.shape[0])
        encoder = DebertaV2Model(config)
        hidden = config.hidden_size
        drop = float(raw.get("drop_out", getattr(config, "drop_out", 0.05)) or 0.0)
        head = torch.nn.Sequential(
            torch.nn.Dropout(drop),
            torch.nn.Linear(2 * hidden, hidden),
            torch.nn.Tanh(),
            torch.nn.Dropout(drop),
            torch.nn.Linear(hidden, n_tasks),
        )
        module = torch.nn.Module()
        module.pretrained_model = encoder
        module.head_layer = head
        result = module.load_state_dict(state, strict=False)
        # DeBERTa checkpoints may carry buffers (position_ids) the current class recomputes.
        absent = [k for k in result.missing_keys if not k.endswith("position_ids")]
        if absent:
            raise ValueError(f"{path}: weights missing from the checkpoint: {absent[:5]}")
        dtype = pick_dtype(key.dtype, key.device)
        self.module = module.to(device=key.device, dtype=dtype).eval()
        self.lock = threading.Lock()
        self.batchers: dict[tuple[int, float], Batcher[Any, float]] = {}
        self._torch = torch

    # -- inputs, as llm-blender's CrossCompareCollator and cat_ids build them --

    def encode(
        self, source: str, candidates: list[str], source_max: int, cand_max: int
    ) -> tuple[list[int], list[list[int]]]:
        tok = self.tokenizer
        src = tok((SOURCE + source).replace(self.sep, " "), max_length=source_max, truncation=True)[
            "input_ids"
        ]
        room = cand_max + (source_max - len(src)) // 2
        cands = [
            tok((CAND + c).replace(self.sep, " "), max_length=room, truncation=True)["input_ids"]
            for c in candidates
        ]
        return list(src), [list(c) for c in cands]

    def pair_ids(self, src: list[int], left: list[int], right: list[int]) -> list[int]:
        cand = self.ids[CAND]
        one = [self.ids[CAND1] if t == cand else t for t in left]
        two = [self.ids[CAND2] if t == cand else t for t in right]
        return src + one + two

    def compare(self, rows: list[list[int]]) -> list[float]:
        """C for each pair input (blocking; run in a thread): left score - right score."""
        torch = self._torch
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        ids, mask = ids.to(self.key.device), mask.to(self.key.device)
        with self.lock, torch.inference_mode():
            encs = self.module.pretrained_model(
                input_ids=ids, attention_mask=mask
            ).last_hidden_state

            def at(token: str) -> Any:
                hit = (ids == self.ids[token]).float()
                first = hit.argmax(dim=1)  # the first occurrence in each row
                return encs[torch.arange(len(rows), device=ids.device), first]

            src, c1, c2 = at(SOURCE), at(CAND1), at(CAND2)
            left = self.module.head_layer(torch.cat([src, c1], dim=-1))
            right = self.module.head_layer(torch.cat([src, c2], dim=-1))
            return (left - right).float().mean(dim=-1).tolist()

    def batcher(self, max_batch: int, gather_ms: float) -> Batcher[Any, float]:
        key = (max_batch, gather_ms)
        if key not in self.batchers:
            self.batchers[key] = Batcher(
                self.compare,
                max_batch=max_batch,
                gather_ms=gather_ms,
                name=f"{self.key.model}:pairrm",
            )
        return self.batchers[key]


_LOADED: SharedModels[RankerKey, LoadedPairRM] = SharedModels()


def acquire(o: PairRMOptions) -> LoadedPairRM:
    from arena_plugins.agents.hf_agent import pick_device

    device = pick_device(o.device)
    dtype = o.dtype
    if dtype == "auto" and not device.startswith("cpu"):
        dtype = "float16"  # llm-blender runs the ranker in half precision on GPUs
    key = RankerKey(o.model, o.backbone, device, dtype)
    return _LOADED.acquire(key, LoadedPairRM)


def release(model: LoadedPairRM) -> bool:
    return _LOADED.release(model.key, model)


class PairRMJudge(Judge):
    """Pairwise comparisons of every pair of options; see the module docstring."""

    def __init__(self, options: PairRMOptions) -> None:
        self.opts = options
        self._model: LoadedPairRM | None = acquire(options)

    @property
    def model(self) -> LoadedPairRM:
        if self._model is None:
            self._model = acquire(self.opts)
        return self._model

    async def comparisons(self, source: str, candidates: list[str]) -> list[list[float]]:
        """The matrix C (C[i][j]: candidate i on the left against j), batched with others."""
        m = self.model
        smax = self.opts.source_max_length or m.source_max
        cmax = self.opts.candidate_max_length or m.candidate_max
        src, cands = m.encode(source, candidates, smax, cmax)
        n = len(candidates)
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        if not self.opts.both_orders:
            pairs = [(i, j) for i, j in pairs if i < j]
        rows = [m.pair_ids(src, cands[i], cands[j]) for i, j in pairs]
        logits = await m.batcher(self.opts.max_batch, self.opts.gather_ms).submit_many(rows)
        c = [[0.0] * n for _ in range(n)]
        for (i, j), v in zip(pairs, logits, strict=True):
            c[i][j] = v
            if not self.opts.both_orders:
                c[j][i] = -v
        return c

    async def decide(self, view: JudgeView) -> Decision:
        texts = option_texts(view, self.opts.text)
        c = await self.comparisons(view.question, texts)
        n = len(texts)
        scores = [sum(c[i][j] - c[j][i] for j in range(n)) / n for i in range(n)]
        half = [s / 2 for s in scores]
        top = max(half)
        e = [math.exp(h - top) for h in half]
        probs = [v / sum(e) for v in e]
        listing = ", ".join(
            f"{o.label}: {s:.4g}" for o, s in zip(view.options, scores, strict=True)
        )
        return Decision(
            probs=probs,
            raw=f"pairrm {listing}",
            meta={"scores": scores, "kind": "reward", "comparisons": c},
        )

    async def aclose(self) -> None:
        model, self._model = self._model, None
        if model is not None and release(model):
            for b in model.batchers.values():
                await b.aclose()


def pairrm_judge(options: PairRMOptions) -> Judge:
    """PairRM pairwise ranker (faithful reimplementation, local checkpoint), batched."""
    return PairRMJudge(options)
