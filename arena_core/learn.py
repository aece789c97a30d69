"""`arena learn`: preference pairs -> a learner plugin -> a checkpoint -> a new player.

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
closes and the player appears in one transaction). `--from-ledger URL --ledger OTHER` reads the
pairs from URL and records the run and the player in OTHER. Under `accelerate launch` or
`torchrun` only rank 0 writes to the ledger.

The pairs a learner's `fit(data, base_model, out_dir, adapter=..., on_log=...)` receives are dicts
with `prompt` (chat messages, a list of {role, content}), `chosen` and `rejected` (text), and
`target` (soft probability that chosen wins, or None), `gap` (value gap, or None),
`score_chosen`, `score_rejected`, `match_id`. A learner reports what it trained in a `summary`
attribute (or an `arena-learn.json` file in the checkpoint) whose `player` entry holds the
`transformers` options (`model`, `adapter`) that load the checkpoint.

Nothing heavy is imported here: the learner plugin imports torch and trl when it trains.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena_core.errors import UsageError, suggest
from arena_core.ledger import LearnerRun, Ledger, Player, resolve_url

if TYPE_CHECKING:
    from arena_core.pairs import PairQuery
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
    }


def ledger_pairs(ledger: Ledger, query: PairQuery, registry: Registry | None = None) -> PairData:
    """Pairs the ledger's finished matches give (arena_core.pairs), as chat prompts."""
    from dataclasses import asdict, replace

    from arena_core.pairs import PairStats, pairs

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


def resolve_base(
    ledger: Ledger, base: str | None, *, adapter: str | None = None, player: str | None = None
) -> Base:
    """`--base` as a ledger player (its model and adapter, and lineage) or a model directory;
    without it, the player the pairs were filtered on."""
    name = base or player
    if name is None:
        raise UsageError("name the model to train: --base PLAYER (in the ledger) or --base DIR")
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


def _players(ledger: Ledger) -> list[Player]:
    from sqlmodel import select

    with ledger.session() as s:
        return list(s.exec(select(Player)))


def default_name(ledger: Ledger, base: Base, learner: str) -> str:
    """`<parent>-<learner>-<n>`: the same on every rank, since it is read before any write."""
    stem = base.parent or Path(base.model.rstrip("/")).name or "model"
    pattern = re.compile(rf"^{re.escape(stem)}-{re.escape(learner)}-(\d+)$")
    taken = [int(m.group(1)) for p in _players(ledger) if (m := pattern.match(p.name))]
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
        self, checkpoint: str, wall: float, summary: dict[str, Any], player: Player | None = None
    ) -> None:
        """Close the run and register its player in one transaction: a run is `done` exactly
        when its player exists (what `arena loop` relies on to resume)."""
        for key in ("before", "after", "train_loss", "kind"):
            if key in summary:
                self.metrics[key] = summary[key]
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
    player: str
    checkpoint: str
    summary: dict[str, Any]
    options: dict[str, Any]


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
) -> Learned:
    """Train `learner` on `data` from `base`, record the run, register the player."""
    entry = registry.get("learner", learner, key="--learner")
    checked = registry.validate("learner", learner, options, table="learner.options")
    if not data.rows:
        raise UsageError(f"no preference pairs to learn from ({data.note or 'empty'})")
    name = name or default_name(ledger, base, learner)
    main = is_main_process()
    if ledger.player(name) is not None:
        raise UsageError(f"player '{name}' is already in the ledger: pick another --register-as")
    out = Path(out_dir) if out_dir is not None else Path(DEFAULT_OUT) / name
    config = {
        "learner": learner,
        "options": checked.model_dump(mode="json"),
        "base": {"model": base.model, "adapter": base.adapter, "parent": base.parent},
        "player": name,
        "out": str(out),
        **(tags or {}),
    }
    run = RunLog(ledger, learner, config, data) if main else None
    model = entry.factory(checked)

    def on_log(logs: dict[str, Any]) -> None:
        if run is not None:
            run.step(logs)
        if on_step is not None:
            on_step(logs)

    started = time.perf_counter()
    try:
        checkpoint = Path(
            model.fit(data.rows, base.model, out, adapter=base.adapter, on_log=on_log)
        )
    except BaseException as exc:
        if run is not None:
            kind = "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
            run.failed(f"{kind}: {exc}", time.perf_counter() - started)
        raise
    wall = time.perf_counter() - started
    summary = read_summary(model, checkpoint)
    opts = player_options(registry, base, summary, str(checkpoint))
    if run is not None:
        player = Player(
            name=name, agent=AGENT, options=opts, parent=base.parent, learner_run=run.id
        )
        run.done(str(checkpoint), wall, summary, player)
    return Learned(run.id if run else None, name, str(checkpoint), summary, opts)


# --- the command --------------------------------------------------------------------------------


def _since(text: str | None) -> Any:
    from arena_core.pairs import _since as parse

    return parse(text)


