"""The `d2po` learner: discriminator-guided online DPO (Singhal et al. 2024) with a gold budget.

Each step: `prompts_per_step` prompts, two samples each from the current policy; the
discriminator (a reward model) scores both and the higher one is chosen. In the latest batch
the pairs the discriminator is least sure of (|r_1 - r_2| ascending, `selection = "conf"`) or
random ones (`"rand"`), up to what is left of the relabel window's budget, go to the gold judge;
where gold separates them (g_1 != g_2) the pair follows gold and joins the gold buffer. When a
window's relabels are spent, the discriminator retrains (Bradley-Terry, -log s(r_w - r_l)) on
the new gold pairs plus the last `replay_batches * prompts_per_step` older ones, as the
reference code's `redo_batches` replay does. The policy then takes a DPO step
(-log s(b (lr_w - lr_l))) on the discriminator's (relabelled) labels.

The gold judge is any registered judge, and every gold call is a match in the ledger: a
`rejudge` match (no seats) of the tournament `d2po-gold-<run>` with the pair as the item's two
answers and the gold judge's verdict, played by the engine. The budget spent is the number of
that tournament's matches and never exceeds `budget`. Outside `arena learn` (no ledger given)
the matches go to a SQLite ledger inside the checkpoint (`disc/gold-ledger.db`).

The discriminator is saved as a sequence-classification checkpoint in `out/disc`, loadable by
the `reward-model` judge as it is (its inputs are rendered exactly as that judge renders them).

Why not TRL's OnlineDPOTrainer: it lives under `trl.experimental` (no stable API), asks one
reward callable per batch, and has no place between scoring and the loss for choosing pairs,
calling a ledger-recorded gold judge and retraining the discriminator; the DPO loss itself is
trl's `sigmoid` loss, a line of torch here.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from arena_plugins.learners.online import (
    Policy,
    PolicyOptions,
    PromptStream,
    finish,
    partial_dir,
    pick_device,
    question_of,
    unique_prompts,
)
from pydantic import Field, model_validator

from arena_core.interfaces import Learner

DISC_DIR = "disc"
GOLD_ITEMS = "gold-items.jsonl"
GOLD_LEDGER = "gold-ledger.db"


class D2POOptions(PolicyOptions):
    """Options of the `d2po` learner; defaults are the reference code's (PrasannS/d2po)."""

    gold_judge: str = Field("gold", description="the gold judge: any registered judge plugin")
    gold_options: dict[str, Any] = Field(
        default_factory=lambda: {"task": "length"},
        description="the gold judge's options (bag-of-words: task, words, distinct = true)",
    )
    budget: int = Field(64, ge=0, description="gold labels in the whole run (stopupdates)")
    relabels_per_window: int = Field(16, ge=1, description="gold labels per window (RELABELS)")
    window_samples: int = Field(
        256, ge=2, description="rollouts (samples, two per pair) per relabel window (SAMPN)"
    )
    selection: Literal["conf", "rand"] = Field(
        "conf", description="conf: least-confident pairs first; rand: random pairs"
    )
    steps: int = Field(20, ge=1, description="policy steps (batches of prompts)")
    prompts_per_step: int = Field(16, ge=1, description="prompts per step (two samples each)")
    beta: float = Field(0.05, gt=0, description="DPO's KL strength")
    learning_rate: float = Field(5e-5, gt=0, description="policy learning rate")
    discriminator: str | None = Field(
        None,
        description="a reward-model checkpoint to start from (default: the previous iterate's "
        "disc/, else the base model with a new score head)",
    )
    disc_init_epochs: int = Field(
        10, ge=0, description="epochs on the offline pairs before the first rollout"
    )
    disc_epochs: int = Field(4, ge=0, description="epochs per discriminator update (UEPOCHS)")
    disc_learning_rate: float = Field(1e-4, gt=0)
    disc_batch_size: int = Field(16, ge=1)
    replay_batches: int = Field(
        5, ge=0, description="older gold pairs replayed per update, in batches (redo_batches)"
    )
    disc_max_length: int = Field(512, ge=8, description="discriminator input tokens")
    disc_train: Literal["full", "head"] = Field(
        "full",
        description="full: every weight of the discriminator; head: only its score layer (a "
        "linear probe on frozen features: cheap on CPU, weaker)",
    )
    freeze_discriminator: bool = Field(
        False, description="ablation: relabel pairs but never retrain the discriminator"
    )
    gold_retries: int = Field(2, ge=0, description="retries of a failing gold call")
    gold_timeout: float = Field(60.0, gt=0, description="seconds per gold call")

    @model_validator(mode="after")
    def _window(self) -> D2POOptions:
        if self.relabels_per_window * 2 > self.window_samples:
            raise ValueError("relabels_per_window cannot exceed the pairs of a window")
        return self


