"""Tournament config: TOML read with `tomllib`, validated by pydantic, plugins resolved.

Every error names the file, the table and the key, suggests the nearest valid name for a typo, and
is raised before the ledger is touched.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from arena_core.errors import ConfigError, UsageError, suggest
from arena_core.registry import Registry
from arena_core.textsafe import NAME_PATTERN, label_problem, name_problem


class _Section(BaseModel):
    # strict: a string is not a number or a bool, a bool is not a number; every number below is
    # bounded, so that nothing a config says can overflow TrueSkill or exhaust memory mid-run.
    model_config = ConfigDict(extra="forbid", strict=True)


_NAME_FIELD = Field(min_length=1, max_length=100, pattern=f"^{NAME_PATTERN}$")


class TournamentSection(_Section):
    name: str = _NAME_FIELD
    protocol: str
    seed: int = Field(0, ge=0, lt=2**63)
    concurrency: int = Field(32, ge=1, le=10_000)
    repetitions: int = Field(1, ge=1, le=10_000)
    timeout: float = Field(
        60.0, gt=0, le=86_400, allow_inf_nan=False, description="seconds per agent or judge call"
    )
    retries: int = Field(2, ge=0, le=20, description="extra tries per call after a failure")
    backoff: float = Field(
        0.5,
        ge=0,
        le=60,
        allow_inf_nan=False,
        description="first retry delay in seconds, doubled each try",
    )


class DatasetSection(_Section):
    plugin: str
    limit: int | None = Field(None, ge=1, le=100_000_000)
    split: str | None = None
    shuffle: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


class JudgeSection(_Section):
    plugin: str
    options: dict[str, Any] = Field(default_factory=dict)


class PlayerSection(_Section):
    # Shown in tables and reports (escaped there), never a path: any printable text.
    name: str = Field(min_length=1, max_length=100)
    agent: str
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _printable(cls, v: str) -> str:
        problem = label_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class ScheduleSection(_Section):
    kind: Literal["round-robin", "red-blue", "self-play"] = "round-robin"
    red: str | None = None  # the red corner's player name, for red-blue


def _rating(default: float, lo: float, hi: float, *, strict_lo: bool = True) -> Any:
    bound = {"gt": lo} if strict_lo else {"ge": lo}
    return Field(default, le=hi, allow_inf_nan=False, **bound)


class RatingsSection(_Section):
    pool: str | None = Field(None, min_length=1, max_length=100, pattern=f"^{NAME_PATTERN}$")
    # TrueSkill divides by sigma and beta and squares tau: bounds keep every update finite.
    mu: float = Field(25.0, ge=-1e6, le=1e6, allow_inf_nan=False)
    sigma: float = _rating(25.0 / 3, 1e-3, 1e4, strict_lo=False)
    beta: float = _rating(25.0 / 6, 1e-3, 1e4, strict_lo=False)
    tau: float = _rating(25.0 / 300, 0, 1e3, strict_lo=False)
    # > 0 because judges can be undecided: with 0, trueskill widens sigma on every draw.
    draw_probability: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _trueskill_can_rate(self) -> RatingsSection:
        """Rate a win and a draw with these settings now, so that no combination the bounds
        allow fails at the first rating write, after matches were played."""
        from arena_core.ratings import RatingBook

        book = RatingBook.create("probe", self.model_dump())
        try:
            book.update("a", "b", "a")
            book.update("a", "b", None)
            book.update("a", "b", "b")
        except (ArithmeticError, ValueError) as exc:
            raise ValueError(f"TrueSkill cannot rate with these settings: {exc}") from None
        if not all(math.isfinite(v) for r in book.players.values() for v in (r.mu, r.sigma)):
            raise ValueError("TrueSkill cannot rate with these settings: ratings overflow")
        return self


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
    """Turn pydantic's first error into 'file: [table] (entry): key 'k': message'.

    An unknown table comes first: a misspelt [tournamnet] also makes [tournament] missing, and
    the typo, with its suggestion, is the error worth reading.
    """
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1]
    err = unknown[0] if unknown else errors[0]
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
    return ConfigError(_value_message(err), file=file, table=table, key=key, entry=entry)


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def _value_message(err: Any) -> str:
    """pydantic's message for a bad value, with a suggestion or a plain rule where it helps."""
    got = err.get("input")
    if err["type"] == "literal_error" and isinstance(got, str):
        choices = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        return f"{err['msg']} (got {got!r}){suggest(got, choices)}"
    if err["type"] == "string_pattern_mismatch" and isinstance(got, str):
        return name_problem(got) or err["msg"]
    if isinstance(got, str | bool) and err["type"].endswith(("_type", "_parsing")):
        if isinstance(got, bool):
            return f"{err['msg']}; got a boolean: {str(got).lower()}"
        return f"{err['msg']}; got a string: {got!r} (write a number without quotes)"
    return f"{err['msg']} (got {got!r})"


