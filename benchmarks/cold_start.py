"""Cold start: wall time of `arena --help` and `arena plugins` in fresh processes.

Each command runs `--runs` times (default 7) through the installed console script next to the
interpreter; the figures are the median and the minimum. Also: the five slowest top-level imports
of `arena plugins` (`python -X importtime`, cumulative microseconds), and whether `arena --help`
imports heavy packages (it should import none of them: subcommands import what they need).

    python benchmarks/cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log

TARGET_HELP = 0.5  # seconds, median of `arena --help`
HEAVY = (
    "torch",
    "transformers",
    "sqlalchemy",
    "sqlmodel",
    "pydantic",
    "rich",
    "trueskill",
    "numpy",
    "scipy",
)
MUST_NOT = ("torch", "transformers", "sqlalchemy")

PROBE = """
import sys
from arena_core.cli.main import main
try:
    main(["--help"])
except SystemExit:
    pass
heavy = {heavy!r}
sys.stderr.write("\\n@@" + ",".join(sorted(
    {{m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy}})) + "\\n")
"""


def arena_script() -> Path:
    path = Path(sys.executable).parent / "arena"
    if not path.exists():
        raise SystemExit(f"no console script at {path}; install the project (pip install -e .)")
    return path


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.pop("PYTHONPROFILEIMPORTTIME", None)
    return e


def timed_runs(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(), check=False
        )
        out.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(
                f"{' '.join(cmd)} exited {proc.returncode}: "
                f"{proc.stderr.decode(errors='replace')[-500:]}"
            )
    return out


def figures(times: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4)}


def import_times(cmd: list[str]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Imports by cumulative time from `python -X importtime` stderr: (top-level, any depth).

    Top-level rows (depth 0) do not overlap; at any depth a parent's time includes its children's.
    """
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env(),
        check=True,
        text=True,
    )
    rows, every = [], []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        self_us, cum_us, name = int(parts[0]), int(parts[1]), parts[2]
        row = {
            "module": name.strip(),
            "depth": (len(name) - len(name.lstrip()) - 1) // 2,
            "cumulative_ms": round(cum_us / 1000, 1),
            "self_ms": round(self_us / 1000, 1),
        }
        every.append(row)
        if row["depth"] == 0:
            rows.append(row)
    for r in (rows, every):
        r.sort(key=lambda x: -float(x["cumulative_ms"]))  # type: ignore[arg-type]
    return rows, every


def help_imports() -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env(),
        check=True,
        text=True,
    )
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("@@")][-1]
    return [m for m in line[2:].split(",") if m]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="runs per command")
    ap.add_argument("--top", type=int, default=5, help="imports to list")
    args = ap.parse_args()
    arena = str(arena_script())

    timed_runs([arena, "--help"], 1)  # warm the OS file cache and .pyc files, not counted
    log(f"arena --help x{args.runs}")
    help_t = timed_runs([arena, "--help"], args.runs)
    log(f"arena plugins x{args.runs}")
    plugins_t = timed_runs([arena, "plugins"], args.runs)
    top, every = import_times([arena, "plugins"])
    heavy = help_imports()
    help_fig = figures(help_t)
    emit(
        {
            "benchmark": "cold_start",
            "runs": args.runs,
            "script": arena,
            "help": help_fig,
            "plugins": figures(plugins_t),
            "target_help_s": TARGET_HELP,
            "pass": help_fig["median_s"] <= TARGET_HELP,
            "plugins_top_imports": top[: args.top],
            "plugins_top_imports_any_depth": every[: args.top],
            "help_imports_heavy": heavy,
            "help_imports_torch_transformers_sqlalchemy": {m: m in heavy for m in MUST_NOT},
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
