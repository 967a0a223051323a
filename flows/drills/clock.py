"""Drill time: the scenario's clock, read back from a drill's records.

The clock runs only while the drill runs: from its `drill.started` (or a `drill.resumed`) to the
run's end (`run.finished`), `speed` drill seconds to each wall second. While the drill waits at a
gate for an answer and a resume it stands still, so the seconds spent typing `runbook ack` at
`--speed 120` add nothing. Every record has a drill time: one written while the clock stands
(an answer given with `runbook ack`) has the time the clock stopped at.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from flows.evidence.records import Event, Record

_STARTS = frozenset({Event.DRILL_STARTED, Event.DRILL_RESUMED})


def drill_times(records: Sequence[Record], speed: float) -> list[float]:
    """The drill time of each record, in drill seconds since the drill's start (see module)."""
    times: list[float] = []
    since: tuple[datetime, float] | None = None  # the running clock's wall start and its reading
    stood = 0.0
    for record in records:
        if record.event in _STARTS:
            since = (record.at, float(record.data.get("drill_s", stood)))
        now = stood if since is None else since[1] + _seconds(since[0], record.at) * speed
        times.append(round(now, 3))
        if record.event is Event.RUN_FINISHED and since is not None:
            since, stood = None, now
    return times


def clock_reading(records: Sequence[Record], speed: float) -> float:
    """Where the drill clock stands after these records: where a resumed drill goes on from."""
    times = drill_times(records, speed)
    return times[-1] if times else 0.0


def paused_since(records: Sequence[Record]) -> datetime | None:
    """When the drill's clock last stopped (its last run's end); None while it never stopped."""
    finished = [r.at for r in records if r.event is Event.RUN_FINISHED]
    return finished[-1] if finished else None


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())
