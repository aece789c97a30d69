"""SmolLM2-135M-Instruct as a judge: accuracy under debate, consultancy and no debate (empty).

The same bundled items (`--items`, seed 7) in three tournaments that differ only in the protocol,
as in tournaments/debate-vs-consultancy/: model-free extractive debaters (2 verified quotes per
speech, the `quoter-2` of those files) so that what is measured is the judge, and the `llm`
judge on SmolLM2 reading the label probabilities by teacher forcing (" A" vs " B" after
"Answer:"), in both option orders. Per protocol:

- `single_order`: accuracy of the first reading alone (options in the protocol's order);
- `both_orders`: accuracy of the average of the two readings (the judge's documented
  `both_orders = true`: it cancels a constant preference for a position);
- `picks_first`: the share of all readings in which it chose the option shown first, A (0.5
  for a judge without positional bias; 1.0 picks A whatever is there);
- `swap_consistent`: the share of matches whose two readings chose the same answer.

Each with a Wilson 95% interval. Matches: debate 2 per item (sides swapped), consultancy 2 (the
consultant argues the right answer and the wrong one), empty 1.

    python benchmarks/smol_judge.py [--model models/smollm2] [--items 48]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log
from _smol import play, share, smol_dir, smol_judge

PROTOCOLS = {
    "debate": "[protocol]\nspeeches = 1\nmax_words = {words}\n",
    "consultancy": "[protocol]\nspeeches = 1\nmax_words = {words}\n",
    "empty": "",
}
PLAYERS = '[[players]]\nname = "quoter-2"\nagent = "extractive"\noptions = { max_quotes = 2 }\n'


def toml(protocol: str, items: int, judge: str, words: int) -> str:
    players = "" if protocol == "empty" else PLAYERS + '[schedule]\nkind = "self-play"\n'
    return (
        f'[tournament]\nname = "smol-judge-{protocol}"\nprotocol = "{protocol}"\nseed = 7\n'
        f"concurrency = 16\ntimeout = 3600\n\n{PROTOCOLS[protocol].format(words=words)}\n"
        f'[dataset]\nplugin = "bundled"\nlimit = {items}\n\n{judge}\n{players}'
    )


def metrics(ledger, tournament: str) -> dict:
    """Accuracy of each reading and of their average, and positional bias, from the verdicts."""
    from arena_core.reports.leaderboard import graded_verdicts

    single = both = first = readings = consistent = n = 0
    for _, v in graded_verdicts(ledger, tournament):
        if v.correct is None or v.chosen is None or len(v.probs) != 2:
            continue
        n += 1
        both += bool(v.correct)
        labels = list(v.probs)
        gold = v.chosen if v.correct else next(lab for lab in labels if lab != v.chosen)
        picks = []
        for r in v.meta["orders"]:
            pos = 0 if r["probs"][0] >= r["probs"][1] else 1
            first += pos == 0
            readings += 1
            picks.append(r["order"][pos])
        single += picks[0] == gold
        consistent += picks[0] == picks[1]
    return {
        "single_order": share(single, n),
        "both_orders": share(both, n),
        "picks_first": share(first, readings),
        "swap_consistent": share(consistent, n),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a directory written by `arena model smollm2`")
    ap.add_argument("--items", type=int, default=48, help="bundled items (48 in all)")
    ap.add_argument("--max-words", type=int, default=150, help="speech length (words)")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated subset")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: see hf_batching.py)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from arena_core.ledger import Ledger

    t0 = time.perf_counter()
    out: dict = {"benchmark": "smol_judge", "items": args.items, "max_words": args.max_words}
    with tempfile.TemporaryDirectory(prefix="arena-smol-judge-") as tmp:
        judge = smol_judge(smol_dir(args.model, tmp))
        ledger = Ledger(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        for protocol in args.protocols.split(","):
            wall = play(toml(protocol, args.items, judge, args.max_words), ledger, tmp)
            out[protocol] = {**metrics(ledger, f"smol-judge-{protocol}"), "wall_s": round(wall)}
            log(protocol, out[protocol])
        ledger.close()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    emit(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
