"""A drill's score: each step and gate as it finally stood, in drill time against its target.

What counts is the last state of each item: a step that failed and then succeeded (a retry, a
resume) is `recovered`, not failed. Only an item with a target can be missed. A step that
failed because an inject broke the integration it used is `inject-caused`, not the team's
failure. Times are drill time (`flows.drills.clock`), with each record's wall time beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from flows.drills.clock import drill_times
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
    RECOVERED = "recovered"
    """Failed, then succeeded (a retry or a resume)."""
    INJECT_CAUSED = "inject-caused"
    """Failed because an inject broke the integration it used: the scenario's doing."""
    MISSED = "missed"
    """Never reached, though it had a target."""
    NOT_REACHED = "not-reached"
    """Never reached, with no target to miss."""
    NOT_NEEDED = "not-needed"
    """A rollback step nothing failed for."""


class ItemScore(BaseModel):
    """One step or gate: when it was reached (drill seconds; `at` the wall time), its target."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["step", "gate"]
    status: str
    at_s: float | None
    target_s: float | None
    verdict: Verdict
    by: str = ""
    note: str = ""
    at: str | None = None
    """Wall time (UTC, ISO 8601) of the record that settled it."""
    failed_at_s: float | None = None
    """A recovered step: drill time of its first failure."""
    opened_at_s: float | None = None
    """A gate: drill time it started waiting (`gate.waiting`)."""


class InjectScore(BaseModel):
    """A scripted event and when it fired (None: the drill ended first)."""

    model_config = ConfigDict(frozen=True)

    at_s: float
    kind: str
    text: str
    fired_at_s: float | None
    fired_at: str | None = None
    """Wall time (UTC, ISO 8601) it fired."""


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
    recovered: int = 0
    inject_caused: int = 0
    runbook_sha256: str = ""
    wall_s: float | None = None
    """Wall seconds the drill's clock ran (its runs, not its pauses), beside `duration_s`."""

    def summary(self) -> str:
        """The counts in words: `9 on time, 1 late, 0 missed, 0 failed`, and any others."""
        words = [
            f"{self.on_time} on time",
            f"{self.late} late",
            f"{self.missed} missed",
            f"{self.failed} failed",
        ]
        if self.recovered:
            words.append(f"{self.recovered} recovered")
        if self.inject_caused:
            words.append(f"{self.inject_caused} inject-caused")
        return ", ".join(words)


_SETTLED = {
    Event.STEP_SUCCEEDED: "succeeded",
    Event.STEP_FAILED: "failed",
    Event.STEP_SKIPPED: "skipped",
    Event.GATE_ACKNOWLEDGED: "acknowledged",
    Event.GATE_REJECTED: "rejected",
}
"""Records that settle an item, and the status each gives it; the last one counts."""

INJECTED = "drill inject:"
"""How the drill sandboxes' injected failures begin (integrations.sandbox)."""


@dataclass(frozen=True)
class _Timed:
    record: Record
    drill_s: float


