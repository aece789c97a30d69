"""`arena learn`: preference pairs -> a learner plugin -> a checkpoint -> a player and/or a judge.

    arena learn --learner dpo --from-ledger [URL] [--tournament T] [--player P] ... \
        [--base PLAYER|DIR] [--register-as NAME] [--out DIR] [-o key=value ...]
    arena learn --learner dpo --dataset NAME [-d key=value ...] --base DIR ...
    arena learn --learner dpo --pairs DIR_OR_JSONL --base DIR ...

The flow is the same whatever the learner: the data source gives pairs in one shape (below);
a `learner_run` row is written (status `running`) with the config, the data query, the number
of pairs and the ids of the matches the pairs came from; the learner trains, each logged step is
appended to the row's metrics; the row ends `done` (checkpoint, wall time, before/after figures)
or `failed` (the error); on success the checkpoint becomes a player with agent `transformers`,
its parent the player it was trained from, and `learner_run` pointing at the row (the row
closes and the player appears in one transaction).

What a run produces is the learner's declaration: a class attribute `produces`, a subset of
("player", "judge"), default ("player",). A learner that produces a judge (a reward model, a cost
model, a discriminator) puts in its summary

    "judge": {"plugin": "reward-model", "options": {"model": DIR}, "kind": "reward"}

(`plugin` and `options` build it as a tournament's `[judge]` table does; `kind` is reward or
cost), and `learn()` registers it in the `judge` table in the same transaction as the player,
with its lineage: the learner run (and through it the data query), the parent judge (`--base`
or `--judge-base` naming a ledger judge) and the base model. A judge-only run takes the run's
name; a run producing both names the judge `<player>-<judge_suffix>` (the learner's attribute,
default "judge"). `--judge-base JUDGE|DIR` reaches the learner's `fit` as `judge_model=DIR`
(APO's reward model, D2PO's discriminator). Tournaments name a produced judge by its options or
by its ledger name (the `learned` judge plugin). `--from-ledger URL --ledger OTHER` reads the
pairs from URL and records the run and the player in OTHER. Under `accelerate launch` or
`torchrun` only rank 0 writes to the ledger.

The pairs a learner's `fit(data, base_model, out_dir, adapter=..., on_log=...)` receives are dicts
with `prompt` (chat messages, a list of {role, content}), `chosen` and `rejected` (text), and
`target` (soft probability that chosen wins, or None), `gap` (value gap, or None),
`score_chosen`, `score_rejected`, `match_id`, `item_id` (the item, or the dataset pair's id: what
joins samples with gold answers) and `meta` (a dict: the dataset pair's metadata, such as
PKU-SafeRLHF's safety flags, or the ledger pair's). A learner reports what it trained in a `summary`
attribute (or an `arena-learn.json` file in the checkpoint) whose `player` entry holds the
`transformers` options (`model`, `adapter`) that load the checkpoint, and whose `metrics` entry
(a dict) is merged into the run's metrics. A learner that writes to the ledger while it trains
(D2PO's gold calls are matches) sets `wants_ledger = True` and also gets `ledger=` (None on
ranks other than 0) and `run_id=`.

Nothing heavy is imported here: the learner plugin imports torch and trl when it trains.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena_core.errors import UsageError, suggest
from arena_core.ledger import JudgeRow, LearnerRun, Ledger, Player

if TYPE_CHECKING:
    from arena_core.learning.pairs import PairQuery
    from arena_core.registry import Registry

AGENT = "transformers"  # the agent every learned checkpoint plays with
SUMMARY_FILE = "arena-learn.json"
DEFAULT_OUT = "models"  # checkpoints land in models/<player> (ignored by git)
FLUSH_EVERY = 2.0  # seconds between writes of step metrics to the ledger


def is_main_process() -> bool:
    """Rank 0 under `accelerate launch` / torchrun (they set RANK); always true otherwise."""
    return os.environ.get("RANK", "0") == "0"


# --- data ---------------------------------------------------------------------------------------


@dataclass
class PairData:
    """Pairs for a learner, with a JSON description of where they came from."""

    rows: list[dict[str, Any]]
    query: dict[str, Any]
    note: str = ""

    @property
    def match_ids(self) -> list[str]:
        return sorted({r["match_id"] for r in self.rows if r.get("match_id")})


def _completion(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return "" if value is None else str(value)


def _prompt(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return [{"role": str(m.get("role", "user")), "content": str(m["content"])} for m in value]
    raise UsageError(f"a pair's prompt must be text or chat messages, got {type(value).__name__}")


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _meta(value: Any) -> dict[str, Any]:
    """A pair's metadata as a dict: ledger and exported rows carry it as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            return {"text": value}
    return dict(value) if isinstance(value, dict) else {}


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    """One pair in the learners' shape, from an export row, a dataset pair or a ledger pair."""
    for key in ("prompt", "chosen", "rejected"):
        if row.get(key) is None:
            raise UsageError(f"a pair has no '{key}' (columns: {', '.join(sorted(row))})")
    sc, sr = _num(row.get("score_chosen")), _num(row.get("score_rejected"))
    gap = _num(row.get("gap"))
    if gap is None and sc is not None and sr is not None:
        gap = sc - sr
    return {
        "prompt": _prompt(row["prompt"]),
        "chosen": _completion(row["chosen"]),
        "rejected": _completion(row["rejected"]),
        "target": _num(row.get("target")),
        "gap": gap,
        "score_chosen": sc,
        "score_rejected": sr,
        "match_id": row.get("match_id"),
        "item_id": None if (item := row.get("item_id", row.get("id"))) is None else str(item),
        "meta": _meta(row.get("meta", row.get("metadata"))),
    }


