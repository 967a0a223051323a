"""The human report of an incident's evidence: one self-contained HTML page, fit to print.

Everything comes from the incident folder (incident.json, the runbook as run, the ledger) plus,
at export, each verification check's result and who exported the bundle. The timeline tells the
whole story: every attempt, retry, failure and rollback with its time, attempt number and error.
SOC 2 criteria are mapped by the one table in `criteria.py`. The functions here read those into
plain values; the Jinja
templates in `templates/` lay them out with autoescape on, because ledger, alert and runbook
text is untrusted. The page loads nothing from elsewhere and runs no script.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from flows.evidence.chart import timeline_chart
from flows.evidence.clock_table import AID, clock_rows
from flows.evidence.criteria import CRITERIA, TICKET_ACTION, Line, Story, criterion
from flows.evidence.incident import DOCUMENT_FILE, INCIDENT_FILE, Incident
from flows.evidence.progress import Progress
from flows.evidence.records import Record
from flows.evidence.spans import (
    Moment,
    Span,
    clock,
    duration,
    find_rollbacks,
    parse_time,
    read_entries,
    read_spans,
    story,
)
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook

_CHANNEL_ACTION = "slack.create_channel"


@dataclass(frozen=True)
class Exported:
    """Who exported the evidence bundle the report is in, and when (UTC, as in the manifest)."""

    by: str
    at: str


def render_report(
    folder: Path,
    verification: Mapping[str, Any] | None = None,
    exported: Exported | None = None,
) -> str:
    """The incident in `folder` as one self-contained HTML document.

    `verification` maps each check's name to its result mapping (`ok`: True, False, or None
    for a check not made; `detail` and any other facts); the report shows each check given and
    says when there are none. `exported` says who exported the bundle and when.
    """
    folder = Path(folder)
    incident = Incident.model_validate(json.loads((folder / INCIDENT_FILE).read_text()))
    runbook = parse_runbook(folder / DOCUMENT_FILE)
    entries, progress = read_entries(folder)
    spans = read_spans(runbook, entries, progress)
    named = set(runbook.meta.soc2)
    page = _templates().get_template("report.html.j2")
    return page.render(
        incident_id=incident.id,
        summary=_summary(incident, runbook, entries, progress, exported),
        clocks=clock_rows(runbook, entries),
        clocks_aid=AID,
        soc2=[_mapped(c, Story(incident, entries, spans)) for c in runbook.meta.soc2],
        unnamed=[c.id for c in CRITERIA if c.id not in named],
        chart=timeline_chart(spans, entries),
        events=[_event_row(m) for m in story(entries, find_rollbacks(entries))],
        steps=[_step_row(span) for span in spans],
        tickets=_tickets(entries, runbook),
        channels=_channels(entries, runbook),
        posted=_posted(entries, runbook),
        artifacts=_artifacts(entries),
        notes=_notes(incident, entries),
        checks=_checks(verification or {}),
    )


@functools.cache
def _templates() -> Environment:
    # Autoescape on for every template: ledger, alert and runbook text is untrusted. The page
    # keeps the files' final newlines: report.css and report.html.j2 end in the page's own.
    return Environment(
        loader=PackageLoader("flows.evidence", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def _final(entries: Sequence[Record]) -> Record | None:
    finished = [e for e in entries if e.event == "run.finished"]
    return finished[-1] if finished else None


# -- summary ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The page's heading and the facts listed under it."""

    title: str
    drill: bool
    runbook: str
    version: int
    sha256: str
    document_check: str
    severity: str
    kind: str
    owner: str
    started: str
    finished: str
    status: str
    outcome: str
    runs: int
    inputs: str
    exported: str


def _summary(
    incident: Incident,
    runbook: Runbook,
    entries: Sequence[Record],
    progress: Progress,
    exported: Exported | None,
) -> Summary:
    final = _final(entries)
    data = final.data if final else {}
    status = str(data.get("status", "not started" if not entries else ""))
    waiting = data.get("waiting") or []
    info = incident.runbook
    return Summary(
        title=info.title,
        drill=incident.drill,
        runbook=info.id,
        version=info.version,
        sha256=info.sha256,
        document_check=(
            "runbook.md in the folder matches this hash"
            if runbook.sha256 == info.sha256
            else f"runbook.md in the folder hashes to {runbook.sha256}: it differs from the one run"
        ),
        severity=info.severity,
        kind=runbook.meta.kind,
        owner=runbook.meta.owner,
        started=_stamp(parse_time(incident.started_at)),
        finished=_stamp(final.at) if final and status in ("succeeded", "failed") else "not yet",
        status=status,
        outcome=f"waiting at {', '.join(map(str, waiting))}" if status == "waiting" else status,
        runs=progress.runs,
        inputs=", ".join(f"{k}={v!r}" for k, v in incident.inputs.items()) or "none",
        exported=(
            f"by {exported.by} at {exported.at}"
            if exported
            else "not exported: this report was rendered from the incident folder"
        ),
    )


# -- SOC 2 criteria ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapped:
    """A SOC 2 criterion the runbook names: its rule in words (None without a rule), and the
    lines of evidence the rule found."""

    id: str
    name: str
    rule: list[tuple[bool, str]] | None
    """The rule's text in pieces, each `(is_code, text)`; None when the engine has no rule."""
    evidence: list[Line]


def _mapped(criterion_id: str, story: Story) -> Mapped:
    rule = criterion(criterion_id)
    if rule is None:
        return Mapped(criterion_id, "", None, [])
    # Backticks in the rule mark code, as in docs/evidence.md: odd pieces are code.
    pieces = [(index % 2 == 1, text) for index, text in enumerate(rule.looks_at.split("`"))]
    return Mapped(rule.id, rule.name, [p for p in pieces if p[1]], rule.evidence(story))


