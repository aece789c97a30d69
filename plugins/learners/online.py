"""What the online learners (`d2po`, `safe-rlhf`) share: a policy with its reference, sampling,
sequence log-probabilities, scores from any scoring judge, and saving the policy as a player.

These learners generate, score and update many times in one run, with state between the steps
(a discriminator and its gold budget; a Lagrange multiplier and a cost buffer) that TRL's
trainers keep no place for, so the loop is written here in plain torch (see each learner for
why TRL's OnlineDPOTrainer and RLOOTrainer do not fit). Models are loaded with transformers and
adapted with peft exactly as the `dpo` learner does, so a checkpoint loads as a `transformers`
player the same way.

torch, transformers and peft are imported inside the functions.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from arena_plugins.learners.dpo import SUMMARY_FILE, plain_prompt
from pydantic import BaseModel, ConfigDict, Field

from arena_core.types import AnswerOption, JudgeView


class PolicyOptions(BaseModel):
    """How the policy is adapted, sampled and run (shared by the online learners)."""

    model_config = ConfigDict(extra="forbid")

    full_finetune: bool = Field(False, description="train every weight instead of a LoRA adapter")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scale numerator")
    lora_targets: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt, or all-linear"
    )
    max_new_tokens: int = Field(50, ge=1, description="tokens per sample (D2PO synthetic: 50)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling")
    max_prompt_tokens: int = Field(256, ge=8, description="longer prompts keep their end")
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    torch_threads: int | None = Field(None, ge=1, description="CPU threads (None: torch's own)")
    seed: int = 0


def pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def question_of(prompt: Sequence[dict[str, str]] | str) -> str:
    """What a judge reads as the question: the last user message of the prompt."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else "\n\n".join(m["content"] for m in prompt)


def unique_prompts(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, str]]]:
    """The rows' distinct prompts, in first-seen order (the rollout set)."""
    seen: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        prompt = row["prompt"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        seen.setdefault(json.dumps(prompt, sort_keys=True), list(prompt))
    return list(seen.values())


class PromptStream:
    """The rollout prompts in shuffled passes: each pass visits every prompt once."""

    def __init__(self, prompts: Sequence[list[dict[str, str]]], rng: random.Random) -> None:
        self.prompts = list(prompts)
        self.rng = rng
        self.order = list(range(len(self.prompts)))
        rng.shuffle(self.order)
        self.cursor = 0

    def take(self, n: int) -> list[list[dict[str, str]]]:
        batch = []
        for _ in range(n):
            if self.cursor == len(self.order):
                self.rng.shuffle(self.order)
                self.cursor = 0
            batch.append(self.prompts[self.order[self.cursor]])
            self.cursor += 1
        return batch


@dataclass
class Samples:
    """`k` completions per prompt, row i*k + j is prompt i's j-th sample."""

    sequences: Any  # [N, P + T] token ids: left-padded prompt, then the completion
    attention: Any  # [N, P + T] 1 on real tokens
    completion: Any  # [N, T] 1 on completion tokens (up to and including the first EOS)
    texts: list[str]
    prompt_len: int

    @property
    def lengths(self) -> Any:
        return self.completion.sum(dim=1)


class Policy:
    """The trained model, its frozen reference, and the tokenizer, on one device."""

    def __init__(self, base_model: str, adapter: str | None, opts: PolicyOptions) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if opts.torch_threads:
            torch.set_num_threads(opts.torch_threads)
        torch.manual_seed(opts.seed)
        self.opts = opts
        self.base_model = base_model
        self.device = pick_device(opts.device)
        tok = AutoTokenizer.from_pretrained(base_model)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        tok.padding_side = "left"  # generation continues from the prompt's last token
        self.tokenizer = tok
        self.chat = bool(getattr(tok, "chat_template", None))
        model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
        self.ref: Any = None  # None: the reference is the model with its LoRA adapter off
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter, is_trainable=not opts.full_finetune)
            if opts.full_finetune:
                model = model.merge_and_unload()
            # The previous iterate (base + its adapter) is the reference, as in the dpo learner.
            self.ref = copy.deepcopy(model).eval()
        elif opts.full_finetune:
            self.ref = copy.deepcopy(model).eval()
        else:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(
                model,
                LoraConfig(
                    r=opts.lora_r,
                    lora_alpha=opts.lora_alpha,
                    target_modules=opts.lora_targets,
                    task_type="CAUSAL_LM",
                ),
            )
        self.model = model.to(self.device)
        if self.ref is not None:
            self.ref.to(self.device).requires_grad_(False)
        if model.generation_config is not None and model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tok.pad_token_id

    def render(self, prompt: Sequence[dict[str, str]]) -> str:
        """The prompt as the `transformers` agent renders it (chat template, else Role: text)."""
        if self.chat:
            return str(
                self.tokenizer.apply_chat_template(
                    list(prompt), tokenize=False, add_generation_prompt=True
                )
            )
        return plain_prompt(prompt)

    def sample(self, prompts: Sequence[Sequence[dict[str, str]]], k: int) -> Samples:
        """`k` sampled completions per prompt from the current policy."""
        import torch

        tok, o = self.tokenizer, self.opts
        enc = tok(
            [self.render(p) for p in prompts],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=o.max_prompt_tokens,
            add_special_tokens=not self.chat,
        ).to(self.device)
        self.model.eval()
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                do_sample=True,
                temperature=o.temperature,
                top_p=o.top_p,
                max_new_tokens=o.max_new_tokens,
                num_return_sequences=k,
                pad_token_id=tok.pad_token_id,
            )
        plen = enc["input_ids"].shape[1]
        comp = out[:, plen:]
        eos = tok.eos_token_id
        if eos is None:
            mask = torch.ones_like(comp)
        else:
            # Keep the first EOS (the policy chose to stop) and nothing after it.
            is_eos = (comp == eos).int()
            after = (is_eos.cumsum(dim=1) - is_eos) > 0
            mask = (~after).int()
        prompt_attn = enc["attention_mask"].repeat_interleave(k, dim=0)
        texts = tok.batch_decode(
            comp * mask + tok.pad_token_id * (1 - mask), skip_special_tokens=True
        )
        return Samples(
            sequences=out,
            attention=torch.cat([prompt_attn, mask], dim=1),
            completion=mask,
            texts=[t.strip() for t in texts],
            prompt_len=plen,
        )

    def logps(self, samples: Samples, *, reference: bool = False) -> Any:
        """Per-sequence sums of completion-token log-probabilities [N] (policy or reference)."""
        import torch

        if reference:
            with torch.no_grad():
                if self.ref is not None:
                    return token_logps(self.ref, samples).sum(dim=1)
                with self.model.disable_adapter():
                    return token_logps(self.model, samples).sum(dim=1)
        return token_logps(self.model, samples).sum(dim=1)

    def save(self, tmp: Path, out_dir: Path) -> dict[str, Any]:
        """Write the policy into `tmp`; return the `player` entry that loads it from `out_dir`."""
        model = self.model
        if hasattr(model, "peft_config") and not self.opts.full_finetune:
            model.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
            return {"model": self.base_model, "adapter": str(out_dir)}
        model.save_pretrained(str(tmp))
        self.tokenizer.save_pretrained(str(tmp))
        return {"model": str(out_dir), "adapter": None}


