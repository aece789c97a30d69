"""Per fake debate: Arena (engine, file ledger, live TrueSkill) against round loops in the same run.

Every side plays `--matches` debates of 2 fake debaters x `--speeches` speeches and a verdict on
the bundled items, interleaved run by run, and the figure is each side's time per debate with
Arena's ratio to it (median and range over `--runs`):

- `ideal`: a minimal round loop written here, clearly not anyone's product: each debater's
  speech is a format string, the judge a seeded coin, the results a list, ratings the closed
  form in memory. No persistence, no concurrency, no plugin calls: the floor any engine pays.
- `nyu` (with `--nyu PATH` to a local checkout of nyu-debate-modeling, its own dependencies on
  the path, and `INPUT_ROOT`/`SRC_ROOT` set as its README says): its `DebateRound.run_round` and
  `record_winners` with `DeterministicModel` debaters and judge, one round object per debate as
  its experiment loader builds them; nothing saved.
- `arena`: `Tournament.run` into a file-backed SQLite ledger with TrueSkill; with `--profile`,
  cProfile's top 15 of one Arena run (where the remaining time goes) to stderr.

    python benchmarks/debate_loop.py [--matches 2000] [--speeches 1] [--runs 3] [--nyu PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import FAKE_DEBATE, PER_REP, compare, emit, log, machine_load, ratio, run_tournament


def bundled_items() -> list[Any]:
    from arena_core.plugins import get_registry

    return list(get_registry().build("dataset", "bundled", {}).items(None))


def ideal(n: int, speeches: int, items: list[Any]) -> float:
    """Seconds per debate of the minimal loop (see the module docstring)."""
    import trueskill

    from arena_core.trueskill1v1 import rate_1vs1

    env = trueskill.TrueSkill()
    ratings = {"det-a": (env.mu, env.sigma), "det-b": (env.mu, env.sigma)}
    rng = random.Random(7)
    results = []
    t0 = time.perf_counter()
    for i in range(n):
        item = items[i % len(items)]
        a, b = ("det-a", "det-b") if i % 2 == 0 else ("det-b", "det-a")
        transcript = []
        for r in range(speeches):
            transcript.append(f"I argue for {item.answers[0]}; round {r}.")
            transcript.append(f"No: the answer is {item.answers[1]}.")
        winner, loser = (a, b) if rng.random() < 0.5 else (b, a)
        ratings[winner], ratings[loser] = rate_1vs1(env, ratings[winner], ratings[loser])
        results.append((item.id, a, b, winner, transcript))
    return (time.perf_counter() - t0) / n


def arena(n: int, speeches: int) -> float:
    reps = max(1, -(-n // PER_REP))
    timed = run_tournament(FAKE_DEBATE.format(name="loop", reps=reps, speeches=speeches))
    assert timed.done == timed.matches, (timed.done, timed.matches)
    return timed.seconds / timed.matches


def nyu_rounds(path: str, n: int, speeches: int, items: list[Any]) -> Any:
    """A callable playing `n` debates through nyu-debate-modeling's own round loop."""
    sys.path.insert(0, path)
    os.environ.setdefault("SRC_ROOT", path.rstrip("/") + "/")
    os.environ.setdefault("INPUT_ROOT", path)
    os.environ.setdefault("LOG_LEVEL", "30")  # its loggers need a level; warnings only
    import utils.constants as constants  # nyu's
    from debate import Debater, DebateRound, Judge, QuestionMetadata  # nyu's
    from models import DeterministicModel  # nyu's
    from prompts import PromptConfig, PromptParser  # nyu's

    a_name, b_name = constants.DEFAULT_DEBATER_A_NAME, constants.DEFAULT_DEBATER_B_NAME
    debater_model = DeterministicModel(alias="det", is_debater=True)
    judge_model = DeterministicModel(alias="judge", is_debater=False)

    def play() -> float:
        t0 = time.perf_counter()
        for i in range(n):
            item = items[i % len(items)]
            pos, opp = item.answers[0], item.answers[1]
            cfg_a = PromptConfig(
                name=a_name,
                opponent_name=b_name,
                position=pos,
                opponent_position=opp,
                topic=item.question,
                background_text=item.context or "",
            )
            cfg_b = PromptConfig(
                name=b_name,
                opponent_name=a_name,
                position=opp,
                opponent_position=pos,
                topic=item.question,
                background_text=item.context or "",
            )
            rnd = DebateRound(
                first_debater=Debater(
                    name=a_name,
                    prompt=PromptParser.parse(cfg_a),
                    model=debater_model,
                    num_speeches=speeches,
                    quotes_require_validation=True,
                ),
                second_debater=Debater(
                    name=b_name,
                    prompt=PromptParser.parse(cfg_b),
                    model=debater_model,
                    num_speeches=speeches,
                    quotes_require_validation=True,
                ),
                judge=Judge(
                    name=constants.DEFAULT_JUDGE_NAME,
                    prompt=PromptParser.parse(cfg_a),
                    model=judge_model,
                    num_speeches=speeches,
                ),
                metadata=[
                    QuestionMetadata(
                        first_debater_correct=True,
                        question_idx=i,
                        background_text=item.context or "",
                        question=item.question,
                        first_debater_answer=pos,
                        second_debater_answer=opp,
                        debate_identifier=f"{item.id}-{i}",
                    )
                ],
            )
            out, model_out = rnd.run_round()
            rnd.record_winners(out, model_out)
        return (time.perf_counter() - t0) / n

    return play


def profile_arena(n: int, speeches: int, top: int = 15) -> None:
    import pstats
    import tempfile

    prof = str(Path(tempfile.gettempdir()) / "debate_loop.prof")
    reps = max(1, -(-n // PER_REP))
    run_tournament(FAKE_DEBATE.format(name="loop", reps=reps, speeches=speeches), profile_to=prof)
    stats = pstats.Stats(prof, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matches", type=int, default=2000)
    ap.add_argument("--speeches", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--nyu", help="a local checkout of nyu-debate-modeling")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    items = bundled_items()
    n, sp = args.matches, args.speeches
    measure = {
        "arena": lambda: arena(n, sp),
        "ideal": lambda: ideal(n, sp, items),
    }
    if args.nyu:
        measure["nyu"] = nyu_rounds(args.nyu, n, sp, items)
    log(f"{' vs '.join(measure)}, interleaved, {args.runs} runs ...")
    figures = compare(measure, args.runs, baseline="ideal")
    values = figures.pop("values")
    result = {
        "benchmark": "debate_loop",
        "load": machine_load(),
        "matches": n,
        "speeches": sp,
        "runs": args.runs,
        "seconds_per_debate": {k: figures[k] for k in measure},
        # The figures this benchmark is about: Arena's time per debate over each loop's.
        "arena_vs": {k: ratio(values["arena"], values[k]) for k in measure if k != "arena"},
    }
    emit(result)
    if args.profile:
        profile_arena(n, sp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
