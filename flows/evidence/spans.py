"""Steps and gates as spans of time read from an incident's ledger, and their timeline chart.

Each span keeps its moments: every record about the item (attempts, retries with the error of the
attempt before, failures and what `on_failure` did, rollbacks, skips, gate answers), so the report
tells the whole story rather than the last status. The chart is inline SVG: one row per step or
gate in document order, a bar from its start to its end, a mark at each failed attempt, and the
acknowledging responder on gates. This module computes where everything goes;
`templates/timeline.svg.j2` lays it out, escaping every value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.evidence.progress import ItemStatus, Progress, progress_from_records
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records
from flows.runbook.model import Gate, Runbook

OUTCOME_LABEL = {status: str(status) for status in ItemStatus} | {ItemStatus.PENDING: "not reached"}


_ON_FAILURE_KEYWORDS = ("stop", "continue")
_STEP_ENDS = {
    Event.STEP_SUCCEEDED: ItemStatus.SUCCEEDED,
    Event.STEP_FAILED: ItemStatus.FAILED,
    Event.STEP_SKIPPED: ItemStatus.SKIPPED,
}


def read_entries(folder: Path) -> tuple[list[Record], Progress]:
    """The records of the folder's ledger the report can place, and the progress they show.

    A tampered ledger still gets a report (verification says what is wrong): a line that is
    not a record is left out of it.
    """
    records = read_records(folder, skip_unreadable=True)
    return records, progress_from_records(records)


@dataclass(frozen=True)
class Moment:
    """One record about a step or gate, as the timeline tells it."""

    seq: int
    at: datetime
    item: str
    """The step or gate; empty for a record about the whole run."""
    event: str
    attempt: int | None
    """Which attempt of the step the record is about; None when it is about no attempt."""
    what: str
    detail: str
    """The error, reason or note as recorded: ledger text, untrusted."""
    failed: bool
    """A failed attempt, a failed step or an artifact not collected: marked on the chart."""


@dataclass(frozen=True)
class Rollback:
    """A step's failure that ran its `on_failure` rollback step, and how the rollback ended."""

    failed: str
    by: str
    seq: int
    """The `step.failed` record that named the rollback."""
    outcome: ItemStatus | None
    """The rollback step's first outcome after that record; None when none is recorded."""


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
    moments: tuple[Moment, ...] = ()
    rollbacks: tuple[Rollback, ...] = ()
    """Failures of this step that ran its rollback step, in ledger order."""
    rollback_of: tuple[str, ...] = ()
    """The steps whose failure ran this one as their rollback."""
    attempts: int = 0
    """Attempts of the step in its latest run of it (0 for a gate, or a step never started)."""

    @property
    def is_gate(self) -> bool:
        return self.uses == "gate"

    @property
    def outcome(self) -> str:
        """The final status in words, never a bare `succeeded` for a step that failed first."""
        label = OUTCOME_LABEL[self.status]
        if self.status is ItemStatus.SUCCEEDED and self.attempts > 1:
            label = f"succeeded on attempt {self.attempts}"
        if self.rollbacks:
            last = self.rollbacks[-1]
            if self.status is ItemStatus.FAILED:
                label = f"failed, rolled back by {last.by}{_rollback_end(last)}"
            else:
                label = f"{label} (after a failure rolled back by {last.by})"
        if self.rollback_of:
            label = f"{label} (rollback of {', '.join(self.rollback_of)})"
        return label


def _rollback_end(rollback: Rollback) -> str:
    if rollback.outcome is ItemStatus.SUCCEEDED:
        return ""
    if rollback.outcome is None:
        return " (the rollback has no outcome recorded)"
    ended = "was skipped" if rollback.outcome is ItemStatus.SKIPPED else str(rollback.outcome)
    return f" (the rollback {ended})"


