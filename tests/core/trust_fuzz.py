"""A config fuzzer (issue 12): random, mostly hostile values in every table, run by `arena run`.

Not a test file: `test_trust_fuzz.py` runs a small sample; the full experiment is
`python -m tests.core.trust_fuzz --n 600` (one JSON line on stdout). Each config is played
in-process against a fresh SQLite ledger and classified:

- `ran`: exit 0 or 1 (the config was valid; matches played)
- `refused`: exit 2 with the ledger file never created (rejected before writing anything)
- `refused_after_write`: exit 2, but the ledger file exists (something was written first)
- `crash`: any exception escaping `main` (a traceback for the user)
- `hang`: still running after `--limit` seconds (SIGALRM)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HOSTILE: list[Any] = [
    0, -1, 1, 2, 3, 7, 1000, 10**12, 1e-300, 2**63, -(2**63), 0.0, 0.5, -0.5, 1e-308, 1e308, -1e308,
    math.inf, -math.inf, math.nan, True, False, "4", "yes", "", "0", "1e3", "round-robbin",
    "../x", "/tmp/pwned", "[/]", "\x1b[2J", "{answer.__class__}", [], [1, 2], {"a": 1},
]  # fmt: skip

# Valid values at the edges of each key's range: a config made of them must run, not crash.
EDGES: dict[str, list[Any]] = {
    "seed": [0, 2**63 - 1],
    "concurrency": [1, 10_000],
    "repetitions": [1, 3],
    "timeout": [0.001, 86_400],
    "retries": [0, 20],
    "backoff": [0, 0.001],
    "name": ["a", "x" * 100, "a.b-c_d+e@f:g=h"],
    "mu": [-1e6, 1e6, 0.0],
    "sigma": [1e-3, 1e4],
    "beta": [1e-3, 1e4],
    "tau": [0.0, 1e3],
    "draw_probability": [0.0, 0.999999],
    "pool": ["shared", "p" * 100],
    "limit": [1, 3],
    "shuffle": [True, False],
    "kind": ["round-robin", "self-play", "red-blue"],
    "speeches": [1, 20],
    "simultaneous": [True, False],
    "max_words": [1, 10**6],
    "fuzzy": [1e-9, 1.0],
    "scratchpad": [True, False],
    "delay": [0, 0.001],
    "text": ["{answer} {{x}}", '{"a": 1} {question}', "}{"],
    "quotes": [0, 1000],
    "fabricate": [0.0, 1.0],
}

# (table, key): the keys a config may carry; values come from HOSTILE or EDGES.
KEYS: list[tuple[str, str]] = [
    ("tournament", "seed"),
    ("tournament", "concurrency"),
    ("tournament", "repetitions"),
    ("tournament", "timeout"),
    ("tournament", "retries"),
    ("tournament", "backoff"),
    ("tournament", "name"),
    ("ratings", "mu"),
    ("ratings", "sigma"),
    ("ratings", "beta"),
    ("ratings", "tau"),
    ("ratings", "draw_probability"),
    ("ratings", "pool"),
    ("dataset", "limit"),
    ("dataset", "shuffle"),
    ("schedule", "kind"),
    ("protocol", "speeches"),
    ("protocol", "simultaneous"),
    ("protocol", "max_words"),
    ("protocol", "fuzzy"),
    ("protocol", "scratchpad"),
    ("player0", "delay"),
    ("player0", "text"),
    ("player1", "quotes"),
    ("player1", "fabricate"),
]
TABLE_TYPOS = {
    "tournament": "tournamnet",
    "ratings": "ratngs",
    "schedule": "schedul",
    "protocol": "protocl",
}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string for these values
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def random_config(rng: random.Random) -> str:
    """A small valid tournament with 1-4 keys set to hostile values (sometimes a table typo)."""
    tables: dict[str, dict[str, Any]] = {
        "tournament": {"name": "fz", "protocol": "debate", "seed": 1, "concurrency": 4,
                       "timeout": 5, "retries": 0, "backoff": 0},
        "protocol": {"speeches": 1},
        "dataset": {"plugin": "bundled", "limit": 1},
        "judge": {"plugin": "quote"},
        "schedule": {},
        "ratings": {},
        "player0": {},
        "player1": {},
    }  # fmt: skip
    for table, key in rng.sample(KEYS, rng.randint(1, 4)):
        hostile = rng.random() < 0.4
        tables[table][key] = rng.choice(HOSTILE if hostile else EDGES[key])
    if tables["schedule"].get("kind") == "red-blue" and rng.random() < 0.8:
        tables["schedule"]["red"] = "p0"
    names = {t: t for t in tables}
    if rng.random() < 0.05:
        table = rng.choice(sorted(TABLE_TYPOS))
        names[table] = TABLE_TYPOS[table]
    out = []
    for t in ("tournament", "protocol", "dataset", "judge", "schedule", "ratings"):
        out.append(f"[{names[t]}]")
        out += [f"{k} = {_toml(v)}" for k, v in tables[t].items()]
        out.append("")
    out += ["[[players]]", 'name = "p0"', 'agent = "deterministic"']
    out += [f"options = {_toml(tables['player0'])}", ""]
    out += ["[[players]]", 'name = "p1"', 'agent = "random"']
    out += [f"options = {_toml(tables['player1'])}", ""]
    return "\n".join(out)


class _Hang(Exception):
    pass


def run_one(text: str, folder: Path, limit: float = 20.0) -> tuple[str, str]:
    """(outcome, detail) of `arena run` on this config text in `folder`."""
    from arena_core.cli.main import main

    cfg, db = folder / "f.toml", folder / "f.db"
    cfg.write_text(text, encoding="utf-8")

    def alarm(*_: Any) -> None:
        raise _Hang

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["run", str(cfg), "--ledger", f"sqlite:///{db}", "-q"])
    except _Hang:
        return "hang", ""
    except BaseException as exc:  # any escape is a crash to count
        return "crash", f"{type(exc).__name__}: {exc}"[:200]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if code == 2:
        return ("refused" if not db.exists() else "refused_after_write"), err.getvalue()[:200]
    return "ran", str(code)


def fuzz(n: int, seed: int = 0, limit: float = 20.0) -> dict[str, Any]:
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    start = time.perf_counter()
    for i in range(n):
        text = random_config(rng)
        with tempfile.TemporaryDirectory(prefix="arena-fuzz-") as tmp:
            outcome, detail = run_one(text, Path(tmp), limit)
        outcomes[outcome] += 1
        if outcome != "ran" and len(examples.setdefault(outcome, [])) < 5:
            examples[outcome].append(f"#{i}: {detail.strip()}")
    return {
        "configs": n,
        "seed": seed,
        **{
            k: outcomes.get(k, 0)
            for k in ("ran", "refused", "refused_after_write", "crash", "hang")
        },
        "wall_s": round(time.perf_counter() - start, 1),
        "examples": examples,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=float, default=20.0, help="seconds before a run is a hang")
    args = ap.parse_args()
    sys.stdout.write(json.dumps(fuzz(args.n, args.seed, args.limit)) + "\n")
