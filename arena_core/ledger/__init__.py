"""The ledger room: the tables (`tables`), the `Ledger` store and its claims (`store`), and the
schema migrations (`migrations`). `arena_core.ledger` gives the public names of `tables` and
`store`, as the single module it used to be did, resolved on first use (PEP 562): the package
itself imports neither, so its own modules can import each other without passing through it."""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = ("arena_core.ledger.store", "arena_core.ledger.tables")


def __getattr__(name: str) -> Any:
    if not name.startswith("_"):
        for path in _MODULES:
            module = importlib.import_module(path)
            if hasattr(module, name):
                value = getattr(module, name)
                globals()[name] = value  # once found, a plain attribute
                return value
    raise AttributeError(f"module 'arena_core.ledger' has no attribute {name!r}")