# --- the discriminator --------------------------------------------------------------------------


class Discriminator:
    """A sequence-classification reward model, read as the `reward-model` judge reads it."""

    def __init__(self, path: str, opts: D2POOptions) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.opts = opts
        self.device = pick_device(opts.device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token_id is None:  # as the judge does
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=torch.float32
        )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(self.device)
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        if opts.disc_train == "head":
            # The score layer: the Linear layers that map to the single output.
            heads = [
                m
                for m in self.model.modules()
                if isinstance(m, torch.nn.Linear) and m.out_features == 1
            ]
            if not heads:
                raise ValueError(f"disc_train=head: no one-output linear layer in {path}")
            self.model.requires_grad_(False)
            for m in heads:
                m.requires_grad_(True)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=opts.disc_learning_rate)

    def encode(self, questions: Sequence[str], texts: Sequence[str]) -> dict[str, Any]:
        """The batch as `reward_model.LoadedClassifier` builds it (format auto): the chat
        template (user: question, assistant: text) when the tokenizer has one, else a pair."""
        kw: dict[str, Any] = {
            "padding": True,
            "truncation": True,
            "max_length": self.opts.disc_max_length,
            "return_tensors": "pt",
        }
        if self.chat:
            rendered = [
                str(
                    self.tokenizer.apply_chat_template(
                        [{"role": "user", "content": q}, {"role": "assistant", "content": t}],
                        tokenize=False,
                    )
                )
                for q, t in zip(questions, texts, strict=True)
            ]
            enc = self.tokenizer(rendered, add_special_tokens=False, **kw)
        else:
            enc = self.tokenizer(list(questions), list(texts), **kw)
        return {k: v.to(self.device) for k, v in enc.items()}

    def forward(self, questions: Sequence[str], texts: Sequence[str]) -> Any:
        return self.model(**self.encode(questions, texts)).logits[:, 0].float()

    def scores(self, questions: Sequence[str], texts: Sequence[str]) -> list[float]:
        import torch

        self.model.eval()
        out: list[float] = []
        with torch.no_grad():
            for i in range(0, len(texts), 32):
                out.extend(self.forward(questions[i : i + 32], texts[i : i + 32]).tolist())
        return out

    def train(self, pairs: Sequence[tuple[str, str, str]], epochs: int, seed: int) -> float | None:
        """Bradley-Terry on (question, better, worse) triples; the last epoch's mean loss."""
        import torch.nn.functional as F

        if not pairs or epochs == 0:
            return None
        rng = random.Random(seed)
        order = list(pairs)
        bs = self.opts.disc_batch_size
        self.model.train()
        last = 0.0
        for _ in range(epochs):
            rng.shuffle(order)
            total = 0.0
            for i in range(0, len(order), bs):
                batch = order[i : i + bs]
                qs = [q for q, _, _ in batch]
                r = self.forward(qs + qs, [w for _, w, _ in batch] + [ls for _, _, ls in batch])
                loss = -F.logsigmoid(r[: len(batch)] - r[len(batch) :]).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(batch)
            last = total / len(order)
        self.model.eval()
        return last

    def save(self, path: Path) -> None:
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))


def produced_judge(disc_dir: Path, lineage: dict[str, Any]) -> dict[str, Any]:
    """The discriminator as a judge other tournaments can name: the `reward-model` plugin with
    its checkpoint. `arena learn` registers it in the ledger's judge table (the learner declares
    it produces a judge), with the run, base model and data query as lineage; `lineage` adds the
    D2PO specifics (the discriminator it started from, the gold tournament) for the run's record.
    """
    return {
        "plugin": "reward-model",
        "options": {"model": str(disc_dir.resolve())},
        "kind": "reward",
        "lineage": lineage,
    }


# --- gold labels through the ledger -------------------------------------------------------------


