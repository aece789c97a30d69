"""Cold start: wall time of `arena --help` and `arena plugins` in fresh processes, over a bare
interpreter's start measured beside them.

Four commands, each a fresh process, interleaved run by run (`_harness.compare`), `--runs` times
(default 7) after one uncounted warm-up each: `python -c pass` (the interpreter alone, the
baseline), `python -c "import argparse"` (the least any argparse CLI pays), and `arena --help`
and `arena plugins` through the installed console script next to the interpreter. The figures
are ratios taken run by run, median and range: on a shared 2-core machine an absolute target
(0.5 s) moves with the load, a ratio to the interpreter started beside it much less. Target:
`arena --help` <= 5x `import argparse` (a heavy import such as sqlalchemy alone would double it).
The seconds are given for reading. Also: the five slowest imports of `arena plugins`
(`python -X importtime`, cumulative), and whether `arena --help` imports heavy packages (it must
import none of torch, transformers, sqlalchemy: subcommands import what they need).

    python benchmarks/cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import compare, emit, log, machine_load, ratio

TARGET = 5.0  # `arena --help` over `python -c "import argparse"`, median of the run-by-run ratios
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


def timed(cmd: list[str]) -> float:
    """Wall seconds of one fresh process running `cmd` (it must exit 0)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(), check=False
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')[-500:]}"
        )
    return seconds


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
    ap.add_argument("--runs", type=int, default=7, help="runs per command, interleaved")
    ap.add_argument("--top", type=int, default=5, help="imports to list")
    args = ap.parse_args()
    arena = str(arena_script())
    commands = {
        "python": [sys.executable, "-c", "pass"],
        "argparse": [sys.executable, "-c", "import argparse"],
        "help": [arena, "--help"],
        "plugins": [arena, "plugins"],
    }
    for cmd in commands.values():  # warm the OS file cache and .pyc files, not counted
        timed(cmd)
    log(f"{' / '.join(commands)}, interleaved x{args.runs}")
    figures = compare(
        {name: lambda cmd=cmd: timed(cmd) for name, cmd in commands.items()},
        max(3, args.runs),
        baseline="python",
    )
    values = figures.pop("values")
    help_vs_argparse = ratio(values["help"], values["argparse"])
    top, every = import_times([arena, "plugins"])
    heavy = help_imports()
    emit(
        {
            "benchmark": "cold_start",
            "load": machine_load(),
            "script": arena,
            "wall_s": figures,  # per command: median and range; vs_baseline: over `python -c pass`
            # The figure: `arena --help` over `import argparse`, measured beside it.
            "help_vs_argparse": help_vs_argparse,
            "plugins_vs_argparse": ratio(values["plugins"], values["argparse"]),
            "target": TARGET,
            "pass": help_vs_argparse["median"] <= TARGET,
            "plugins_top_imports": top[: args.top],
            "plugins_top_imports_any_depth": every[: args.top],
            "help_imports_heavy": heavy,
            "help_imports_torch_transformers_sqlalchemy": {m: m in heavy for m in MUST_NOT},
            "help_imports_ok": not any(m in heavy for m in MUST_NOT),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
