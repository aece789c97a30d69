"""The model-free default on long articles with hard distractors: quote judge + extractive debaters.

On the bundled long set (`bundled` with `set = "long"`: 10 original articles of 900-1,500 words,
six questions each with four answers, split by article into `tune` and `test`; per article four
`literal` questions and two `inference` questions, whose right answer is a paraphrase while the
wrong ones borrow the article's words), every question is debated gold
against each of its three wrong answers, in both seat orders, by two extractive debaters
(`max_quotes = 3`), and judged by the quote judge. Also measured: the extractive debater reading
alone (`pick_answer` over all four answers; chance 25%), and the same debate on the short set as
a guard against regressions there.

    python benchmarks/quotes_long.py --split tune      # what tuning may look at
    python benchmarks/quotes_long.py --split test      # the held-out articles: run once, at the end

Accuracy counts an undecided verdict as wrong. Intervals: Wilson over verdicts, and a bootstrap
over questions (verdicts on one question are not independent). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log


def wilson(k: float, n: int) -> list[float]:
    """The Wilson 95% interval, rounded for the JSON line."""
    from arena_core.reports.stats import wilson_interval

    return [round(x, 3) for x in wilson_interval(int(k), n)]


def bootstrap(groups: dict[str, list[float]], runs: int = 2000, seed: int = 0) -> list[float]:
    """95% interval of the mean, resampling whole groups (questions) with replacement."""
    keys = sorted(groups)
    rng = random.Random(seed)
    means = []
    for _ in range(runs):
        pick = [groups[rng.choice(keys)] for _ in keys]
        flat = [x for g in pick for x in g]
        means.append(sum(flat) / len(flat))
    means.sort()
    return [round(means[int(0.025 * runs)], 3), round(means[int(0.975 * runs) - 1], 3)]


async def debate(item: Any, assignment: dict[str, int], agent: Any, judge: Any, mid: str) -> Any:
    from arena_core.match import CallPolicy, Match, resolve
    from arena_core.plugins import get_registry

    protocol = get_registry().build("protocol", "debate", {})
    match = Match(
        match_id=mid,
        protocol="debate",
        item=item,
        players={"A": "a", "B": "b"},
        assignment=assignment,
        agents={"A": agent, "B": agent},
        judge=judge,
        judge_name="quote",
        policy=CallPolicy(retries=0),
    )
    await protocol.play(match)
    assert match.main is not None
    return resolve(*match.main, item, "quote")


async def measure(
    items: list[Any],
    all_wrong: bool,
    agent_options: dict[str, Any] | None = None,
    judge_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from arena_core.plugins import get_registry
    from arena_core.types import Observation

    reg = get_registry()
    agent = reg.build("agent", "extractive", {"max_quotes": 3, **(agent_options or {})})
    judge = reg.build("judge", "quote", judge_options or {})
    per_q: dict[str, list[float]] = {}
    undecided = 0
    reader = 0
    for item in items:
        gold, distractor = item.debate_pair()
        wrongs = [i for i in range(len(item.answers)) if i != gold] if all_wrong else [distractor]
        for w in wrongs:
            for a, b in ((gold, w), (w, gold)):
                v = await debate(item, {"A": a, "B": b}, agent, judge, f"{item.id}-{a}-{b}")
                undecided += v.chosen is None
                per_q.setdefault(item.id, []).append(1.0 if v.correct else 0.0)
        obs = Observation(
            seat="A",
            phase="answer",
            question=item.question,
            answers=list(item.answers),
            context=item.context,
        )
        reader += agent.pick_answer(obs).my_answer == gold
    flat = [x for g in per_q.values() for x in g]
    n = len(flat)
    k = sum(flat)
    return {
        "questions": len(items),
        "verdicts": n,
        "undecided": undecided,
        "judge_accuracy": round(k / n, 3),
        "judge_accuracy_ci95_wilson": wilson(k, n),
        "judge_accuracy_ci95_bootstrap_by_question": bootstrap(per_q),
        "reader_accuracy": round(reader / len(items), 3),
        "reader_ci95": wilson(reader, len(items)),
        "reader_chance": round(sum(1 / len(i.answers) for i in items) / len(items), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["tune", "test"], default="tune")
    parser.add_argument("--skip-short", action="store_true", help="leave out the short-set guard")
    args = parser.parse_args()

    from arena_core.plugins import get_registry

    reg = get_registry()
    t0 = time.perf_counter()
    long_items = list(reg.build("dataset", "bundled", {"set": "long"}).items(args.split))
    words = [len((i.context or "").split()) for i in long_items]
    result: dict[str, Any] = {
        "benchmark": "quotes_long",
        "split": args.split,
        "article_words": [min(words), max(words)],
        "long": asyncio.run(measure(long_items, all_wrong=True)),
    }
    log(f"long/{args.split}: {result['long']}")
    for kind in ("literal", "inference"):
        subset = [i for i in long_items if i.metadata.get("kind") == kind]
        result[f"long_{kind}"] = asyncio.run(measure(subset, all_wrong=True))
        log(f"long/{args.split}/{kind}: {result[f'long_{kind}']}")
    if not args.skip_short:
        short = list(reg.build("dataset", "bundled", {}).items())
        result["short"] = asyncio.run(measure(short, all_wrong=False))
        log(f"short: {result['short']}")
    result["seconds"] = round(time.perf_counter() - t0, 2)
    emit(result)


if __name__ == "__main__":
    main()
