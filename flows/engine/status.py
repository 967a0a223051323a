"""Where incidents stand, for `runbook status` and `/runbook status`: one, or all open ones.

Read from each incident's ledger (the census row for severity and commander, the progress for
its steps, the `clock.*` records for its regulatory clocks), and shown only to whom the
runbook's `steering.status` admits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from flows.engine.settings import Settings
from flows.engine.steerers import Scene, SteerDecision, decide_steering, load_scene
from flows.errors import RunbookError
from flows.evidence.census import CensusRow, census, census_row
from flows.evidence.clocks import milestone_summary, read_clocks
from flows.evidence.progress import Abort, ItemStatus
from flows.runbook.declared_clocks import declared_clock
from flows.runbook.identity import Identity, identify
from flows.runbook.plan import build_plan
from flows.times import utc_now, utc_stamp

ABORTED = "aborted"
_CLOSED = frozenset({"succeeded", ABORTED})


@dataclass(frozen=True)
class ClockLine:
    """One milestone of a regulatory clock, as status shows it at the time it was asked."""

    clock: str
    milestone: str
    title: str
    """The milestone's title and its clock's: `Incident notification (NIS2 ...)`."""
    standing: str
    """`running`, `expired`, `filed on time`, `filed late`, `waiting` or `not started`."""
    deadline: str | None
    """UTC, as the ledger records it; None while not started."""
    left_s: float | None
    """Seconds to the deadline (negative once past), for a milestone not filed."""
    summary: str
    """The deadline and time left, the filing and its reference, or what it waits for."""


@dataclass(frozen=True)
class IncidentStatus:
    """One incident as a responder asks after it.

    `status` is the latest run's (`open` while none has finished, `waiting`, `failed`,
    `succeeded`) or `aborted`; `steps` every step and gate in plan order.
    """

    id: str
    title: str
    runbook: str
    severity: str
    commander: str | None
    status: str
    drill: bool
    started_at: str
    steps: Mapping[str, ItemStatus]
    waiting: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    aborted: Abort | None = None
    assignments: Mapping[str, str] = field(default_factory=dict)
    """Role -> person, as assigned on this incident."""
    titles: Mapping[str, str] = field(default_factory=dict)
    """Step or gate id -> its heading in the runbook, for people to read."""
    clocks: tuple[ClockLine, ...] = ()
    """Every milestone of the runbook's regulatory clocks, running or not."""

    @property
    def is_open(self) -> bool:
        """True while the incident may still go on: not succeeded, not aborted, not a drill."""
        return self.status not in _CLOSED and not self.drill


def incident_status(
    settings: Settings, incident_id: str, identity: Identity
) -> tuple[SteerDecision, IncidentStatus | None]:
    """Where one incident stands, when `identity` may see it (the status is None otherwise)."""
    scene = load_scene(settings, incident_id)
    decision = _may_see(scene, identity)
    if not decision.allowed:
        return decision, None
    row = census_row(scene.folder)
    if row is None:  # load_scene read incident.json: only a race with its removal gets here
        raise RunbookError(f"incident {incident_id!r} has no readable incident.json")
    return decision, _status(scene, row)


def open_incidents(settings: Settings, identity: Identity) -> list[IncidentStatus]:
    """Every open incident `identity` may see, oldest first."""
    shown = []
    for row in census(settings.incidents_dir):
        if row.drill or row.status == "succeeded":
            continue
        try:
            scene = load_scene(settings, row.id)
        except RunbookError:  # a damaged folder: `runbook evidence verify --all` names it
            continue
        status = _status(scene, row)
        if status.is_open and _may_see(scene, identity).allowed:
            shown.append(status)
    return shown


def _may_see(scene: Scene, identity: Identity) -> SteerDecision:
    actor = identify(identity, scene.roster)
    return decide_steering(
        "status", actor, scene.runbook, scene.incident, scene.progress, scene.roster
    )


def _status(scene: Scene, row: CensusRow) -> IncidentStatus:
    plan = build_plan(scene.runbook)
    statuses = scene.progress.statuses
    steps = {item: statuses.get(item, ItemStatus.PENDING) for item in plan.order}
    steps.update({r: statuses[r] for r in sorted(plan.rollbacks) if r in statuses})
    aborted = scene.progress.aborted
    return IncidentStatus(
        id=row.id,
        title=scene.incident.runbook.title,
        runbook=row.runbook,
        severity=row.severity,
        commander=row.commander,
        status=ABORTED if aborted is not None else row.status,
        drill=row.drill,
        started_at=row.opened,
        steps=steps,
        waiting=tuple(i for i, s in steps.items() if s == ItemStatus.WAITING and not aborted),
        failed=tuple(i for i, s in steps.items() if s == ItemStatus.FAILED),
        aborted=aborted,
        assignments=dict(scene.progress.assignments),
        titles={item.id: item.title for item in scene.runbook.items},
        clocks=_clocks(scene, utc_now()),
    )


def _clocks(scene: Scene, now: datetime) -> tuple[ClockLine, ...]:
    """Each started clock's milestones as they stand at `now`, then each clock not started."""
    lines = []
    started = read_clocks(scene.records)
    for clock in started:
        for milestone in clock.milestones:
            due = milestone.deadline
            left = (due - now).total_seconds() if due and milestone.filing is None else None
            lines.append(
                ClockLine(
                    clock=clock.id,
                    milestone=milestone.id,
                    title=f"{milestone.title} ({clock.title})",
                    standing=str(milestone.standing(now)),
                    deadline=utc_stamp(due) if due is not None else None,
                    left_s=round(left, 3) if left is not None else None,
                    summary=milestone_summary(milestone, now),
                )
            )
    ids = {clock.id for clock in started}
    for spec in scene.runbook.meta.clocks:
        if spec.id not in ids:
            lines.append(
                ClockLine(
                    clock=spec.id,
                    milestone="",
                    title=declared_clock(spec).title,
                    standing="not started",
                    deadline=None,
                    left_s=None,
                    summary=f"not started: starts when gate {spec.starts_at} is acknowledged",
                )
            )
    return tuple(lines)
