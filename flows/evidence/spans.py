"""Steps and gates as spans of time read from an incident's ledger, and their timeline chart.

The chart is inline SVG for the evidence report: one row per step or gate in document order, a
bar from its start to its end, and the acknowledging responder on gates. This module computes
where everything goes; `templates/timeline.svg.j2` lays it out, escaping every value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flows.evidence.progress import ItemStatus, Progress, progress_from_records
from flows.evidence.records import Record
from flows.evidence.verify import read_records
from flows.runbook.model import Gate, Runbook

OUTCOME_LABEL = {status: str(status) for status in ItemStatus} | {ItemStatus.PENDING: "not reached"}


# Axis tick spacing candidates (seconds): the first giving at most eight ticks is used.
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


_SVG_WIDTH, _LABEL_WIDTH, _RIGHT_PAD, _ROW, _AXIS = 1000, 220, 24, 26, 34


def read_entries(folder: Path) -> tuple[list[Record], Progress]:
    """The records of the folder's ledger the report can place, and the progress they show.

    A tampered ledger still gets a report (verification says what is wrong): a line that is
    not a record is left out of it.
    """
    records = read_records(folder, skip_unreadable=True)
    return records, progress_from_records(records)


@dataclass(frozen=True)
class Span:
    """One step or gate as the ledger saw it: when it began and ended, how, and who closed it."""

    id: str
    title: str
    uses: str
    status: ItemStatus
    start: datetime | None
    end: datetime | None
    who: str
    detail: str
    records: tuple[int, ...]

    @property
    def is_gate(self) -> bool:
        return self.uses == "gate"


def read_spans(runbook: Runbook, entries: Sequence[Record], progress: Progress) -> list[Span]:
    """Every step and gate in document order, with what the ledger says about it."""
    spans = []
    for item in runbook.items:
        mine = [e for e in entries if e.step == item.id]
        starts = [e for e in mine if e.event in ("step.started", "gate.waiting")]
        ends = [e for e in mine if e.event in _END_EVENTS]
        first = starts[0] if starts else (ends[0] if ends else None)
        status = progress.statuses.get(item.id, ItemStatus.PENDING)
        end = ends[-1] if ends and status in _END_STATUSES else None
        ack = progress.acks.get(item.id)
        spans.append(
            Span(
                id=item.id,
                title=item.title,
                uses="gate" if isinstance(item, Gate) else item.spec.uses,
                status=status,
                start=first.at if first else None,
                end=end.at if end else None,
                who=ack.by if ack else ("engine" if mine else ""),
                detail=ack.note if ack else _detail(ends[-1] if ends else None),
                records=tuple(e.seq for e in mine),
            )
        )
    return spans


_END_EVENTS = ("step.succeeded", "step.failed", "step.skipped", "gate.acknowledged")


_END_STATUSES = (
    ItemStatus.SUCCEEDED,
    ItemStatus.FAILED,
    ItemStatus.SKIPPED,
    ItemStatus.ACKNOWLEDGED,
)


def _detail(entry: Record | None) -> str:
    if entry is None:
        return ""
    data = entry.data
    if entry.event == "step.failed":
        return str(data.get("error", ""))
    if entry.event == "step.skipped":
        return str(data.get("reason", ""))
    parts = [f"{data['attempts']} attempts"] if data.get("attempts", 1) != 1 else []
    return ", ".join(parts + (["simulated"] if data.get("simulated") else []))


def parse_time(ts: str) -> datetime:
    """A ledger timestamp as a datetime."""
    return datetime.fromisoformat(ts)


# -- the chart --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """A vertical line across the chart at `x`: an axis tick or a resumed run, with its label."""

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
    """One row of the chart: the item's label and, once it began, its bar."""

    label: str
    text_y: float
    bar: Bar | None


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
    x1 = x(span.start)
    width = max(x(span.end or last) - x1, 3.0)
    if span.is_gate and span.end is not None:
        caption = f"✓ {span.who} · {clock(span.end)} · waited {duration(span)}"
    elif span.end is not None:
        caption = f"{OUTCOME_LABEL[span.status]} · {duration(span)}"
    else:
        caption = OUTCOME_LABEL[span.status]
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
            tooltip=f"{span.id}: {OUTCOME_LABEL[span.status]}, {duration(span)}",
            caption=caption,
            caption_x=cx,
            caption_anchor=anchor,
        ),
    )


def clock(moment: datetime, *, seconds: bool = True) -> str:
    """A time of day as the report shows it (UTC)."""
    return moment.strftime("%H:%M:%S" if seconds else "%H:%M")


def duration(span: Span) -> str:
    """How long a span took, in the largest units that read well."""
    if span.start is None:
        return ""
    seconds = ((span.end or span.start) - span.start).total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