def token_logps(model: Any, samples: Samples) -> Any:
    """Log-probability of each completion token [N, T], zero outside the completion."""
    import torch

    ids, attn = samples.sequences, samples.attention
    # Positions count real tokens only, as generate() numbered them under left padding.
    positions = (attn.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=positions).logits
    start = samples.prompt_len - 1
    pred = logits[:, start:-1].float().log_softmax(dim=-1)
    target = ids[:, samples.prompt_len :]
    per_token = torch.gather(pred, 2, target.unsqueeze(-1)).squeeze(-1)
    return per_token * samples.completion


# --- judges -------------------------------------------------------------------------------------


def build_judge(plugin: str, options: dict[str, Any]) -> Any:
    from arena_core.plugins import get_registry

    registry = get_registry()
    checked = registry.validate("judge", plugin, options, table="learner.options")
    return registry.build("judge", plugin, checked)


async def _scores(judge: Any, question: str, texts: Sequence[str], item_id: str) -> list[float]:
    options = [AnswerOption(label=_label(i), text=t, index=i) for i, t in enumerate(texts)]
    view = JudgeView(
        protocol="learner", question=question, options=options, transcript=[], item_id=item_id
    )
    decision = await judge.decide(view)
    scores = decision.meta.get("scores")
    if not isinstance(scores, list) or len(scores) != len(texts):
        raise ValueError(
            f"judge {type(judge).__name__} gives no per-answer scores (meta['scores']): an online "
            f"learner needs a scoring judge (reward-model, cost-model, gold, keyword, length)"
        )
    return [float(s) for s in scores]


def _label(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"A{i}"


def judge_scores(
    judge: Any, questions: Sequence[str], groups: Sequence[Sequence[str]], tag: str = "learner"
) -> list[list[float]]:
    """Each group's texts scored by `judge` against its question (one view per group, all
    groups in flight together so batching judges batch them)."""

    async def run() -> list[list[float]]:
        return list(
            await asyncio.gather(
                *(
                    _scores(judge, q, g, f"{tag}-{i}")
                    for i, (q, g) in enumerate(zip(questions, groups, strict=True))
                )
            )
        )

    return asyncio.run(run())


def close_judge(judge: Any) -> None:
    closer = getattr(judge, "aclose", None)
    if closer is not None:
        asyncio.run(closer())


# --- the checkpoint -----------------------------------------------------------------------------


def partial_dir(out_dir: Path) -> Path:
    tmp = out_dir.with_name(f"{out_dir.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a killed run
    tmp.mkdir(parents=True)
    return tmp


def finish(tmp: Path, out_dir: Path, summary: dict[str, Any]) -> Path:
    """Write the summary and move the checkpoint into place in one rename."""
    (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir
