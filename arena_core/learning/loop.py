"""`arena loop FILE`: iterated self-play -> learn -> cross-play, resumable at the step it stopped.

    arena loop tournaments/iterative-dpo.toml [--ledger URL] [--iterations N]

For iteration k = 1..N, with P0 the base player and Pk the player learned in iteration k:

1. selfplay: a tournament `<loop>-selfplay-k` in which P(k-1) plays itself (`self-play`
   schedule) under the `[selfplay]` protocol (branched debate, typically);
2. learn: the `[learner]` plugin trains on the pairs of that tournament spoken by P(k-1)
   (with `accumulate`, on every self-play tournament so far), starting from P(k-1): with LoRA,
   from P(k-1)'s adapter, whose frozen copy is the reference, so each iterate is measured against
   the previous one; Pk is registered with parent P(k-1) (see arena_core.learning.learn);
3. crossplay: a tournament `<loop>-crossplay-k` in which P0..Pk play each other (round-robin)
   under the `[crossplay]` protocol, in its own rating pool.

With an `[evolve]` table (eva, Ye et al. 2024) each iteration k >= 2 starts with a fourth step,
evolve, which replaces the item set of self-play k: every prompt of self-play k-1 is scored by
its informativeness, max - min reward over its samples under the judge that tournament used (the
protocol's `rewards(record)`: the self-play protocol gives PairRM strengths or win
probabilities); a `share` of the prompts is drawn without replacement, weighted by the min-max
normalised informativeness (eva: the least informative gets weight 0); a creator agent (any
registered agent: an API model, a local model, the model-free `rewriter`) writes `per_prompt`
new prompts from each; self-play k plays the evolved prompts mixed with old ones (`old` = their
share, 0.2 by default, drawn from the prompts of self-play k-1). Evolved prompts are items with
their lineage in `metadata` (`parent`, and `evolved`: loop, iteration, creator,
informativeness), so the ledger's match snapshots tie every evolved prompt to its parent; the item
set is kept as `<checkpoints>/items-<k>.jsonl`. Nothing in the step knows which learner follows.

At the end the last cross-play leaderboard is printed with each player's parent.

Resuming: the steps completed are kept in `<checkpoints>/loop-state.json` (written atomically
after each step), with the ledger URL and a hash of the loop's config. Running the same command
again skips completed steps and re-enters the one it stopped in: a tournament plays only the
matches not done yet; a learn step whose player is already registered is kept, otherwise the
interrupted learner run is marked failed and the step trains again (checkpoints are moved into
place in one rename, so a killed run leaves none half-written). Raising `iterations` extends a
finished loop; changing anything else is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena_core.config import (
    DatasetSection,
    JudgeSection,
    PlayerSection,
    RatingsSection,
    RawConfig,
    read_toml,
    resolve,
)
from arena_core.errors import ConfigError, UsageError
from arena_core.ids import seed_for
from arena_core.ledger import LearnerRun, Ledger
from arena_core.registry import Registry
from arena_core.types import Item, Message, Observation, Request

STEPS = ("selfplay", "learn", "crossplay")
STATE_FILE = "loop-state.json"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoopSection(_Section):
    name: str = Field(min_length=1, description="prefix of every tournament the loop runs")
    iterations: int = Field(2, ge=1)
    seed: int = 0
    checkpoints: str | None = Field(
        None, description="where iterates and the loop state live (default: models/<name>)"
    )
    accumulate: bool = Field(
        False, description="learn from every self-play so far, not only the latest"
    )
    names: str = Field("{base}-{learner}-{iteration}", description="name of each learned player")


class StageSection(_Section):
    """One tournament of the loop: the players are filled in by the loop."""

    protocol: str
    options: dict[str, Any] = Field(default_factory=dict, description="the protocol's options")
    dataset: DatasetSection | None = None  # crossplay: default the selfplay's
    judge: JudgeSection | None = None  # crossplay: default the selfplay's
    concurrency: int = Field(16, ge=1)
    repetitions: int = Field(1, ge=1)
    timeout: float = Field(300.0, gt=0)
    retries: int = Field(1, ge=0)
    backoff: float = Field(0.5, ge=0)
    ratings: RatingsSection = Field(default_factory=RatingsSection)


class LearnerSection(_Section):
    plugin: str = "dpo"
    options: dict[str, Any] = Field(default_factory=dict)
    min_gap: float = Field(0.0, ge=0, description="drop pairs whose gap is not above this")
    gamma: float | None = Field(None, gt=0, description="soft-target sharpness of the pairs")


# EvolInstruct's in-depth instruction (eva's creator prompt), shortened; any creator may be told
# otherwise with `[evolve] instruction`.
EVOLVE_INSTRUCTION = (
    "I want you to act as a Prompt Rewriter. Rewrite the given prompt into a more complex "
    "version that a capable assistant can still answer well: add a constraint or requirement, "
    "ask for deeper reasoning, make it more specific, or write a new prompt of the same kind. "
    "The rewritten prompt must be reasonable, self-contained and understood by humans. Reply "
    "with the new prompt only."
)


class CreatorSection(_Section):
    agent: str = Field(description="a registered agent that writes the new prompts")
    options: dict[str, Any] = Field(default_factory=dict)


class EvolveSection(_Section):
    """eva's prompt evolution between iterations (see the module docstring)."""

    creator: CreatorSection
    share: float = Field(0.25, gt=0, le=1, description="share of the last prompts evolved")
    per_prompt: int = Field(4, ge=1, le=64, description="new prompts written from each")
    old: float = Field(0.2, ge=0, lt=1, description="share of old prompts in the next item set")
    instruction: str = Field(EVOLVE_INSTRUCTION, min_length=1, description="the creator's task")
    temperature: float = Field(1.0, ge=0)
    max_tokens: int = Field(512, ge=1)


