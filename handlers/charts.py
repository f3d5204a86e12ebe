"""Charts for the merchant's reports, drawn with matplotlib's Agg renderer: plain data in, a PNG (for the chat) and
an SVG (for the console) out. Channel-neutral: no bot, no database, no translation here — the caller passes the
titles already translated, and amounts as numbers in the unit it wants shown.

Chinese text (product names, zh_CN titles) is drawn with Noto Sans CJK SC (Debian's `fonts-noto-cjk`; README
"Dependencies and why"). The font is looked up on the first chart; when it is missing every chart raises
`ChartFontMissing` saying what to install — a chart with boxes instead of product names is never sent.

Only the module that answers reports imports this one: matplotlib takes most of a second to import, which the chat
bots' other flows do not pay. Each chart is its own `Figure` with its own Agg canvas (no pyplot, no global state),
so charts can be drawn in worker threads.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import TypeVar

from matplotlib import dates as mdates
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

CJK_FAMILY = "Noto Sans CJK SC"
# Where Debian's fonts-noto-cjk puts the font, tried when matplotlib's font cache predates the package.
CJK_FILES = (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
             Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.otf"))
WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.5, 100  # 800 x 450 px: readable in a Telegram photo and on a phone
BAR = "#3b7dd8"
LINE_FROM_DAYS = 45  # a longer period is drawn as a line: bars thinner than a pixel or two say nothing


class ChartFontMissing(RuntimeError):
    """No CJK font: charts would show Chinese text as empty boxes."""


@dataclass(frozen=True)
class Chart:
    png: bytes
    svg: str


@dataclass(frozen=True)
class ChartStyle:
    family: str  # a font family matplotlib's font manager knows


@cache
def default_style() -> ChartStyle:
    """The CJK style; raises ChartFontMissing when Noto Sans CJK is not installed."""
    try:
        font_manager.findfont(font_manager.FontProperties(family=CJK_FAMILY), fallback_to_default=False)
    except ValueError:
        for path in CJK_FILES:
            if path.exists():
                font_manager.fontManager.addfont(path)
                break
        else:
            raise ChartFontMissing(
                f"no CJK font for charts ({CJK_FAMILY}): install Debian's fonts-noto-cjk "
                "(apt-get install fonts-noto-cjk)") from None
    return ChartStyle(CJK_FAMILY)


def daily_revenue(days: Sequence[tuple[date, float]], *, title: str, unit: str = "",
                  style: ChartStyle | None = None) -> Chart:
    """Revenue per day: bars (a line over more than LINE_FROM_DAYS days), dates on the x axis."""
    st = style or default_style()
    fig, ax = _figure(title, st)
    xs = [d for d, _ in days]
    ys = [v for _, v in days]
    if len(days) > LINE_FROM_DAYS:
        ax.plot(xs, ys, color=BAR, linewidth=2)
        ax.fill_between(xs, ys, color=BAR, alpha=0.15)
    else:
        ax.bar(xs, ys, color=BAR, width=0.8)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if unit:
        ax.set_ylabel(unit, fontfamily=st.family)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    return _render(fig)


V = TypeVar("V", int, float)


def _hbars(ax: Axes, bars: Sequence[tuple[str, V]]) -> list[V]:
    """Named horizontal bars, the first on top; the values, for their labels."""
    values = [v for _, v in bars]
    ys = range(len(bars))
    ax.barh(ys, values, color=BAR)
    ax.set_yticks(list(ys), [n for n, _ in bars])
    ax.invert_yaxis()
    return values


def funnel(stages: Sequence[tuple[str, int]], *, title: str, style: ChartStyle | None = None) -> Chart:
    """Named stages as horizontal bars, first stage on top, each labelled with its count and its share of the
    first stage."""
    st = style or default_style()
    fig, ax = _figure(title, st)
    counts = _hbars(ax, stages)
    first = counts[0] if counts else 0
    labels = [f"{c:,}" + (f"  {c / first:.0%}" if first else "") for c in counts]
    _bar_labels(ax, counts, labels, st)
    return _render(fig)


def top_products(products: Sequence[tuple[str, float]], *, title: str, unit: str = "",
                 style: ChartStyle | None = None) -> Chart:
    """Products as horizontal bars in the order given (the caller sorts: best first, on top)."""
    st = style or default_style()
    fig, ax = _figure(title, st)
    values = _hbars(ax, products)
    _bar_labels(ax, values, [_number(v) for v in values], st)
    if unit:
        ax.set_xlabel(unit, fontfamily=st.family)
    return _render(fig)


def _figure(title: str, style: ChartStyle) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontfamily=style.family, fontsize=14, loc="left")
    ax.tick_params(labelfontfamily=style.family)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _bar_labels(ax: Axes, values: Sequence[float], labels: Sequence[str], style: ChartStyle) -> None:
    top = max(values, default=0)
    for y, (v, text) in enumerate(zip(values, labels, strict=True)):
        ax.text(v + top * 0.01, y, text, va="center", fontfamily=style.family, fontsize=10)
    ax.set_xlim(0, (top or 1) * 1.18)


def _number(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _render(fig: Figure) -> Chart:
    png = io.BytesIO()
    FigureCanvasAgg(fig).print_png(png)
    svg = io.StringIO()
    FigureCanvasSVG(fig).print_svg(svg)
    return Chart(png.getvalue(), svg.getvalue())
