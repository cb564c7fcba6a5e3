"""The report's plots as inline SVG: matplotlib's SVG canvas, no GUI, no pyplot state.

Each function takes numbers already reduced to a small grid (the sections size every grid by
quantiles or by a cap, never by the largest value, so a plot stays small at any scale) and
returns an `<svg>` element ready to put in the page:

- text stays text (`svg.fonttype: none`): small, crisp and searchable, in the browser's font;
- the same numbers give the same bytes: a fixed hash salt per figure and no date metadata;
- no XML prolog, DOCTYPE or namespace URLs, and every `id` prefixed with the figure's key, so
  several figures live in one HTML page and the page names no external address.

matplotlib is imported inside the functions: `custval --help` never pays for it.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
SERIES = ("#2f6fb0", "#e08a1e", "#3f9c62", "#b8475a")  # customers, revenue, third, fourth
NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
MAX_ANNOTATED_CELLS = 160  # beyond this a heatmap's numbers are unreadable: colour only


@contextmanager
def _style(key: str) -> Iterator[None]:
    """matplotlib settings for one figure, restored afterwards (nothing global is left)."""
    import matplotlib

    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": f"custval-report-{key}",
            "svg.image_inline": True,
            "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
            "font.size": 9,
            "axes.edgecolor": MUTED,
            "axes.labelcolor": INK,
            "axes.titlesize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "xtick.color": INK,
            "ytick.color": INK,
            "legend.frameon": False,
            "path.simplify": True,
        }
    ):
        yield


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasSVG(fig)
    return fig


_ROOT_NS = re.compile(r'\s+xmlns(:xlink)?="[^"]*"')


def inline_svg(svg: str, key: str, label: str) -> str:
    """matplotlib's SVG document as an element of an HTML page (see the module docstring)."""
    svg = svg[svg.index("<svg") :]
    svg = _ROOT_NS.sub("", svg)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = svg.replace("xlink:href=", "href=")
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', svg)
    svg = svg.replace('href="#', f'href="#{key}-').replace("url(#", f"url(#{key}-")
    svg = re.sub(r"\s*\n\s*", " ", svg).replace("> <", "><").strip()
    svg = re.sub(r'href="data:[^"]*"', lambda m: re.sub(r"\s+", "", m.group(0)), svg)
    return svg.replace(
        "<svg ", f'<svg class="fig" role="img" aria-label="{html.escape(label)}" ', 1
    )


def _svg(fig: Figure, key: str, label: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata=NO_METADATA)
    return inline_svg(buffer.getvalue(), key, label)


def _percent_axis(ax: Axes, axis: str = "x") -> None:
    from matplotlib.ticker import PercentFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(PercentFormatter(1.0, decimals=0))


def share_bars(
    key: str, label: str, categories: Sequence[str], series: dict[str, Sequence[float]]
) -> str:
    """Horizontal grouped bars of shares (0..1), one group per category, top to bottom."""
    import numpy as np

    with _style(key):
        n = len(categories)
        fig = _figure(6.4, 0.7 + 0.28 * n * max(1, len(series)) ** 0.5)
        ax = fig.add_subplot()
        height = 0.8 / max(1, len(series))
        y = np.arange(n)
        for i, (name, values) in enumerate(series.items()):
            ax.barh(
                y + (i - (len(series) - 1) / 2) * height,
                [v if v is not None and math.isfinite(v) else 0.0 for v in values],
                height=height,
                color=SERIES[i % len(SERIES)],
                label=name,
            )
        ax.set_yticks(y, list(categories))
        ax.invert_yaxis()
        _percent_axis(ax)
        ax.grid(axis="x", color=GRID)
        ax.set_axisbelow(True)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(series))
        return _svg(fig, key, label)