class LoopConfig(_Section):
    loop: LoopSection
    player: PlayerSection
    selfplay: StageSection
    learner: LearnerSection = Field(default_factory=LearnerSection)
    crossplay: StageSection
    evolve: EvolveSection | None = None

    def identity(self) -> str:
        """Everything but `iterations` (raising it extends a loop)."""
        data = self.model_dump(mode="json")
        data["loop"].pop("iterations")
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def checkpoints(self) -> Path:
        return Path(self.loop.checkpoints or f"models/{self.loop.name}")

    def player_name(self, k: int) -> str:
        if k == 0:
            return self.player.name
        return self.loop.names.format(
            base=self.player.name, learner=self.learner.plugin, iteration=k, loop=self.loop.name
        )

    def tournament(self, step: str, k: int) -> str:
        return f"{self.loop.name}-{step}-{k}"


def load_loop(path: str | Path, registry: Registry) -> LoopConfig:
    """Read and check a loop file; plugin names and options are checked before anything runs."""
    file = str(path)
    data = read_toml(path)
    try:
        cfg = LoopConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        table = loc[0] if loc else None
        key = ".".join(loc[1:]) or None
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] == "missing" and key is None:
            msg = f"missing table [{table}]"
            table = None
        raise ConfigError(msg, file=file, table=table, key=key) from None
    if cfg.crossplay.dataset is None:
        cfg.crossplay.dataset = cfg.selfplay.dataset
    if cfg.crossplay.judge is None:
        cfg.crossplay.judge = cfg.selfplay.judge
    for stage in ("selfplay", "crossplay"):
        if getattr(cfg, stage).dataset is None or getattr(cfg, stage).judge is None:
            raise ConfigError("needs a dataset and a judge table", file=file, table=stage)
    registry.validate(
        "learner", cfg.learner.plugin, cfg.learner.options, file=file, table="learner.options"
    )
    # The stage tournaments with the base player alone: checks protocols, datasets, judges.
    for stage in ("selfplay", "crossplay"):
        resolve(_raw(cfg, stage, 1, [_player(cfg.player)]), registry, file)
    if cfg.evolve is not None:
        creator = cfg.evolve.creator
        registry.get("agent", creator.agent, file=file, table="evolve.creator", key="agent")
        registry.validate(
            "agent", creator.agent, creator.options, file=file, table="evolve.creator.options"
        )
        options = registry.validate(
            "protocol", cfg.selfplay.protocol, cfg.selfplay.options, file=file, table="selfplay"
        )
        protocol = registry.build("protocol", cfg.selfplay.protocol, options)
        if not callable(getattr(protocol, "rewards", None)):
            raise ConfigError(
                f"protocol '{cfg.selfplay.protocol}' does not score its samples (no `rewards`); "
                f"prompt evolution needs one that does, such as self-play",
                file=file,
                table="evolve",
            )
    return cfg


