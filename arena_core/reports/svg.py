"""Plots as inline SVG strings: an interval plot, heat maps, line charts, a reliability diagram.

Written by hand rather than with matplotlib: these four chart kinds are a few dozen lines each,
the core stays free of a plotting stack (matplotlib with its fonts is tens of MB and a second of
import), the same functions serve the static report and the live viewer, the charts stay crisp
at any zoom and their text searchable, and every label passes through one escape function, so a
player's name never becomes markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def esc(text: object) -> str:
    """Text for an SVG/HTML text node or attribute value."""
    return escape(str(text), quote=True)


def _svg(width: float, height: float, body: Sequence[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" {FONT}>'
        f"<title>{esc(title)}</title>" + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, s: object, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{esc(s)}</text>'


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt_tick(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2g}"


def interval_plot(
    rows: Sequence[tuple[str, float, float, float, bool]],
    title: str,
    unit: str = "",
    *,
    x_range: tuple[float, float] | None = None,
    reference: float | None = None,
) -> str:
    """One horizontal line per (label, point, lower, upper, flagged); flagged rows in orange;
    `reference` draws a dashed line (chance, say)."""
    if not rows:
        return ""
    longest = max(len(str(r[0])) for r in rows)
    left, right, top, row_h = min(30 + 7 * longest, 320), 30, 28, 22
    width = 490 + left
    height = top + row_h * len(rows) + 34
    if x_range is not None:
        lo, hi = x_range
        pad = 0.0
    else:
        lo = min(r[2] for r in rows)
        hi = max(r[3] for r in rows)
        pad = (hi - lo) * 0.05 or 10.0
    ticks = nice_ticks(lo - pad, hi + pad)
    x0, x1 = min(ticks[0], lo - pad), max(ticks[-1], hi + pad)

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (width - left - right)

    body = [_text(8, 16, title, extra='font-weight="bold"')]
    base = top + row_h * len(rows)
    for t in ticks:
        body.append(
            f'<line x1="{sx(t):.1f}" y1="{top - 6}" x2="{sx(t):.1f}" y2="{base}" stroke="#ddd"/>'
        )
        body.append(_text(sx(t), base + 16, _fmt_tick(t), "middle"))
    body.append(_text((left + width - right) / 2, base + 30, unit, "middle", 'fill="#555"'))
    if reference is not None:
        body.append(
            f'<line x1="{sx(reference):.1f}" y1="{top - 6}" x2="{sx(reference):.1f}" '
            f'y2="{base}" stroke="#999" stroke-dasharray="4 4"/>'
        )
    for i, (label, point, lower, upper, flagged) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        color = "#e6550d" if flagged else "#1f77b4"
        body.append(_text(left - 8, y + 4, label, "end"))
        body.append(
            f'<line x1="{sx(lower):.1f}" y1="{y:.1f}" x2="{sx(upper):.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="3"/>'
        )
        body.append(f'<circle cx="{sx(point):.1f}" cy="{y:.1f}" r="4.5" fill="{color}"/>')
    return _svg(width, height, body, title)


def _heat_color(v: float) -> str:
    """Blue (0) through white (0.5) to red (1)."""
    v = min(max(v, 0.0), 1.0)
    if v < 0.5:
        t = v / 0.5
        r, g, b = int(33 + t * (255 - 33)), int(102 + t * (255 - 102)), int(172 + t * (255 - 172))
    else:
        t = (v - 0.5) / 0.5
        r, g, b = int(255 - t * (255 - 178)), int(255 - t * (255 - 24)), int(255 - t * (255 - 43))
    return f"rgb({r},{g},{b})"


def _count_color(v: float) -> str:
    """White (0) to dark blue (the largest count): counts have no middle."""
    t = min(max(v, 0.0), 1.0)
    r, g, b = int(247 - t * (247 - 8)), int(251 - t * (251 - 69)), int(255 - t * (255 - 148))
    return f"rgb({r},{g},{b})"


def heatmap(
    labels: Sequence[str],
    cells: Sequence[Sequence[float | None]],
    title: str,
    *,
    fmt: str = "{:.0%}",
    scale_max: float | None = 1.0,
) -> str:
    """A square matrix, row label = the row player. `scale_max=None` scales colours to the largest
    cell (counts); else values are read on [0, scale_max] (rates)."""
    n = len(labels)
    if not n:
        return ""
    cell = 46 if n <= 10 else 30
    longest = max(len(str(lab)) for lab in labels)
    left, top = min(40 + 7 * longest, 220), min(40 + 5 * longest, 200)  # room for the labels
    width, height = left + cell * n + 20 + 5 * min(longest, 30), top + cell * n + 20
    top_value = scale_max or max((v or 0.0) for row in cells for v in row) or 1.0
    body = [_text(8, 16, title, extra='font-weight="bold"')]
    for j, lab in enumerate(labels):
        x = left + cell * j + cell / 2
        body.append(_text(x, top - 8, lab, "start", f'transform="rotate(-50 {x:.1f} {top - 8})"'))
    for i, lab in enumerate(labels):
        y = top + cell * i
        body.append(_text(left - 6, y + cell / 2 + 4, lab, "end"))
        for j in range(n):
            v = cells[i][j]
            x = left + cell * j
            color = _count_color if scale_max is None else _heat_color
            fill = "#f3f3f3" if v is None else color(v / top_value)
            body.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" '
                f'stroke="#fff"/>'
            )
            if v is not None:
                share = v / top_value
                dark = share > 0.6 if scale_max is None else abs(share - 0.5) > 0.35
                body.append(
                    _text(
                        x + cell / 2,
                        y + cell / 2 + 4,
                        fmt.format(v),
                        "middle",
                        f'fill="{"#fff" if dark else "#222"}" font-size="11"',
                    )
                )
    return _svg(width, height, body, title)


def line_chart(
    series: dict[str, Sequence[Sequence[float]]],
    title: str,
    *,
    xlabel: str = "",
    ylabel: str = "",
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    points: bool = False,
) -> str:
    """Lines of (x, y) points, one colour per series, with a legend. `diagonal` draws y = x
    (the reliability diagram's perfect calibration)."""
    data = {k: [(float(p[0]), float(p[1])) for p in v] for k, v in series.items() if v}
    if not data:
        return ""
    width, height, left, right, top, bottom = 640, 300, 56, 150, 28, 44
    xs = [x for v in data.values() for x, _ in v]
    ys = [y for v in data.values() for _, y in v]
    x0, x1 = (min(xs), max(xs)) if not diagonal else (0.0, 1.0)
    y0, y1 = y_range or (min(ys), max(ys))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    xt, yt = nice_ticks(x0, x1), nice_ticks(y0, y1)
    x0, x1 = min(x0, xt[0]), max(x1, xt[-1])
    y0, y1 = min(y0, yt[0]), max(y1, yt[-1])
    pw, ph = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    body = [_text(left, 16, title, extra='font-weight="bold"')]
    for t in xt:
        body.append(
            f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}" stroke="#eee"/>'
        )
        body.append(_text(sx(t), top + ph + 16, _fmt_tick(t), "middle"))
    for t in yt:
        body.append(
            f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" stroke="#eee"/>'
        )
        body.append(_text(left - 6, sy(t) + 4, _fmt_tick(t), "end"))
    body.append(
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>'
    )
    body.append(_text(left + pw / 2, height - 8, xlabel, "middle", 'fill="#555"'))
    body.append(
        _text(
            14,
            top + ph / 2,
            ylabel,
            "middle",
            f'fill="#555" transform="rotate(-90 14 {top + ph / 2:.1f})"',
        )
    )
    if diagonal:
        body.append(
            f'<line x1="{sx(0):.1f}" y1="{sy(0):.1f}" x2="{sx(1):.1f}" y2="{sy(1):.1f}" '
            'stroke="#999" stroke-dasharray="4 4"/>'
        )
    for k, (name, pts) in enumerate(data.items()):
        color = PALETTE[k % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        if points or len(pts) == 1:
            body += [
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}"/>'
                for x, y in pts
            ]
        ly = top + 14 * k + 8
        body.append(
            f'<line x1="{left + pw + 10}" y1="{ly}" x2="{left + pw + 26}" y2="{ly}" '
            f'stroke="{color}" stroke-width="3"/>'
        )
        body.append(_text(left + pw + 30, ly + 4, name))
    return _svg(width, height, body, title)
