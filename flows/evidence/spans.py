"""Steps and gates as spans of time read from an incident's ledger, and their timeline chart.

The chart is inline SVG for the evidence report: one row per step or gate in document order, a
bar from its start to its end, and the acknowledging responder on gates. Values come from the
ledger (untrusted alert text included), so every one is escaped on its way into the markup.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flows.evidence.progress import progress_from_records
from flows.runbook.model import Gate, Runbook

OUTCOME_LABEL = {
    "succeeded": "succeeded",
    "failed": "failed",
    "skipped": "skipped",
    "acknowledged": "acknowledged",
    "waiting": "waiting",
    "running": "running",
    "pending": "not reached",
}


# Axis tick spacing candidates (seconds): the first giving at most eight ticks is used.
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


_SVG_WIDTH, _LABEL_WIDTH, _RIGHT_PAD, _ROW, _AXIS = 1000, 220, 24, 26, 34


@dataclass(frozen=True)
class Span:
    """One step or gate as the ledger saw it: when it began and ended, how, and who closed it."""

    id: str
    title: str
    uses: str
    status: str
    start: datetime | None
    end: datetime | None
    who: str
    detail: str
    records: tuple[int, ...]

    @property
    def is_gate(self) -> bool:
        return self.uses == "gate"


def read_spans(runbook: Runbook, records: Sequence[Mapping[str, Any]]) -> list[Span]:
    """Every step and gate in document order, with what the ledger says about it."""
    progress = progress_from_records(records)
    spans = []
    for item in runbook.items:
        mine = [r for r in records if r.get("step") == item.id]
        starts = [r for r in mine if r["event"] in ("step.started", "gate.waiting")]
        ends = [r for r in mine if r["event"] in _END_EVENTS]
        first = starts[0] if starts else (ends[0] if ends else None)
        status = progress.statuses.get(item.id, "pending")
        end = ends[-1] if ends and status in _END_STATUSES else None
        ack = progress.acks.get(item.id)
        spans.append(
            Span(
                id=item.id,
                title=item.title,
                uses="gate" if isinstance(item, Gate) else item.spec.uses,
                status=status,
                start=parse_time(first["ts"]) if first else None,
                end=parse_time(end["ts"]) if end else None,
                who=ack.by if ack else ("engine" if mine else ""),
                detail=ack.note if ack else _detail(ends[-1] if ends else None),
                records=tuple(int(r["seq"]) for r in mine),
            )
        )
    return spans


_END_EVENTS = ("step.succeeded", "step.failed", "step.skipped", "gate.acknowledged")


_END_STATUSES = ("succeeded", "failed", "skipped", "acknowledged")


def _detail(record: Mapping[str, Any] | None) -> str:
    if record is None:
        return ""
    data = record.get("data") or {}
    if record["event"] == "step.failed":
        return str(data.get("error", ""))
    if record["event"] == "step.skipped":
        return str(data.get("reason", ""))
    parts = [f"{data['attempts']} attempts"] if data.get("attempts", 1) != 1 else []
    return ", ".join(parts + (["simulated"] if data.get("simulated") else []))


def parse_time(ts: str) -> datetime:
    """A ledger timestamp as a datetime."""
    return datetime.fromisoformat(ts)


def timeline(spans: Sequence[Span], records: Sequence[Mapping[str, Any]]) -> str:
    """The report's timeline section: the chart of every span, with its legend."""
    if not records:
        return "<section><h2>Timeline</h2><p>The ledger has no records yet.</p></section>"
    t0, t1 = parse_time(records[0]["ts"]), parse_time(records[-1]["ts"])
    total = max((t1 - t0).total_seconds(), 1.0)
    plot = _SVG_WIDTH - _LABEL_WIDTH - _RIGHT_PAD
    height = _AXIS + _ROW * len(spans) + 8

    def x(moment: datetime) -> float:
        return _LABEL_WIDTH + plot * (moment - t0).total_seconds() / total

    step = next((s for s in _TICK_STEPS if total / s <= 8), 86400)
    parts = [
        f'<svg id="timeline" viewBox="0 0 {_SVG_WIDTH} {height}" role="img" '
        'xmlns="http://www.w3.org/2000/svg" font-family="inherit" font-size="12">',
        "<title>Timeline of steps and gates</title>",
    ]
    for tick in range(0, int(total) + 1, step):
        tx = _LABEL_WIDTH + plot * tick / total
        label = clock(t0 + timedelta(seconds=tick), seconds=step < 60)
        parts.append(
            f'<line class="grid" x1="{tx:.1f}" y1="{_AXIS - 8}" x2="{tx:.1f}" y2="{height}"/>'
            f'<text class="tick" x="{tx:.1f}" y="{_AXIS - 14}" text-anchor="middle">{label}</text>'
        )
    for record in records:
        if record["event"] == "run.resumed":
            rx = x(parse_time(record["ts"]))
            parts.append(
                f'<line class="resumed" x1="{rx:.1f}" y1="{_AXIS - 8}" x2="{rx:.1f}" y2="{height}">'
                f"<title>run resumed at {clock(parse_time(record['ts']))}</title></line>"
            )
    for row, span in enumerate(spans):
        parts.append(_row(span, _AXIS + row * _ROW, x, t1))
    parts.append("</svg>")
    legend = "".join(
        f'<span><i class="swatch {name}"></i>{label}</span>'
        for name, label in (
            ("succeeded", "succeeded"),
            ("acknowledged", "gate acknowledged"),
            ("failed", "failed"),
            ("skipped", "skipped"),
            ("waiting", "waiting or running"),
            ("resumed", "run resumed"),
        )
    )
    return (
        '<section id="timeline-section"><h2>Timeline</h2>'
        f'<figure>{"".join(parts)}<figcaption class="legend">{legend}</figcaption></figure>'
        "</section>"
    )