def ledger_pairs(ledger: Ledger, query: PairQuery, registry: Registry | None = None) -> PairData:
    """Pairs the ledger's finished matches give (arena_core.learning.pairs), as chat prompts."""
    from dataclasses import asdict, replace

    from arena_core.learning.pairs import PairStats, pairs

    stats = PairStats()
    chat = replace(query, conversational=True)
    rows = [normalize(r) for r in pairs(ledger, chat, registry=registry, stats=stats)]
    described = {k: v for k, v in asdict(query).items() if k != "conversational"}
    described["tournaments"] = list(query.tournaments)
    described["protocols"] = list(query.protocols)
    described["since"] = query.since.isoformat() if query.since else None
    dropped = ", ".join(f"{k}: {v}" for k, v in sorted(stats.dropped.items())) or "none"
    data = PairData(
        rows,
        {"source": "ledger", "ledger": ledger.url, **described},
        note=f"{len(rows)} pair(s) from {stats.matches} match(es); dropped: {dropped}",
    )
    data.query["matches"] = data.match_ids
    return data


def dataset_pairs(
    registry: Registry,
    name: str,
    options: dict[str, Any],
    *,
    split: str | None = None,
    limit: int | None = None,
) -> PairData:
    """Pairs of a dataset plugin that has them (its `pairs(split)` iterator)."""
    import itertools

    checked = registry.validate("dataset", name, options, table="dataset.options")
    source = registry.build("dataset", name, checked)
    if not callable(getattr(source, "pairs", None)):
        raise UsageError(f"dataset '{name}' has no preference pairs (only items)")
    rows = []
    for pair in itertools.islice(source.pairs(split), limit):
        raw = pair.model_dump(mode="json") if hasattr(pair, "model_dump") else dict(pair)
        messages = (raw.get("metadata") or {}).get("messages")
        if messages:  # a dialogue (HH): the learner gets its turns, not one user message
            raw = {**raw, "prompt": messages}
        rows.append(normalize(raw))
    query = {
        "source": "dataset",
        "dataset": name,
        "options": checked.model_dump(mode="json"),
        "split": split,
        "limit": limit,
    }
    return PairData(rows, query, note=f"{len(rows)} pair(s) from dataset '{name}'")


