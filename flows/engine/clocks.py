"""Regulatory clocks kept by the ledger: started, stopped and expired from the gates' answers.

A runbook's `clocks:` name the gates that decide them (flows/runbook/clocks.py). From the
records alone `clock_marks` finds what is due now:

- `clock.started` when the `starts_at` gate was acknowledged: the clock starts at that
  record's time, with the deadlines of its milestones computed then (and, later, when a
  milestone counts from a filing or an event, when that happens);
- `clock.stopped` when a milestone's `stops_at` gate was acknowledged after it started: its
  note is the filing's reference, and `late` says whether that came after the deadline;
- `clock.expired` when a milestone's deadline passed unfiled (at the latest just before the
  `clock.stopped` of a late filing).

`mark_clocks` records them. It is called under the incident's gate lock, right after an answer
is recorded (`flows.engine.approvals`) and by the server's clock, so each record is written
once whoever sees it due first; a crash between an answer and its clock record leaves the
record due, and the next answer or scan writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flows.evidence.clocks import ClockState, MilestoneState, read_clocks
from flows.evidence.incident import DOCUMENT_FILE
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records
from flows.runbook.clocks import (
    AWARENESS,
    CATALOGUE_VERSION,
    DETERMINATION,
    Clock,
    Milestone,
    Variant,
)
from flows.runbook.declared_clocks import (
    deadline,
    declared_clock,
    duration_seconds,
    stop_gates,
    tracked_milestones,
    variant_named,
)
from flows.runbook.model import ClockSpec, Runbook
from flows.runbook.parse import parse_runbook
from flows.times import parse_utc, utc_stamp

_PASSES = 8
"""Each pass can start what the last one's filings unlock (NIS2's final report): a clock
has at most three milestones in a chain, so this is never reached."""


@dataclass(frozen=True)
class Mark:
    """One clock record due now: its event and data."""

    event: Event
    data: dict[str, Any]


def clock_marks(runbook: Runbook, records: Sequence[Record], now: datetime) -> list[Mark]:
    """The clock records due at `now`, given the incident's records (see the module).

    A clock's records come in order, one kind per pass: a start due is returned alone, so the
    filings and expiries that follow it are found once it is recorded.
    """
    if not runbook.meta.clocks:
        return []
    acks = [r for r in records if r.event is Event.GATE_ACKNOWLEDGED and r.step is not None]
    states = {state.id: state for state in read_clocks(records)}
    marks: list[Mark] = []
    for spec in runbook.meta.clocks:
        clock = declared_clock(spec)
        state = states.get(spec.id)
        if state is None:
            start = _first_ack(acks, spec.starts_at)
            if start is not None:
                marks.append(_start(clock, spec, start, acks, records))
            continue
        marks += _due(clock, spec, state, acks, now)
    return marks


def mark_clocks(ledger: Ledger, now: datetime, runbook: Runbook | None = None) -> list[Record]:
    """Record every clock record due at `now` in the incident's ledger; the records written.

    Hold the incident's gate lock (`flows.engine.approvals.gate_lock`). `runbook` is the
    incident's document when the caller has it parsed.
    """
    path = ledger.folder / DOCUMENT_FILE
    if runbook is None and not path.exists():
        return []  # not an incident folder the engine opened (it always keeps the document)
    document = runbook or parse_runbook(path)
    if not document.meta.clocks:
        return []
    written: list[Record] = []
    for _ in range(_PASSES):
        marks = clock_marks(document, read_records(ledger.folder), now)
        if not marks:
            break
        written += [ledger.record(mark.event, data=mark.data) for mark in marks]
    return written


def _first_ack(acks: Sequence[Record], gate: str, after: int = 0) -> Record | None:
    return next((r for r in acks if r.step == gate and r.seq > after), None)


def _opened(records: Sequence[Record]) -> datetime:
    """When the incident was opened: incident.json's time, as its first `run.started` vouches."""
    for record in records:
        if record.event is Event.RUN_STARTED:
            facts = record.data.get("incident")
            opened = facts.get("started_at") if isinstance(facts, dict) else None
            return parse_utc(opened) if isinstance(opened, str) else record.at
    return records[0].at