def _row(span: Span, top: int, x: Callable[[datetime], float], last: datetime) -> str:
    """One row of the chart: the item's label and, once it began, its bar and caption."""
    middle = top + _ROW / 2
    name = f"{span.id}{' (gate)' if span.is_gate else ''}"
    label = (
        f'<text class="label{" muted" if span.start is None else ""}" x="{_LABEL_WIDTH - 10}" '
        f'y="{middle + 4:.1f}" text-anchor="end">{escape(_truncate(name, 30))}</text>'
    )
    if span.start is None:
        return label + (
            f'<text class="caption muted" x="{_LABEL_WIDTH + 4}" y="{middle + 4:.1f}">'
            "not reached</text>"
        )
    finished = span.end is not None
    x1 = x(span.start)
    width = max(x(span.end or last) - x1, 3.0)
    kind = "bar" if finished else "open"
    tooltip = f"{span.id}: {OUTCOME_LABEL[span.status]}, {duration(span)}"
    if span.is_gate and finished:
        caption = f"✓ {span.who} · {clock(span.end)} · waited {duration(span)}"
    elif finished:
        caption = f"{OUTCOME_LABEL[span.status]} · {duration(span)}"
    else:
        caption = OUTCOME_LABEL[span.status]
    # Captions go right of the bar, or left of it when the bar reaches the right edge.
    right = x1 + width + 6
    anchor, cx = ("start", right) if right + 6 * len(caption) < _SVG_WIDTH else ("end", x1 - 6)
    return label + (
        f'<rect class="{kind} {escape(span.status)}" x="{x1:.1f}" y="{top + 6}" '
        f'width="{width:.1f}" height="{_ROW - 12}" rx="2"><title>{escape(tooltip)}</title></rect>'
        f'<text class="caption" x="{cx:.1f}" y="{middle + 4:.1f}" text-anchor="{anchor}">'
        f"{escape(caption)}</text>"
    )


def escape(value: Any) -> str:
    """Text made safe for HTML and SVG, quotes included."""
    return html.escape(str(value), quote=True)


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
