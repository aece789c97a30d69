"""Errors the CLI turns into a clear message and exit code 2 (usage) before anything is written."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(Exception):
    """Bad input from the user: config, flags, unknown plugin names. Exit code 2."""


class ConfigError(UsageError):
    """A config problem, located by file, table and key."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        table: str | None = None,
        key: str | None = None,
        entry: str | None = None,
    ) -> None:
        self.file, self.table, self.key, self.message = file, table, key, message
        where = ": ".join(
            part
            for part in (
                file,
                (f"[{table}]" + (f" ({entry})" if entry else "")) if table else None,
                f"key '{key}'" if key else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean ...?)' hint for a typo, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
