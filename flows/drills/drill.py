"""Tabletop drills: run a library runbook against sandboxes with scripted events, and score it.

A scenario (runbooks/drills/*.yaml) names the runbook, how it is triggered, who takes part,
targets per step or gate, timed injects, canned outputs for simulated steps and scripted gate
answers. The drill runs the very same runbook through `start_run` with sandbox backends under
`<home>/drills/`, and the score goes into the incident's ledger (`drill.scored`), so the record
verifies and exports like any incident's (SOC 2 CC7.5 / CC9.1: the plan is periodically tested).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from flows.contract.actions import Action, ActionRegistry, Reach
from flows.contract.ports import ChatSystem, GateAnswer, GateResponder, NoResponder
from flows.drills.scenario import (
    Inject,
    LoadedScenario,
    Participant,
    Scenario,
    ScriptedAnswer,
    drill_alert,
    load_scenario,
    trigger_inputs,
)
from flows.engine.execute import RunOutcome, Simulator
from flows.engine.registry import default_registry
from flows.engine.runner import (
    BackendFactory,
    default_backends,
    load_plan,
    resume_run,
    start_run,
)
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import DOCUMENT_FILE, incident_folder, load_incident, new_incident_id
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, Record, RunbookRef
from flows.evidence.redact import Redactor
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.model import Gate, Step
from integrations.backends import Backends
from integrations.sandbox import DrillChat, DrillTickets, drill_backends
from integrations.slack.local import Echo

_DEFAULT_OUTPUTS: dict[str, Any] = {"exit_code": 0, "status": 200, "truncated": False}
_SANDBOXED = frozenset({Reach.EVIDENCE, Reach.PORTS})
"""Reaches a drill lets act: the drill's own evidence, and the ports it swaps for sandboxes."""


def drill_simulator(canned: Mapping[str, Mapping[str, Any]]) -> Simulator:
    """Canned outputs for scenario steps; defaults for actions that reach outside or do not say."""

    def simulate(step: Step, action: Action, args: BaseModel) -> Mapping[str, Any] | None:
        if step.spec.drill == "run":
            return None
        if step.id in canned:
            return {"simulated": True, **canned[step.id]}
        if action.reach in _SANDBOXED:
            return None
        return {"simulated": True, **{o: _DEFAULT_OUTPUTS.get(o, "") for o in action.outputs}}

    return simulate


