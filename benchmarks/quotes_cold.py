"""Quote checks on a dataset of many long passages in shuffled order, against the warm cache.

A debater's speech with three quotes (one verbatim, one with its case and punctuation changed,
one paraphrased: the exact, normalised and fuzzy paths of `find_quote`) is checked against its
passage of `--words` words. Cold: `--passages` distinct passages in shuffled order, so the
passage caches miss on nearly every speech, as a large dataset does.
Warm: the same speech checked again right after, its passage cached. The figure is cold / warm
per speech, interleaved (cold then warm on each passage), median and range over `--runs`; it
also gives the vectorised normalisation against the character loop it replaced.

    python benchmarks/quotes_cold.py [--passages 2000] [--words 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import emit, log, machine_load

VOCAB = (
    "the of and to in was he that it his her with as had for she on at by not be but from "
    "they which you were all this one have or an would there their said when what so if out "
    "up into no them could more some time then only about him over man like now other than "
    "ship captain planet colony signal engine station orbit crew message doctor machine city "
    "river forest window letter garden morning evening silence answer question reason memory"
).split()


def passage(rng: random.Random, words: int) -> str:
    out, sentence = [], []
    for _ in range(words):
        w = rng.choice(VOCAB)
        sentence.append(w.capitalize() if not sentence else w)
        if len(sentence) >= rng.randint(8, 20):
            out.append(" ".join(sentence) + rng.choice([".", ".", "!", "?", ";"]))
            sentence = []
    out.append(" ".join(sentence) + ".")
    return " ".join(out)


def speech(rng: random.Random, text: str) -> str:
    words = text.split()
    i, j, k = (rng.randrange(0, len(words) - 12) for _ in range(3))
    exact = " ".join(words[i : i + 8])
    loose = " ".join(words[j : j + 8]).upper().replace(".", "").replace(";", ",")
    para = words[k : k + 12]
    para[5] = "indeed"  # one word changed: the fuzzy path
    return (
        f"As the passage says, <quote>{exact}</quote>. Also <quote>{loose}</quote>, and "
        f"<quote>{' '.join(para)}</quote>, which settles it."
    )


def one_run(pairs: list[tuple[str, str]]) -> tuple[float, float]:
    from plugins.text import _normalised_passage, _spaced, check_quotes

    _normalised_passage.cache_clear()
    _spaced.cache_clear()
    cold = warm = 0.0
    for text, sp in pairs:
        t0 = time.perf_counter()
        check_quotes(sp, text)
        t1 = time.perf_counter()
        check_quotes(sp, text)
        t2 = time.perf_counter()
        cold += t1 - t0
        warm += t2 - t1
    return cold / len(pairs), warm / len(pairs)


def normalise_ratio(text: str, runs: int) -> dict:
    """Per passage, what a cache miss costs: the spaced form quotes are looked for in now, the
    vectorised normalisation with its index map (still what `copied` runs read), and the
    character loop before both."""
    from plugins.text import _normalise, _normalise_vector
    from plugins.text import _spaced_form as spaced  # uncached

    loop, vec, spc = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        _normalise(text)
        t1 = time.perf_counter()
        _normalise_vector(text)
        t2 = time.perf_counter()
        spaced(text)
        t3 = time.perf_counter()
        loop.append(t1 - t0)
        vec.append(t2 - t1)
        spc.append(t3 - t2)
    ratios = [a / b for a, b in zip(loop, vec, strict=True)]
    return {
        "loop_ms": round(1000 * statistics.median(loop), 3),
        "vector_ms": round(1000 * statistics.median(vec), 3),
        "spaced_ms": round(1000 * statistics.median(spc), 4),
        "vector_speedup_median": round(statistics.median(ratios), 1),
        "vector_speedup_range": [round(min(ratios), 1), round(max(ratios), 1)],
        "runs": runs,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--words", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(18)
    log(f"building {args.passages} passages of {args.words} words ...")
    texts = [passage(rng, args.words) for _ in range(args.passages)]
    pairs = [(t, speech(rng, t)) for t in texts]
    colds, warms = [], []
    for i in range(args.runs):
        rng.shuffle(pairs)
        cold, warm = one_run(pairs)
        colds.append(cold)
        warms.append(warm)
        log(f"run {i + 1}: cold {cold * 1e3:.3f} ms, warm {warm * 1e3:.3f} ms per speech")
    ratios = [c / w for c, w in zip(colds, warms, strict=True)]
    emit(
        {
            "benchmark": "quotes_cold",
            "load": machine_load(),
            "passages": args.passages,
            "words": args.words,
            "cold_ms_per_speech": round(1000 * statistics.median(colds), 3),
            "warm_ms_per_speech": round(1000 * statistics.median(warms), 3),
            "cold_vs_warm_median": round(statistics.median(ratios), 3),
            "cold_vs_warm_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "runs": args.runs,
            "target": "cold_vs_warm <= 1.10",
            "normalise": normalise_ratio(texts[0], 21),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
