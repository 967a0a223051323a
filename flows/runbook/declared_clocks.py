"""A runbook's `clocks:` read against the catalogue (flows/runbook/clocks.py): the clock each
declaration means (a catalogue clock, or the custom clock it declares), the milestones it
tracks and the gates that file them, the variant a determination note names, a milestone's
deadline from the moments its anchors happened, and `remind_before` in seconds.
"""

from __future__ import annotations

import re
from datetime import datetime, time

from flows.runbook.clocks import (
    CUSTOM_MILESTONE,
    DETERMINATION,
    Clock,
    Milestone,
    Term,
    Variant,
    catalogue_clock,
)
from flows.runbook.deadlines import Calendar, Unit, add
from flows.runbook.model import ClockSpec

_VARIANT_IN_NOTE = re.compile(r"\bvariant\s*[:=]\s*([a-z0-9][a-z0-9_-]*)", re.IGNORECASE)


def declared_clock(spec: ClockSpec) -> Clock:
    """The clock a runbook's declaration means: the catalogue's, or its own custom clock.

    The declaration is assumed valid (`runbook validate` checks it): a custom one has exactly
    one of `hours`, `days` or `business_days`.
    """
    found = catalogue_clock(spec.id)
    if found is not None:
        return found
    unit: Unit
    if spec.business_days is not None:
        amount, unit = spec.business_days, "business_days"
    elif spec.days is not None:
        amount, unit = spec.days, "days"
    else:
        amount, unit = spec.hours or 0, "hours"
    calendar = None
    if unit == "business_days":
        calendar = Calendar(
            holidays=None if spec.calendar == "none" else spec.calendar,
            time_zone=spec.time_zone or "UTC",
            day_ends=time.fromisoformat(spec.day_ends),
        )
    milestone = Milestone(
        CUSTOM_MILESTONE, spec.title or spec.id, (Term(DETERMINATION, amount, unit),)
    )
    return Clock(
        id=spec.id,
        title=spec.title or spec.id,
        source=spec.source or "",
        starts="the determination recorded at its starting gate",
        variants=(Variant("standard", "standard", (milestone,)),),
        calendar=calendar,
    )


def tracked_milestones(clock: Clock, spec: ClockSpec) -> tuple[Milestone, ...]:
    """The milestones a declaration tracks: every one, except those counting from an event the
    runbook names no gate for."""
    return tuple(
        m for m in clock.milestones if m.after not in clock.events or m.after in spec.events
    )


def stop_gates(clock: Clock, spec: ClockSpec) -> dict[str, str]:
    """Milestone id -> the gate whose acknowledgement files it, for the tracked milestones."""
    tracked = tracked_milestones(clock, spec)
    if isinstance(spec.stops_at, str):
        return {m.id: spec.stops_at for m in tracked}
    return {m.id: spec.stops_at[m.id] for m in tracked if m.id in spec.stops_at}


def variant_named(note: str) -> str | None:
    """The variant an acknowledgement note names (`variant: death`), or None."""
    found = _VARIANT_IN_NOTE.search(note)
    return found.group(1).lower() if found else None


def deadline(clock: Clock, milestone: Milestone, anchors: dict[str, datetime]) -> datetime | None:
    """When `milestone` is due, given the moments its anchors happened; None while one of them
    has not happened yet. The earliest of its terms holds (DORA's 4 h from classification, at
    most 24 h from awareness)."""
    due = []
    for term in milestone.terms:
        start = anchors.get(term.after)
        if start is None:
            return None
        due.append(add(start, term.amount, term.unit, clock.calendar))
    return min(due)


_DURATION_PARTS = re.compile(r"(\d+)([dhm])")
_SECONDS = {"d": 86400, "h": 3600, "m": 60}


def duration_seconds(text: str) -> int:
    """`1d12h` as seconds (129600); the model's DURATION pattern says what is accepted."""
    return sum(int(amount) * _SECONDS[unit] for amount, unit in _DURATION_PARTS.findall(text))