class ScriptedResponder:
    """Participants answer gates as the scenario scripts it, taking `after` (scaled by speed)."""

    def __init__(
        self,
        answers: Mapping[str, ScriptedAnswer],
        speed: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.answers, self.speed, self.sleep = answers, speed, sleep

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None:
        """The scripted answer after its delay; None when the script has no answer."""
        answer = self.answers.get(gate.id)
        if answer is None:
            return None
        self.sleep(answer.after / self.speed)
        return GateAnswer(by=answer.by, note=answer.note, via="drill")


# -- injects -------------------------------------------------------------------------------------


class InjectClock:
    """The drill clock: starts at the runbook's first step or gate, fires injects on schedule.

    Drill time begins when the runbook does, not when the process does, so document checks and
    Prefect's start-up (which a high speed would magnify into minutes) never count. Injects due
    at the start fire before the first item acts, so a drill that begins with a failing
    integration is deterministic. Each inject is recorded (`drill.inject`) and shown in the
    drill outbox, where participants see it.
    """

    def __init__(
        self,
        injects: list[Inject],
        speed: float,
        ledger: Ledger,
        sandbox: tuple[DrillTickets, DrillChat],
        incident: str,
        actor: str,
        started: Mapping[str, Any] | None,
        *,
        elapsed_s: float = 0.0,
        fired: int = 0,
    ) -> None:
        """`started` None continues a drill: `elapsed_s` real seconds have passed since its
        clock started and its first `fired` injects have fired."""
        self.pending = sorted(injects, key=lambda inject: inject.at)[fired:]
        self.speed, self.ledger, self.sandbox = speed, ledger, sandbox
        self.incident, self.actor, self.started = incident, actor, started
        self.fired = fired
        self._elapsed = elapsed_s
        self._start = time.monotonic() - elapsed_s
        self._once = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drill-injects", daemon=True)

    def start(self) -> None:
        """Record `drill.started` and fire what is due now, the rest from a thread (once)."""
        with self._once:
            if self._thread.ident is not None or self._stop.is_set():
                return
            self._start = time.monotonic() - self._elapsed
            if self.started is not None:
                self.ledger.record(Event.DRILL_STARTED, actor=self.actor, data=self.started)
            while self.pending and self.pending[0].at <= self._elapsed * self.speed:
                self._fire(self.pending.pop(0))
            self._thread.start()

    def simulator(self, inner: Simulator) -> Simulator:
        """`inner`, starting the clock first: the engine calls it as every step acts."""

        def simulate(step: Step, action: Action, args: BaseModel) -> Mapping[str, Any] | None:
            self.start()
            return inner(step, action, args)

        return simulate

    def responder(self, inner: GateResponder) -> GateResponder:
        """`inner`, starting the clock first: the engine asks it as every gate opens."""
        return _ClockedResponder(self, inner)

    def stop(self) -> None:
        """Stop firing; injects not yet due stay unfired (the score lists them)."""
        with self._once:
            self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()

    def _loop(self) -> None:
        while self.pending:
            due = self._start + self.pending[0].at / self.speed
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self._fire(self.pending.pop(0))

    def _fire(self, inject: Inject) -> None:
        tickets, chat = self.sandbox
        if inject.kind == "fail_integration":
            (tickets if inject.system == "tickets" else chat).faults.add(inject.times)
        self.fired += 1
        data = inject.model_dump(mode="json")
        data["fired_at_s"] = round((time.monotonic() - self._start) * self.speed, 3)
        self.ledger.record(Event.DRILL_INJECT, actor=self.actor, data=data)
        shown = inject.text or inject.kind
        if inject.kind == "fail_integration":
            shown = f"{inject.system} is failing: {inject.text}" if inject.text else shown
        chat.announce(f"inject: {shown}", f"{self.incident}:inject:{self.fired}")


@dataclass(frozen=True)
class _ClockedResponder:
    clock: InjectClock
    inner: GateResponder

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None:
        self.clock.start()
        return self.inner.ask(gate, incident)


# -- running a drill -----------------------------------------------------------------------------


class ItemScore(BaseModel):
    """One step or gate: when it was reached (drill seconds), against its target."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["step", "gate"]
    status: str
    at_s: float | None
    target_s: float | None
    verdict: Literal["on-time", "late", "done", "skipped", "failed", "missed", "not-needed"]
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


@dataclass(frozen=True)
class DrillResult:
    """How the drill's run ended and its score."""

    outcome: RunOutcome
    score: DrillScore


def run_drill(
    settings: Settings,
    scenario: Path | LoadedScenario,
    *,
    speed: float = 1.0,
    responder: GateResponder | None = None,
    registry: ActionRegistry | None = None,
    echo: Echo | None = None,
    live_chat: ChatSystem | None = None,
) -> DrillResult:
    """Run a scenario against the sandboxes, fire its injects, score it into the ledger.

    Gates are answered by `responder` (a terminal prompt in a live tabletop); without one, by
    buttons in the drill channel when `live_chat` is given and the settings name a drill
    channel, and from the scenario's `answers` otherwise. `speed` N runs N drill seconds per
    real second.
    """
    if speed <= 0:
        raise RunbookError("--speed must be greater than 0")
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario)
    spec, runbook = loaded.scenario, loaded.runbook
    registry = registry or default_registry()
    plan = load_plan(loaded.runbook_path, registry)  # refuse a broken runbook before any record
    inputs = {**trigger_inputs(spec, runbook), **spec.inputs}
    alert = None
    if spec.trigger is not None and spec.trigger.alert is not None:
        alert = drill_alert(spec).template_context()
    incident = new_incident_id(f"drill-{spec.id}")
    sandbox = _sandbox(settings, echo, live_chat)
    answers: AnswerMode = "participants" if responder else _default_answers(sandbox)
    started = {
        "scenario": spec.id,
        "title": spec.title,
        "scenario_path": str(loaded.path),
        "scenario_sha256": loaded.sha256,
        "speed": speed,
        "answers": answers,
        "participants": [p.model_dump() for p in spec.participants],
        "targets": spec.targets,
    }
    folder = incident_folder(settings.incidents_dir, incident)
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident, ref, Redactor()) as ledger:
        clock = InjectClock(spec.injects, speed, ledger, sandbox, incident, _actor(spec), started)
        try:
            outcome = start_run(
                settings,
                loaded.runbook_path,
                inputs,
                incident_id=incident,
                alert=alert,
                drill=True,
                responder=clock.responder(responder or _answerer(answers, loaded, speed, sandbox)),
                registry=registry,
                backends=lambda _: Backends(tickets=sandbox[0], chat=sandbox[1]),
                simulate=clock.simulator(drill_simulator(spec.canned)),
            )
        finally:
            clock.stop()
        score = _score(ledger, folder, loaded, speed, outcome, plan.rollbacks)
    return DrillResult(outcome=outcome, score=score)