def read_spans(runbook: Runbook, entries: Sequence[Record], progress: Progress) -> list[Span]:
    """Every step and gate in document order, with what the ledger says about it."""
    rollbacks = find_rollbacks(entries)
    moments = story(entries, rollbacks)
    spans = []
    for item in runbook.items:
        mine = [e for e in entries if e.step == item.id]
        starts = [e for e in mine if e.event in ("step.started", "gate.waiting")]
        ends = [e for e in mine if e.event in _END_EVENTS or _settles(e)]
        first = starts[0] if starts else (ends[0] if ends else None)
        status = progress.statuses.get(item.id, ItemStatus.PENDING)
        end = ends[-1] if ends and status in _END_STATUSES else None
        ack = progress.acks.get(item.id)
        told = tuple(m for m in moments if m.item == item.id)
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
                moments=told,
                rollbacks=tuple(r for r in rollbacks if r.failed == item.id),
                rollback_of=tuple(dict.fromkeys(r.failed for r in rollbacks if r.by == item.id)),
                attempts=_latest_attempts(told),
            )
        )
    return spans


_END_EVENTS = ("step.succeeded", "step.failed", "step.skipped", "gate.acknowledged")


_END_STATUSES = (
    ItemStatus.SUCCEEDED,
    ItemStatus.FAILED,
    ItemStatus.SKIPPED,
    ItemStatus.ACKNOWLEDGED,
    ItemStatus.CONTINUED,
)