def score_drill(
    records: list[Record],
    loaded: LoadedScenario,
    speed: float,
    *,
    status: str,
    rollbacks: frozenset[str] | set[str] = frozenset(),
    facilitator: str | None = None,
) -> DrillScore:
    """Score a drill from its ledger against the scenario and runbook in `loaded`: pass the
    copies the drill ran (`load_drilled_scenario`), never the library files."""
    spec, runbook = loaded.scenario, loaded.runbook
    timed = [_Timed(r, t) for r, t in zip(records, drill_times(records, speed), strict=True)]
    settled: dict[str, list[_Timed]] = {}
    opened: dict[str, float] = {}
    for entry in timed:
        step = entry.record.step
        if step is None:
            continue
        if entry.record.event in _SETTLED:
            settled.setdefault(step, []).append(entry)
        elif entry.record.event is Event.GATE_WAITING:
            opened.setdefault(step, entry.drill_s)
    injected = _first_fault(timed)
    items = [
        _item_score(
            item,
            settled.get(item.id, []),
            spec.targets.get(item.id),
            rollbacks,
            injected,
            opened.get(item.id),
        )
        for item in runbook.items
    ]
    verdicts = [i.verdict for i in items]
    duration = timed[-1].drill_s if timed else 0.0
    return DrillScore(
        scenario=spec.id,
        title=spec.title,
        scenario_sha256=loaded.sha256,
        runbook=runbook.id,
        runbook_version=runbook.meta.version,
        runbook_sha256=runbook.sha256,
        status=status,
        speed=speed,
        duration_s=duration,
        wall_s=round(duration / speed, 3),
        facilitator=spec.facilitator if facilitator is None else facilitator,
        participants=spec.participants,
        items=items,
        injects=_inject_scores(spec.injects, timed),
        notes=spec.notes,
        lessons=spec.lessons,
        on_time=verdicts.count(Verdict.ON_TIME),
        late=verdicts.count(Verdict.LATE),
        missed=verdicts.count(Verdict.MISSED),
        failed=verdicts.count(Verdict.FAILED),
        recovered=verdicts.count(Verdict.RECOVERED),
        inject_caused=verdicts.count(Verdict.INJECT_CAUSED),
    )


def _item_score(
    item: Item,
    history: Sequence[_Timed],
    target: float | None,
    rollbacks: frozenset[str] | set[str],
    injected: float | None,
    opened: float | None,
) -> ItemScore:
    """One step or gate as its last settling record left it (none: never reached)."""
    kind: Literal["step", "gate"] = "gate" if isinstance(item, Gate) else "step"
    if not history:
        if item.id in rollbacks:
            unreached = Verdict.NOT_NEEDED
        else:
            unreached = Verdict.MISSED if target is not None else Verdict.NOT_REACHED
        return ItemScore(
            id=item.id,
            kind=kind,
            status="not reached",
            at_s=None,
            target_s=target,
            verdict=unreached,
            opened_at_s=opened,
        )
    last = history[-1]
    status = _SETTLED[last.record.event]
    failures = [h for h in history if h.record.event is Event.STEP_FAILED]
    error = str(last.record.data.get("error") or "")
    if status == "failed":
        caused = injected is not None and injected <= last.drill_s and INJECTED in error
        verdict = Verdict.INJECT_CAUSED if caused else Verdict.FAILED
    elif status == "succeeded" and failures:
        verdict = Verdict.RECOVERED
    elif target is not None:
        verdict = Verdict.ON_TIME if last.drill_s <= target else Verdict.LATE
    else:
        verdict = Verdict.SKIPPED if status == "skipped" else Verdict.DONE
    data = last.record.data
    return ItemScore(
        id=item.id,
        kind=kind,
        status=status,
        at_s=last.drill_s,
        target_s=target,
        verdict=verdict,
        by=last.record.actor if kind == "gate" or last.record.actor != "engine" else "",
        note=str(data.get("note") or data.get("reason") or data.get("error") or ""),
        at=last.record.ts,
        failed_at_s=failures[0].drill_s if verdict is Verdict.RECOVERED else None,
        opened_at_s=opened,
    )


def _first_fault(timed: Sequence[_Timed]) -> float | None:
    """Drill time of the first `fail_integration` inject; None when none fired."""
    return next(
        (
            t.drill_s
            for t in timed
            if t.record.event is Event.DRILL_INJECT
            and t.record.data.get("kind") == "fail_integration"
        ),
        None,
    )


def _inject_scores(injects: list[Inject], timed: Sequence[_Timed]) -> list[InjectScore]:
    """Each scripted inject, in schedule order, with when it fired (None: not yet)."""
    fired = [t for t in timed if t.record.event is Event.DRILL_INJECT]
    return [
        InjectScore(
            at_s=inject.at,
            kind=inject.kind,
            text=inject.text,
            fired_at_s=fired[n].record.data["fired_at_s"] if n < len(fired) else None,
            fired_at=fired[n].record.ts if n < len(fired) else None,
        )
        for n, inject in enumerate(sorted(injects, key=lambda i: i.at))
    ]
