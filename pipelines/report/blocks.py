"""What a report page is made of: sections of cards, tables, figures and notes, as plain data.

The sections (listed in page order in `sections.py`) turn frames into these; the template
(`template.html.j2`) only lays them out. Every value is formatted here, once, so the page and
the tests read the same text (`12,345`, `52.8%`, `1,408,400.58`, `NO_CUSTOMERS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Tone = Literal["info", "ok", "warn", "bad"]
NO_CUSTOMERS = "No customer has a purchase up to this snapshot, so there is nothing to show yet."


@dataclass(frozen=True)
class Card:
    """One KPI: its value, what it counts, and how it moved since the previous snapshot."""

    label: str
    value: str
    detail: str
    change: str | None = None
    tone: Literal["good", "bad", "neutral"] = "neutral"


@dataclass(frozen=True)
class Cards:
    kind: ClassVar[str] = "cards"
    cards: list[Card]


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]  # right-aligned columns
    caption: str | None = None


@dataclass(frozen=True)
class Figure:
    kind: ClassVar[str] = "figure"
    svg: str  # an inline <svg> element (figures.py)
    caption: str


@dataclass(frozen=True)
class Note:
    kind: ClassVar[str] = "note"
    text: str
    tone: Tone = "info"


@dataclass(frozen=True)
class Link:
    kind: ClassVar[str] = "link"
    text: str
    href: str  # always relative: the page makes no request of its own


Block = Cards | Table | Figure | Note | Link


@dataclass(frozen=True)
class Section:
    """A titled part of the page; `read` is the one sentence on how to read it, and `empty`
    says why there is nothing to show (the blocks then only explain)."""

    id: str
    title: str
    read: str
    blocks: list[Block] = field(default_factory=list)
    empty: str | None = None


@dataclass(frozen=True)
class Page:
    title: str
    subtitle: str
    sections: list[Section]
    footer: str


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def count(value: Any) -> str:
    """A number of customers or rows (a model's expected count is rounded)."""
    return "–" if missing(value) else f"{round(float(value)):,}"


def money(value: Any, digits: int = 2) -> str:
    return "–" if missing(value) else f"{float(value):,.{digits}f}"


def percent(value: Any, digits: int = 1) -> str:
    return "–" if missing(value) else f"{float(value):.{digits}%}"


def number(value: Any, digits: int = 3) -> str:
    """A model parameter or an error measure: significant digits, no false precision."""
    if missing(value):
        return "–"
    v = float(value)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}g}"


def ratio(value: Any) -> str:
    return "–" if missing(value) else f"{float(value):.1f} : 1"


def change(kind: str, now: Any, before: Any) -> str | None:
    """How a KPI moved: points for rates, relative change for counts and money."""
    if missing(now) or missing(before):
        return None
    now, before = float(now), float(before)
    if kind == "rate":
        return f"{(now - before) * 100:+.1f} pp"
    if kind == "ratio":
        return f"{now - before:+.1f}"
    if before == 0:
        return None if now == 0 else "new"
    return f"{(now - before) / abs(before):+.1%}"


def times(value: Any, digits: int = 2) -> str:
    """A growth factor: recent order value over the first order's (`1.12×`)."""
    return "–" if missing(value) else f"{float(value):.{digits}f}×"


def delta(now: Any, before: Any) -> str | None:
    """How a count moved, in customers (`+12`): the journey funnel's movement since D - 1."""
    if missing(now) or missing(before):
        return None
    return f"{round(float(now)) - round(float(before)):+,}"