def file_pairs(path: str | Path) -> PairData:
    """Pairs exported by `arena pairs export`: a datasets directory or a JSONL file."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"--pairs {p}: no such file or directory")
    if p.is_dir():
        import datasets

        rows = [normalize(dict(r)) for r in datasets.load_from_disk(str(p))]
    else:
        rows = []
        with p.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(normalize(json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise UsageError(f"{p}:{n}: not JSON: {exc}") from None
    return PairData(rows, {"source": "pairs", "path": str(p)}, note=f"{len(rows)} pair(s) from {p}")


# --- the model to start from --------------------------------------------------------------------


@dataclass
class Base:
    """What a learner starts from: weights, an optional adapter, and the player it was."""

    model: str
    adapter: str | None = None
    parent: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the parent's agent options
    judge: str | None = None  # the ledger judge these weights are (lineage of a produced judge)


def resolve_base(
    ledger: Ledger, base: str | None, *, adapter: str | None = None, player: str | None = None
) -> Base:
    """`--base` as a ledger player (its model and adapter, and lineage), a ledger judge (its
    model; a reward model trained further) or a model directory; without it, the player the
    pairs were filtered on."""
    name = base or player
    if name is None:
        raise UsageError("name the model to train: --base PLAYER (in the ledger) or --base DIR")
    if base is not None and ledger.player(name) is None and ledger.judge(name) is not None:
        return resolve_judge_base(ledger, name)
    row = ledger.player(name)
    if row is not None:
        if row.agent != AGENT or not row.options.get("model"):
            raise UsageError(
                f"player '{name}' plays with agent '{row.agent}'; a learner needs a "
                f"'{AGENT}' player (a model directory) or --base DIR"
            )
        return Base(
            model=str(row.options["model"]),
            adapter=adapter or row.options.get("adapter"),
            parent=row.name,
            options=dict(row.options),
        )
    if base is not None and Path(base).exists():
        return Base(model=base, adapter=adapter)
    known = [p.name for p in _players(ledger)]
    raise UsageError(
        f"--base {name!r} is neither a player in the ledger{suggest(name, known)} "
        f"nor a model directory"
    )


def resolve_judge_base(ledger: Ledger, name: str) -> Base:
    """A ledger judge (its `model` option, and its name for lineage) or a model directory."""
    row = ledger.judge(name)
    if row is not None:
        model = row.options.get("model")
        if not model:
            raise UsageError(
                f"judge '{name}' ({row.plugin}) has no 'model' option: nothing to train from"
            )
        return Base(model=str(model), judge=row.name)
    if Path(name).exists():
        return Base(model=name)
    known = [j.name for j in ledger.judges()]
    raise UsageError(
        f"{name!r} is neither a judge in the ledger{suggest(name, known)} nor a model directory"
    )


def _players(ledger: Ledger) -> list[Player]:
    from sqlmodel import select

    with ledger.session() as s:
        return list(s.exec(select(Player)))


def default_name(ledger: Ledger, base: Base, learner: str) -> str:
    """`<parent>-<learner>-<n>`: the same on every rank, since it is read before any write.
    Players and judges share the numbering, so a run's player and judge names never collide."""
    stem = base.parent or base.judge or Path(base.model.rstrip("/")).name or "model"
    pattern = re.compile(rf"^{re.escape(stem)}-{re.escape(learner)}-(\d+)")
    names = [p.name for p in _players(ledger)] + [j.name for j in ledger.judges()]
    taken = [int(m.group(1)) for n in names if (m := pattern.match(n))]
    return f"{stem}-{learner}-{max(taken, default=0) + 1}"


# --- the learner run ----------------------------------------------------------------------------


