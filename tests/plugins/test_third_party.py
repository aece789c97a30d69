"""A third-party package (examples/arena-plugin-example) plugs in through its entry point alone.

Needs the example installed: `pip install -e examples/arena-plugin-example --no-build-isolation`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

import pytest

from arena_core.ledger import DONE, Ledger
from arena_core.testing import run_tournament

OURS = packages_distributions()["arena_core"][0]  # the distribution name: arena-debate

BIN = Path(sys.executable).parent
INSTALL = "pip install -e examples/arena-plugin-example --no-build-isolation"


@pytest.fixture(autouse=True, scope="module")
def example_installed() -> None:
    try:
        distribution("arena-plugin-example")
    except PackageNotFoundError:
        pytest.fail(f"the example plugin is not installed; run `{INSTALL}`")


def test_arena_plugins_lists_the_example_with_its_origin() -> None:
    out = subprocess.run(
        [str(BIN / "arena"), "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    entries = {(e["kind"], e["name"]): e for e in json.loads(out.stdout)}
    assert entries[("agent", "echo-example")]["origin"] == "arena-plugin-example"
    assert entries[("protocol", "quickfire")]["origin"] == "arena-plugin-example"
    options = {o["name"]: o for o in entries[("agent", "echo-example")]["options"]}
    assert options["prefix"]["default"] == "'Echo:'"
    assert entries[("agent", "extractive")]["origin"] == OURS


def test_quickfire_tournament_with_echo_players(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = """
        [tournament]
        name = "third-party"
        protocol = "quickfire"
        retries = 0

        [protocol]
        max_words = 12

        [dataset]
        plugin = "bundled"
        limit = 3

        [judge]
        plugin = "quote"

        [[players]]
        name = "echo"
        agent = "echo-example"
        options = { prefix = "Echo says:" }

        [[players]]
        name = "quoter"
        agent = "extractive"
    """
    summary = run_tournament(config.replace("\n        ", "\n"), url)
    assert (summary.scheduled, summary.done, summary.failed) == (12, 12, 0)
    ledger = Ledger(url, create=False)
    try:
        matches = ledger.matches(tournament="third-party")
        assert len(matches) == 12 and {m.status for m in matches} == {DONE}
        for m in matches:
            turns = ledger.turns(m.id)
            assert [t.seat for t in turns] == ["A", "B"]  # one speech each, in seat order
            assert all(len(t.shown.split()) <= 12 for t in turns)
            echo_turn = next(t for t in turns if t.player == "echo")
            assert echo_turn.text.startswith("Echo says: ")
    finally:
        ledger.close()


def test_listing_plugins_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from arena_core.cli.main import main\n"
        "assert main(['plugins']) == 0\n"
        "assert main(['plugins', '--json']) == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'openai', 'anthropic', 'vllm')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('LIGHT')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("LIGHT")
    assert "echo-example" in out.stdout