class GoldLedger:
    """Gold calls as `rejudge` matches of one tournament, played by the engine.

    Items accumulate in a JSONL file; each call re-reads it, so the engine schedules and plays
    only the new items (a re-run never replays a done match). A failed match (the judge failed
    after its retries) still counts against the budget: the call was made.
    """

    def __init__(self, ledger: Any, tournament: str, items_path: Path, opts: D2POOptions) -> None:
        from arena_core.plugins import get_registry

        self.ledger = ledger
        self.tournament = tournament
        self.items_path = items_path
        self.opts = opts
        self.registry = get_registry()
        self.calls = 0
        self.failed = 0
        items_path.write_text("", encoding="utf-8")
        # Bad gold options fail now, before any sampling.
        self.registry.validate("judge", opts.gold_judge, opts.gold_options, table="gold_options")

    def label(self, entries: Sequence[dict[str, Any]]) -> list[tuple[float, float] | None]:
        """Gold scores (g_a, g_b) per entry, higher better; None where the match failed."""
        import asyncio

        from arena_core.config import RawConfig, resolve
        from arena_core.engine import Tournament

        if not entries:
            return []
        with self.items_path.open("a", encoding="utf-8") as fh:
            for e in entries:
                fh.write(json.dumps(e) + "\n")
        o = self.opts
        raw = RawConfig.model_validate(
            {
                "tournament": {
                    "name": self.tournament,
                    "protocol": "rejudge",
                    "concurrency": 16,
                    "retries": o.gold_retries,
                    "timeout": o.gold_timeout,
                },
                "protocol": {"missing_transcript": "empty", "attribute": False},
                "dataset": {
                    "plugin": "jsonl",
                    "shuffle": False,
                    "options": {
                        "path": str(self.items_path),
                        "gold": None,
                        "context": None,
                        "split_field": None,
                    },
                },
                "judge": {"plugin": o.gold_judge, "options": o.gold_options},
            }
        )
        tournament = Tournament(resolve(raw, self.registry, "<d2po gold>"), self.registry)
        wanted = {e["id"] for e in entries}
        ids = {r["item_id"]: r["id"] for r in tournament.rows if r["item_id"] in wanted}
        asyncio.run(tournament.run(self.ledger))
        out: list[tuple[float, float] | None] = []
        for e in entries:
            self.calls += 1
            verdict = self.ledger.verdict(ids[e["id"]])
            if verdict is None:
                self.failed += 1
                out.append(None)
                continue
            out.append(gold_values(verdict.meta, [verdict.probs.get("A"), verdict.probs.get("B")]))
        return out


def gold_values(meta: dict[str, Any], probs: Sequence[float | None]) -> tuple[float, float]:
    """(g_a, g_b), higher better: a scoring judge's scores (negated for a cost), else its
    probabilities (an LLM or human judge)."""
    scores = meta.get("scores")
    if isinstance(scores, list) and len(scores) == 2:
        sign = -1.0 if meta.get("kind") == "cost" else 1.0
        return sign * float(scores[0]), sign * float(scores[1])
    return float(probs[0] or 0.0), float(probs[1] or 0.0)


# --- selection and the DPO step -----------------------------------------------------------------


def select_pairs(margins: Sequence[float], n: int, rule: str, rng: random.Random) -> list[int]:
    """The indices of the pairs to relabel: the `n` smallest |r_1 - r_2| (conf) or random."""
    order = list(range(len(margins)))
    if rule == "conf":
        order.sort(key=lambda i: abs(margins[i]))
    else:
        rng.shuffle(order)
    return order[: max(0, n)]


def dpo_loss(chosen_lr: Any, rejected_lr: Any, beta: float) -> Any:
    """trl's sigmoid DPO loss per pair: -log s(b (lr_w - lr_l))."""
    import torch.nn.functional as F

    return -F.logsigmoid(beta * (chosen_lr - rejected_lr))


# --- the learner --------------------------------------------------------------------------------


