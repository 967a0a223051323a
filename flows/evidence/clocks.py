"""Regulatory clocks read back from an incident's ledger: each clock, who started it and why,
every milestone's deadline, and whether it was filed on time, filed late or let expire.

The `clock.*` records (docs/evidence-format.md) hold everything: the deadlines were computed
when each milestone started and are read here as recorded, never computed again, so a report
drawn years later shows the deadlines the responders were shown. Status, the report and the
postmortem all read clocks through `read_clocks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from flows.evidence.records import Event, Record
from flows.times import parse_utc


class Standing(StrEnum):
    """Where one milestone of a clock stands."""

    WAITING = "waiting"
    """Not started: it counts from a filing or an event that has not happened yet."""
    RUNNING = "running"
    """Started, not filed, its deadline not passed (as far as the records or `now` say)."""
    EXPIRED = "expired"
    """Its deadline passed and it was not filed (yet)."""
    ON_TIME = "filed on time"
    LATE = "filed late"


@dataclass(frozen=True)
class Filing:
    """A milestone filed: its notified gate's acknowledgement, with the filing's reference."""

    at: datetime
    by: str
    reference: str
    late: bool
    gate: str
    seq: int = 0
    """The acknowledgement's record."""


@dataclass(frozen=True)
class MilestoneState:
    """One milestone of a started clock, as its records say."""

    id: str
    title: str
    rule: str
    stops_at: str
    deadline: datetime | None = None
    after: str | None = None
    """What it waits for while not started (a milestone or an event id)."""
    anchor_seq: int = 0
    """The record whose moment started it (a gate's acknowledgement); a filing comes after."""
    reminded_at: datetime | None = None
    expired_at: datetime | None = None
    filing: Filing | None = None

    def standing(self, now: datetime | None = None) -> Standing:
        """Filed on time or late, expired (recorded, or past its deadline at `now`), running,
        or waiting."""
        if self.filing is not None:
            return Standing.LATE if self.filing.late else Standing.ON_TIME
        if self.deadline is None:
            return Standing.WAITING
        if self.expired_at is not None or (now is not None and now >= self.deadline):
            return Standing.EXPIRED
        return Standing.RUNNING


@dataclass(frozen=True)
class ClockState:
    """One clock of an incident: what its first `clock.started` said, and its milestones."""

    id: str
    title: str
    source: str
    catalogue: str
    started_at: datetime
    gate: str
    decided_by: str
    reasoning: str
    owner: str
    remind_before_s: int | None
    variant: str | None = None
    variant_problem: str = ""
    awareness: datetime | None = None
    time_zone: str | None = None
    """Where its deadlines are local (business-day clocks), for people to read; else UTC."""
    milestones: tuple[MilestoneState, ...] = field(default_factory=tuple)

    def milestone(self, milestone_id: str) -> MilestoneState | None:
        """The milestone with this id, or None."""
        return next((m for m in self.milestones if m.id == milestone_id), None)


def _time(value: Any) -> datetime | None:
    return parse_utc(value) if isinstance(value, str) and value else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _milestone(entry: Mapping[str, Any], anchor_seq: int) -> MilestoneState:
    return MilestoneState(
        id=_text(entry.get("id")),
        title=_text(entry.get("title")),
        rule=_text(entry.get("rule")),
        stops_at=_text(entry.get("stops_at")),
        deadline=_time(entry.get("deadline")),
        after=entry.get("after") if isinstance(entry.get("after"), str) else None,
        anchor_seq=anchor_seq,
    )


