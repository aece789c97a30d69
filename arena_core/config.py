"""Tournament config: TOML read with `tomllib`, validated by pydantic, plugins resolved.

Every error names the file, the table and the key, suggests the nearest valid name for a typo, and
is raised before the ledger is touched.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena_core.errors import ConfigError, UsageError, suggest
from arena_core.registry import Registry


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TournamentSection(_Section):
    name: str = Field(min_length=1)
    protocol: str
    seed: int = 0
    concurrency: int = Field(32, ge=1)
    repetitions: int = Field(1, ge=1)
    timeout: float = Field(60.0, gt=0, description="seconds per agent or judge call")
    retries: int = Field(2, ge=0, description="extra tries per call after a failure")
    backoff: float = Field(0.5, ge=0, description="first retry delay in seconds, doubled each try")


class DatasetSection(_Section):
    plugin: str
    limit: int | None = Field(None, ge=1)
    split: str | None = None
    shuffle: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


class JudgeSection(_Section):
    plugin: str
    options: dict[str, Any] = Field(default_factory=dict)


class PlayerSection(_Section):
    name: str = Field(min_length=1)
    agent: str
    options: dict[str, Any] = Field(default_factory=dict)


class ScheduleSection(_Section):
    kind: Literal["round-robin", "red-blue", "self-play"] = "round-robin"
    red: str | None = None  # the red corner's player name, for red-blue


class RatingsSection(_Section):
    pool: str | None = None  # default: the tournament's name
    mu: float = 25.0
    sigma: float = 25.0 / 3
    beta: float = 25.0 / 6
    tau: float = 25.0 / 300
    # > 0 because judges can be undecided: with 0, trueskill widens sigma on every draw.
    draw_probability: float = Field(0.1, ge=0, lt=1)


class RawConfig(_Section):
    tournament: TournamentSection
    protocol: dict[str, Any] = Field(default_factory=dict)
    dataset: DatasetSection
    judge: JudgeSection
    players: list[PlayerSection] = Field(default_factory=list)  # none for seatless protocols
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    ratings: RatingsSection = Field(default_factory=RatingsSection)


class TournamentConfig(BaseModel):
    """A validated config with every plugin's options already checked against its model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: str
    raw: RawConfig
    protocol_options: BaseModel
    dataset_options: BaseModel
    judge_options: BaseModel
    player_options: dict[str, BaseModel]

    @property
    def name(self) -> str:
        return self.raw.tournament.name

    @property
    def pool(self) -> str:
        return self.raw.ratings.pool or self.raw.tournament.name

    def identity(self) -> dict[str, Any]:
        """What decides match outcomes; `limit`, concurrency and retries may change freely."""
        r = self.raw
        return {
            "protocol": r.tournament.protocol,
            "protocol_options": self.protocol_options.model_dump(mode="json"),
            "seed": r.tournament.seed,
            "dataset": {
                "plugin": r.dataset.plugin,
                "split": r.dataset.split,
                "shuffle": r.dataset.shuffle,
                "options": self.dataset_options.model_dump(mode="json"),
            },
            "judge": {
                "plugin": r.judge.plugin,
                "options": self.judge_options.model_dump(mode="json"),
            },
            "players": [
                {
                    "name": p.name,
                    "agent": p.agent,
                    "options": self.player_options[p.name].model_dump(mode="json"),
                }
                for p in r.players
            ],
            "schedule": r.schedule.model_dump(mode="json"),
            "ratings": r.ratings.model_dump(mode="json"),
        }

    def identity_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{p}: cannot read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(p)) from None


def _section_error(exc: ValidationError, data: dict[str, Any], file: str) -> ConfigError:
    """Turn pydantic's first error into 'file: [table] (entry): key 'k': message'."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    if err["type"] == "extra_forbidden" and len(loc) == 1:
        bad = str(loc[0])
        return ConfigError(
            f"unknown table [{bad}]{suggest(bad, RawConfig.model_fields)}", file=file
        )
    table = str(loc.pop(0)) if loc else None
    entry = None
    model: Any = (
        RawConfig.model_fields[table].annotation if table in RawConfig.model_fields else None
    )
    if table == "players" and loc and isinstance(loc[0], int):
        idx = int(loc.pop(0))
        players = data.get("players") or []
        who = players[idx].get("name") if isinstance(players[idx], dict) else None
        entry = f"player '{who}'" if who else f"entry {idx + 1}"
        model = PlayerSection
    key = ".".join(str(p) for p in loc) or None
    if err["type"] == "missing" and key is None and entry is None:
        return ConfigError(f"missing table [{table}]", file=file)
    if err["type"] == "missing":
        return ConfigError("required key is missing", file=file, table=table, key=key, entry=entry)
    if err["type"] == "extra_forbidden":
        valid = list(getattr(model, "model_fields", {}))
        return ConfigError(
            f"unknown key{suggest(str(key), valid)}", file=file, table=table, key=key, entry=entry
        )
    return ConfigError(
        f"{err['msg']} (got {err.get('input')!r})", file=file, table=table, key=key, entry=entry
    )


def load_config(path: str | Path, registry: Registry) -> TournamentConfig:
    """Read, validate and resolve a tournament file. Raises ConfigError/UsageError (exit 2)."""
    file = str(path)
    data = read_toml(path)
    try:
        raw = RawConfig.model_validate(data)
    except ValidationError as exc:
        raise _section_error(exc, data, file) from None
    return resolve(raw, registry, file)


def resolve(raw: RawConfig, registry: Registry, file: str = "<config>") -> TournamentConfig:
    """Check plugin names and options against the registry."""
    t = raw.tournament
    registry.get("protocol", t.protocol, file=file, table="tournament", key="protocol")
    protocol_options = registry.validate(
        "protocol", t.protocol, raw.protocol, file=file, table="protocol"
    )
    registry.get("dataset", raw.dataset.plugin, file=file, table="dataset", key="plugin")
    dataset_options = registry.validate(
        "dataset", raw.dataset.plugin, raw.dataset.options, file=file, table="dataset.options"
    )
    registry.get("judge", raw.judge.plugin, file=file, table="judge", key="plugin")
    judge_options = registry.validate(
        "judge", raw.judge.plugin, raw.judge.options, file=file, table="judge.options"
    )
    player_options: dict[str, BaseModel] = {}
    for p in raw.players:
        entry = f"player '{p.name}'"
        if p.name in player_options:
            raise ConfigError(
                "this name is used by another player too",
                file=file,
                table="players",
                key="name",
                entry=entry,
            )
        registry.get("agent", p.agent, file=file, table="players", key="agent", entry=entry)
        player_options[p.name] = registry.validate(
            "agent", p.agent, p.options, file=file, table="players.options", entry=entry
        )
    sched = raw.schedule
    if sched.kind == "red-blue":
        if sched.red is None:
            raise ConfigError(
                "red-blue needs a 'red' player", file=file, table="schedule", key="red"
            )
        if sched.red not in player_options:
            raise ConfigError(
                f"no player named '{sched.red}'{suggest(sched.red, player_options)}",
                file=file,
                table="schedule",
                key="red",
            )
    return TournamentConfig(
        path=file,
        raw=raw,
        protocol_options=protocol_options,
        dataset_options=dataset_options,
        judge_options=judge_options,
        player_options=player_options,
    )
