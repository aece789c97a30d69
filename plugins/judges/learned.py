"""`learned`: a judge a learner produced, named by its name in the ledger.

    [judge]
    plugin = "learned"
    options = { name = "smol-reward-model-1", ledger = "sqlite:///arena.db" }

`arena learn --learner reward-model|cost-model|apo` registers what it trained in the ledger's
`judge` table (plugin, options, kind, lineage); this plugin reads that row and builds the judge
it describes through the registry, exactly as a `[judge]` table naming the plugin and its
options would. `options` overrides some of the stored ones (a device, a batch size) without
changing which weights are read. The ledger is read once, when the tournament is built.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from arena_core.errors import UsageError, suggest
from arena_core.interfaces import Judge

# Options that choose the weights or the scale: an override would make the name lie.
PINNED = ("model", "tokenizer", "output", "threshold")


class LearnedJudgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="the judge's name in the ledger (`arena judges`)")
    ledger: str | None = Field(
        None, description="ledger URL holding the judge (default: $ARENA_LEDGER or arena.db)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides of the stored options (device, max_batch, ...; not the weights)",
    )


def learned_judge(options: LearnedJudgeOptions) -> Judge:
    """The ledger judge `name`, built from its stored plugin and options."""
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    pinned = sorted(set(options.options) & set(PINNED))
    if pinned:
        raise UsageError(
            f"judge '{options.name}': {', '.join(pinned)} decide what the judge is and cannot "
            f"be overridden; use the plugin with its own options instead"
        )
    ledger = Ledger(options.ledger, create=False)
    try:
        row = ledger.judge(options.name)
        known = [j.name for j in ledger.judges()] if row is None else []
        url = ledger.url
    finally:
        ledger.close()
    if row is None:
        listing = ", ".join(known) or "none"
        raise UsageError(
            f"no judge '{options.name}' in {url}{suggest(options.name, known)} (judges there: "
            f"{listing}; `arena judges --ledger {url}` lists them)"
        )
    registry = get_registry()
    merged = {**row.options, **options.options}
    checked = registry.validate("judge", row.plugin, merged, table="judge.options")
    return registry.build("judge", row.plugin, checked)
