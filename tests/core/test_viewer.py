"""`arena view`: the read-only viewer, over HTTP and in a real headless browser."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from arena_core.ledger import Ledger
from arena_core.reports.transcript import quote_kinds, speech_html
from arena_core.reports.viewer import start
from tests.core import browser


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    led = Ledger(browser.build_ledger(tmp_path_factory.mktemp("viewer")), create=False)
    yield led
    led.close()


@pytest.fixture(scope="module")
def base(ledger: Ledger) -> Iterator[str]:
    server = start(ledger)  # port 0: any free port, on 127.0.0.1
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def get(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def hostile_match(ledger: Ledger) -> str:
    return next(
        m.id for m in ledger.matches(tournament="hostile") if browser.EVIL_NAME in m.seats.values()
    )


def test_quote_checks_are_read_from_the_stored_marks() -> None:
    text = (
        "<quote>Teh cat sat</quote> <v_quote>made up</v_quote> <quote>gone</quote> <quote>a</quote>"
    )
    shown = (
        "<v_quote>The cat sat.</v_quote> <v_quote>made up</v_quote> "
        "<invalid_quote>gone</invalid_quote> <v_quote>A</v_quote>"
    )
    assert quote_kinds(text, shown) == ["repaired", "spoofed", "fabricated", "verified"]
    html = speech_html(text, shown, {"quotes": 3})
    assert '<mark class="spoofed"' in html and '<mark class="repaired"' in html
    assert "&lt;v_quote&gt;" not in html
    # no stored checks (a scratchpad): the text is shown as written, escaped, unmarked
    assert speech_html(text, shown, {}).startswith("&lt;v_quote&gt;The cat")


def test_pages_and_filters(ledger, base) -> None:
    status, body = get(base + "/")
    assert status == 200 and "hostile" in body and "tree" in body
    assert "&lt;b&gt;bold&lt;/b&gt;&amp;co" in body and "<b>bold</b>" not in body
    status, body = get(base + "/matches?" + urlencode({"tournament": "hostile"}))
    assert status == 200 and "8 match(es)" in body
    status, body = get(base + "/matches?" + urlencode({"winner": "quoter", "correct": "yes"}))
    n_right = int(body.split(" match(es)")[0].rsplit(">", 1)[-1])
    status, body = get(base + "/matches?" + urlencode({"winner": "quoter"}))
    n_won = int(body.split(" match(es)")[0].rsplit(">", 1)[-1])
    assert 0 < n_right <= n_won == 8
    status, body = get(base + "/matches?" + urlencode({"player": "brancher", "status": "done"}))
    assert "2 match(es)" in body
    status, body = get(base + "/match/" + hostile_match(ledger))
    assert status == 200 and "forged evidence" in body
    assert '<mark class="spoofed"' in body and '<mark class="fabricated"' in body
    assert '<mark class="verified"' in body and "<script>" not in body
    assert get(base + "/match/ffffffff")[0] == 404
    assert get(base + "/report")[0] == 200


def test_read_only_and_local(base) -> None:
    assert get(base + "/", method="POST")[0] == 405
    assert get(base + "/", method="DELETE")[0] == 405
    # a page elsewhere that rebinds its own name to 127.0.0.1 cannot read the ledger
    assert get(base + "/", headers={"Host": "evil.example:80"})[0] == 403


def test_a_branched_match_is_a_tree(ledger, base) -> None:
    m = ledger.matches(tournament="tree")[0]
    status, body = get(base + "/match/" + m.id)
    leaves = ledger.node_verdicts(m.id)
    assert status == 200 and len(leaves) == 4  # half mode, 2 speeches each, 2 branches
    assert body.count("leaf verdict") == len(leaves)
    assert body.count('<details open class="node">') == len(ledger.turns(m.id))
    assert "value 0." in body or "value 1." in body


def test_viewer_in_a_real_browser(ledger, base, tmp_path) -> None:
    match = f"{base}/match/{hostile_match(ledger)}"
    dom = browser.dump_dom(match)
    assert not browser.pwned(dom)  # neither the <script> nor the onerror handler ran
    assert "&lt;script&gt;document.documentElement" in dom  # shown as text instead
    assert 'class="fabricated"' in dom and "forged evidence" in dom
    home = browser.dump_dom(base + "/")
    assert "Arena ledger" in home and not browser.pwned(home)
    browser.screenshot(match, "viewer-match.png", tmp_path)
    browser.screenshot(
        f"{base}/match/{ledger.matches(tournament='tree')[0].id}", "viewer-tree.png", tmp_path
    )
    browser.screenshot(f"{base}/matches?tournament=hostile", "viewer-list.png", tmp_path)


def test_the_detector_sees_a_script_that_runs(tmp_path) -> None:
    """The control: the same payload, unescaped, does mark the page."""
    page = tmp_path / "unsafe.html"
    page.write_text(f"<html><body>{browser.PAYLOAD}</body></html>")
    assert browser.pwned(browser.dump_dom(page.as_uri()))
