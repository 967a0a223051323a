"""A drill's score: drill time to each step and gate against its target, and the injects."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from flows.drills.scenario import Inject, LoadedScenario, Participant
from flows.evidence.records import Event, Record
from flows.runbook.model import Gate, Item


class Verdict(StrEnum):
    """How a step or gate did against the scenario."""

    ON_TIME = "on-time"
    LATE = "late"
    DONE = "done"
    """Reached, with no target to meet."""
    SKIPPED = "skipped"
    FAILED = "failed"
    MISSED = "missed"
    """Never reached."""
    NOT_NEEDED = "not-needed"
    """A rollback step nothing failed for."""


class ItemScore(BaseModel):
    """One step or gate: when it was reached (drill seconds), against its target."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["step", "gate"]
    status: str
    at_s: float | None
    target_s: float | None
    verdict: Verdict
    by: str = ""
    note: str = ""


class InjectScore(BaseModel):
    """A scripted event and when it fired (None: the drill ended first)."""

    model_config = ConfigDict(frozen=True)

    at_s: float
    kind: str
    text: str
    fired_at_s: float | None


class DrillScore(BaseModel):
    """The scored record of one drill, stored in the ledger as `drill.scored`."""

    model_config = ConfigDict(frozen=True)

    scenario: str
    title: str
    scenario_sha256: str
    runbook: str
    runbook_version: int
    status: str
    speed: float
    duration_s: float
    facilitator: str
    participants: list[Participant]
    items: list[ItemScore]
    injects: list[InjectScore]
    notes: list[str]
    lessons: list[str]
    on_time: int
    late: int
    missed: int
    failed: int


_REACHED = {
    Event.STEP_SUCCEEDED: "succeeded",
    Event.STEP_FAILED: "failed",
    Event.STEP_SKIPPED: "skipped",
    Event.GATE_ACKNOWLEDGED: "acknowledged",
}

DrillTime = Callable[[Record], float]


def score_drill(
    records: list[Record],
    loaded: LoadedScenario,
    speed: float,
    *,
    status: str,
    rollbacks: frozenset[str] | set[str] = frozenset(),
) -> DrillScore:
    """Score a drill from its ledger: drill time to each step and gate against its target."""
    spec, runbook = loaded.scenario, loaded.runbook
    # A run that stopped before its first item never started the clock: count from its start.
    started = next((r for r in records if r.event is Event.DRILL_STARTED), records[0])
    origin = started.at

    def drill_time(record: Record) -> float:
        return round((record.at - origin).total_seconds() * speed, 3)

    reached: dict[str, Record] = {}
    for found in records:
        if found.event in _REACHED and found.step is not None and found.step not in reached:
            reached[found.step] = found
    items = [
        _item_score(item, reached.get(item.id), spec.targets.get(item.id), drill_time, rollbacks)
        for item in runbook.items
    ]
    verdicts = [i.verdict for i in items]
    return DrillScore(
        scenario=spec.id,
        title=spec.title,
        scenario_sha256=loaded.sha256,
        runbook=runbook.id,
        runbook_version=runbook.meta.version,
        status=status,
        speed=speed,
        duration_s=drill_time(records[-1]),
        facilitator=spec.facilitator,
        participants=spec.participants,
        items=items,
        injects=_inject_scores(spec.injects, records),
        notes=spec.notes,
        lessons=spec.lessons,
        on_time=verdicts.count(Verdict.ON_TIME),
        late=verdicts.count(Verdict.LATE),
        missed=verdicts.count(Verdict.MISSED),
        failed=verdicts.count(Verdict.FAILED),
    )


def _item_score(
    item: Item,
    record: Record | None,
    target: float | None,
    drill_time: DrillTime,
    rollbacks: frozenset[str] | set[str],
) -> ItemScore:
    """One step or gate: the record that first closed it (None: never reached) against its
    target."""
    kind: Literal["step", "gate"] = "gate" if isinstance(item, Gate) else "step"
    if record is None:
        missed = Verdict.NOT_NEEDED if item.id in rollbacks else Verdict.MISSED
        return ItemScore(
            id=item.id,
            kind=kind,
            status="not reached",
            at_s=None,
            target_s=target,
            verdict=missed,
        )
    at = drill_time(record)
    outcome = _REACHED[record.event]
    if outcome == "failed":
        verdict = Verdict.FAILED
    elif target is not None:
        verdict = Verdict.ON_TIME if at <= target else Verdict.LATE
    else:
        verdict = Verdict.SKIPPED if outcome == "skipped" else Verdict.DONE
    return ItemScore(
        id=item.id,
        kind=kind,
        status=outcome,
        at_s=at,
        target_s=target,
        verdict=verdict,
        by=record.actor if kind == "gate" else "",
        note=str(record.data.get("note") or record.data.get("error") or ""),
    )


def _inject_scores(injects: list[Inject], records: list[Record]) -> list[InjectScore]:
    """Each scripted inject, in schedule order, with when it fired (None: not yet)."""
    fired = [r for r in records if r.event is Event.DRILL_INJECT]
    return [
        InjectScore(
            at_s=inject.at,
            kind=inject.kind,
            text=inject.text,
            fired_at_s=fired[n].data["fired_at_s"] if n < len(fired) else None,
        )
        for n, inject in enumerate(sorted(injects, key=lambda i: i.at))
    ]