def _player(p: PlayerSection) -> dict[str, Any]:
    return {"name": p.name, "agent": p.agent, "options": dict(p.options)}


def _raw(cfg: LoopConfig, stage: str, k: int, players: list[dict[str, Any]]) -> RawConfig:
    s: StageSection = getattr(cfg, stage)
    seed = cfg.loop.seed + (k if stage == "selfplay" else 0)  # new items each self-play
    return RawConfig.model_validate(
        {
            "tournament": {
                "name": cfg.tournament(stage, k),
                "protocol": s.protocol,
                "seed": seed,
                "concurrency": s.concurrency,
                "repetitions": s.repetitions,
                "timeout": s.timeout,
                "retries": s.retries,
                "backoff": s.backoff,
            },
            "protocol": s.options,
            "dataset": s.dataset.model_dump() if s.dataset else None,
            "judge": s.judge.model_dump() if s.judge else None,
            "players": players,
            "schedule": {"kind": "self-play" if stage == "selfplay" else "round-robin"},
            "ratings": s.ratings.model_dump(),
        }
    )


# --- state ----------------------------------------------------------------------------------------


@dataclass
class LoopState:
    """Completed steps ("k/step"), the step in progress, and what the loop was started with."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def open(cls, cfg: LoopConfig, ledger_url: str) -> LoopState:
        path = cfg.checkpoints / STATE_FILE
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("identity") != cfg.identity():
                raise UsageError(
                    f"{path} was written by a different loop config (only `iterations` may "
                    f"change); give the loop a new [loop] name or remove that file"
                )
            if data.get("ledger") != ledger_url:
                raise UsageError(
                    f"{path} belongs to the ledger {data.get('ledger')}, not {ledger_url}; "
                    f"pass --ledger {data.get('ledger')} to resume it"
                )
            return cls(path, data)
        state = cls(
            path,
            {
                "loop": cfg.loop.name,
                "identity": cfg.identity(),
                "ledger": ledger_url,
                "completed": [],
                "current": None,
            },
        )
        state.save()
        return state

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)

    def done(self, key: str) -> bool:
        return key in self.data["completed"]

    def start(self, key: str) -> None:
        self.data["current"] = key
        self.save()

    def complete(self, key: str, info: dict[str, Any] | None = None) -> None:
        self.data["completed"].append(key)
        self.data.setdefault("info", {})[key] = info or {}
        self.data["current"] = None
        self.save()


# --- steps ----------------------------------------------------------------------------------------


def _play(
    cfg: LoopConfig,
    stage: str,
    k: int,
    players: list[dict[str, Any]],
    ledger: Ledger,
    registry: Registry,
    source: str,
    items: list[Item] | None = None,
) -> dict[str, Any]:
    from arena_core.engine import Tournament
    from arena_core.plugins import get_plugin_manager

    tcfg = resolve(_raw(cfg, stage, k, players), registry, f"[{stage}]")
    tournament = Tournament(tcfg, registry, source=source, items=items)
    summary = asyncio.run(tournament.run(ledger, hook=get_plugin_manager().hook))
    counts = ledger.counts(tcfg.name)
    return {
        "tournament": tcfg.name,
        "done": counts.get("done", 0),
        "failed": counts.get("failed", 0),
        "played": summary.done + summary.failed,
    }


def _learned_player(ledger: Ledger, name: str) -> dict[str, Any]:
    row = ledger.player(name)
    if row is None:
        raise UsageError(f"player '{name}' is missing from the ledger; the loop state is stale")
    return {"name": row.name, "agent": row.agent, "options": dict(row.options)}


def _abandon_runs(ledger: Ledger, loop: str, k: int) -> int:
    """Mark this step's learner runs that a killed process left `running` as failed."""
    from sqlmodel import select

    n = 0
    with ledger.session() as s:
        for row in s.exec(select(LearnerRun).where(LearnerRun.status == "running")):
            if row.config.get("loop") == loop and row.config.get("iteration") == k:
                row.status = "failed"
                row.metrics = {**row.metrics, "error": "interrupted; the loop was resumed"}
                s.add(row)
                n += 1
        s.commit()
    return n