def _entries(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _started(record: Record) -> ClockState:
    data = record.data
    remind = data.get("remind_before_s")
    anchor_seq = int(data.get("anchor_seq", record.seq))
    calendar = data.get("calendar")
    milestones = [_milestone(m, anchor_seq) for m in _entries(data.get("milestones"))]
    milestones += [_milestone(m, 0) for m in _entries(data.get("pending"))]
    return ClockState(
        id=_text(data.get("clock")),
        title=_text(data.get("title")),
        source=_text(data.get("source")),
        catalogue=_text(data.get("catalogue")),
        started_at=_time(data.get("anchored_at")) or record.at,
        gate=_text(data.get("gate")),
        decided_by=_text(data.get("decided_by")),
        reasoning=_text(data.get("reasoning")),
        owner=_text(data.get("owner")),
        remind_before_s=remind if isinstance(remind, int) else None,
        variant=data.get("variant") if isinstance(data.get("variant"), str) else None,
        variant_problem=_text(data.get("variant_problem")),
        awareness=_time(data.get("awareness")),
        time_zone=_text(calendar.get("time_zone")) or None
        if isinstance(calendar, Mapping)
        else None,
        milestones=tuple(milestones),
    )


def _changed(state: ClockState, milestone: str, **changes: Any) -> ClockState:
    milestones = tuple(replace(m, **changes) if m.id == milestone else m for m in state.milestones)
    return replace(state, milestones=milestones)


def read_clocks(records: Iterable[Record]) -> list[ClockState]:
    """Every clock the records started, in the order they started, as they stand now."""
    clocks: dict[str, ClockState] = {}
    for record in records:
        if record.event not in _CLOCK_EVENTS:
            continue
        data = record.data
        clock_id = _text(data.get("clock"))
        state = clocks.get(clock_id)
        if record.event is Event.CLOCK_STARTED:
            if state is None:
                clocks[clock_id] = _started(record)
                continue
            anchor_seq = int(data.get("anchor_seq", record.seq))
            for entry in _entries(data.get("milestones")):
                started = _milestone(entry, anchor_seq)
                state = _changed(
                    state,
                    started.id,
                    deadline=started.deadline,
                    after=None,
                    anchor_seq=anchor_seq,
                )
            clocks[clock_id] = state
            continue
        if state is None:
            continue  # a record about a clock never started: nothing to attach it to
        milestone = _text(data.get("milestone"))
        if record.event is Event.CLOCK_REMINDED:
            clocks[clock_id] = _changed(state, milestone, reminded_at=record.at)
        elif record.event is Event.CLOCK_EXPIRED:
            clocks[clock_id] = _changed(state, milestone, expired_at=record.at)
        else:
            filing = Filing(
                at=_time(data.get("filed_at")) or record.at,
                by=_text(data.get("filed_by")),
                reference=_text(data.get("reference")),
                late=data.get("late") is True,
                gate=_text(data.get("gate")),
                seq=data["ack_seq"] if isinstance(data.get("ack_seq"), int) else 0,
            )
            clocks[clock_id] = _changed(state, milestone, filing=filing)
    return list(clocks.values())


_CLOCK_EVENTS = frozenset(
    {Event.CLOCK_STARTED, Event.CLOCK_REMINDED, Event.CLOCK_EXPIRED, Event.CLOCK_STOPPED}
)


def left_text(seconds: float) -> str:
    """A time left (or past) in the two largest units that read well: `14 d 5 h`, `71 h 10 min`,
    `12 min`; under a minute, `less than a minute`. Hours up to four days, as the hour clocks
    (24 h, 72 h) are spoken of."""
    minutes = int(abs(seconds) // 60)
    hours, minutes = divmod(minutes, 60)
    if hours >= 96:
        return f"{hours // 24} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "less than a minute"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def milestone_summary(milestone: MilestoneState, now: datetime) -> str:
    """Where a milestone stands at `now`, in one line of plain text: its deadline and the time
    left (or past), or its filing and reference, or what it waits for."""
    standing = milestone.standing(now)
    filing = milestone.filing
    due = milestone.deadline
    if filing is not None:
        reference = filing.reference or "no reference recorded"
        was = f", due {_stamp(due)}" if due is not None else ""
        return f"{standing} {_stamp(filing.at)}{was}; reference: {reference}"
    if due is None:
        return f"waiting: {milestone.rule}"
    left = (due - now).total_seconds()
    if standing is Standing.EXPIRED:
        return f"EXPIRED: was due {_stamp(due)}, {left_text(left)} ago, not filed"
    return f"due {_stamp(due)}, {left_text(left)} left"
