"""The timeline chart of the evidence report, as positions and texts for inline SVG.

One row per step or gate in document order, a bar from its start to its end, a mark at each
failed attempt (with its error as the mark's title), and the acknowledging responder on gates.
This module computes where everything goes; `templates/timeline.svg.j2` lays it out, escaping
every value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flows.evidence.records import Record
from flows.evidence.spans import Span, clock, duration

# Axis tick spacing candidates (seconds): the first giving at most eight ticks is used.
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


_SVG_WIDTH, _LABEL_WIDTH, _RIGHT_PAD, _ROW, _AXIS = 1000, 220, 24, 26, 34


@dataclass(frozen=True)
class Mark:
    """A vertical line at `x`: an axis tick, a resumed run or a failed attempt, with its label."""

    x: float
    label: str


@dataclass(frozen=True)
class Bar:
    """The bar of an item that began: closed (`bar`) or still open (`open`), and its caption."""

    kind: str
    status: str
    x: float
    y: int
    width: float
    tooltip: str
    caption: str
    caption_x: float
    caption_anchor: str


@dataclass(frozen=True)
class Row:
    """One row of the chart: the item's label, once it began its bar, and its failed attempts."""

    label: str
    text_y: float
    bar: Bar | None
    failures: list[Mark] = field(default_factory=list)
    """Where each failed attempt (or failure) of the item is marked, from `mark_top` down."""
    mark_top: float = 0
    mark_bottom: float = 0


@dataclass(frozen=True)
class Chart:
    """Everything the timeline template draws, in SVG user units."""

    width: int
    height: int
    grid_top: int
    tick_y: int
    label_x: int
    unreached_x: int
    bar_height: int
    ticks: list[Mark]
    resumes: list[Mark]
    rows: list[Row]


def timeline_chart(spans: Sequence[Span], entries: Sequence[Record]) -> Chart | None:
    """The chart of every span over the time the ledger covers; None when it has no records."""
    if not entries:
        return None
    t0, t1 = entries[0].at, entries[-1].at
    total = max((t1 - t0).total_seconds(), 1.0)
    plot = _SVG_WIDTH - _LABEL_WIDTH - _RIGHT_PAD

    def x(moment: datetime) -> float:
        return _LABEL_WIDTH + plot * (moment - t0).total_seconds() / total

    step = next((s for s in _TICK_STEPS if total / s <= 8), 86400)
    ticks = [
        Mark(
            _LABEL_WIDTH + plot * tick / total,
            clock(t0 + timedelta(seconds=tick), seconds=step < 60),
        )
        for tick in range(0, int(total) + 1, step)
    ]
    resumes = [Mark(x(e.at), clock(e.at)) for e in entries if e.event == "run.resumed"]
    return Chart(
        width=_SVG_WIDTH,
        height=_AXIS + _ROW * len(spans) + 8,
        grid_top=_AXIS - 8,
        tick_y=_AXIS - 14,
        label_x=_LABEL_WIDTH - 10,
        unreached_x=_LABEL_WIDTH + 4,
        bar_height=_ROW - 12,
        ticks=ticks,
        resumes=resumes,
        rows=[_row(span, _AXIS + row * _ROW, x, t1) for row, span in enumerate(spans)],
    )


def _row(span: Span, top: int, x: Callable[[datetime], float], last: datetime) -> Row:
    """One row of the chart: the item's label and, once it began, its bar and caption."""
    name = f"{span.id}{' (gate)' if span.is_gate else ''}"
    label, text_y = _truncate(name, 30), top + _ROW / 2 + 4
    if span.start is None:
        return Row(label=label, text_y=text_y, bar=None)
    failures = [
        Mark(x(m.at), f"{clock(m.at)} {m.what}: {_truncate(m.detail, 200)}".rstrip(": "))
        for m in span.moments
        if m.failed
    ]
    x1 = x(span.start)
    width = max(x(span.end or last) - x1, 3.0)
    if span.is_gate and span.end is not None:
        caption = f"✓ {span.who} · {clock(span.end)} · waited {duration(span)}"
    elif span.end is not None:
        caption = f"{span.outcome} · {duration(span)}"
    else:
        caption = span.outcome
    # Captions go right of the bar, or left of it when the bar reaches the right edge.
    right = x1 + width + 6
    anchor, cx = ("start", right) if right + 6 * len(caption) < _SVG_WIDTH else ("end", x1 - 6)
    return Row(
        label=label,
        text_y=text_y,
        bar=Bar(
            kind="bar" if span.end is not None else "open",
            status=span.status,
            x=x1,
            y=top + 6,
            width=width,
            tooltip=f"{span.id}: {span.outcome}, {duration(span)}",
            caption=caption,
            caption_x=cx,
            caption_anchor=anchor,
        ),
        failures=failures,
        mark_top=top + 3,
        mark_bottom=top + _ROW - 3,
    )


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