def _who(ack: Record) -> dict[str, Any]:
    """Who decided or filed, and what their note said: the acknowledgement's own facts."""
    person = ack.data.get("person")
    return {"by": ack.actor, "person": person if isinstance(person, str) else None}


def _variant(clock: Clock, spec: ClockSpec, note: str) -> tuple[Variant, dict[str, Any]]:
    """The variant the determination chose, and what the record says of the choice.

    A variant the note names that the clock lacks is most likely a typo for one that is
    shorter than the default: the shortest deadline is taken, and the record says why.
    """
    if len(clock.variants) == 1:
        return clock.variants[0], {"variant": None}
    named = variant_named(note)
    chosen = clock.variant(named) if named else None
    if chosen is not None:
        return chosen, {"variant": chosen.id, "variant_from": "note"}
    if named is not None:
        strictest = min(clock.variants, key=lambda v: _span(clock, v.milestones[0]))
        known = ", ".join(v.id for v in clock.variants)
        problem = f"the note names variant '{named}', which {clock.id} has not ({known})"
        return strictest, {
            "variant": strictest.id,
            "variant_from": "strictest",
            "variant_problem": f"{problem}: the shortest deadline, {strictest.id}, was taken",
        }
    declared = clock.variant(spec.variant)
    assert declared is not None  # validated: a declared variant exists
    return declared, {
        "variant": declared.id,
        "variant_from": "runbook" if spec.variant else "default",
    }


def _span(clock: Clock, milestone: Milestone) -> datetime:
    """A milestone's deadline from a fixed moment, to compare variants by."""
    epoch = parse_utc("2000-01-03T00:00:00Z")
    found = deadline(clock, milestone, {DETERMINATION: epoch, AWARENESS: epoch})
    assert found is not None
    return found


def _start(
    clock: Clock, spec: ClockSpec, ack: Record, acks: Sequence[Record], records: Sequence[Record]
) -> Mark:
    note = str(ack.data.get("note", ""))
    variant, chosen = _variant(clock, spec, note)
    anchors = {DETERMINATION: ack.at}
    uses_awareness = any(t.after == AWARENESS for m in variant.milestones for t in m.terms)
    if uses_awareness:
        aware = _first_ack(acks, spec.aware_at) if spec.aware_at is not None else None
        anchors[AWARENESS] = aware.at if aware is not None else _opened(records)
    stops = stop_gates(clock, spec)
    tracked = {m.id for m in tracked_milestones(clock, spec)}
    started, pending = [], []
    for milestone in variant.milestones:
        if milestone.id not in tracked:
            continue
        due = deadline(clock, milestone, anchors)
        entry = _milestone_entry(clock, milestone, stops)
        if due is None:
            pending.append({**entry, "after": milestone.after})
        else:
            started.append({**entry, "deadline": utc_stamp(due)})
    who = _who(ack)
    data: dict[str, Any] = {
        "clock": clock.id,
        "title": clock.title,
        "source": clock.source,
        "catalogue": CATALOGUE_VERSION,
        **chosen,
        "anchor": DETERMINATION,
        "gate": spec.starts_at,
        "anchored_at": ack.ts,
        "anchor_seq": ack.seq,
        "decided_by": who["by"],
        "person": who["person"],
        "reasoning": note,
        "owner": spec.owner,
        "remind_before_s": duration_seconds(spec.remind_before) if spec.remind_before else None,
        "milestones": started,
        "pending": pending,
    }
    if uses_awareness:
        data["awareness"] = utc_stamp(anchors[AWARENESS])
    if clock.calendar is not None:
        calendar = clock.calendar
        data["calendar"] = {
            "holidays": calendar.holidays,
            "time_zone": calendar.time_zone,
            "day_ends": calendar.day_ends.strftime("%H:%M"),
        }
    return Mark(Event.CLOCK_STARTED, data)


def _milestone_entry(clock: Clock, milestone: Milestone, stops: dict[str, str]) -> dict[str, Any]:
    return {
        "id": milestone.id,
        "title": milestone.title,
        "rule": clock.rule(milestone),
        "stops_at": stops.get(milestone.id, ""),
    }


