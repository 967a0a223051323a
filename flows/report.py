"""The human report of an incident's evidence: one self-contained HTML page, fit to print.

Everything comes from the incident folder (incident.json, the runbook as run, the ledger) plus an
optional verification result. Ledger values include untrusted alert text, so every value is
escaped on its way into the page; the page loads nothing from elsewhere and runs no script.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flows.incident import DOCUMENT_FILE, INCIDENT_FILE, Incident
from flows.ledger import read_records
from flows.model import Gate, Runbook
from flows.parse import parse_runbook
from flows.progress import progress_from_records
from flows.report_style import CSS

_TICKET_ACTION = "jira.create_issue"
_CHANNEL_ACTION = "slack.create_channel"
_COMMUNICATION = ("slack.", "jira.comment")
_CONTAINMENT_WORDS = ("contain", "mitigat")
_CRITERIA = {
    "CC7.3": (
        "Security events are evaluated",
        "the run's start, the alert that opened it, and the steps that opened a ticket "
        f"(<code>{_TICKET_ACTION}</code>)",
    ),
    "CC7.4": (
        "Incidents are contained and communicated",
        "every chat step (<code>slack.*</code>), every ticket comment "
        "(<code>jira.comment</code>) and every gate a responder acknowledged",
    ),
    "CC7.5": (
        "The service is recovered",
        "the steps and gates after the containment gate (the first gate named for containment "
        "or mitigation, else the first gate) and the run's final outcome",
    ),
}
_OUTCOME_LABEL = {
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
class _Span:
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


def render_report(folder: Path, verification: Mapping[str, Any] | None = None) -> str:
    """The incident in `folder` as one self-contained HTML document.

    `verification` maps a check's name ("ledger", "seal", "bundle") to its result mapping
    (`ok`, `count`, `problem`, ...); the report shows what is given and says when nothing is.
    """
    folder = Path(folder)
    incident = Incident.model_validate(json.loads((folder / INCIDENT_FILE).read_text()))
    runbook = parse_runbook(folder / DOCUMENT_FILE)
    records = [r for r in read_records(folder) if _readable(r)]
    spans = _spans(runbook, records)
    sections = [
        _summary(incident, runbook, records),
        _soc2(runbook, records, spans, incident),
        _timeline(spans, records),
        _table(spans, incident.started_at),
        _links(records, runbook),
        _artifacts(records),
        _notes(incident, records),
        _verification(verification),
    ]
    title = f"Incident {incident.id}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><main>{''.join(sections)}"
        f"<footer>Generated from the evidence ledger of {_e(incident.id)}. Times are UTC."
        "</footer></main></body></html>\n"
    )


# -- reading the records ----------------------------------------------------------------------


def _spans(runbook: Runbook, records: Sequence[Mapping[str, Any]]) -> list[_Span]:
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
            _Span(
                id=item.id,
                title=item.title,
                uses="gate" if isinstance(item, Gate) else item.spec.uses,
                status=status,
                start=_time(first["ts"]) if first else None,
                end=_time(end["ts"]) if end else None,
                who=ack.by if ack else ("engine" if mine else ""),
                detail=ack.note if ack else _detail(ends[-1] if ends else None),
                records=tuple(int(r["seq"]) for r in mine),
            )
        )
    return spans


_END_EVENTS = ("step.succeeded", "step.failed", "step.skipped", "gate.acknowledged")
_END_STATUSES = ("succeeded", "failed", "skipped", "acknowledged")


def _readable(record: Any) -> bool:
    """True for a record the report can place: an event name and a parseable time.

    A tampered ledger still gets a report (verification says what is wrong); records too
    damaged to place on the timeline are left out of it.
    """
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        return False
    try:
        return _time(record["ts"]).tzinfo is not None
    except (KeyError, TypeError, ValueError):
        return False


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


def _time(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def _outputs(records: Iterable[Mapping[str, Any]], runbook: Runbook, action: str) -> list[dict]:
    """Outputs of every succeeded step that uses `action`, in ledger order."""
    ids = {s.id for s in runbook.steps if s.spec.uses == action}
    return [
        {"step": r["step"], "ts": r["ts"], **(r.get("data") or {}).get("outputs", {})}
        for r in records
        if r["event"] == "step.succeeded" and r.get("step") in ids
    ]


def _final(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    finished = [r for r in records if r["event"] == "run.finished"]
    return finished[-1] if finished else None


# -- sections ---------------------------------------------------------------------------------


def _summary(incident: Incident, runbook: Runbook, records: Sequence[Mapping[str, Any]]) -> str:
    final = _final(records)
    status = str((final or {}).get("data", {}).get("status", "not started" if not records else ""))
    waiting = (final or {}).get("data", {}).get("waiting") or []
    outcome = f"waiting at {', '.join(map(str, waiting))}" if status == "waiting" else status
    finished = _stamp(final["ts"]) if final and status in ("succeeded", "failed") else "not yet"
    info = incident.runbook
    same = runbook.sha256 == info.sha256
    document = (
        "runbook.md in the folder matches this hash"
        if same
        else f"runbook.md in the folder hashes to {runbook.sha256}: it differs from the one run"
    )
    drill = '<span class="badge drill">DRILL</span>' if incident.drill else ""
    rows = [
        ("Incident", f"<code>{_e(incident.id)}</code>"),
        ("Runbook", f"{_e(info.id)} version {_e(info.version)}"),
        (
            "Runbook sha256",
            f'<code class="hash">{_e(info.sha256)}</code><br><small>{_e(document)}</small>',
        ),
        ("Severity", _e(info.severity)),
        ("Kind", _e(runbook.meta.kind)),
        ("Owner", _e(runbook.meta.owner)),
        ("Started", _e(_stamp(incident.started_at))),
        ("Finished", _e(finished)),
        ("Outcome", f'<span class="badge {_e(status)}">{_e(outcome)}</span>'),
        ("Runs", _e(progress_from_records(records).runs)),
    ]
    inputs = ", ".join(f"{k}={v!r}" for k, v in incident.inputs.items()) or "none"
    rows.append(("Inputs", f"<code>{_e(inputs)}</code>"))
    grid = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return (
        f'<header><p class="eyebrow">Incident evidence report {drill}</p>'
        f"<h1>{_e(info.title)}</h1></header>"
        f'<section id="summary"><h2>Summary</h2><dl class="grid">{grid}</dl></section>'
    )


def _soc2(
    runbook: Runbook,
    records: Sequence[Mapping[str, Any]],
    spans: Sequence[_Span],
    incident: Incident,
) -> str:
    criteria = runbook.meta.soc2
    if not criteria:
        body = "<p>This runbook names no SOC 2 criteria.</p>"
        return f'<section id="soc2"><h2>SOC 2 criteria</h2>{body}</section>'
    rows = []
    for criterion in criteria:
        name, rule = _CRITERIA.get(criterion, ("", "not mapped automatically: see the full table"))
        evidence = _evidence(criterion, records, spans, incident)
        items = "".join(f"<li>{line}</li>" for line in evidence) or "<li>none recorded yet</li>"
        rows.append(
            f"<tr><th>{_e(criterion)}<br><small>{_e(name)}</small></th>"
            f"<td><small>{rule}</small><ul>{items}</ul></td></tr>"
        )
    return (
        '<section id="soc2"><h2>SOC 2 criteria covered</h2>'
        "<p>The runbook is declared as evidence for these criteria; each lists the records that "
        "show it, by a fixed rule stated under the criterion.</p>"
        f'<table class="soc2"><tbody>{"".join(rows)}</tbody></table></section>'
    )


def _evidence(
    criterion: str,
    records: Sequence[Mapping[str, Any]],
    spans: Sequence[_Span],
    incident: Incident,
) -> list[str]:
    """Lines of already escaped HTML naming the records that evidence one criterion."""
    if criterion == "CC7.3":
        lines = [_event_line(r) for r in records if r["event"] in ("run.started", "alert.resolved")]
        if incident.alert is not None:
            lines.insert(0, f"alert that opened the incident, from {_e(_alert_source(incident))}")
        return lines + [_span_line(s) for s in spans if s.uses == _TICKET_ACTION and s.records]
    if criterion == "CC7.4":
        return [
            _span_line(s)
            for s in spans
            if s.records and (s.is_gate or s.uses.startswith(_COMMUNICATION))
        ]
    if criterion == "CC7.5":
        gates = [s for s in spans if s.is_gate]
        contained = next(
            (g for g in gates if any(w in f"{g.id} {g.title}".lower() for w in _CONTAINMENT_WORDS)),
            gates[0] if gates else None,
        )
        after = spans[spans.index(contained) + 1 :] if contained else []
        final = _final(records)
        return [_span_line(s) for s in after if s.records] + ([_event_line(final)] if final else [])
    return []


def _span_line(span: _Span) -> str:
    when = f" at {_clock(span.end)}" if span.end else ""
    who = f" by {_e(span.who)}" if span.is_gate and span.who else ""
    kind = "gate" if span.is_gate else f"step ({_e(span.uses)})"
    return f"<code>{_e(span.id)}</code> {kind}: {_e(_OUTCOME_LABEL[span.status])}{who}{when}"


def _event_line(record: Mapping[str, Any]) -> str:
    status = (record.get("data") or {}).get("status")
    suffix = f": {status}" if status else ""
    return f"<code>{_e(record['event'])}</code>{_e(suffix)} at {_clock(_time(record['ts']))}"


def _alert_source(incident: Incident) -> str:
    alert = incident.alert or {}
    return str(alert.get("source", "an alert source"))


def _timeline(spans: Sequence[_Span], records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return "<section><h2>Timeline</h2><p>The ledger has no records yet.</p></section>"
    t0, t1 = _time(records[0]["ts"]), _time(records[-1]["ts"])
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
        label = _clock(t0 + timedelta(seconds=tick), seconds=step < 60)
        parts.append(
            f'<line class="grid" x1="{tx:.1f}" y1="{_AXIS - 8}" x2="{tx:.1f}" y2="{height}"/>'
            f'<text class="tick" x="{tx:.1f}" y="{_AXIS - 14}" text-anchor="middle">{label}</text>'
        )
    for record in records:
        if record["event"] == "run.resumed":
            rx = x(_time(record["ts"]))
            parts.append(
                f'<line class="resumed" x1="{rx:.1f}" y1="{_AXIS - 8}" x2="{rx:.1f}" y2="{height}">'
                f"<title>run resumed at {_clock(_time(record['ts']))}</title></line>"
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


def _row(span: _Span, top: int, x: Callable[[datetime], float], last: datetime) -> str:
    """One row of the chart: the item's label and, once it began, its bar and caption."""
    middle = top + _ROW / 2
    name = f"{span.id}{' (gate)' if span.is_gate else ''}"
    label = (
        f'<text class="label{" muted" if span.start is None else ""}" x="{_LABEL_WIDTH - 10}" '
        f'y="{middle + 4:.1f}" text-anchor="end">{_e(_truncate(name, 30))}</text>'
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
    tooltip = f"{span.id}: {_OUTCOME_LABEL[span.status]}, {_duration(span)}"
    if span.is_gate and finished:
        caption = f"✓ {span.who} · {_clock(span.end)} · waited {_duration(span)}"
    elif finished:
        caption = f"{_OUTCOME_LABEL[span.status]} · {_duration(span)}"
    else:
        caption = _OUTCOME_LABEL[span.status]
    # Captions go right of the bar, or left of it when the bar reaches the right edge.
    right = x1 + width + 6
    anchor, cx = ("start", right) if right + 6 * len(caption) < _SVG_WIDTH else ("end", x1 - 6)
    return label + (
        f'<rect class="{kind} {_e(span.status)}" x="{x1:.1f}" y="{top + 6}" '
        f'width="{width:.1f}" height="{_ROW - 12}" rx="2"><title>{_e(tooltip)}</title></rect>'
        f'<text class="caption" x="{cx:.1f}" y="{middle + 4:.1f}" text-anchor="{anchor}">'
        f"{_e(caption)}</text>"
    )


def _table(spans: Sequence[_Span], started_at: str) -> str:
    rows = []
    for span in spans:
        kind = "gate" if span.is_gate else f"<code>{_e(span.uses)}</code>"
        rows.append(
            f'<tr class="{_e(span.status)}"><td><code>{_e(span.id)}</code><br>'
            f"<small>{_e(span.title)}</small></td><td>{kind}</td>"
            f'<td><span class="badge {_e(span.status)}">{_e(_OUTCOME_LABEL[span.status])}'
            f"</span></td><td>{_e(span.who)}</td>"
            f"<td>{_clock(span.start) if span.start else ''}</td>"
            f"<td>{_clock(span.end) if span.end else ''}</td>"
            f'<td class="num">{_e(_duration(span)) if span.end else ""}</td>'
            f"<td><small>{_e(span.detail)}</small></td></tr>"
        )
    return (
        '<section id="steps"><h2>Steps and gates</h2><table><thead><tr><th>Item</th>'
        "<th>Action</th><th>Outcome</th><th>Who</th><th>Started</th><th>Ended</th>"
        '<th class="num">Took</th><th>Note</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _links(records: Sequence[Mapping[str, Any]], runbook: Runbook) -> str:
    tickets = [
        f"<li>{_link(t.get('url'), t.get('key', '?'))} <small>opened by step "
        f"<code>{_e(t['step'])}</code> at {_clock(_time(t['ts']))}</small></li>"
        for t in _outputs(records, runbook, _TICKET_ACTION)
    ]
    channels = [
        f"<li><code>{_e(c.get('channel', '?'))}</code> <small>created by step "
        f"<code>{_e(c['step'])}</code> at {_clock(_time(c['ts']))}</small></li>"
        for c in _outputs(records, runbook, _CHANNEL_ACTION)
    ]
    posted = sorted(
        {str(o["channel"]) for o in _outputs(records, runbook, "slack.post") if "channel" in o}
    )
    channels += [f"<li><code>{_e(c)}</code> <small>messages posted</small></li>" for c in posted]
    return (
        '<section id="links"><h2>Tickets and channels</h2><div class="columns">'
        f"<div><h3>Tickets</h3><ul>{''.join(tickets) or '<li>none</li>'}</ul></div>"
        f"<div><h3>Channels</h3><ul>{''.join(channels) or '<li>none</li>'}</ul></div>"
        "</div></section>"
    )


def _link(url: Any, text: Any) -> str:
    # Only web links become clickable: a `javascript:` URL from a compromised backend must not.
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return f'<a href="{_e(url)}">{_e(text)}</a> <small>{_e(url)}</small>'
    suffix = f" <small>{_e(url)}</small>" if url else ""
    return f"<code>{_e(text)}</code>{suffix}"


def _artifacts(records: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for record in records:
        if record["event"] != "artifact.collected":
            continue
        data = record.get("data") or {}
        rows.append(
            f"<tr><td>{_e(data.get('collector', ''))}<br><small>step "
            f"<code>{_e(record.get('step') or '')}</code> at {_clock(_time(record['ts']))}"
            f"</small></td><td><code>{_e(data.get('path', ''))}</code></td>"
            f'<td class="num">{_e(_size(data.get("size")))}</td>'
            f'<td><code class="hash">{_e(data.get("sha256", ""))}</code></td></tr>'
        )
    body = (
        '<table><thead><tr><th>Collector</th><th>Path</th><th class="num">Size</th>'
        f"<th>sha256</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No artifacts were collected.</p>"
    )
    return f'<section id="artifacts"><h2>Artifacts</h2>{body}</section>'


def _notes(incident: Incident, records: Sequence[Mapping[str, Any]]) -> str:
    entries = []
    if incident.alert is not None:
        entries.append(("opened by alert", _alert_source(incident), incident.alert))
    for record in records:
        data = record.get("data") or {}
        when = _clock(_time(record["ts"]))
        if record["event"] == "note":
            entries.append((f"note at {when}", str(record.get("actor", "")), data.get("text", "")))
        elif record["event"] == "alert.resolved":
            entries.append((f"alert resolved at {when}", str(record["actor"]), data.get("alert")))
        elif record["event"] == "evidence.sealed":
            entries.append((f"evidence sealed at {when}", str(record["actor"]), data))
    if not entries:
        return ""
    items = "".join(
        f"<li><strong>{_e(what)}</strong> <small>{_e(who)}</small>"
        f"<pre>{_e(_plain(body))}</pre></li>"
        for what, who, body in entries
    )
    return f'<section id="notes"><h2>Alerts and notes</h2><ul class="notes">{items}</ul></section>'


def _verification(verification: Mapping[str, Any] | None) -> str:
    if not verification:
        body = (
            "<p>Not checked when this report was made: run <code>runbook evidence verify</code> "
            "on the incident folder.</p>"
        )
        return f'<section id="verification"><h2>Verification</h2>{body}</section>'
    rows = []
    for name, result in verification.items():
        result = result if isinstance(result, Mapping) else {"ok": bool(result)}
        ok = result.get("ok")
        badge = (
            '<span class="badge succeeded">verified</span>'
            if ok
            else '<span class="badge failed">FAILED</span>'
        )
        facts = "".join(
            f"<li>{_e(key)}: {_e(value)}</li>"
            for key, value in result.items()
            if key != "ok" and value is not None
        )
        rows.append(f"<tr><th>{_e(name)}</th><td>{badge}</td><td><ul>{facts}</ul></td></tr>")
    return (
        '<section id="verification"><h2>Verification</h2>'
        f'<table class="verification"><tbody>{"".join(rows)}</tbody></table></section>'
    )


# -- formatting -------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _stamp(ts: str) -> str:
    return _time(ts).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock(moment: datetime, *, seconds: bool = True) -> str:
    return moment.strftime("%H:%M:%S" if seconds else "%H:%M")


def _duration(span: _Span) -> str:
    if span.start is None:
        return ""
    seconds = ((span.end or span.start) - span.start).total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _size(size: Any) -> str:
    if not isinstance(size, int):
        return ""
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
