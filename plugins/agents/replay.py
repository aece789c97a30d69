"""The replay agent: speaks the recorded speeches of a stored debate, so a human debater's
words can face a model in a normal debate.

It loads a dataset of transcripts once (`quality-debates`, `ledger` ...) and answers a request
for item `observation.item_id`, round r, with the r-th speech of the recorded debater who
argued the same answer (by default; `by = "seat"` uses the recorded speaker of the same seat).
A request it has no speech for is an error naming the item, the debater and the round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Agent
from arena_core.types import Request, Response


class ReplayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field("quality-debates", description="a dataset plugin with transcripts")
    dataset_options: dict[str, Any] = Field(
        default_factory=dict, description="its options (path ...)"
    )
    split: str | None = Field(None, description="the split to load")
    by: Literal["answer", "seat"] = Field(
        "answer",
        description="replay the recorded debater of the answer this seat argues, or of the "
        "same seat name",
    )


class ReplayAgent(Agent):
    """Looks up (item, debater, round) -> the stored speech; never invents one."""

    def __init__(self, options: ReplayOptions) -> None:
        from arena_core.plugins import get_registry

        self.opts = options
        source = get_registry().build(
            "dataset", options.dataset, options.dataset_options, table="players.options"
        )
        # item id -> seat -> speeches in round order; item id -> answer index -> seat
        self.speeches: dict[str, dict[str, dict[int, str]]] = {}
        self.argued: dict[str, dict[int, str]] = {}
        for item in source.items(options.split):
            transcript = item.metadata.get("transcript")
            if not isinstance(transcript, list):
                continue
            seats: dict[str, dict[int, str]] = {}
            for entry in transcript:
                seat = entry.get("seat")
                if seat and seat != "judge" and (entry.get("phase") or "speech") == "speech":
                    seats.setdefault(seat, {})[int(entry.get("round") or 0)] = entry["text"]
            self.speeches[item.id] = seats
            argued = item.metadata.get("argued") or {}
            self.argued[item.id] = {int(i): s for s, i in argued.items()}
        if not self.speeches:
            raise ValueError(
                f"dataset '{options.dataset}' gave no item with a transcript to replay"
            )

    def speech(self, request: Request) -> str:
        obs = request.observation
        seats = self.speeches.get(obs.item_id)
        if seats is None:
            raise LookupError(
                f"replay: item {obs.item_id!r} is not in dataset '{self.opts.dataset}' "
                f"({len(self.speeches)} transcripts); play the tournament on the same dataset"
            )
        if obs.phase != "speech":
            raise LookupError(f"replay: no recorded '{obs.phase}' turns, only speeches")
        seat = obs.seat
        if self.opts.by == "answer" and obs.my_answer is not None:
            found = self.argued.get(obs.item_id, {}).get(obs.my_answer)
            if found is None:
                raise LookupError(
                    f"replay: item {obs.item_id!r}: nobody argued answer {obs.my_answer} "
                    f"({obs.answers[obs.my_answer]!r:.60}) in the recorded debate"
                )
            seat = found
        spoken = seats.get(seat, {})
        if obs.round not in spoken:
            raise LookupError(
                f"replay: item {obs.item_id!r}: debater {seat} has no speech for round "
                f"{obs.round + 1} (recorded: {len(spoken)})"
            )
        return spoken[obs.round]

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            text = self.speech(r)
            out.append(Response(texts=[text] * r.n, meta={"replayed": True}))
        return out