def _settles(entry: Record) -> bool:
    """A gate's timeout that decided it (failed or continued it), not one that only escalated."""
    return entry.event is Event.GATE_TIMED_OUT and entry.data.get("outcome") in (
        "failed",
        "continued",
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


def _latest_attempts(moments: Sequence[Moment]) -> int:
    """The attempts of the latest run of a step: counted from its last `step.started`."""
    starts = [i for i, m in enumerate(moments) if m.event == Event.STEP_STARTED]
    latest = moments[starts[-1] :] if starts else moments
    return max((m.attempt or 0 for m in latest), default=0)


# -- the story, record by record --------------------------------------------------------------


def find_rollbacks(entries: Sequence[Record]) -> list[Rollback]:
    """Every `step.failed` whose `on_failure` named a rollback step, with the rollback's outcome."""
    found = []
    for index, entry in enumerate(entries):
        target = entry.data.get("on_failure")
        if entry.event is not Event.STEP_FAILED or entry.step is None:
            continue
        if not isinstance(target, str) or target in _ON_FAILURE_KEYWORDS:
            continue
        ended = next(
            (e for e in entries[index + 1 :] if e.step == target and e.event in _STEP_ENDS), None
        )
        outcome = _STEP_ENDS[ended.event] if ended is not None else None
        found.append(Rollback(failed=entry.step, by=target, seq=entry.seq, outcome=outcome))
    return found


def story(entries: Sequence[Record], rollbacks: Sequence[Rollback]) -> list[Moment]:
    """One moment per record, in ledger order: the whole story, the run's own records too."""
    # A rollback step's first record after the failure that named it starts the rollback.
    pending = list(rollbacks)
    by_seq = {r.seq: r for r in rollbacks}
    moments = []
    for entry in entries:
        rollback = None
        if entry.step is not None and entry.event in (Event.STEP_STARTED, *_STEP_ENDS):
            rollback = next((r for r in pending if r.by == entry.step and r.seq < entry.seq), None)
            if rollback is not None:
                pending.remove(rollback)
        moments.append(_moment(entry, by_seq.get(entry.seq), rollback))
    return moments


def _moment(entry: Record, named: Rollback | None, rollback_of: Rollback | None) -> Moment:
    """What one record says about its step or gate, in words, with its attempt and detail."""
    data, event = entry.data, entry.event
    attempt: int | None = None
    failed = False
    as_rollback = f" as the rollback of {rollback_of.failed}" if rollback_of else ""
    if event is Event.STEP_STARTED:
        attempt, what, detail = 1, f"started{as_rollback}", ""
    elif event is Event.STEP_RETRIED:
        attempt = _count(data.get("attempt"))
        before = f"attempt {attempt - 1}" if attempt else "an attempt"
        what, failed = f"{before} failed; attempt {attempt} started", True
        detail = str(data.get("error", "the error of the failed attempt is not recorded"))
    elif event is Event.STEP_SUCCEEDED:
        attempt = _count(data.get("attempts"))
        what = f"succeeded{as_rollback}"
        detail = "simulated (drill)" if data.get("simulated") else ""
    elif event is Event.STEP_FAILED:
        attempt, failed = _count(data.get("attempts")) or None, True
        what = f"failed{as_rollback}{_after_failure(data.get('on_failure'), named)}"
        detail = str(data.get("error", ""))
    elif event is Event.STEP_SKIPPED:
        what, detail = f"skipped{as_rollback}", str(data.get("reason", ""))
    elif event is Event.GATE_WAITING:
        what, detail = "waiting for a responder", ""
    elif event is Event.GATE_ACKNOWLEDGED:
        what = f"acknowledged by {entry.actor}{_quorum(data)}{_authority(data)}"
        detail = str(data.get("note", ""))
    elif event is Event.GATE_APPROVED:
        what = f"approved by {entry.actor}{_quorum(data)}{_authority(data)}; waiting for more"
        detail = str(data.get("note", ""))
    elif event is Event.GATE_REFUSED:
        what, failed = f"refused to {entry.actor} (via {data.get('via', '?')})", True
        detail = str(data.get("reason", ""))
    elif event is Event.GATE_REJECTED:
        what, failed = f"rejected by {entry.actor}{_authority(data)}", True
        detail = str(data.get("reason", ""))
    elif event is Event.GATE_REMINDED:
        what, detail = "approvers reminded", f"timeout at {data.get('deadline', '?')}"
    elif event is Event.GATE_TIMED_OUT:
        outcome = str(data.get("outcome", "?"))
        escalated = f" to {data.get('escalate_to')}" if outcome == "escalated" else ""
        what = f"timed out after {data.get('timeout_s', '?')} s: {outcome}{escalated}"
        failed, detail = outcome == "failed", ""
    elif event in _STEERING:
        what, detail = _steering(entry)
        failed = event is Event.STEER_REFUSED
    elif event is Event.ARTIFACT_FAILED:
        what, failed = f"artifact not collected ({data.get('collector', '?')})", True
        detail = str(data.get("error", ""))
    elif event is Event.ARTIFACT_COLLECTED:
        what = f"artifact collected ({data.get('collector', '?')})"
        detail = str(data.get("sha256", ""))
    elif event is Event.RUN_FINISHED:
        what = f"run finished: {data.get('status', '?')}"
        waiting = data.get("waiting") or []
        detail = f"waiting at {', '.join(map(str, waiting))}" if waiting else ""
    elif event is Event.EVIDENCE_SEALED:
        what, detail = f"evidence sealed over {data.get('count', '?')} records", ""
    elif event in _CLOCKS:
        what, detail = _clock(entry)
        failed = event is Event.CLOCK_EXPIRED or data.get("late") is True
    else:  # run.started, run.resumed, note, alert.resolved, drill records
        what, detail = _PLAIN_NAMES.get(event, str(event)), str(data.get("text", ""))
    return Moment(entry.seq, entry.at, entry.step or "", event, attempt, what, detail, failed)


_STEERING = (
    Event.STEP_RETRY_REQUESTED,
    Event.RUN_RESUME_REQUESTED,
    Event.RUN_ABORTED,
    Event.INCIDENT_ASSIGNED,
    Event.INCIDENT_SEVERITY,
    Event.STEER_REFUSED,
)


def _steering(entry: Record) -> tuple[str, str]:
    """What a responder's steering record says, in words, and its reason or detail."""
    data, by = entry.data, entry.actor
    match entry.event:
        case Event.STEP_RETRY_REQUESTED:
            return f"retry requested by {by}", ""
        case Event.RUN_RESUME_REQUESTED:
            return f"resume requested by {by}", ""
        case Event.RUN_ABORTED:
            return f"incident aborted by {by}", str(data.get("reason", ""))
        case Event.INCIDENT_ASSIGNED:
            return f"{data.get('role', '?')} assigned to {data.get('assignee', '?')} by {by}", ""
        case Event.INCIDENT_SEVERITY:
            changed = f"{data.get('previous', '?')} to {data.get('severity', '?')}"
            return f"severity changed from {changed} by {by}", ""
    return f"{data.get('act', 'steering')} refused to {by}", str(data.get("reason", ""))


_CLOCKS = (Event.CLOCK_STARTED, Event.CLOCK_REMINDED, Event.CLOCK_EXPIRED, Event.CLOCK_STOPPED)


def _clock(entry: Record) -> tuple[str, str]:
    """What a regulatory clock's record says, in words, and its deadlines or reference."""
    data = entry.data
    clock = data.get("clock", "?")
    if entry.event is Event.CLOCK_STARTED:
        started = data.get("milestones")
        due = "; ".join(
            f"{m.get('id', '?')} due {m.get('deadline', '?')}"
            for m in (started if isinstance(started, list) else [])
            if isinstance(m, dict)
        )
        reasoning = str(data.get("reasoning", ""))
        detail = f"{due}; reasoning: {reasoning}" if reasoning else due
        return f"clock {clock} started by {data.get('decided_by', '?')}", detail
    milestone = data.get("milestone", "?")
    if entry.event is Event.CLOCK_REMINDED:
        return f"clock {clock}: {data.get('owner', '?')} reminded of {milestone}", (
            f"due {data.get('deadline', '?')}"
        )
    if entry.event is Event.CLOCK_EXPIRED:
        return f"clock {clock}: {milestone} expired unfiled", f"was due {data.get('deadline', '?')}"
    late = "late" if data.get("late") is True else "on time"
    return (
        f"clock {clock}: {milestone} filed {late} by {data.get('filed_by', '?')}",
        f"reference: {data.get('reference', '')}",
    )


def _quorum(data: Mapping[str, Any]) -> str:
    needed = data.get("needed")
    if not isinstance(needed, int) or needed <= 1:
        return ""
    return f" ({data.get('approvals', '?')} of {needed} approvals)"


def _authority(data: Mapping[str, Any]) -> str:
    authority = data.get("authority")
    return f" as {authority}" if authority else ""


_PLAIN_NAMES = {
    Event.RUN_STARTED: "run started",
    Event.RUN_RESUMED: "run resumed",
    Event.ALERT_RESOLVED: "alert resolved",
    Event.ALERT_UPDATED: "alert updated",
}


def _after_failure(on_failure: object, named: Rollback | None) -> str:
    """What the failure led to, by the `on_failure` the record names."""
    if named is not None:
        return f"; rolled back by {named.by}{_rollback_end(named)}"
    if on_failure == "continue":
        return "; the run went on (on_failure: continue)"
    if on_failure == "stop":
        return "; the run stopped (on_failure: stop)"
    return ""


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_time(ts: str) -> datetime:
    """A ledger timestamp as a datetime."""
    return datetime.fromisoformat(ts)


def clock(moment: datetime, *, seconds: bool = True) -> str:
    """A time of day as the report shows it (UTC)."""
    return moment.strftime("%H:%M:%S" if seconds else "%H:%M")


def duration(span: Span) -> str:
    """How long a span took, in the largest units that read well."""
    if span.start is None:
        return ""
    return seconds_text(((span.end or span.start) - span.start).total_seconds())


def seconds_text(seconds: float) -> str:
    """A number of seconds in the largest units that read well: 4.20 s, 12 min 3 s, 2 h 5 min."""
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"