def resume_drill(
    settings: Settings,
    incident: str,
    *,
    responder: GateResponder | None = None,
    registry: ActionRegistry | None = None,
    live_chat: ChatSystem | None = None,
) -> DrillResult:
    """Continue a drill that waits at a gate: the same sandboxes, simulations and clock.

    Gates are answered as when the drill started: from the script, by buttons in the drill
    channel, or by `responder` when participants answer at a terminal. A drill never continues
    against real backends, whoever resumes it.
    """
    registry = registry or default_registry()
    folder = incident_folder(settings.incidents_dir, incident)
    if not load_incident(settings.incidents_dir, incident).drill:
        raise RunbookError(f"incident {incident!r} is not a drill")
    records = read_records(folder)
    started = next((r for r in records if r.event is Event.DRILL_STARTED), None)
    if started is None:
        raise RunbookError(f"drill {incident!r} has no drill.started record to continue from")
    loaded = load_scenario(Path(started.data["scenario_path"]))
    if loaded.sha256 != started.data["scenario_sha256"]:
        raise RunbookError(
            f"{loaded.path} changed since drill {incident!r} started; a drill is continued with "
            "the scenario it started with: start a new drill instead"
        )
    speed = float(started.data["speed"])
    answers: AnswerMode = started.data.get("answers", "script")
    sandbox = _sandbox(settings, None, live_chat if answers == "slack" else None)
    plan = load_plan(folder / DOCUMENT_FILE, registry)  # the document as the drill first ran it
    runbook = loaded.runbook
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident, ref, Redactor()) as ledger:
        clock = InjectClock(
            loaded.scenario.injects,
            speed,
            ledger,
            sandbox,
            incident,
            _actor(loaded.scenario),
            None,
            elapsed_s=max(0.0, time.time() - started.at.timestamp()),
            fired=sum(1 for r in records if r.event is Event.DRILL_INJECT),
        )
        answerer = responder if answers == "participants" and responder else None
        try:
            outcome = resume_run(
                settings,
                incident,
                responder=clock.responder(answerer or _answerer(answers, loaded, speed, sandbox)),
                registry=registry,
                backends=lambda _: Backends(tickets=sandbox[0], chat=sandbox[1]),
                simulate=clock.simulator(drill_simulator(loaded.scenario.canned)),
            )
        finally:
            clock.stop()
        score = _score(ledger, folder, loaded, speed, outcome, plan.rollbacks)
    return DrillResult(outcome=outcome, score=score)


