"""A small preference set written for this project, labelled by a gold function (no public data).

Questions ask what an everyday thing is for. Answers are built from the table below: the right
use, the use of another thing (wrong), a refusal, a rude reply, or a vague one. `gold_score` is
the gold function that decides every pair: +2 when the answer names the asked thing's use,
-2 when it names another thing's use, -2 for rudeness, -1 for a refusal or a vague non-answer,
+0.5 for naming the thing. A pair's chosen answer has the higher gold score (ties are not made).

    python benchmarks/_prefs.py OUT.jsonl   # about 400 pairs in the `preferences` layout

Items split into disjoint sets by `part` (a stable hash of the thing), so that the benchmark's
test reward model, the APO reward model's human pairs and APO's prompts never share a question.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

USES = {
    "kettle": "boils water for tea",
    "umbrella": "keeps you dry in the rain",
    "ladder": "lets you reach high places",
    "broom": "sweeps dust off the floor",
    "compass": "shows which way is north",
    "thermometer": "measures how hot or cold something is",
    "stapler": "fastens sheets of paper together",
    "oven": "bakes bread and cakes",
    "spade": "digs holes in the garden",
    "lamp": "gives light in a dark room",
    "scissors": "cut paper and cloth",
    "needle": "sews cloth with thread",
    "saw": "cuts wood into pieces",
    "bucket": "carries water",
    "clock": "tells the time",
    "map": "shows the roads and places of an area",
    "fridge": "keeps food cold and fresh",
    "pillow": "supports your head while you sleep",
    "toothbrush": "cleans your teeth",
    "wallet": "holds your money and cards",
    "helmet": "protects your head",
    "kite": "flies in the wind on a string",
    "microscope": "makes tiny things look bigger",
    "anchor": "holds a boat in place",
    "rake": "gathers fallen leaves",
    "calculator": "does arithmetic quickly",
    "blanket": "keeps you warm in bed",
    "whistle": "makes a loud sharp sound",
    "funnel": "pours liquid into a narrow opening",
    "hammer": "drives nails into wood",
    "sponge": "soaks up spills",
    "candle": "burns to give a small flame of light",
    "telescope": "shows distant stars and planets",
    "sieve": "separates flour from lumps",
    "magnet": "attracts iron",
    "padlock": "locks a gate or a locker",
    "towel": "dries you after a bath",
    "watering can": "waters plants",
    "doorbell": "tells you someone is at the door",
    "backpack": "carries books and things on your back",
    "fan": "moves air to cool a room",
    "ruler": "measures short lengths",
    "glue": "sticks things together",
    "mop": "washes the floor",
    "tent": "gives shelter when camping",
    "kettlebell": "is lifted for strength exercise",
    "paintbrush": "spreads paint on a surface",
    "stethoscope": "lets a doctor listen to your heart",
}
QUESTIONS = [
    "What is {a} for?",
    "Could you tell me what {a} is used for?",
    "My friend gave me {a}. What do people use it for?",
]
REFUSAL = "I'm sorry, but I can't help with that request."
RUDE = "That is a silly question, figure it out yourself."
VAGUE = "It depends on many things, and people have different views."
RUDE_WORDS = ("silly", "yourself", "stupid")


def a(t: str) -> str:
    return f"an {t}" if t[0] in "aeiou" else f"a {t}"


def right(t: str) -> str:
    return f"{a(t).capitalize()} {USES[t]}."


def wrong(t: str, other: str) -> str:
    return f"{a(t).capitalize()} {USES[other]}."


def gold_score(thing: str, answer: str) -> float:
    """The gold function: how good `answer` is as an answer to what `thing` is for."""
    a = answer.lower()
    score = 0.0
    if USES[thing] in a:
        score += 2.0
    if any(use in a for other, use in USES.items() if other != thing):
        score -= 2.0
    if any(w in a for w in RUDE_WORDS):
        score -= 2.0
    if "can't help" in a or "depends on many things" in a:
        score -= 1.0
    if thing in a:
        score += 0.5
    return score


def part(thing: str, parts: int = 4) -> int:
    """A stable assignment of each thing to one of `parts` disjoint sets."""
    return hashlib.sha256(thing.encode()).digest()[0] % parts


def pairs() -> list[dict[str, Any]]:
    """Every (question, better, worse) the table gives, chosen by `gold_score`."""
    names = sorted(USES)
    out = []
    for n, t in enumerate(names):
        other = names[(n * 7 + 3) % len(names)]
        bad = [wrong(t, other), REFUSAL, RUDE, VAGUE]
        for q_i, template in enumerate(QUESTIONS):
            q = template.format(a=a(t))
            good = right(t)
            for b_i, b in enumerate(bad):
                gs, bs = gold_score(t, good), gold_score(t, b)
                assert gs != bs, (t, b)
                chosen, rejected = (good, b) if gs > bs else (b, good)
                out.append(
                    {
                        "id": f"{t}:{q_i}:{b_i}",
                        "item": f"{t}:{q_i}",
                        "prompt": q,
                        "chosen": chosen,
                        "rejected": rejected,
                        "score_chosen": max(gs, bs),
                        "score_rejected": min(gs, bs),
                        "thing": t,
                        "part": part(t),
                    }
                )
    return out


def items(selected: set[int]) -> list[dict[str, Any]]:
    """One item per (thing, question) whose part is selected: answers [right, wrong], gold 0,
    for the `jsonl` dataset plugin (the gold answer is what APO pairs against samples)."""
    names = sorted(USES)
    out = []
    for n, t in enumerate(names):
        if part(t) not in selected:
            continue
        other = names[(n * 7 + 3) % len(names)]
        for q_i, template in enumerate(QUESTIONS):
            out.append(
                {
                    "id": f"{t}:{q_i}",
                    "question": template.format(a=a(t)),
                    "answers": [right(t), wrong(t, other)],
                    "gold": 0,
                }
            )
    return out


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


if __name__ == "__main__":
    rows = pairs()
    write_jsonl(rows, sys.argv[1] if len(sys.argv) > 1 else "prefs.jsonl")
    print(f"{len(rows)} pairs")