def gather_pairs(args: argparse.Namespace, ledger: Ledger, registry: Registry) -> PairData:
    """The one data source the flags name."""
    from arena_core.datasets_cmd import parse_options
    from arena_core.pairs import PairQuery

    sources = [
        s
        for s, on in (
            ("--from-ledger", args.from_ledger is not None),
            ("--dataset", args.dataset is not None),
            ("--pairs", args.pairs is not None),
        )
        if on
    ]
    if len(sources) != 1:
        raise UsageError("give exactly one data source: --from-ledger, --dataset or --pairs")
    if args.dataset is not None:
        return dataset_pairs(
            registry,
            args.dataset,
            parse_options(args.dataset_option),
            split=args.split,
            limit=args.limit,
        )
    if args.pairs is not None:
        return file_pairs(args.pairs)
    query = PairQuery(
        tournaments=args.tournament or (),
        protocols=args.protocol or (),
        player=args.player,
        judge=args.judge,
        min_gap=args.min_gap,
        since=_since(args.since),
        gamma=args.gamma,
    )
    if not args.from_ledger or resolve_url(args.from_ledger) == ledger.url:
        return ledger_pairs(ledger, query, registry)
    source = Ledger(args.from_ledger, create=False)  # pairs from there, the run recorded here
    try:
        return ledger_pairs(source, query, registry)
    finally:
        source.close()


def toml_inline(options: dict[str, Any]) -> str:
    """`{ k = v, ... }` for a player snippet (values are JSON-compatible TOML)."""
    parts = []
    for k, v in options.items():
        if v is None:
            continue
        key = k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)
        parts.append(f"{key} = {json.dumps(v)}")
    return "{ " + ", ".join(parts) + " }"


def player_snippet(registry: Registry, name: str, options: dict[str, Any]) -> str:
    """The [[players]] table that enters the new player in a tournament (non-default options)."""
    checked = registry.validate("agent", AGENT, options)
    short = checked.model_dump(mode="json", exclude_defaults=True)
    return f'[[players]]\nname = "{name}"\nagent = "{AGENT}"\noptions = {toml_inline(short)}\n'


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


def learn_command(args: argparse.Namespace) -> int:
    """`arena learn`: see the module docstring."""
    from arena_core.datasets_cmd import parse_options
    from arena_core.plugins import get_registry

    registry = get_registry()
    registry.get("learner", args.learner, key="--learner")  # a typo fails before any loading
    # The run and the player are recorded in --ledger, else in the ledger the pairs come from.
    create = args.ledger is not None or args.from_ledger is None
    ledger = Ledger(args.ledger or args.from_ledger or None, create=create)
    try:
        data = gather_pairs(args, ledger, registry)
        base = resolve_base(ledger, args.base, adapter=args.adapter, player=args.player)
        if args.parent:
            base.parent = args.parent
        quiet = args.quiet or not is_main_process()
        say = (lambda *_: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
        say(f"learn {args.learner}: {data.note}; base {base.parent or base.model}")

        def on_step(logs: dict[str, Any]) -> None:
            line = format_step(logs)
            if line:
                say(line)

        result = learn(
            ledger,
            registry,
            learner=args.learner,
            options=parse_options(args.option),
            data=data,
            base=base,
            name=args.register_as,
            out_dir=args.out,
            on_step=on_step,
        )
    finally:
        ledger.close()
    if is_main_process():
        before, after = result.summary.get("before", {}), result.summary.get("after", {})
        figures = ""
        if before and after:
            figures = (
                f"; loss {before.get('loss', float('nan')):.4f} -> "
                f"{after.get('loss', float('nan')):.4f}, reward accuracy "
                f"{before.get('rewards/accuracies', float('nan')):.2f} -> "
                f"{after.get('rewards/accuracies', float('nan')):.2f}"
            )
        print(
            f"learner run {result.run_id}: player '{result.player}' (parent "
            f"{base.parent or '-'}) at {result.checkpoint}{figures}"
        )
        if not args.quiet:
            print(player_snippet(registry, result.player, result.options))
    return 0


# --- `arena model tiny` ---------------------------------------------------------------------------

MODEL_GROUP = "arena.models"  # entry points: name -> builder(out_dir, **kwargs) -> Path


def model_builders() -> dict[str, Any]:
    """Model builders registered under the entry-point group `arena.models` (loaded lazily)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=MODEL_GROUP)}


def model_command(args: argparse.Namespace) -> int:
    """`arena model tiny OUT_DIR`: write a small local model (no download), e.g. for the loop."""
    builders = model_builders()
    kind = args.kind
    if kind not in builders:
        raise UsageError(
            f"no model builder '{kind}'{suggest(kind, builders)} (known: "
            f"{', '.join(sorted(builders)) or 'none: install arena[hf]'}; builders are "
            f"entry points of the group '{MODEL_GROUP}')"
        )
    build = builders[kind]
    build = build.load() if hasattr(build, "load") else build
    kwargs: dict[str, Any] = {}
    for key in ("vocab_size", "hidden", "layers", "seed"):
        value = getattr(args, key, None)
        if value is not None:
            kwargs[key] = value
    out = build(args.out_dir, **kwargs)
    print(f"wrote a {kind} model to {out}")
    return 0
