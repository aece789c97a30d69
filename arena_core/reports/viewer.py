"""`arena view`: a small read-only web app over a ledger, bound to 127.0.0.1.

The standard library's ThreadingHTTPServer is enough: four GET pages rendered on the server, no
sessions, no forms that write, no JavaScript (filters are a GET form, branches fold with
<details>), one user on their own machine. A framework would add a dependency and nothing these
pages need. Every page is escaped markup with a Content-Security-Policy that forbids scripts; the
server answers only GET and HEAD, and only to a Host header naming this machine (so a web page
elsewhere cannot read the ledger through DNS rebinding).

Pages: `/` tournaments and pools with counts; `/matches` the filterable match list (tournament,
status, player, winner, correct or not); `/match/<id>` one transcript or tree; `/report` the
full report of `reports.html`, computed live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from sqlmodel import func, select

from arena_core.errors import UsageError
from arena_core.ledger import Ledger, MatchRow
from arena_core.ledger.tables import LearnerRun, Player, Rating, VerdictRow
from arena_core.reports.html import CSP, page, pct, table
from arena_core.reports.svg import esc
from arena_core.reports.transcript import match_html

PAGE_SIZE = 100
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def nav() -> str:
    return (
        '<nav style="margin-top:12px"><a href="/">tournaments</a><a href="/matches">matches</a>'
        '<a href="/report">report</a></nav>'
    )


def index_page(ledger: Ledger) -> str:
    rows = []
    for t in ledger.tournaments():
        c = ledger.counts(t.name)
        judge = str((t.config.get("judge") or {}).get("plugin", "?"))
        rows.append(
            [
                f'<a href="/matches?{urlencode({"tournament": t.name})}">{esc(t.name)}</a>',
                esc(t.protocol),
                esc(t.pool),
                esc(judge),
                str(sum(c.values())),
                str(c.get("done", 0)),
                str(c.get("failed", 0)),
                str(c.get("pending", 0) + c.get("running", 0)),
            ]
        )
    body = [
        "<h1>Arena ledger</h1>",
        "<h2>Tournaments</h2>",
        table(
            ["tournament", "protocol", "pool", "judge", "matches", "done", "failed", "pending"],
            rows,
            left=(0, 1, 2, 3),
        ),
        "<h2>Pools</h2>",
        "<p class=muted>A pool is the set of tournaments whose matches are rated together "
        "(<code>[tournament] pool</code>, default: the tournament's name). TrueSkill, sorted by "
        "mu − 3 sigma; the <a href=/report>report</a> has the Bradley-Terry ranking with "
        "intervals.</p>",
    ]
    with ledger.session() as s:
        ratings = list(s.exec(select(Rating).order_by(Rating.pool)))
    pools: dict[str, list[Rating]] = {}
    for r in ratings:
        pools.setdefault(r.pool, []).append(r)
    for pool, rs in pools.items():
        rs.sort(key=lambda r: -(r.mu - 3 * r.sigma))
        body.append(f"<h3>{esc(pool)}</h3>")
        body.append(
            table(
                ["player", "mu", "sigma", "mu−3σ", "matches", "W/L/D"],
                [
                    [
                        f'<a href="/matches?{urlencode({"player": r.player})}">{esc(r.player)}</a>',
                        f"{r.mu:.2f}",
                        f"{r.sigma:.2f}",
                        f"{r.mu - 3 * r.sigma:.2f}",
                        str(r.matches),
                        f"{r.wins}/{r.losses}/{r.draws}",
                    ]
                    for r in rs
                ],
            )
        )
    return page("Arena ledger", "".join(body), nav=nav())


FILTERS = ("tournament", "status", "player", "winner", "correct")


def list_matches(ledger: Ledger, f: dict[str, str]) -> list[tuple[MatchRow, VerdictRow | None]]:
    """Matches with their main verdicts, filtered; player/winner/correct filter in Python since
    seats are JSON."""
    with ledger.session() as s:
        q = select(MatchRow, VerdictRow).outerjoin(
            VerdictRow, (VerdictRow.match_id == MatchRow.id) & (VerdictRow.node == -1)
        )
        if f.get("tournament"):
            q = q.where(MatchRow.tournament == f["tournament"])
        if f.get("status"):
            q = q.where(MatchRow.status == f["status"])
        rows = [tuple(r) for r in s.exec(q.order_by(MatchRow.tournament, MatchRow.order_key))]
    if f.get("player"):
        rows = [r for r in rows if f["player"] in r[0].seats.values()]
    if f.get("winner"):
        rows = [r for r in rows if r[1] is not None and r[1].winner == f["winner"]]
    want = {"yes": True, "no": False, "ungraded": None}.get(f.get("correct", ""), "any")
    if want != "any":
        rows = [r for r in rows if r[1] is not None and r[1].correct is want]
    return rows  # type: ignore[return-value]


def matches_page(ledger: Ledger, f: dict[str, str]) -> str:
    rows = list_matches(ledger, f)
    try:
        pg = max(1, int(f.get("page") or 1))
    except ValueError:
        pg = 1
    shown = rows[(pg - 1) * PAGE_SIZE : pg * PAGE_SIZE]
    names = [t.name for t in ledger.tournaments()]

    def select_box(name: str, options: list[str]) -> str:
        opts = "".join(
            f'<option value="{esc(o)}"{" selected" if f.get(name, "") == o else ""}>'
            f"{esc(o or 'any')}</option>"
            for o in ["", *options]
        )
        return f'<label>{name} <select name="{name}">{opts}</select></label>'

    def text_box(name: str) -> str:
        return f'<label>{name} <input name="{name}" value="{esc(f.get(name, ""))}" size=12></label>'

    form = (
        '<form class="filters" method="get" action="/matches">'
        + select_box("tournament", names)
        + select_box("status", ["pending", "running", "done", "failed"])
        + text_box("player")
        + text_box("winner")
        + select_box("correct", ["yes", "no", "ungraded"])
        + '<button type="submit">filter</button></form>'
    )
    cells = []
    for m, v in shown:
        right = "–" if v is None else {True: "yes", False: "no", None: "–"}[v.correct]
        conf = "–" if v is None or v.chosen is None else pct(v.probs.get(v.chosen))
        cells.append(
            [
                f'<a href="/match/{quote(m.id)}"><code>{esc(m.id[:12])}</code></a>',
                esc(m.tournament),
                esc(m.item_id),
                esc(" vs ".join(f"{s}:{p}" for s, p in m.seats.items())),
                esc(m.status),
                esc(v.winner if v is not None and v.winner else "–"),
                right,
                conf,
                esc((m.error or "")[:60]),
            ]
        )
    pages = (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE
    links = []
    for label, target in (("« previous", pg - 1), ("next »", pg + 1)):
        if 1 <= target <= pages:
            links.append(f'<a href="/matches?{urlencode({**f, "page": target})}">{label}</a>')
    body = [
        "<h1>Matches</h1>",
        form,
        f"<p>{len(rows)} match(es); page {pg} of {max(pages, 1)} {' '.join(links)}</p>",
        table(
            [
                "id",
                "tournament",
                "item",
                "seats",
                "status",
                "winner",
                "correct",
                "confidence",
                "error",
            ],
            cells,
            left=(0, 1, 2, 3, 4, 5, 8),
        ),
    ]
    return page("Matches", "".join(body), nav=nav())


def match_page(ledger: Ledger, match_id: str) -> str:
    m = ledger.get_match(match_id)
    body = match_html(m, ledger.turns(m.id), ledger.verdict(m.id), ledger.node_verdicts(m.id))
    return page(f"Match {m.id[:12]}", body, nav=nav())


_REPORTS: dict[tuple[Any, ...], str] = {}


def report_page(ledger: Ledger) -> str:
    """The full report, recomputed only when the ledger has changed (a match finished, a
    tournament or learner run added): the bootstrap over a large pool takes seconds."""
    from arena_core.reports.html import render_report
    from arena_core.reports.overview import build_overview

    with ledger.session() as s:
        runs = s.exec(select(func.count()).select_from(LearnerRun)).one()
        running = s.exec(
            select(func.count()).select_from(LearnerRun).where(LearnerRun.status == "running")
        ).one()
        players = s.exec(select(func.count()).select_from(Player)).one()
    key = (ledger.url, ledger.max_seq(), len(ledger.tournaments()), runs, players)
    if key not in _REPORTS or running:  # a running learner's curves grow without a new row
        html, _ = render_report(build_overview(ledger))
        _REPORTS.clear()
        _REPORTS[key] = html.replace("<body>", "<body>" + nav(), 1)
    return _REPORTS[key]


class Handler(BaseHTTPRequestHandler):
    ledger: Ledger  # set on the subclass `make_handler` builds
    quiet = True

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: str, ctype: str = "text/html; charset=utf-8") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return host in LOCAL_HOSTS or host == self.server.server_address[0]

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            self._send(403, "forbidden host", "text/plain; charset=utf-8")
            return
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items() if k in (*FILTERS, "page")}
        routes: dict[str, Callable[[], str]] = {
            "/": lambda: index_page(self.ledger),
            "/matches": lambda: matches_page(self.ledger, query),
            "/report": lambda: report_page(self.ledger),
        }
        try:
            if url.path in routes:
                self._send(200, routes[url.path]())
            elif url.path.startswith("/match/"):
                self._send(200, match_page(self.ledger, url.path[len("/match/") :]))
            else:
                self._send(404, page("Not found", "<h1>Not found</h1>", nav=nav()))
        except UsageError as exc:
            self._send(404, page("Not found", f"<h1>{esc(exc)}</h1>", nav=nav()))

    def _refuse(self) -> None:
        self._send(405, "read-only", "text/plain; charset=utf-8")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse


def make_server(ledger: Ledger, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server over `ledger` (port 0: any free port); call `serve_forever` or `start`."""
    handler = type("LedgerHandler", (Handler,), {"ledger": ledger})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def start(ledger: Ledger, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve in a background thread (tests); `server.shutdown()` stops it."""
    server = make_server(ledger, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
