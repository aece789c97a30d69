"""The small abstract interfaces a plugin implements.

Each is deliberately narrow: an agent answers requests, a judge decides, a protocol plays one match
over a `Match` handle, a dataset yields items. Retries, timeouts, batching across matches,
persistence and ratings live in the engine, below these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from arena_core.types import Decision, Item, JudgeView, Request, Response

if TYPE_CHECKING:
    from arena_core.match import Match


class Agent(ABC):
    """A player's backend. Async so that API and local backends can batch or overlap calls."""

    @abstractmethod
    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        """Return one response per request, in order."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most agents hold nothing
        """Release clients, servers or GPU memory."""


class Judge(ABC):
    """Decides a match from what the judge may see (never the hidden passage)."""

    @abstractmethod
    async def decide(self, view: JudgeView) -> Decision:
        """Return one probability per option of `view`."""

    async def aclose(self) -> None:  # noqa: B027
        """Release whatever the judge holds."""


class Protocol(ABC):
    """The rules of one game: who speaks, what each one sees, when the judge decides.

    `seats` names the positions in speaking order. `variants(item)` lists the ways one item can be
    played with the same players in the same seats (for debate: which seat argues the correct
    answer); the scheduler crosses them with seat orders and repetitions.
    """

    seats: ClassVar[tuple[str, ...]] = ("A", "B")
    # False for protocols whose verdicts compare free-form answers, not the item's graded ones.
    gradable: ClassVar[bool] = True

    def variants(self, item: Item) -> list[dict[str, int]]:
        """Answer index per seat, per variant. Default: each seat argues both sides of a pair."""
        if not self.seats:
            return [{}]
        good, bad = item.debate_pair()
        if len(self.seats) == 1:
            return [{self.seats[0]: good}, {self.seats[0]: bad}]
        first, second = self.seats[0], self.seats[1]
        return [{first: good, second: bad}, {first: bad, second: good}]

    @abstractmethod
    async def play(self, match: Match) -> Decision:
        """Play the match to the end and return the judge's decision (via `match.decide`)."""

    # Optional: `def pairs(self, record: dict, **options) -> Iterator[dict]` yields preference
    # pairs from one finished match (see arena_core.learning.pairs); protocols without it export
    # none.


class DatasetSource(ABC):
    """Yields items. Ids must be stable: the same file gives the same ids."""

    @abstractmethod
    def items(self, split: str | None = None) -> Iterator[Item]:
        """Iterate items lazily, so a large file is not read whole to take the first few."""


class Learner(ABC):
    """Trains a checkpoint from preference data.

    After `fit`, `summary` says what was trained (pairs, steps, metrics before and after) for the
    ledger's learner-run row; `arena learn` also reads `arena-learn.json` in the checkpoint.
    """

    summary: dict[str, Any] | None = None

    @abstractmethod
    def fit(self, data: Any, base_model: str, out_dir: Path, **kwargs: Any) -> Path:
        """Train and return the checkpoint directory."""