def pareto(
    key: str,
    rank_share: Sequence[float],
    revenue_share: Sequence[float],
    cuts: Sequence[tuple[str, float, float]],
) -> str:
    """Cumulative revenue share by customer rank, with a vertical line at each class cut."""
    with _style(key):
        fig = _figure(6.4, 3.4)
        ax = fig.add_subplot()
        ax.plot(list(rank_share), list(revenue_share), color=SERIES[0], linewidth=1.8)
        ax.plot([0, 1], [0, 1], color=MUTED, linewidth=0.8, linestyle=":")
        for i, (name, x, y) in enumerate(cuts):
            ax.axvline(x, color=SERIES[1], linewidth=0.9, linestyle="--")
            right = x > 0.5  # keep the label inside the axes
            ax.text(
                x - 0.01 if right else x + 0.01,
                0.06 + 0.1 * i,
                f"{name}: top {x:.0%} of customers bring {y:.0%} of revenue",
                color=INK,
                fontsize=8,
                ha="right" if right else "left",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        _percent_axis(ax, "x")
        _percent_axis(ax, "y")
        ax.set_xlabel("customers, ranked by net revenue (highest first)")
        ax.set_ylabel("cumulative share of revenue")
        ax.grid(color=GRID)
        ax.set_axisbelow(True)
        return _svg(fig, key, "ABC Pareto curve")


def heatmap(
    key: str,
    label: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    xlabel: str,
    ylabel: str,
    percent: bool = True,
    vmax: float = 1.0,
) -> str:
    """A grid of shares as coloured cells (darkest at `vmax` and above); None stays blank."""
    import numpy as np

    grid = np.array(
        [[np.nan if v is None else float(v) for v in row] for row in values], dtype=float
    )
    masked = np.ma.masked_invalid(grid)
    with _style(key):
        fig = _figure(6.8, 1.2 + 0.26 * max(len(rows), 4))
        ax = fig.add_subplot()
        mesh = ax.pcolormesh(
            masked, cmap="Blues", vmin=0.0, vmax=vmax, edgecolors="white", linewidth=0.4
        )
        ax.set_xticks(np.arange(len(columns)) + 0.5, list(columns))
        ax.set_yticks(np.arange(len(rows)) + 0.5, list(rows))
        ax.invert_yaxis()
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if grid.size <= MAX_ANNOTATED_CELLS:
            for (i, j), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(
                        j + 0.5,
                        i + 0.5,
                        f"{v:.0%}" if percent else f"{v:.2g}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v > 0.6 * vmax else INK,
                    )
        clipped = bool(np.nanmax(grid, initial=0.0) > vmax) if grid.size else False
        bar = fig.colorbar(
            mesh, ax=ax, fraction=0.04, pad=0.02, extend="max" if clipped else "neither"
        )
        if percent:
            from matplotlib.ticker import PercentFormatter

            bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        bar.outline.set_visible(False)
        return _svg(fig, key, label)


def histogram(
    key: str, label: str, edges: Sequence[float], counts: Sequence[int], xlabel: str
) -> str:
    """Customers per value bin (the bins the caller cut by quantiles)."""
    with _style(key):
        fig = _figure(6.4, 3.0)
        ax = fig.add_subplot()
        ax.stairs(list(counts), list(edges), fill=True, color=SERIES[0])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("customers")
        ax.grid(axis="y", color=GRID)
        ax.set_axisbelow(True)
        ax.set_xlim(edges[0], edges[-1])
        return _svg(fig, key, label)


def paired_bars(
    key: str, label: str, categories: Sequence[str], series: dict[str, Sequence[float]], ylabel: str
) -> str:
    """Vertical grouped bars of two or more series per category (predicted vs actual)."""
    import numpy as np

    with _style(key):
        fig = _figure(6.4, 3.0)
        ax = fig.add_subplot()
        x = np.arange(len(categories))
        width = 0.8 / max(1, len(series))
        for i, (name, values) in enumerate(series.items()):
            ax.bar(
                x + (i - (len(series) - 1) / 2) * width,
                [v if v is not None and math.isfinite(v) else 0.0 for v in values],
                width=width,
                color=SERIES[i % len(SERIES)],
                label=name,
            )
        ax.set_xticks(x, list(categories))
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", color=GRID)
        ax.set_axisbelow(True)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(series))
        return _svg(fig, key, label)