def _scalar_types(annotation: Any) -> set[type] | None:
    """The scalar types (bool/int/float/str/None) an annotation allows; None if it allows more."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar_types(get_args(annotation)[0])
    if origin in (Union, UnionType):
        out: set[type] = set()
        for arg in get_args(annotation):
            sub = _scalar_types(arg)
            if sub is None:
                return None
            out |= sub
        return out
    if annotation in (bool, int, float, str, type(None)):
        return {annotation}
    return None


def _accepts(types: set[type], value: Any) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int):
        return bool(types & {int, float})
    if isinstance(value, float):
        return float in types
    if isinstance(value, str):
        return str in types
    return value is None and type(None) in types


def check_plugin_options(
    model: type[BaseModel],
    data: dict[str, Any],
    *,
    file: str,
    table: str,
    entry: str | None = None,
) -> None:
    """Strict scalar types for a plugin's options, before pydantic's lax coercion sees them.

    pydantic's strict mode would also refuse a string for a `Path` option, so the check is made
    here, for options declared as bool/int/float/str only: "yes" is not a bool, "4" is not an
    int, true is not a number. Non-finite numbers are refused everywhere.
    """
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            continue  # unknown keys: the plugin's own validation names them, with a suggestion
        types = _scalar_types(field.annotation)
        if types is not None and not _accepts(types, value):
            want = " or ".join(_TYPE_NAMES.get(t, "nothing") for t in types if t is not type(None))
            got = _TYPE_NAMES.get(type(value), type(value).__name__)
            raise ConfigError(
                f"must be {want}, got {got}: {value!r}",
                file=file,
                table=table,
                key=key,
                entry=entry,
            )
        sub = field.annotation
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            check_plugin_options(sub, value, file=file, table=f"{table}.{key}", entry=entry)


def _finite(data: Any, file: str, path: tuple[str, ...] = ()) -> None:
    """Refuse inf and nan anywhere in the file: no option means them, and they poison sums."""
    if isinstance(data, float) and not math.isfinite(data):
        table = ".".join(p for p in path[:-1] if not p.isdigit()) or None
        raise ConfigError(
            f"must be a finite number, got {data!r}",
            file=file,
            table=table,
            key=path[-1] if path else None,
        )
    if isinstance(data, dict):
        for k, v in data.items():
            _finite(v, file, (*path, str(k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _finite(v, file, (*path, str(i)))


def load_config(path: str | Path, registry: Registry) -> TournamentConfig:
    """Read, validate and resolve a tournament file. Raises ConfigError/UsageError (exit 2)."""
    file = str(path)
    data = read_toml(path)
    _finite(data, file)
    try:
        raw = RawConfig.model_validate(data)
    except ValidationError as exc:
        raise _section_error(exc, data, file) from None
    return resolve(raw, registry, file)


def resolve(raw: RawConfig, registry: Registry, file: str = "<config>") -> TournamentConfig:
    """Check plugin names and options against the registry."""
    t = raw.tournament
    found = registry.get("protocol", t.protocol, file=file, table="tournament", key="protocol")
    check_plugin_options(found.options, raw.protocol, file=file, table="protocol")
    protocol_options = registry.validate(
        "protocol", t.protocol, raw.protocol, file=file, table="protocol"
    )
    found = registry.get("dataset", raw.dataset.plugin, file=file, table="dataset", key="plugin")
    check_plugin_options(found.options, raw.dataset.options, file=file, table="dataset.options")
    dataset_options = registry.validate(
        "dataset", raw.dataset.plugin, raw.dataset.options, file=file, table="dataset.options"
    )
    found = registry.get("judge", raw.judge.plugin, file=file, table="judge", key="plugin")
    check_plugin_options(found.options, raw.judge.options, file=file, table="judge.options")
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
        found = registry.get("agent", p.agent, file=file, table="players", key="agent", entry=entry)
        check_plugin_options(
            found.options, p.options, file=file, table="players.options", entry=entry
        )
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