def _learn(
    cfg: LoopConfig, k: int, ledger: Ledger, registry: Registry, say: Callable[[str], None]
) -> dict[str, Any]:
    from arena_core.learning.learn import format_step, learn, ledger_pairs, resolve_base
    from arena_core.learning.pairs import PairQuery

    parent, name = cfg.player_name(k - 1), cfg.player_name(k)
    abandoned = _abandon_runs(ledger, cfg.loop.name, k)
    row = ledger.player(name)
    if row is not None and row.learner_run is not None:  # trained before the state was saved
        return {"player": name, "learner_run": row.learner_run, "resumed": True}
    if abandoned:
        say(f"{k}/learn: {abandoned} interrupted learner run(s) marked failed; training again")
    tournaments = [cfg.tournament("selfplay", i) for i in range(1, k + 1)]
    query = PairQuery(
        tournaments=tournaments if cfg.loop.accumulate else tournaments[-1:],
        player=None if cfg.loop.accumulate else parent,
        min_gap=cfg.learner.min_gap,
        gamma=cfg.learner.gamma,
    )
    data = ledger_pairs(ledger, query, registry)
    say(f"{k}/learn: {data.note}; from {parent}")

    def on_step(logs: dict[str, Any]) -> None:
        line = format_step(logs)
        if line:
            say(f"{k}/learn{line.replace('  step', ' step', 1)}")

    result = learn(
        ledger,
        registry,
        learner=cfg.learner.plugin,
        options=cfg.learner.options,
        data=data,
        base=resolve_base(ledger, parent),
        name=name,
        out_dir=cfg.checkpoints / name,
        tags={"loop": cfg.loop.name, "iteration": k},
        on_step=on_step,
    )
    info = {"player": name, "learner_run": result.run_id, "pairs": len(data.rows)}
    for when in ("before", "after"):
        figures = result.summary.get(when) or {}
        info[when] = {k2: figures[k2] for k2 in ("loss", "rewards/accuracies") if k2 in figures}
    return info


# --- evolve (eva) -----------------------------------------------------------------------------


def informativeness(
    ledger: Ledger, registry: Registry, tournament: str
) -> list[tuple[Item, float]]:
    """Each prompt of a tournament with max - min reward over its samples (the mean over its
    matches, if it was played more than once), from the protocol's `rewards(record)`."""
    from arena_core.engine import build_protocol
    from arena_core.learning.pairs import records

    row = ledger.tournament(tournament)
    protocol = build_protocol(registry, row)
    if not callable(getattr(protocol, "rewards", None)):
        raise UsageError(f"protocol '{row.protocol}' does not score its samples (no `rewards`)")
    items: dict[str, Item] = {}
    gaps: dict[str, list[float]] = {}
    for record in records(ledger, row):
        rewards = list(protocol.rewards(record).values())
        if len(rewards) < 2:
            continue
        item = Item.model_validate(record.match.item)
        items.setdefault(item.id, item)
        gaps.setdefault(item.id, []).append(max(rewards) - min(rewards))
    return [(items[i], sum(g) / len(g)) for i, g in gaps.items()]


