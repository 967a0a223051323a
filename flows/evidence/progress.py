"""An incident's progress, read back from its evidence ledger: the ledger is the source of truth.

Resume, `ack`, status reports and the JSON outcome all derive step states from the records, so
nothing can claim a step is done unless its record is on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flows.evidence.records import Event, Record


class ItemStatus(StrEnum):
    """Where a step or gate stands, as its latest record says."""

    PENDING = "pending"
    """No record of it yet."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    WAITING = "waiting"
    """A gate nobody has acknowledged yet."""
    ACKNOWLEDGED = "acknowledged"
    CONTINUED = "continued"
    """A gate passed by its timeout (`on_timeout: continue`): nobody approved it."""


class RunStatus(StrEnum):
    """How a run ended (the `status` of `run.finished`, and of `runbook run --json`)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WAITING = "waiting"
    """Stopped at a gate nobody has acknowledged yet; `runbook resume` continues."""


DONE = frozenset(
    {ItemStatus.SUCCEEDED, ItemStatus.SKIPPED, ItemStatus.ACKNOWLEDGED, ItemStatus.CONTINUED}
)

TIMED_OUT_STATUS = {"fail": ItemStatus.FAILED, "continue": ItemStatus.CONTINUED}
"""What a `gate.timed_out` record makes of its gate, by `on_timeout`; escalate and page leave
it waiting."""

_STATUS_BY_EVENT = {
    Event.STEP_STARTED: ItemStatus.RUNNING,
    Event.STEP_RETRIED: ItemStatus.RUNNING,
    Event.STEP_SUCCEEDED: ItemStatus.SUCCEEDED,
    Event.STEP_FAILED: ItemStatus.FAILED,
    Event.STEP_SKIPPED: ItemStatus.SKIPPED,
    Event.STEP_RETRY_REQUESTED: ItemStatus.PENDING,
    Event.GATE_WAITING: ItemStatus.WAITING,
    Event.GATE_ACKNOWLEDGED: ItemStatus.ACKNOWLEDGED,
}


@dataclass(frozen=True)
class Acknowledgement:
    """Who acknowledged a gate, when, and what they noted.

    `by` is the record's actor; `person` the roster person (None when the roster did not know
    them, and in records written before identities were proven, whose `by` is the name typed
    then); `via` the channel (the older `via` in such records).
    """

    gate: str
    by: str
    at: str
    note: str = ""
    person: str | None = None
    via: str | None = None


@dataclass(frozen=True)
class Abort:
    """Who stopped the incident for good (`run.aborted`), when, and why."""

    by: str
    at: str
    reason: str


@dataclass(frozen=True)
class Rejection:
    """Who turned a gate down (`gate.rejected`), when, and why."""

    by: str
    at: str
    reason: str


@dataclass(frozen=True)
class Progress:
    """Latest status of every step and gate, the outputs of finished steps, and gate acks.

    `approvals` holds, per gate, who has approved it so far (`approver_of`), in order, each
    once: the quorum a gate with `min_approvals` counts.
    """

    statuses: Mapping[str, ItemStatus] = field(default_factory=dict)
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    acks: Mapping[str, Acknowledgement] = field(default_factory=dict)
    runs: int = 0
    approvals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    aborted: Abort | None = None
    """The first `run.aborted`: the incident never runs again."""
    assignments: Mapping[str, str] = field(default_factory=dict)
    """Role -> the person last assigned it on this incident (`incident.assigned`)."""
    severity: str | None = None
    """The severity last set on this incident (`incident.severity`); None: the runbook's."""
    rejections: Mapping[str, Rejection] = field(default_factory=dict)
    """Gate -> the rejection that failed it (`gate.rejected`)."""

    def is_done(self, item_id: str) -> bool:
        """True when the step or gate needs nothing more on resume."""
        return self.statuses.get(item_id) in DONE


def approver_of(record: Record) -> str:
    """Who a `gate.approved` or `gate.acknowledged` record counts as: the roster person, else
    the proven identity, else (records older than both) the actor."""
    for key in ("person", "identity"):
        value = record.data.get(key)
        if isinstance(value, str) and value:
            return value
    return record.actor


def progress_from_records(records: Iterable[Record]) -> Progress:
    """Fold ledger records into the current progress of the incident.

    `gate.approved`, `gate.refused` and `gate.reminded` change no status: a gate waits until it
    is acknowledged, rejected (`gate.rejected` fails it), or its timeout fails or continues it
    (`gate.timed_out`).
    """
    statuses: dict[str, ItemStatus] = {}
    outputs: dict[str, Mapping[str, Any]] = {}
    acks: dict[str, Acknowledgement] = {}
    approvals: dict[str, tuple[str, ...]] = {}
    runs = 0
    aborted: Abort | None = None
    assignments: dict[str, str] = {}
    severity: str | None = None
    rejections: dict[str, Rejection] = {}
    for record in records:
        event, item = record.event, record.step
        if event in (Event.RUN_STARTED, Event.RUN_RESUMED):
            runs += 1
        elif event is Event.RUN_ABORTED and aborted is None:
            aborted = Abort(record.actor, record.ts, str(record.data.get("reason", "")))
        elif event is Event.INCIDENT_ASSIGNED:
            role, assignee = record.data.get("role"), record.data.get("assignee")
            if isinstance(role, str) and isinstance(assignee, str):
                assignments[role] = assignee
        elif event is Event.INCIDENT_SEVERITY:
            changed = record.data.get("severity")
            severity = changed if isinstance(changed, str) else severity
        if item is not None and event in (Event.GATE_APPROVED, Event.GATE_ACKNOWLEDGED):
            who = approver_of(record)
            if who not in approvals.get(item, ()):
                approvals[item] = (*approvals.get(item, ()), who)
        if item is not None and event is Event.GATE_TIMED_OUT:
            settled = TIMED_OUT_STATUS.get(str(record.data.get("on_timeout")))
            if settled is not None and statuses.get(item) == ItemStatus.WAITING:
                statuses[item] = settled
            continue
        if item is not None and event is Event.GATE_REJECTED:
            # Only a waiting gate can be turned down: the first answer recorded wins.
            if statuses.get(item) == ItemStatus.WAITING:
                statuses[item] = ItemStatus.FAILED
                reason = str(record.data.get("reason", ""))
                rejections[item] = Rejection(record.actor, record.ts, reason)
            continue
        if item is None or event not in _STATUS_BY_EVENT:
            continue
        if event is Event.GATE_WAITING and statuses.get(item) == ItemStatus.ACKNOWLEDGED:
            continue
        statuses[item] = _STATUS_BY_EVENT[event]
        if event is Event.STEP_SUCCEEDED:
            outputs[item] = record.outputs
        elif event is Event.GATE_ACKNOWLEDGED:
            acks[item] = _acknowledgement(record, item)
    return Progress(
        statuses=statuses,
        outputs=outputs,
        acks=acks,
        runs=runs,
        approvals=approvals,
        aborted=aborted,
        assignments=assignments,
        severity=severity,
        rejections=rejections,
    )


def _acknowledgement(record: Record, gate: str) -> Acknowledgement:
    data = record.data
    person = data.get("person")
    via = data.get("channel", data.get("via"))
    return Acknowledgement(
        gate=gate,
        by=record.actor,
        at=record.ts,
        note=str(data.get("note", "")),
        person=person if isinstance(person, str) else None,
        via=via if isinstance(via, str) else None,
    )