AnswerMode = Literal["script", "slack", "participants"]


def _sandbox(
    settings: Settings, echo: Echo | None, live_chat: ChatSystem | None
) -> tuple[DrillTickets, DrillChat]:
    # Only real Slack has buttons someone can press: without it the drill stays in the outbox.
    channel = settings.slack_drill_channel if settings.slack() is not None else None
    return drill_backends(settings.home, echo, live_chat=live_chat, drill_channel=channel)


def _default_answers(sandbox: tuple[DrillTickets, DrillChat]) -> AnswerMode:
    return "slack" if sandbox[1].pinned else "script"


def _answerer(
    answers: AnswerMode,
    loaded: LoadedScenario,
    speed: float,
    sandbox: tuple[DrillTickets, DrillChat],
) -> GateResponder:
    chat = sandbox[1]
    if answers == "slack" and chat.pinned:
        from integrations.slack.gates import ChatGateResponder

        return ChatGateResponder(chat, loaded.scenario.title, lambda: chat.pinned)
    if answers == "script":
        return ScriptedResponder(loaded.scenario.answers, speed)
    return NoResponder()


def _actor(spec: Scenario) -> str:
    """Who the drill's own records (start, injects, score) are by."""
    return spec.facilitator or "drill"


def _score(
    ledger: Ledger,
    folder: Path,
    loaded: LoadedScenario,
    speed: float,
    outcome: RunOutcome,
    rollbacks: frozenset[str],
) -> DrillScore:
    """Score the drill as it stands and record it; a later `drill.scored` supersedes it."""
    score = score_drill(
        read_records(folder), loaded, speed, status=outcome.status, rollbacks=rollbacks
    )
    scored = score.model_dump(mode="json")
    ledger.record(Event.DRILL_SCORED, actor=_actor(loaded.scenario), data=scored)
    return score


# -- scoring and the report ----------------------------------------------------------------------

_REACHED = {
    Event.STEP_SUCCEEDED: "succeeded",
    Event.STEP_FAILED: "failed",
    Event.STEP_SKIPPED: "skipped",
    Event.GATE_ACKNOWLEDGED: "acknowledged",
}


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
    items = []
    for item in runbook.items:
        record = reached.get(item.id)
        kind: Literal["step", "gate"] = "gate" if isinstance(item, Gate) else "step"
        target = spec.targets.get(item.id)
        if record is None:
            verdict = "not-needed" if item.id in rollbacks else "missed"
            items.append(
                ItemScore(
                    id=item.id,
                    kind=kind,
                    status="not reached",
                    at_s=None,
                    target_s=target,
                    verdict=verdict,
                )
            )
            continue
        at = drill_time(record)
        outcome = _REACHED[record.event]
        data = record.data
        if outcome == "failed":
            verdict = "failed"
        elif target is not None:
            verdict = "on-time" if at <= target else "late"
        else:
            verdict = "skipped" if outcome == "skipped" else "done"
        items.append(
            ItemScore(
                id=item.id,
                kind=kind,
                status=outcome,
                at_s=at,
                target_s=target,
                verdict=verdict,
                by=record.actor if kind == "gate" else "",
                note=str(data.get("note") or data.get("error") or ""),
            )
        )
    fired = [r for r in records if r.event is Event.DRILL_INJECT]
    injects = [
        InjectScore(
            at_s=inject.at,
            kind=inject.kind,
            text=inject.text,
            fired_at_s=fired[n].data["fired_at_s"] if n < len(fired) else None,
        )
        for n, inject in enumerate(sorted(spec.injects, key=lambda i: i.at))
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
        injects=injects,
        notes=spec.notes,
        lessons=spec.lessons,
        on_time=verdicts.count("on-time"),
        late=verdicts.count("late"),
        missed=verdicts.count("missed"),
        failed=verdicts.count("failed"),
    )


