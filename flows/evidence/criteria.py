"""The SOC 2 criteria an incident's evidence shows, and which records show each: one table.

`CRITERIA` is the table. Each row names a criterion, states in words which records evidence it
(`looks_at`, the text docs/evidence.md's table holds too: a test compares the two), and applies
that rule to an incident's ledger (`evidence`). The report shows, for every criterion the runbook
names in `soc2:`, the rule and the records it found; a criterion without a row is shown as named
by the runbook with no rule, never left out.

Gates are filed by what their id or title says: triage and assessment gates under CC7.3, recovery,
verification and review gates under CC7.5, every other gate (containment, eradication,
mitigation) under CC7.4, so each gate is evidence for exactly one criterion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flows.evidence.incident import Incident
from flows.evidence.records import Event, Record
from flows.evidence.spans import Span, clock

TICKET_ACTION = "jira.create_issue"
_COMMUNICATION = ("slack.", "jira.comment")
_TRANSITION = "jira.transition"
_TRIAGE_WORDS = ("triage", "assess")
_RECOVERY_WORDS = ("recover", "verif", "review", "follow", "lesson")
_DETAIL_LIMIT = 300


@dataclass(frozen=True)
class Story:
    """What a rule reads: the incident's facts, its records, and its steps and gates as spans."""

    incident: Incident
    entries: Sequence[Record]
    spans: Sequence[Span]


@dataclass(frozen=True)
class Line:
    """One line of evidence: a record's or item's name as code (when there is one), then text."""

    code: str | None
    text: str


@dataclass(frozen=True)
class Criterion:
    """One SOC 2 criterion: its id and name, the rule in words, and the rule applied."""

    id: str
    name: str
    looks_at: str
    """Which records evidence it, as docs/evidence.md's table says; `code` in backticks."""
    evidence: Callable[[Story], list[Line]]


def gate_phase(span: Span) -> str:
    """Which part of the response a gate belongs to, by its id and title: triage, response or
    recovery."""
    words = f"{span.id} {span.title}".lower()
    if any(word in words for word in _TRIAGE_WORDS):
        return "triage"
    if any(word in words for word in _RECOVERY_WORDS):
        return "recovery"
    return "response"


def _cc7_3(story: Story) -> list[Line]:
    lines: list[tuple[int, Line]] = []
    if story.incident.alert is not None:
        source = str(story.incident.alert.get("source", "an alert source"))
        lines.append((0, Line(None, f"alert that opened the incident, from {source}")))
    first_ack = next((e.seq for e in story.entries if e.event is Event.GATE_ACKNOWLEDGED), None)
    for entry in story.entries:
        if entry.event is Event.RUN_STARTED or (
            entry.event is Event.NOTE and (first_ack is None or entry.seq < first_ack)
        ):
            lines.append((entry.seq, _record_line(entry)))
    for span in story.spans:
        triage = span.is_gate and gate_phase(span) == "triage"
        if span.records and (triage or span.uses == TICKET_ACTION):
            lines.append((span.records[0], _span_line(span)))
    return [line for _, line in sorted(lines, key=lambda pair: pair[0])]


def _cc7_4(story: Story) -> list[Line]:
    info = story.incident.runbook
    program = Line(
        None, f"the defined program: runbook {info.id} version {info.version}, sha256 {info.sha256}"
    )
    return [program] + [
        _span_line(span)
        for span in story.spans
        if span.records
        and (
            (span.is_gate and gate_phase(span) == "response")
            or span.uses.startswith(_COMMUNICATION)
        )
    ]


def _cc7_5(story: Story) -> list[Line]:
    lines: list[tuple[int, Line]] = [
        (span.records[0], _span_line(span))
        for span in story.spans
        if span.records
        and ((span.is_gate and gate_phase(span) == "recovery") or span.uses == _TRANSITION)
    ]
    shown = (Event.ALERT_RESOLVED, Event.DRILL_SCORED, Event.DRILL_LESSON)
    lines += [(e.seq, _record_line(e)) for e in story.entries if e.event in shown]
    finished = [e for e in story.entries if e.event is Event.RUN_FINISHED]
    if finished:
        lines.append((finished[-1].seq, _record_line(finished[-1])))
    return [line for _, line in sorted(lines, key=lambda pair: pair[0])]


def _cc9_1(story: Story) -> list[Line]:
    lines: list[tuple[int, Line]] = []
    for span in story.spans:
        for moment in span.moments:
            if moment.failed:
                detail = _truncate(moment.detail, _DETAIL_LIMIT)
                text = f" {moment.what} at {clock(moment.at)}{': ' + detail if detail else ''}"
                lines.append((moment.seq, Line(span.id, text)))
        if span.rollback_of and span.records:
            lines.append((span.records[0], _span_line(span)))
    return [line for _, line in sorted(lines, key=lambda pair: pair[0])]


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        id="CC7.3",
        name="security events are evaluated to decide whether they are incidents",
        looks_at=(
            "`run.started` (inputs and the triggering alert in `incident.json`), the ticket "
            "opened (`jira.create_issue` steps), the triage or assess gate (a gate whose id or "
            "title says triage or assess) acknowledged with its note (severity, scope), and "
            "`note` records written before the first gate was acknowledged (detection)."
        ),
        evidence=_cc7_3,
    ),
    Criterion(
        id="CC7.4",
        name=(
            "incidents are responded to with a defined program: contained, remediated, communicated"
        ),
        looks_at=(
            "The runbook id, version and sha256 (the defined program); chat steps (`slack.*`) "
            "and ticket comments (`jira.comment`), with times; every other gate (containment, "
            "eradication, mitigation: neither triage nor recovery) with who acknowledged it "
            "and when."
        ),
        evidence=_cc7_4,
    ),
    Criterion(
        id="CC7.5",
        name="recovery activities are carried out, and lessons learned",
        looks_at=(
            "Recovery gates (a gate whose id or title says recover, verify, review, follow-up "
            "or lesson) with who acknowledged them, ticket transitions (`jira.transition`: the "
            "ticket moved to `Resolved`), `alert.resolved`, the last `run.finished` with its "
            "status, and a drill's `drill.scored` and `drill.lesson` records (drills, `[drill]` "
            "in `evidence list`, show the response plan is exercised)."
        ),
        evidence=_cc7_5,
    ),
    Criterion(
        id="CC9.1",
        name="risk mitigation activities are selected and developed for business disruptions",
        looks_at=(
            "How the runbook's planned fallbacks met failures: every failed attempt and its "
            "retry (`step.retried`, with the error), every `step.failed` with what its "
            "`on_failure` did (`continue`, `stop` or a rollback), every rollback step that ran "
            "and its outcome, and `artifact.failed`. None means no step failed, so no fallback "
            "was needed."
        ),
        evidence=_cc9_1,
    ),
)
"""Every SOC 2 criterion the engine files records under, in the order the report shows them."""


def criterion(criterion_id: str) -> Criterion | None:
    """The row of `CRITERIA` for this id, or None when the engine has no rule for it."""
    return next((c for c in CRITERIA if c.id == criterion_id), None)


def _span_line(span: Span) -> Line:
    when = f" at {clock(span.end)}" if span.end else ""
    who = f" by {span.who}" if span.is_gate and span.who else ""
    kind = "gate" if span.is_gate else f"step ({span.uses})"
    return Line(span.id, f" {kind}: {span.outcome}{who}{when}")


def _record_line(entry: Record) -> Line:
    status = entry.data.get("status")
    suffix = f": {status}" if status else ""
    step = f" of {entry.step}" if entry.step else ""
    return Line(entry.event, f"{step}{suffix} at {clock(entry.at)}")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