def _due(
    clock: Clock, spec: ClockSpec, state: ClockState, acks: Sequence[Record], now: datetime
) -> list[Mark]:
    """Filings, expiries and newly started milestones of a started clock."""
    marks: list[Mark] = []
    for milestone in state.milestones:
        if milestone.deadline is None or milestone.filing is not None:
            continue
        filed = _first_ack(acks, milestone.stops_at, after=milestone.anchor_seq)
        late = filed is not None and filed.at > milestone.deadline
        if milestone.expired_at is None and (late or (filed is None and now >= milestone.deadline)):
            marks.append(_expired(state, milestone))
        if filed is not None:
            marks.append(_stopped(state, milestone, filed))
    if marks:
        return marks
    return _unlocked(clock, spec, state, acks)


def _expired(state: ClockState, milestone: MilestoneState) -> Mark:
    assert milestone.deadline is not None
    return Mark(
        Event.CLOCK_EXPIRED,
        {
            "clock": state.id,
            "milestone": milestone.id,
            "title": milestone.title,
            "deadline": utc_stamp(milestone.deadline),
            "stops_at": milestone.stops_at,
            "owner": state.owner,
        },
    )


def _stopped(state: ClockState, milestone: MilestoneState, filed: Record) -> Mark:
    assert milestone.deadline is not None
    late_by = (filed.at - milestone.deadline).total_seconds()
    who = _who(filed)
    data: dict[str, Any] = {
        "clock": state.id,
        "milestone": milestone.id,
        "title": milestone.title,
        "gate": milestone.stops_at,
        "filed_at": filed.ts,
        "ack_seq": filed.seq,
        "filed_by": who["by"],
        "person": who["person"],
        "reference": str(filed.data.get("note", "")),
        "deadline": utc_stamp(milestone.deadline),
        "late": late_by > 0,
    }
    if late_by > 0:
        data["late_by_s"] = round(late_by, 3)
    return Mark(Event.CLOCK_STOPPED, data)


def _unlocked(
    clock: Clock, spec: ClockSpec, state: ClockState, acks: Sequence[Record]
) -> list[Mark]:
    """Milestones waiting for a filing or an event that has now happened, started together."""
    variant = clock.variant(state.variant) or clock.variants[0]
    by_anchor: dict[str, list[Milestone]] = {}
    for milestone in variant.milestones:
        current = state.milestone(milestone.id)
        if current is not None and current.deadline is None:
            by_anchor.setdefault(milestone.after, []).append(milestone)
    marks = []
    for anchor, milestones in by_anchor.items():
        moment = _anchor(anchor, spec, state, acks)
        if moment is None:
            continue
        at, ack = moment
        anchors = {DETERMINATION: state.started_at, anchor: at}
        if state.awareness is not None:
            anchors[AWARENESS] = state.awareness
        started = []
        for milestone in milestones:
            due = deadline(clock, milestone, anchors)
            assert due is not None
            current = state.milestone(milestone.id)
            stops = {milestone.id: current.stops_at if current else ""}
            started.append(
                {**_milestone_entry(clock, milestone, stops), "deadline": utc_stamp(due)}
            )
        who = _who(ack)
        marks.append(
            Mark(
                Event.CLOCK_STARTED,
                {
                    "clock": state.id,
                    "anchor": anchor,
                    "gate": str(ack.step),
                    "anchored_at": ack.ts,
                    "anchor_seq": ack.seq,
                    "decided_by": who["by"],
                    "person": who["person"],
                    "reasoning": str(ack.data.get("note", "")),
                    "milestones": started,
                },
            )
        )
    return marks


def _anchor(
    anchor: str, spec: ClockSpec, state: ClockState, acks: Sequence[Record]
) -> tuple[datetime, Record] | None:
    """When `anchor` happened and the acknowledgement that says so: a milestone's filing, or
    an event's gate; None while it has not."""
    filed = state.milestone(anchor)
    if filed is not None:
        if filed.filing is None:
            return None
        ack = next((r for r in acks if r.seq == filed.filing.seq), None)
        return (filed.filing.at, ack) if ack is not None else None
    gate = spec.events.get(anchor)
    ack = _first_ack(acks, gate) if gate is not None else None
    return (ack.at, ack) if ack is not None else None
