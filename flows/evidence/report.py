"""The human report of an incident's evidence: one self-contained HTML page, fit to print.

Everything comes from the incident folder (incident.json, the runbook as run, the ledger) plus an
optional verification result. Ledger values include untrusted alert text, so every value is
escaped on its way into the page; the page loads nothing from elsewhere and runs no script.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flows.evidence.incident import DOCUMENT_FILE, INCIDENT_FILE, Incident
from flows.evidence.ledger import read_records
from flows.evidence.progress import progress_from_records
from flows.evidence.report_style import CSS
from flows.evidence.spans import (
    OUTCOME_LABEL,
    Span,
    clock,
    duration,
    escape,
    parse_time,
    read_spans,
    timeline,
)
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook

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


def render_report(folder: Path, verification: Mapping[str, Any] | None = None) -> str:
    """The incident in `folder` as one self-contained HTML document.

    `verification` maps a check's name ("ledger", "seal", "bundle") to its result mapping
    (`ok`, `count`, `problem`, ...); the report shows what is given and says when nothing is.
    """
    folder = Path(folder)
    incident = Incident.model_validate(json.loads((folder / INCIDENT_FILE).read_text()))
    runbook = parse_runbook(folder / DOCUMENT_FILE)
    records = [r for r in read_records(folder) if _readable(r)]
    spans = read_spans(runbook, records)
    sections = [
        _summary(incident, runbook, records),
        _soc2(runbook, records, spans, incident),
        timeline(spans, records),
        _table(spans, incident.started_at),
        _links(records, runbook),
        _artifacts(records),
        _notes(incident, records),
        _verification(verification),
    ]
    title = f"Incident {incident.id}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><main>{''.join(sections)}"
        f"<footer>Generated from the evidence ledger of {escape(incident.id)}. Times are UTC."
        "</footer></main></body></html>\n"
    )


# -- reading the records ----------------------------------------------------------------------


def _readable(record: Any) -> bool:
    """True for a record the report can place: an event name and a parseable time.

    A tampered ledger still gets a report (verification says what is wrong); records too
    damaged to place on the timeline are left out of it.
    """
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        return False
    try:
        return parse_time(record["ts"]).tzinfo is not None
    except (KeyError, TypeError, ValueError):
        return False


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
        ("Incident", f"<code>{escape(incident.id)}</code>"),
        ("Runbook", f"{escape(info.id)} version {escape(info.version)}"),
        (
            "Runbook sha256",
            f'<code class="hash">{escape(info.sha256)}</code><br><small>{escape(document)}</small>',
        ),
        ("Severity", escape(info.severity)),
        ("Kind", escape(runbook.meta.kind)),
        ("Owner", escape(runbook.meta.owner)),
        ("Started", escape(_stamp(incident.started_at))),
        ("Finished", escape(finished)),
        ("Outcome", f'<span class="badge {escape(status)}">{escape(outcome)}</span>'),
        ("Runs", escape(progress_from_records(records).runs)),
    ]
    inputs = ", ".join(f"{k}={v!r}" for k, v in incident.inputs.items()) or "none"
    rows.append(("Inputs", f"<code>{escape(inputs)}</code>"))
    grid = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return (
        f'<header><p class="eyebrow">Incident evidence report {drill}</p>'
        f"<h1>{escape(info.title)}</h1></header>"
        f'<section id="summary"><h2>Summary</h2><dl class="grid">{grid}</dl></section>'
    )


def _soc2(
    runbook: Runbook,
    records: Sequence[Mapping[str, Any]],
    spans: Sequence[Span],
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
            f"<tr><th>{escape(criterion)}<br><small>{escape(name)}</small></th>"
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
    spans: Sequence[Span],
    incident: Incident,
) -> list[str]:
    """Lines of already escaped HTML naming the records that evidence one criterion."""
    if criterion == "CC7.3":
        lines = [_event_line(r) for r in records if r["event"] in ("run.started", "alert.resolved")]
        if incident.alert is not None:
            lines.insert(
                0, f"alert that opened the incident, from {escape(_alert_source(incident))}"
            )
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


def _span_line(span: Span) -> str:
    when = f" at {clock(span.end)}" if span.end else ""
    who = f" by {escape(span.who)}" if span.is_gate and span.who else ""
    kind = "gate" if span.is_gate else f"step ({escape(span.uses)})"
    return f"<code>{escape(span.id)}</code> {kind}: {escape(OUTCOME_LABEL[span.status])}{who}{when}"


def _event_line(record: Mapping[str, Any]) -> str:
    status = (record.get("data") or {}).get("status")
    suffix = f": {status}" if status else ""
    when = clock(parse_time(record["ts"]))
    return f"<code>{escape(record['event'])}</code>{escape(suffix)} at {when}"


def _alert_source(incident: Incident) -> str:
    alert = incident.alert or {}
    return str(alert.get("source", "an alert source"))


def _table(spans: Sequence[Span], started_at: str) -> str:
    rows = []
    for span in spans:
        kind = "gate" if span.is_gate else f"<code>{escape(span.uses)}</code>"
        rows.append(
            f'<tr class="{escape(span.status)}"><td><code>{escape(span.id)}</code><br>'
            f"<small>{escape(span.title)}</small></td><td>{kind}</td>"
            f'<td><span class="badge {escape(span.status)}">{escape(OUTCOME_LABEL[span.status])}'
            f"</span></td><td>{escape(span.who)}</td>"
            f"<td>{clock(span.start) if span.start else ''}</td>"
            f"<td>{clock(span.end) if span.end else ''}</td>"
            f'<td class="num">{escape(duration(span)) if span.end else ""}</td>'
            f"<td><small>{escape(span.detail)}</small></td></tr>"
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
        f"<code>{escape(t['step'])}</code> at {clock(parse_time(t['ts']))}</small></li>"
        for t in _outputs(records, runbook, _TICKET_ACTION)
    ]
    channels = [
        f"<li><code>{escape(c.get('channel', '?'))}</code> <small>created by step "
        f"<code>{escape(c['step'])}</code> at {clock(parse_time(c['ts']))}</small></li>"
        for c in _outputs(records, runbook, _CHANNEL_ACTION)
    ]
    posted = sorted(
        {str(o["channel"]) for o in _outputs(records, runbook, "slack.post") if "channel" in o}
    )
    channels += [
        f"<li><code>{escape(c)}</code> <small>messages posted</small></li>" for c in posted
    ]
    return (
        '<section id="links"><h2>Tickets and channels</h2><div class="columns">'
        f"<div><h3>Tickets</h3><ul>{''.join(tickets) or '<li>none</li>'}</ul></div>"
        f"<div><h3>Channels</h3><ul>{''.join(channels) or '<li>none</li>'}</ul></div>"
        "</div></section>"
    )


def _link(url: Any, text: Any) -> str:
    # Only web links become clickable: a `javascript:` URL from a compromised backend must not.
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return f'<a href="{escape(url)}">{escape(text)}</a> <small>{escape(url)}</small>'
    suffix = f" <small>{escape(url)}</small>" if url else ""
    return f"<code>{escape(text)}</code>{suffix}"


def _artifacts(records: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for record in records:
        if record["event"] != "artifact.collected":
            continue
        data = record.get("data") or {}
        rows.append(
            f"<tr><td>{escape(data.get('collector', ''))}<br><small>step "
            f"<code>{escape(record.get('step') or '')}</code> at {clock(parse_time(record['ts']))}"
            f"</small></td><td><code>{escape(data.get('path', ''))}</code></td>"
            f'<td class="num">{escape(_size(data.get("size")))}</td>'
            f'<td><code class="hash">{escape(data.get("sha256", ""))}</code></td></tr>'
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
        when = clock(parse_time(record["ts"]))
        if record["event"] == "note":
            entries.append((f"note at {when}", str(record.get("actor", "")), data.get("text", "")))
        elif record["event"] == "alert.resolved":
            entries.append((f"alert resolved at {when}", str(record["actor"]), data.get("alert")))
        elif record["event"] == "evidence.sealed":
            entries.append((f"evidence sealed at {when}", str(record["actor"]), data))
    if not entries:
        return ""
    items = "".join(
        f"<li><strong>{escape(what)}</strong> <small>{escape(who)}</small>"
        f"<pre>{escape(_plain(body))}</pre></li>"
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
            f"<li>{escape(key)}: {escape(value)}</li>"
            for key, value in result.items()
            if key != "ok" and value is not None
        )
        rows.append(f"<tr><th>{escape(name)}</th><td>{badge}</td><td><ul>{facts}</ul></td></tr>")
    return (
        '<section id="verification"><h2>Verification</h2>'
        f'<table class="verification"><tbody>{"".join(rows)}</tbody></table></section>'
    )


# -- formatting -------------------------------------------------------------------------------


def _stamp(ts: str) -> str:
    return parse_time(ts).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(size: Any) -> str:
    if not isinstance(size, int):
        return ""
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