def weighted_sample(
    scored: Sequence[tuple[Item, float]], n: int, rng: random.Random
) -> list[tuple[Item, float]]:
    """n prompts without replacement, weights = min-max normalised informativeness (eva's draw:
    the least informative gets 0 and comes last; all equal: uniform). Efraimidis-Spirakis keys
    u^(1/w), written out because `random` has no weighted draw without replacement."""
    gaps = [g for _, g in scored]
    lo, hi = min(gaps, default=0.0), max(gaps, default=0.0)
    keyed = []
    for i, g in enumerate(gaps):
        u = rng.random()
        w = 1.0 if hi <= lo else (g - lo) / (hi - lo)
        keyed.append(((1, u ** (1.0 / w)) if w > 0 else (0, u), i))
    keyed.sort(reverse=True)
    return [scored[i] for _, i in keyed[:n]]


def creator_requests(cfg: LoopConfig, k: int, parents: Sequence[Item]) -> list[Request]:
    """One request per parent prompt: the instruction and the prompt (LLM creators read the
    messages; model-free ones the observation), `per_prompt` samples, seeded by loop and item."""
    ev = cfg.evolve
    assert ev is not None
    return [
        Request(
            messages=[
                Message(role="system", content=ev.instruction),
                Message(role="user", content=f"#Given Prompt#:\n{p.question}"),
            ],
            observation=Observation(
                seat="creator", phase="evolve", item_id=p.id, question=p.question, context=p.context
            ),
            n=ev.per_prompt,
            temperature=ev.temperature,
            max_tokens=ev.max_tokens,
            seed=seed_for(cfg.loop.name, "evolve", k, p.id),
        )
        for p in parents
    ]


async def _create(
    registry: Registry, creator: CreatorSection, requests: list[Request]
) -> list[Any]:
    agent = registry.build("agent", creator.agent, creator.options)
    try:
        responses = await agent.respond(requests)
    finally:
        await agent.aclose()
    if len(responses) != len(requests):
        raise UsageError(
            f"creator agent '{creator.agent}' returned {len(responses)} responses to "
            f"{len(requests)} requests"
        )
    return responses


def evolve_items(
    cfg: LoopConfig, k: int, ledger: Ledger, registry: Registry
) -> tuple[list[Item], dict[str, Any]]:
    """The item set of self-play k: evolved prompts of self-play k-1 mixed with old ones."""
    ev = cfg.evolve
    assert ev is not None
    source = cfg.tournament("selfplay", k - 1)
    scored = informativeness(ledger, registry, source)
    if not scored:
        raise UsageError(f"{source} has no finished matches with scored samples to evolve")
    rng = random.Random(seed_for(cfg.loop.seed, cfg.loop.name, "evolve", k))
    parents = weighted_sample(scored, max(1, round(ev.share * len(scored))), rng)
    responses = asyncio.run(
        _create(registry, ev.creator, creator_requests(cfg, k, [p for p, _ in parents]))
    )
    seen = {item.question.strip() for item, _ in scored}
    evolved: list[Item] = []
    for (parent, gap), resp in zip(parents, responses, strict=True):
        for j, text in enumerate(resp.texts):
            question = text.strip()
            if not question or question in seen:  # an echo or a repeat is not a new prompt
                continue
            seen.add(question)
            evolved.append(
                Item(
                    id=f"{parent.id}~{k}.{j}",
                    question=question,
                    answers=[],  # the candidate answers were the parent's question's
                    context=parent.context,
                    metadata={
                        "parent": parent.id,
                        "evolved": {
                            "loop": cfg.loop.name,
                            "iteration": k,
                            "creator": ev.creator.agent,
                            "informativeness": gap,
                        },
                    },
                )
            )
    if not evolved:
        raise UsageError(f"creator agent '{ev.creator.agent}' wrote no new prompt")
    pool = [item for item, _ in scored]
    n_old = min(len(pool), round(len(evolved) * ev.old / (1 - ev.old)))
    items = rng.sample(pool, n_old) + evolved
    rng.shuffle(items)
    info = {
        "from": source,
        "evolved": len(evolved),
        "old": n_old,
        "parents": {p.id: round(g, 6) for p, g in parents},
    }
    return items, info