def add_drill_note(
    settings: Settings, incident: str, text: str, by: str, *, lesson: bool = False
) -> None:
    """Record a facilitator's note (or a lesson learned) in a drill incident's ledger."""
    if not text.strip() or not by.strip():
        raise RunbookError("a drill note needs its text and who wrote it (--by)")
    found = load_incident(settings.incidents_dir, incident)
    if not found.drill:
        raise RunbookError(f"incident {incident!r} is not a drill; use `runbook note` instead")
    ref = RunbookRef(
        id=found.runbook.id, version=found.runbook.version, sha256=found.runbook.sha256
    )
    folder = incident_folder(settings.incidents_dir, incident)
    with Ledger(folder, incident, ref, Redactor()) as ledger:
        event = Event.DRILL_LESSON if lesson else Event.DRILL_NOTE
        ledger.record(event, actor=by, data={"text": text})


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return (
        f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"
    )


def drill_report(home: Path, incident: str) -> str:
    """A plain-text summary of a scored drill: score, timeline against targets, injects, notes."""
    folder = incident_folder(home / "incidents", incident)
    records = read_records(folder)
    scored = [r for r in records if r.event is Event.DRILL_SCORED]
    if not scored:
        raise RunbookError(f"incident {incident!r} has no scored drill under {home}")
    score = DrillScore.model_validate(scored[-1].data)
    people = ", ".join(f"{p.name} ({p.role})" if p.role else p.name for p in score.participants)
    lines = [
        f"Drill {score.scenario}: {score.title}",
        f"Incident {incident}, runbook {score.runbook} v{score.runbook_version}, "
        f"run {score.status}, speed {score.speed:g}x, drill time {_clock(score.duration_s)}",
        f"Facilitator: {score.facilitator or '-'}; participants: {people}",
        f"Score: {score.on_time} on time, {score.late} late, {score.missed} missed, "
        f"{score.failed} failed",
        "",
        f"{'item':<24} {'kind':<5} {'target':>8} {'reached':>8}  {'verdict':<10} by / note",
    ]
    for item in score.items:
        who = "; ".join(part for part in (item.by, item.note) if part)
        lines.append(
            f"{item.id:<24} {item.kind:<5} {_clock(item.target_s):>8} {_clock(item.at_s):>8}  "
            f"{item.verdict:<10} {who}".rstrip()
        )
    if score.injects:
        lines += ["", "Injects:"]
        for inject in score.injects:
            when = (
                f"fired at +{_clock(inject.fired_at_s)}"
                if inject.fired_at_s is not None
                else "not fired (the drill ended first)"
            )
            lines.append(f"  +{_clock(inject.at_s)} {inject.kind}: {inject.text or '-'} ({when})")
    notes = [
        *score.notes,
        *(f"{r.data['text']} ({r.actor})" for r in records if r.event is Event.DRILL_NOTE),
    ]
    lessons = [
        *score.lessons,
        *(f"{r.data['text']} ({r.actor})" for r in records if r.event is Event.DRILL_LESSON),
    ]
    for heading, entries in (("Facilitator notes:", notes), ("Lessons learned:", lessons)):
        if entries:
            lines += ["", heading, *(f"  - {entry}" for entry in entries)]
    check = verify_ledger(folder)
    state = f"verifies ({check.count} records)" if check.ok else f"FAILS: {check.problem}"
    lines += ["", f"Evidence: ledger {state}"]
    return "\n".join(lines)


def resume_incident(
    settings: Settings,
    incident_id: str,
    given: Mapping[str, Any] | None = None,
    *,
    responder: GateResponder | None = None,
    backends: BackendFactory = default_backends,
) -> RunOutcome:
    """Continue any incident: a drill in its sandboxes, a real incident against its backends."""
    if load_incident(settings.incidents_dir, incident_id).drill:
        live_chat = backends(settings).chat
        return resume_drill(settings, incident_id, responder=responder, live_chat=live_chat).outcome
    return resume_run(settings, incident_id, given, responder=responder, backends=backends)
