"""The registry: (kind, name) -> a lazy factory with a pydantic options model.

Registering is cheap: a plugin module names its factory and options model without importing any
heavy library. The factory runs (and imports torch, an SDK ...) only when a tournament builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from arena_core.errors import ConfigError, UsageError, suggest

Kind = Literal["protocol", "agent", "judge", "learner", "dataset"]
KINDS: tuple[str, ...] = ("protocol", "agent", "judge", "learner", "dataset")


class NoOptions(BaseModel):
    """For plugins that take no options: any key is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable[[Any], Any]
    options: type[BaseModel]
    summary: str
    origin: str  # the distribution (or module) that registered it

    def describe_options(self) -> list[tuple[str, str, str]]:
        """(name, type, default) of each option, for `arena plugins`."""
        rows = []
        for key, info in self.options.model_fields.items():
            if get_origin(info.annotation) is Literal:
                ann = " | ".join(map(repr, get_args(info.annotation)))
            else:
                ann = getattr(info.annotation, "__name__", None) or str(info.annotation)
            default = (
                "required"
                if info.is_required()
                else repr(info.get_default(call_default_factory=True))
            )
            rows.append((key, ann.replace("typing.", ""), default))
        return rows


@dataclass
class Registry:
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)
    origin: str = "unknown"  # set by the plugin manager while each plugin registers
    broken: dict[str, str] = field(default_factory=dict)  # plugins that failed to load: why

    def add(
        self,
        kind: str,
        name: str,
        factory: Callable[[Any], Any],
        options: type[BaseModel] = NoOptions,
        summary: str = "",
    ) -> None:
        """Register one plugin. `factory(options)` builds it; import heavy libraries inside it."""
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}; expected one of {', '.join(KINDS)}")
        key = (kind, name)
        if key in self.entries and self.entries[key].origin != self.origin:
            raise UsageError(
                f"{kind} '{name}' is registered twice: by {self.entries[key].origin} and by "
                f"{self.origin}"
            )
        text = summary or next(iter((factory.__doc__ or "").strip().splitlines()), "")
        self.entries[key] = Entry(kind, name, factory, options, text, self.origin)

    def names(self, kind: str) -> list[str]:
        return sorted(name for k, name in self.entries if k == kind)

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self.entries.values(), key=lambda e: (KINDS.index(e.kind), e.name)))

    def get(
        self,
        kind: str,
        name: str,
        *,
        file: str | None = None,
        table: str | None = None,
        key: str | None = None,
        entry: str | None = None,
    ) -> Entry:
        try:
            return self.entries[(kind, name)]
        except KeyError:
            known = self.names(kind)
            # A plugin that failed to load may be the one that provides it: say so here.
            broken = "".join(f"; {why}" for why in self.broken.values())
            raise ConfigError(
                f"unknown {kind} '{name}'{suggest(name, known)} "
                f"(known: {', '.join(known) or 'none'}){broken}",
                file=file,
                table=table,
                key=key,
                entry=entry,
            ) from None

    def validate(
        self,
        kind: str,
        name: str,
        options: dict[str, Any] | None,
        *,
        file: str | None = None,
        table: str | None = None,
        entry: str | None = None,
    ) -> BaseModel:
        """Validate `options` against the plugin's model; errors name the table and the key."""
        found = self.get(kind, name, file=file, table=table, entry=entry)
        return validate_model(found.options, options or {}, file=file, table=table, entry=entry)

    def build(
        self, kind: str, name: str, options: dict[str, Any] | BaseModel | None = None, **where: Any
    ) -> Any:
        entry = self.get(kind, name, **where)
        if not isinstance(options, BaseModel):
            options = validate_model(entry.options, options or {}, **where)
        return entry.factory(options)


def validate_model(
    model: type[BaseModel],
    data: dict[str, Any],
    *,
    file: str | None = None,
    table: str | None = None,
    entry: str | None = None,
) -> BaseModel:
    """Validate, turning the first pydantic error into a ConfigError naming the key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            bad = str(err["loc"][-1])
            msg = f"unknown option '{bad}'{suggest(bad, model.model_fields)}"
            msg += f" (valid: {', '.join(model.model_fields) or 'none'})"
        else:
            msg = f"{err['msg']} (got {err.get('input')!r})"
        raise ConfigError(msg, file=file, table=table, key=loc or None, entry=entry) from None