# -- the timeline, record by record -----------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    """One record on the report's timeline: when, which item, which attempt, what and why."""

    seq: int
    at: str
    item: str
    attempt: str
    what: str
    detail: str
    failed: bool


def _event_row(moment: Moment) -> EventRow:
    return EventRow(
        seq=moment.seq,
        at=clock(moment.at),
        item=moment.item,
        attempt=str(moment.attempt) if moment.attempt else "",
        what=moment.what,
        detail=moment.detail,
        failed=moment.failed,
    )


def _source(incident: Incident) -> str:
    alert = incident.alert or {}
    return str(alert.get("source", "an alert source"))


# -- steps and gates --------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRow:
    """One row of the steps-and-gates table."""

    id: str
    title: str
    is_gate: bool
    uses: str
    status: str
    outcome: str
    who: str
    started: str
    ended: str
    took: str
    note: str


def _step_row(span: Span) -> StepRow:
    return StepRow(
        id=span.id,
        title=span.title,
        is_gate=span.is_gate,
        uses=span.uses,
        status=span.status,
        outcome=span.outcome,
        who=span.who,
        started=clock(span.start) if span.start else "",
        ended=clock(span.end) if span.end else "",
        took=duration(span) if span.end else "",
        note=span.detail,
    )


# -- tickets, channels and artifacts ----------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """A ticket a step opened; `web` says whether its URL may become a link."""

    key: str
    url: str
    web: bool
    step: str
    at: str


@dataclass(frozen=True)
class Channel:
    """A chat channel a step created."""

    name: str
    step: str
    at: str


@dataclass(frozen=True)
class Artifact:
    """A collected artifact as the ledger recorded it."""

    collector: str
    step: str
    at: str
    path: str
    size: str
    sha256: str


def _outputs(
    entries: Sequence[Record], runbook: Runbook, action: str
) -> list[tuple[Record, Mapping[str, Any]]]:
    """Every succeeded step that uses `action`, with its outputs, in ledger order; a for_each
    step's items (`ticket[0]`) each, its own record (which holds no outputs) not."""
    ids = {s.id for s in runbook.steps if s.spec.uses == action}
    return [
        (e, e.data.get("outputs") or {})
        for e in entries
        if e.event == "step.succeeded"
        and (e.step or "").split("[", 1)[0] in ids
        and "outputs" in e.data
    ]


def _tickets(entries: Sequence[Record], runbook: Runbook) -> list[Ticket]:
    tickets = []
    for entry, outputs in _outputs(entries, runbook, TICKET_ACTION):
        url = outputs.get("url")
        # Only web links become clickable: a `javascript:` URL from a compromised backend must not.
        web = isinstance(url, str) and url.startswith(("https://", "http://"))
        key = str(outputs.get("key", "?"))
        tickets.append(Ticket(key, str(url) if url else "", web, str(entry.step), clock(entry.at)))
    return tickets


def _channels(entries: Sequence[Record], runbook: Runbook) -> list[Channel]:
    return [
        Channel(str(outputs.get("channel", "?")), str(entry.step), clock(entry.at))
        for entry, outputs in _outputs(entries, runbook, _CHANNEL_ACTION)
    ]


def _posted(entries: Sequence[Record], runbook: Runbook) -> list[str]:
    """The channels `slack.post` steps wrote to, sorted."""
    posts = _outputs(entries, runbook, "slack.post")
    return sorted({str(outputs["channel"]) for _, outputs in posts if "channel" in outputs})


def _artifacts(entries: Sequence[Record]) -> list[Artifact]:
    return [
        Artifact(
            collector=str(e.data.get("collector", "")),
            step=e.step or "",
            at=clock(e.at),
            path=str(e.data.get("path", "")),
            size=_size(e.data.get("size")),
            sha256=str(e.data.get("sha256", "")),
        )
        for e in entries
        if e.event == "artifact.collected"
    ]


# -- alerts, notes and verification -----------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """An alert, note or seal shown in full: what it is, who made it, and its text or JSON."""

    what: str
    who: str
    body: str


@dataclass(frozen=True)
class Check:
    """One verification check: passed, failed or not made, what it found, and its other facts."""

    name: str
    ok: bool | None
    """None: the check was not made (an earlier one failed, or it does not apply here)."""
    detail: str
    facts: list[tuple[str, str]]


def _notes(incident: Incident, entries: Sequence[Record]) -> list[Note]:
    notes = []
    if incident.alert is not None:
        notes.append(Note("opened by alert", _source(incident), _plain(incident.alert)))
    for entry in entries:
        when = clock(entry.at)
        if entry.event == "note":
            notes.append(Note(f"note at {when}", entry.actor, _plain(entry.data.get("text", ""))))
        elif entry.event == "alert.resolved":
            body = _plain(entry.data.get("alert"))
            notes.append(Note(f"alert resolved at {when}", entry.actor, body))
        elif entry.event == "evidence.sealed":
            notes.append(Note(f"evidence sealed at {when}", entry.actor, _plain(dict(entry.data))))
    return notes


def _checks(verification: Mapping[str, Any]) -> list[Check]:
    checks = []
    for name, result in verification.items():
        result = result if isinstance(result, Mapping) else {"ok": bool(result)}
        ok = result.get("ok")
        facts = [
            (str(k), str(v))
            for k, v in result.items()
            if k not in ("ok", "detail") and v is not None
        ]
        detail = str(result.get("detail") or "")
        checks.append(Check(str(name), None if ok is None else bool(ok), detail, facts))
    return checks


# -- formatting -------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


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