class RunLog:
    """A learner_run row through its life: running -> done | failed, steps appended as logged."""

    def __init__(
        self, ledger: Ledger, learner: str, config: dict[str, Any], data: PairData
    ) -> None:
        self.ledger = ledger
        self.metrics: dict[str, Any] = {"steps": []}
        self._flushed = time.monotonic()
        with ledger.session() as s:
            row = LearnerRun(
                learner=learner,
                config=config,
                data_query=data.query,
                pairs=len(data.rows),
                metrics=self.metrics,
                status="running",
            )
            s.add(row)
            s.commit()
            s.refresh(row)
        assert row.id is not None
        self.id: int = row.id

    def _update(self, **values: Any) -> None:
        table = LearnerRun.__table__  # type: ignore[attr-defined]
        with self.ledger.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == self.id).values(**values))

    def step(self, logs: dict[str, Any]) -> None:
        """One logged step (numbers only); written at most every FLUSH_EVERY seconds."""
        row = {
            k: v for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        self.metrics["steps"].append(row)
        if time.monotonic() - self._flushed >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        self._update(metrics=json.loads(json.dumps(self.metrics, default=str)))
        self._flushed = time.monotonic()

    def done(
        self,
        checkpoint: str,
        wall: float,
        summary: dict[str, Any],
        player: Player | None = None,
        judge: JudgeRow | None = None,
    ) -> None:
        """Close the run and register its player and judge in one transaction: a run is `done`
        exactly when what it produced exists (what `arena loop` relies on to resume).
        A learner's `summary["metrics"]` (held-out evaluation, say) joins the run's metrics."""
        for key in ("before", "after", "train_loss", "kind"):
            if key in summary:
                self.metrics[key] = summary[key]
        if isinstance(summary.get("metrics"), dict):  # a learner's own run-level figures
            self.metrics.update(summary["metrics"])
        if isinstance(summary.get("steps"), int):
            self.metrics["steps_trained"] = summary["steps"]
        with self.ledger.session() as s:
            row = s.get(LearnerRun, self.id)
            assert row is not None
            row.status, row.checkpoint, row.wall_time = "done", checkpoint, wall
            row.metrics = json.loads(json.dumps(self.metrics, default=str))
            s.add(row)
            if player is not None:
                if s.get(Player, player.name) is not None:
                    raise UsageError(f"player '{player.name}' is already in the ledger")
                s.add(player)
            if judge is not None:
                if s.get(JudgeRow, judge.name) is not None:
                    raise UsageError(f"judge '{judge.name}' is already in the ledger")
                s.add(judge)
            s.commit()

    def failed(self, error: str, wall: float) -> None:
        self.metrics["error"] = error
        self._update(
            status="failed",
            wall_time=wall,
            metrics=json.loads(json.dumps(self.metrics, default=str)),
        )


@dataclass
class Learned:
    run_id: int | None
    player: str | None  # None when the learner produces only a judge
    checkpoint: str
    summary: dict[str, Any]
    options: dict[str, Any]  # the player's agent options
    judge: str | None = None
    judge_plugin: str | None = None
    judge_options: dict[str, Any] = field(default_factory=dict)


PRODUCTS = ("player", "judge")
JUDGE_KINDS = ("reward", "cost")


def produces(learner: Any) -> tuple[str, ...]:
    """What a learner declares it produces (its `produces` attribute; default a player)."""
    out = tuple(getattr(learner, "produces", ("player",)))
    bad = [p for p in out if p not in PRODUCTS]
    if not out or bad:
        raise UsageError(
            f"learner {type(learner).__name__} declares produces={out!r}; expected a non-empty "
            f"subset of {PRODUCTS}"
        )
    return out


def judge_entry(registry: Registry, summary: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """(plugin, validated options, kind) of the judge a learner's summary declares."""
    spec = summary.get("judge")
    if not isinstance(spec, dict) or not spec.get("plugin"):
        raise UsageError(
            "the learner declares it produces a judge, but its summary has no "
            "'judge': {'plugin': ..., 'options': {...}, 'kind': ...} entry"
        )
    kind = str(spec.get("kind", "reward"))
    if kind not in JUDGE_KINDS:
        raise UsageError(f"a produced judge's kind must be one of {JUDGE_KINDS}, got {kind!r}")
    plugin = str(spec["plugin"])
    registry.get("judge", plugin, key="summary judge plugin")
    checked = registry.validate("judge", plugin, dict(spec.get("options") or {}))
    return plugin, checked.model_dump(mode="json", exclude_defaults=True), kind


def player_options(
    registry: Registry, base: Base, summary: dict[str, Any], checkpoint: str
) -> dict[str, Any]:
    """The new player's `transformers` options: the parent's, with the learned weights."""
    options = dict(base.options) if base.options else {"model": base.model}
    found = summary.get("player") or {"model": base.model, "adapter": checkpoint}
    options.update({k: v for k, v in found.items() if k in ("model", "adapter")})
    if options.get("adapter") is None:
        options.pop("adapter", None)
    checked = registry.validate("agent", AGENT, options, table="players.options")
    return checked.model_dump(mode="json")


def read_summary(learner: Any, checkpoint: Path) -> dict[str, Any]:
    summary = getattr(learner, "summary", None)
    if summary:
        return dict(summary)
    path = checkpoint / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def learn(
    ledger: Ledger,
    registry: Registry,
    *,
    learner: str,
    options: dict[str, Any],
    data: PairData,
    base: Base,
    name: str | None = None,
    out_dir: str | Path | None = None,
    tags: dict[str, Any] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    judge_base: Base | None = None,
    judge_name: str | None = None,
) -> Learned:
    """Train `learner` on `data` from `base` (and `judge_base`, the judge a learner that trains
    one alongside the policy starts from), record the run, register what it produces."""
    entry = registry.get("learner", learner, key="--learner")
    checked = registry.validate("learner", learner, options, table="learner.options")
    if not data.rows:
        raise UsageError(f"no preference pairs to learn from ({data.note or 'empty'})")
    model = entry.factory(checked)  # cheap: learners import torch in `fit`
    made = produces(model)
    name = name or default_name(ledger, base, learner)
    main = is_main_process()
    if "player" in made and ledger.player(name) is not None:
        raise UsageError(f"player '{name}' is already in the ledger: pick another --register-as")
    if "judge" in made:
        if judge_name is None:
            suffix = getattr(model, "judge_suffix", "judge")
            judge_name = f"{name}-{suffix}" if "player" in made else name
        if ledger.judge(judge_name) is not None:
            raise UsageError(f"judge '{judge_name}' is already in the ledger: pick another name")
    else:
        judge_name = None
    out = Path(out_dir) if out_dir is not None else Path(DEFAULT_OUT) / name
    config = {
        "learner": learner,
        "options": checked.model_dump(mode="json"),
        "base": {
            "model": base.model,
            "adapter": base.adapter,
            "parent": base.parent,
            "judge": base.judge,
        },
        "produces": list(made),
        "player": name if "player" in made else None,
        "judge": judge_name,
        "out": str(out),
        **(tags or {}),
    }
    if judge_base is not None:
        config["judge_base"] = {"model": judge_base.model, "judge": judge_base.judge}
    run = RunLog(ledger, learner, config, data) if main else None
    extra: dict[str, Any] = {} if judge_base is None else {"judge_model": judge_base.model}

    def on_log(logs: dict[str, Any]) -> None:
        if run is not None:
            run.step(logs)
        if on_step is not None:
            on_step(logs)

    # A learner that records into the ledger as it trains (D2PO's gold calls are matches)
    # says so with `wants_ledger`; the others never see it.
    if getattr(model, "wants_ledger", False):
        extra.update(ledger=ledger if main else None, run_id=run.id if run else None)
    started = time.perf_counter()
    try:
        checkpoint = Path(
            model.fit(data.rows, base.model, out, adapter=base.adapter, on_log=on_log, **extra)
        )
    except BaseException as exc:
        if run is not None:
            kind = "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
            run.failed(f"{kind}: {exc}", time.perf_counter() - started)
        raise
    wall = time.perf_counter() - started
    summary = read_summary(model, checkpoint)
    opts: dict[str, Any] = {}
    player: Player | None = None
    judge: JudgeRow | None = None
    jplugin, jopts = None, {}
    try:
        if "player" in made:
            opts = player_options(registry, base, summary, str(checkpoint))
            player = Player(name=name, agent=AGENT, options=opts, parent=base.parent)
        if judge_name is not None and run is not None:  # other ranks have no summary
            jplugin, jopts, kind = judge_entry(registry, summary)
            origin = judge_base if judge_base is not None else base
            judge = JudgeRow(
                name=judge_name,
                plugin=jplugin,
                options=jopts,
                kind=kind,
                parent=origin.judge,
                base_model=origin.model,
            )
    except BaseException as exc:
        if run is not None:
            run.failed(f"{type(exc).__name__}: {exc}", wall)
        raise
    if run is not None:
        for row in (player, judge):
            if row is not None:
                row.learner_run = run.id
        run.done(str(checkpoint), wall, summary, player, judge)
    return Learned(
        run.id if run else None,
        name if player is not None or (run is None and "player" in made) else None,
        str(checkpoint),
        summary,
        opts,
        judge=judge_name,
        judge_plugin=jplugin,
        judge_options=jopts,
    )


# --- the command --------------------------------------------------------------------------------


def format_step(logs: dict[str, Any]) -> str | None:
    """One progress line per training step (None for other log rows)."""
    if "loss" not in logs:
        return None
    parts = [f"step {logs.get('step', '?')}", f"loss {logs['loss']:.4f}"]
    if "rewards/accuracies" in logs:
        parts.append(f"reward acc {logs['rewards/accuracies']:.2f}")
    if "rewards/margins" in logs:
        parts.append(f"margin {logs['rewards/margins']:.3f}")
    return "  " + ", ".join(parts)


# --- `arena model tiny` ---------------------------------------------------------------------------

MODEL_GROUP = "arena.models"  # entry points: name -> builder(out_dir, **kwargs) -> Path
