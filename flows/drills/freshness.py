"""Drill freshness: whether each runbook, as it stands now, was exercised recently enough.

SOC 2 CC9.1 / CC7.5 ask that the response plan is tested periodically. What counts is an
exercise of the runbook's current document (its sha256, so its version too) that completed:
a drill whose run succeeded, or a real incident that did. A drill abandoned at a gate, one that
failed, or one of an earlier version does not. Scripted rehearsals (gates answered from the
scenario's `answers`, whatever the speed) are listed apart and count only where the runbook
says `drills: {rehearsals_count: true}`. A runbook with nothing that counts within the window
is stale, and the row says why.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from flows.drills.score import DrillScore
from flows.errors import RunbookError
from flows.evidence.incident import (
    Incident,
    incident_folder,
    incidents_under,
    list_incidents,
)
from flows.evidence.progress import RunStatus
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records
from flows.runbook.model import Runbook
from flows.times import parse_utc, utc_now

ExerciseKind = Literal["drill", "rehearsal", "real"]

_MAX_AGE = re.compile(r"^(\d+)\s*([dwm]?)$")
_UNIT_WORDS = {"d": "days", "w": "weeks", "m": "months"}


@dataclass(frozen=True)
class MaxAge:
    """How old the last exercise may be: days, weeks or calendar months."""

    amount: int
    unit: Literal["d", "w", "m"]

    def cutoff(self, now: datetime) -> datetime:
        """The oldest start an exercise may have and still count, `now` minus this age."""
        if self.unit == "m":
            years, month = divmod(now.month - 1 - self.amount, 12)
            year = now.year + years
            day = min(now.day, calendar.monthrange(year, month + 1)[1])
            return now.replace(year=year, month=month + 1, day=day)
        days = self.amount * (7 if self.unit == "w" else 1)
        return now - timedelta(days=days)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def words(self) -> str:
        """The age in words: `90 days`, `12 weeks`, `6 months`."""
        return f"{self.amount} {_UNIT_WORDS[self.unit]}"


def parse_max_age(text: str) -> MaxAge:
    """`90d`, `12w`, `6m` (calendar months) or plain days (`90`) as a MaxAge."""
    match = _MAX_AGE.match(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise RunbookError(
            f"--max-age {text!r} is not an age: give days (90 or 90d), weeks (12w) or"
            " months (6m), more than zero"
        )
    units: dict[str, Literal["d", "w", "m"]] = {"": "d", "d": "d", "w": "w", "m": "m"}
    return MaxAge(int(match.group(1)), units[match.group(2)])


class Exercise(BaseModel):
    """One drill, rehearsal or real incident of a runbook, as freshness judges it."""

    model_config = ConfigDict(frozen=True)

    incident: str
    kind: ExerciseKind
    started_at: datetime
    version: int
    sha256: str
    status: str
    """How its run stands: succeeded, failed, waiting, or `not finished`."""
    score: str | None = None
    """A drill's or rehearsal's score in words (`9 on time, 1 late, ...`)."""


class Row(BaseModel):
    """One runbook: what keeps it fresh (None: nothing), its latest exercises, and why stale."""

    model_config = ConfigDict(frozen=True)

    runbook: str
    version: int
    sha256: str
    rehearsals_count: bool
    fresh_by: Exercise | None
    """The latest exercise that counts, within the window or not."""
    last_drill: Exercise | None
    """The latest completed drill of the current document."""
    last_rehearsal: Exercise | None
    """The latest completed scripted rehearsal of the current document."""
    last_real: Exercise | None
    """The latest completed real incident of the current document."""
    latest: Exercise | None
    """The latest exercise of any kind, version or outcome."""
    stale: bool
    reason: str = ""
    """Why it is stale; empty when it is fresh."""


def freshness(
    home: Path,
    runbooks: Iterable[Runbook],
    max_age: MaxAge | str = "90d",
    now: datetime | None = None,
) -> list[Row]:
    """One row per runbook, from the incidents under `home`, in the order given."""
    age = parse_max_age(max_age) if isinstance(max_age, str) else max_age
    cutoff = age.cutoff(now or utc_now())
    incidents_dir = incidents_under(home)
    by_runbook: dict[str, list[Incident]] = {}
    for incident in list_incidents(incidents_dir):  # oldest first
        by_runbook.setdefault(incident.runbook.id, []).append(incident)
    rows = []
    for runbook in runbooks:
        found = [
            _exercise(incidents_dir, incident, runbook.sha256)
            for incident in by_runbook.get(runbook.id, [])
        ]
        rows.append(_row(runbook, found, cutoff, age))
    return rows


def home_warning(home: Path) -> str | None:
    """A warning when `home` holds no incident at all: every runbook would show `never`."""
    incidents_dir = incidents_under(home)
    if not incidents_dir.is_dir():
        return (
            f"warning: {incidents_dir} does not exist, so no drill or run is known; set"
            " RUNBOOK_HOME to the evidence home your drills and incidents ran in"
        )
    if not list_incidents(incidents_dir):
        return (
            f"warning: no incidents under {incidents_dir}, so no drill or run is known; set"
            " RUNBOOK_HOME to the evidence home your drills and incidents ran in"
        )
    return None


def _row(runbook: Runbook, found: Sequence[Exercise], cutoff: datetime, age: MaxAge) -> Row:
    current = [e for e in found if e.sha256 == runbook.sha256 and _completed(e)]

    def last(kind: ExerciseKind) -> Exercise | None:
        return next((e for e in reversed(current) if e.kind == kind), None)

    allowed = runbook.meta.drills.rehearsals_count
    counting = [e for e in current if e.kind != "rehearsal" or allowed]
    fresh_by = counting[-1] if counting else None
    stale = fresh_by is None or fresh_by.started_at < cutoff
    return Row(
        runbook=runbook.id,
        version=runbook.meta.version,
        sha256=runbook.sha256,
        rehearsals_count=allowed,
        fresh_by=fresh_by,
        last_drill=last("drill"),
        last_rehearsal=last("rehearsal"),
        last_real=last("real"),
        latest=found[-1] if found else None,
        stale=stale,
        reason=_reason(runbook, found, fresh_by, age) if stale else "",
    )


def _reason(
    runbook: Runbook, found: Sequence[Exercise], fresh_by: Exercise | None, age: MaxAge
) -> str:
    """Why a runbook is stale, in the words a control owner acts on."""
    version = runbook.meta.version
    if fresh_by is not None:
        return (
            f"the last {fresh_by.kind} that counts ({fresh_by.incident},"
            f" {fresh_by.started_at.date()}) is older than {age.words()}"
        )
    if not found:
        return "never drilled or run"
    current = [e for e in found if e.sha256 == runbook.sha256]
    if not current:
        latest = found[-1]
        changed = (
            f"it is v{version} now"
            if latest.version != version
            else f"its document changed since (still v{version})"
        )
        return f"last exercised as v{latest.version} ({latest.incident}); {changed}"
    latest = current[-1]
    if _completed(latest) and latest.kind == "rehearsal":
        return (
            f"only scripted rehearsals completed at v{version} ({latest.incident}); they count"
            " only where the runbook says `drills: {rehearsals_count: true}`"
        )
    return (
        f"the last {latest.kind} at v{version} ({latest.incident}) did not complete:"
        f" {latest.status}"
    )


def _completed(exercise: Exercise) -> bool:
    return exercise.status == RunStatus.SUCCEEDED


def _exercise(incidents_dir: Path, incident: Incident, sha256: str) -> Exercise:
    """What an incident was; its ledger is read only when it ran the current document."""
    kind: ExerciseKind = "drill" if incident.drill else "real"
    status, score = "not read", None
    if incident.runbook.sha256 == sha256:
        records = read_records(incident_folder(incidents_dir, incident.id), skip_unreadable=True)
        status = _status(records)
        if incident.drill:
            kind = "rehearsal" if _scripted(records) else "drill"
            score = _score(records)
    return Exercise(
        incident=incident.id,
        kind=kind,
        started_at=parse_utc(incident.started_at),
        version=incident.runbook.version,
        sha256=incident.runbook.sha256,
        status=status,
        score=score,
    )


def _status(records: Sequence[Record]) -> str:
    finished = [r for r in records if r.event is Event.RUN_FINISHED]
    return str(finished[-1].data.get("status")) if finished else "not finished"


def _scripted(records: Sequence[Record]) -> bool:
    """A rehearsal: some gate was passed by the scenario's script, or the drill ran from its
    script and no person answered any gate."""
    acks = [r for r in records if r.event is Event.GATE_ACKNOWLEDGED]
    if any(r.data.get("via") == "drill" or r.data.get("channel") == "drill" for r in acks):
        return True
    if acks:
        return False
    started = next((r for r in records if r.event is Event.DRILL_STARTED), None)
    return started is not None and started.data.get("answers", "script") == "script"


def _score(records: Sequence[Record]) -> str | None:
    scored = [r for r in records if r.event is Event.DRILL_SCORED]
    if not scored:
        return None
    return DrillScore.model_validate(scored[-1].data).summary()