class D2POLearner(Learner):
    """Online DPO on the policy's own pairs, labelled by a discriminator kept honest by gold."""

    wants_ledger = True  # `arena learn` passes its ledger and run id (gold calls are matches)
    produces: ClassVar[tuple[str, ...]] = ("player", "judge")  # the policy and its discriminator
    judge_suffix: ClassVar[str] = "disc"

    def __init__(self, options: D2POOptions) -> None:
        self.opts = options
        self.summary: dict[str, Any] = {}
        # Each gold-decided pair as the policy step used it (what tests check against gold).
        self.relabelled: list[dict[str, Any]] = []

    def fit(
        self,
        data: Any,
        base_model: str,
        out_dir: Path,
        *,
        adapter: str | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        ledger: Any = None,
        run_id: int | None = None,
        **_: Any,
    ) -> Path:
        """Train from `base_model` (+ `adapter`); `data` are offline pairs (the discriminator's
        first training set) whose prompts are the rollout set."""
        import torch

        opts = self.opts
        started = time.perf_counter()
        rows = list(data)
        prompts = unique_prompts(rows)
        if not prompts:
            raise ValueError("d2po needs prompts: give it pairs (their prompts are the rollouts)")
        out_dir = Path(out_dir)
        tmp = partial_dir(out_dir)
        disc_dir = tmp / DISC_DIR
        disc_dir.mkdir()
        own_ledger = ledger is None
        if own_ledger:
            from arena_core.ledger import Ledger

            ledger = Ledger(f"sqlite:///{disc_dir / GOLD_LEDGER}")
        tag = f"run{run_id}" if run_id is not None else time.strftime("%Y%m%dT%H%M%S")
        gold = GoldLedger(ledger, f"d2po-gold-{tag}", disc_dir / GOLD_ITEMS, opts)
        rng = random.Random(opts.seed)
        log = on_log or (lambda _: None)
        try:
            policy = Policy(base_model, adapter, opts)
            start_disc = opts.discriminator
            if start_disc is None and adapter and (Path(adapter) / DISC_DIR).exists():
                start_disc = str(Path(adapter) / DISC_DIR)  # the previous iterate's
            disc = Discriminator(start_disc or base_model, opts)
            offline = [
                (question_of(r["prompt"]), str(r["chosen"]), str(r["rejected"])) for r in rows
            ]
            init_loss = disc.train(offline, opts.disc_init_epochs, opts.seed)
            if init_loss is not None:
                log({"step": 0, "disc_loss": init_loss, "disc_pairs": len(offline)})
            trainable = [p for p in policy.model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(trainable, lr=opts.learning_rate)
            buffer: list[tuple[str, str, str]] = []  # gold pairs, oldest first
            fresh = 0  # gold pairs since the last discriminator update
            window, used_in_window, rollouts = 0, 0, 0
            windows: list[dict[str, Any]] = []
            agree_hits = agree_n = 0
            stream = PromptStream(prompts, rng)
            for step in range(1, opts.steps + 1):
                t0 = time.perf_counter()
                batch = stream.take(opts.prompts_per_step)
                samples = policy.sample(batch, 2)
                t_sample = time.perf_counter() - t0
                questions = [question_of(p) for p in batch]
                texts_a, texts_b = samples.texts[0::2], samples.texts[1::2]
                ra = disc.scores(questions, texts_a)
                rb = disc.scores(questions, texts_b)
                if rollouts // opts.window_samples != window:
                    window, used_in_window = rollouts // opts.window_samples, 0
                rollouts += 2 * len(batch)
                room = min(
                    opts.relabels_per_window - used_in_window,
                    opts.budget - gold.calls,
                    len(batch),
                )
                margins = [a - b for a, b in zip(ra, rb, strict=True)]
                picked = select_pairs(margins, room, opts.selection, rng)
                entries = [
                    {
                        "id": f"s{step}-p{i}",
                        "question": questions[i],
                        "answers": [texts_a[i], texts_b[i]],
                        "step": step,
                        "window": window,
                        "disc_a": ra[i],
                        "disc_b": rb[i],
                    }
                    for i in picked
                ]
                labels = gold.label(entries)
                used_in_window += len(entries)
                flips = decisive = agree = 0
                for i, g in zip(picked, labels, strict=True):
                    if g is None or g[0] == g[1]:
                        continue  # no gold preference: the discriminator's label stands
                    decisive += 1
                    gold_a_wins = g[0] > g[1]
                    if (ra[i] > rb[i]) == gold_a_wins and ra[i] != rb[i]:
                        agree += 1
                    else:
                        flips += 1
                        ra[i], rb[i] = rb[i], ra[i]  # the pair follows gold
                    w, lo = (texts_a[i], texts_b[i]) if gold_a_wins else (texts_b[i], texts_a[i])
                    self.relabelled.append(
                        {"id": f"s{step}-p{i}", "gold": list(g), "a_chosen": ra[i] > rb[i]}
                    )
                    buffer.append((questions[i], w, lo))
                    fresh += 1
                agree_hits += agree
                agree_n += decisive
                row: dict[str, Any] = {
                    "step": step,
                    "rollouts": rollouts,
                    "gold_used": gold.calls,
                    "gold_step": len(entries),
                    "gold_decisive": decisive,
                    "relabel_flips": flips,
                    "mean_length": float(samples.lengths.float().mean()),
                }
                if decisive:
                    row["disc_gold_agreement"] = agree / decisive
                window_done = used_in_window >= opts.relabels_per_window or (
                    gold.calls >= opts.budget and entries
                )
                if window_done and fresh and not opts.freeze_discriminator:
                    replay = opts.replay_batches * opts.prompts_per_step
                    old = buffer[:-fresh][-replay:] if replay else []
                    row["disc_loss"] = disc.train(
                        buffer[-fresh:] + old, opts.disc_epochs, opts.seed + step
                    )
                    row["disc_pairs"] = fresh + len(old)
                    fresh = 0
                if window_done:
                    windows.append(
                        {
                            "window": window,
                            "step": step,
                            "gold_used": gold.calls,
                            "agreement": agree_hits / agree_n if agree_n else None,
                        }
                    )
                    agree_hits = agree_n = 0
                # The policy step on the (relabelled) discriminator labels; ties carry no label.
                keep = [i for i in range(len(batch)) if ra[i] != rb[i]]
                if keep:
                    policy.model.train()
                    lp = policy.logps(samples)
                    ref = policy.logps(samples, reference=True)
                    lr = (lp - ref).view(-1, 2)
                    idx = torch.tensor(keep, device=lr.device)
                    a_wins = torch.tensor([ra[i] > rb[i] for i in keep], device=lr.device)
                    chosen = torch.where(a_wins, lr[idx, 0], lr[idx, 1])
                    rejected = torch.where(a_wins, lr[idx, 1], lr[idx, 0])
                    loss = dpo_loss(chosen, rejected, opts.beta).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    row["loss"] = loss.item()
                    row["rewards/margins"] = float(opts.beta * (chosen - rejected).detach().mean())
                    row["kl"] = float((lp - ref).mean().detach())
                row["seconds"] = time.perf_counter() - t0
                row["sample_seconds"] = t_sample
                log(row)
            disc.save(tmp / DISC_DIR)
            player = policy.save(tmp, out_dir)
        finally:
            if own_ledger:
                ledger.close()
        lineage = {
            "learner": "d2po",
            "learner_run": run_id,
            "base_model": base_model,
            "init": opts.discriminator or base_model,
            "gold_tournament": gold.tournament,
        }
        self.summary = {
            "learner": "d2po",
            "base_model": base_model,
            "init_adapter": adapter,
            "kind": "full" if opts.full_finetune else "adapter",
            "player": player,
            "pairs": len(rows),
            "prompts": len(prompts),
            "steps": opts.steps,
            "rollouts": rollouts,
            "discriminator": str(out_dir / DISC_DIR),
            "judge": produced_judge(out_dir / DISC_DIR, lineage),
            "gold": {
                "judge": opts.gold_judge,
                "options": opts.gold_options,
                "budget": opts.budget,
                "calls": gold.calls,
                "failed": gold.failed,
                "tournament": gold.tournament,
                "ledger": str(out_dir / DISC_DIR / GOLD_LEDGER) if own_ledger else ledger.url,
                "pairs_kept": len(buffer),
            },
            "windows": windows,
            # Copied into the learner run's metrics by `arena learn`.
            "metrics": {
                "discriminator": str(out_dir / DISC_DIR),
                "gold_calls": gold.calls,
                "gold_failed": gold.failed,
                "gold_tournament": gold.tournament,
                "windows": windows,
            },
            "seconds": time.perf_counter() - started,
            "options": opts.model_dump(mode="json"),
        }
        return finish(tmp, out_dir, self.summary)
