"""One match as HTML: the item, every turn with its quote checks highlighted, scratchpads and judge
questions marked, a branched match as a tree (node values, leaf verdicts), and the verdict.

Quote highlights come from the stored checks: a speech's `shown` text carries the protocol's
<v_quote>/<invalid_quote> marks and its meta the counts (quotes, valid, repaired, invalid). Each
mark is paired, in order, with the tag the speaker wrote in `text`: a <quote> marked verified
whose words differ from the passage's (after normalising case and punctuation) was repaired, and
a mark the speaker typed itself is shown as forged, never as verified. Turns without quote checks
(scratchpads, questions) get no highlights. Everything else is escaped text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from arena_core.reports.html import esc, pct

RAW_TAG = re.compile(r"<(quote|v_quote|invalid_quote)>(.*?)</\1>", re.DOTALL)
SHOWN_TAG = re.compile(r"<(v_quote|invalid_quote)>(.*?)</\1>", re.DOTALL)
_NON_WORD = re.compile(r"[^0-9a-z]+")

KIND_TITLE = {
    "verified": "verified: found in the passage as written",
    "repaired": "repaired: a near miss, replaced by the passage's own words",
    "fabricated": "fabricated: not in the passage",
    "spoofed": "a quote mark the speaker typed itself: never checked",
}


def _norm(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower()).strip()


def quote_kinds(text: str, shown: str) -> list[str]:
    """The check behind each mark in `shown`, in order: verified, repaired, fabricated, spoofed."""
    raw = RAW_TAG.findall(text)
    kinds = []
    for k, (tag, words) in enumerate(SHOWN_TAG.findall(shown)):
        wrote = raw[k] if k < len(raw) else None
        if wrote is not None and wrote[0] != "quote":
            kinds.append("spoofed")
        elif tag == "invalid_quote":
            kinds.append("fabricated")
        elif wrote is not None and _norm(wrote[1]) != _norm(words):
            kinds.append("repaired")
        else:
            kinds.append("verified")
    return kinds


def speech_html(text: str, shown: str, meta: dict[str, Any]) -> str:
    """The shown text, escaped, with checked quotes as <mark>s (only where checks were stored)."""
    if "quotes" not in meta:
        return esc(shown)
    kinds = iter(quote_kinds(text, shown))
    out, last = [], 0
    for m in SHOWN_TAG.finditer(shown):
        kind = next(kinds)
        out.append(esc(shown[last : m.start()]))
        out.append(f'<mark class="{kind}" title="{esc(KIND_TITLE[kind])}">{esc(m.group(2))}</mark>')
        last = m.end()
    out.append(esc(shown[last:]))
    return "".join(out)


def quote_badge(text: str, shown: str, meta: dict[str, Any]) -> str:
    """The stored counts, and a warning where the marks do not add up to them."""
    if "quotes" not in meta:
        return ""
    kinds = quote_kinds(text, shown)
    counted = sum(1 for k in kinds if k != "spoofed")
    parts = [
        f"{int(meta.get('quotes') or 0)} quotes",
        f"{int(meta.get('valid') or 0)} verified",
        f"{int(meta.get('repaired') or 0)} repaired",
        f"{int(meta.get('invalid') or 0)} fabricated",
    ]
    warn = ""
    if "spoofed" in kinds:
        warn += ' <span class="tag bad">quote marks typed by the speaker</span>'
    if counted != int(meta.get("quotes") or 0):
        warn += ' <span class="tag bad">marks do not match the stored checks</span>'
    if meta.get("truncated"):
        warn += ' <span class="tag">cut to length</span>'
    return f'<span class="tag">{esc(", ".join(parts))}</span>{warn}'


def turn_html(t: Any, *, extra: str = "") -> str:
    """One turn as a box: who, round, phase; scratchpads and judge questions marked."""
    phase = t.phase
    who = f"{t.seat} ({t.player})" if t.player else t.seat
    marks = []
    if phase == "scratchpad":
        marks.append('<span class="tag">scratchpad: private notes</span>')
    elif phase == "question":
        marks.append('<span class="tag">judge question</span>')
    elif phase not in ("speech", "answer"):
        marks.append(f'<span class="tag">{esc(phase)}</span>')
    if t.visible_to is not None:
        marks.append(f'<span class="tag">visible to {esc(", ".join(t.visible_to))}</span>')
    cls = phase if phase in ("scratchpad", "question") else ""
    return (
        f'<div class="turn {cls}" id="turn-{t.idx}"><span class="who">{esc(who)}</span> '
        f'<span class="muted">round {t.round + 1} · {esc(phase)} · #{t.idx}</span>'
        f"{''.join(marks)}{quote_badge(t.text, t.shown, t.meta)}{extra}"
        f"<pre>{speech_html(t.text, t.shown, t.meta)}</pre></div>"
    )


def verdict_html(v: Any, title: str = "verdict") -> str:
    probs = ", ".join(f"{esc(k)}: {p:.2f}" for k, p in v.probs.items())
    right = {True: '<b class="ok">correct</b>', False: '<b class="bad">wrong</b>', None: "ungraded"}
    return (
        f'<div class="turn"><span class="who">{esc(title)} · {esc(v.judge)}</span> '
        f"winner <b>{esc(v.winner or 'none (undecided)')}</b>"
        f"{f' (seat {esc(v.winner_seat)})' if v.winner_seat else ''} · chose "
        f"{esc(v.chosen or '–')} · probabilities {probs} · {right[v.correct]}"
        f"<pre>{esc(v.raw)}</pre></div>"
    )


def is_tree(turns: Sequence[Any]) -> bool:
    return any(t.branch or "group" in t.meta for t in turns)


def tree_html(turns: Sequence[Any], leaves: dict[int, Any]) -> str:
    """Nested <details> (open, foldable without a script): each node with its value, each leaf
    with its verdict."""
    kids: dict[int | None, list[Any]] = {}
    for t in turns:
        kids.setdefault(t.parent, []).append(t)

    def node(t: Any) -> str:
        value = t.meta.get("value")
        info = (
            f'<span class="tag">value {value:.3f} over {t.meta.get("leaves", "?")} leaves</span>'
            if isinstance(value, int | float)
            else ""
        )
        info += f'<span class="tag">branch {t.branch}</span>'
        if "copy_of" in t.meta:
            info += f'<span class="tag">same speech as #{int(t.meta["copy_of"])}</span>'
        below = "".join(node(c) for c in kids.get(t.idx, []))
        leaf = leaves.get(t.idx)
        if leaf is not None:
            below += verdict_html(leaf, f"leaf verdict (node #{t.idx})")
        return (
            f'<details open class="node"><summary>#{t.idx} {esc(t.seat)} round {t.round + 1} '
            f"{'value ' + pct(value) if isinstance(value, int | float) else ''}</summary>"
            f"{turn_html(t, extra=info)}{below}</details>"
        )

    return "".join(node(t) for t in kids.get(None, []))


def match_html(m: Any, turns: Sequence[Any], verdict: Any, nodes: Sequence[Any]) -> str:
    item = m.item or {}
    gold = item.get("gold")
    answers = "".join(
        f"<li>{esc(a)}{' <b class=ok>(gold)</b>' if i == gold else ''}</li>"
        for i, a in enumerate(item.get("answers") or [])
    )
    seats = ", ".join(
        f"{esc(s)} = <b>{esc(p)}</b> argues #{m.assignment.get(s, -1) + 1}"
        for s, p in m.seats.items()
    )
    out = [
        f"<h1>Match <code>{esc(m.id[:12])}</code></h1>",
        f"<p class=muted>{esc(m.id)} · tournament {esc(m.tournament)} · {esc(m.protocol)} · item "
        f"{esc(m.item_id)} · {esc(m.status)} · {m.attempts} attempt(s)</p>",
        f"<h3>{esc(item.get('question', ''))}</h3><ol>{answers}</ol><p>{seats}</p>",
        '<p class=muted>Quotes: <mark class="verified">verified</mark> '
        '<mark class="repaired">repaired</mark> <mark class="fabricated">fabricated</mark> '
        '<mark class="spoofed">typed by the speaker</mark></p>',
    ]
    if is_tree(turns):
        leaves = {v.node: v for v in nodes}
        out.append(f"<h2>Tree ({len(turns)} speeches, {len(leaves)} judged leaves)</h2>")
        out.append(tree_html(turns, leaves))
    else:
        out += [turn_html(t) for t in turns]
        out += [verdict_html(v, f"node verdict #{v.node}") for v in nodes]
    if verdict is not None:
        out.append(verdict_html(verdict, "main verdict"))
    if m.error:
        out.append(
            f'<div class="turn"><b class=bad>error</b><pre>{esc(m.traceback or m.error)}'
            "</pre></div>"
        )
    return "".join(out)