def _items_file(cfg: LoopConfig, k: int) -> Path:
    return cfg.checkpoints / f"items-{k}.jsonl"


def _evolve(
    cfg: LoopConfig, k: int, ledger: Ledger, registry: Registry, say: Callable[[str], None]
) -> dict[str, Any]:
    items, info = evolve_items(cfg, k, ledger, registry)
    path = _items_file(cfg, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        "".join(json.dumps(i.model_dump(mode="json")) + "\n" for i in items), encoding="utf-8"
    )
    os.replace(tmp, path)
    say(
        f"{k}/evolve: {info['evolved']} new prompt(s) from {len(info['parents'])} of "
        f"{info['from']}, mixed with {info['old']} old"
    )
    return {**info, "items": str(path)}


def _evolved_items(cfg: LoopConfig, k: int) -> list[Item] | None:
    if cfg.evolve is None or k < 2:
        return None
    path = _items_file(cfg, k)
    if not path.exists():
        raise UsageError(f"{path} (the item set of iteration {k}) is missing; the state is stale")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Item.model_validate_json(line) for line in lines if line.strip()]


def run_loop(
    cfg: LoopConfig,
    ledger: Ledger,
    registry: Registry,
    *,
    source: str = "",
    say: Callable[[str], None] = lambda _: None,
) -> LoopState:
    """Run (or resume) every step not completed; return the final state."""
    state = LoopState.open(cfg, ledger.url)
    if state.data.get("current"):
        say(f"resuming at {state.data['current']}")
    for k in range(1, cfg.loop.iterations + 1):
        steps = ("evolve", *STEPS) if cfg.evolve is not None and k > 1 else STEPS
        for step in steps:
            key = f"{k}/{step}"
            if state.done(key):
                continue
            state.start(key)
            if step == "evolve":
                info = _evolve(cfg, k, ledger, registry, say)
            elif step == "selfplay":
                current = cfg.player_name(k - 1)
                player = _player(cfg.player) if k == 1 else _learned_player(ledger, current)
                say(f"{key}: {current} plays itself in {cfg.tournament('selfplay', k)}")
                items = _evolved_items(cfg, k)
                info = _play(cfg, "selfplay", k, [player], ledger, registry, source, items)
            elif step == "learn":
                info = _learn(cfg, k, ledger, registry, say)
            else:
                players = [_player(cfg.player)] + [
                    _learned_player(ledger, cfg.player_name(i)) for i in range(1, k + 1)
                ]
                names = ", ".join(p["name"] for p in players)
                say(f"{key}: {names} in {cfg.tournament('crossplay', k)}")
                info = _play(cfg, "crossplay", k, players, ledger, registry, source)
            state.complete(key, info)
            say(f"{key}: done {json.dumps(info)}")
    return state


def lineage_table(ledger: Ledger, pool: str) -> list[dict[str, Any]]:
    """The pool's leaderboard with each player's parent and learner run."""
    from arena_core.reports.leaderboard import leaderboard

    rows = []
    for r in leaderboard(ledger, pool, bootstrap=50):
        p = ledger.player(r.player)
        rows.append(
            {
                "rank": r.rank,
                "player": r.player,
                "parent": p.parent if p else None,
                "learner_run": p.learner_run if p else None,
                "mu": r.mu,
                "sigma": r.sigma,
                "matches": r.matches,
                "win_rate": r.win_rate,
                "bt": r.bt,
            }
        )
    return rows
