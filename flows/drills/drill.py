"""Tabletop drills: run a library runbook against sandboxes with scripted events, and score it.

A scenario (runbooks/drills/*.yaml) names the runbook, how it is triggered, who takes part,
targets per step or gate, timed injects, canned outputs for simulated steps and scripted gate
answers. The drill runs the very same runbook through `start_run` with sandbox backends under
`<home>/drills/`, and the score goes into the incident's ledger (`drill.scored`), so the record
verifies and exports like any incident's (SOC 2 CC7.5 / CC9.1: the plan is periodically tested).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flows.contract.actions import ActionRegistry
from flows.contract.ports import ChatSystem, GateResponder, NoResponder
from flows.drills.injects import InjectClock
from flows.drills.scenario import (
    LoadedScenario,
    Scenario,
    drill_alert,
    load_scenario,
    trigger_inputs,
)
from flows.drills.score import DrillScore, score_drill
from flows.drills.simulate import ScriptedResponder, drill_simulator
from flows.engine.execute import RunOutcome
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
from flows.evidence.incident import (
    DOCUMENT_FILE,
    Trigger,
    incident_folder,
    load_incident,
    new_incident_id,
)
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, RunbookRef
from flows.evidence.redact import Redactor
from flows.evidence.verify import read_records
from integrations.backends import Backends
from integrations.sandbox import DrillChat, DrillTickets, drill_backends
from integrations.slack.gates import ChatGateResponder
from integrations.slack.local import Echo


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
    registry = registry or default_registry(settings)
    plan = load_plan(loaded.runbook_path, registry)  # refuse a broken runbook before any record
    inputs = {**trigger_inputs(spec, runbook), **spec.inputs}
    alert = None
    if spec.trigger is not None and spec.trigger.alert is not None:
        alert = drill_alert(spec).template_context()
    incident = new_incident_id(f"drill-{spec.id}")
    sandbox = _sandbox(settings, echo, live_chat)
    answers: AnswerMode = "participants" if responder else _default_answers(sandbox)
    started = _started(loaded, speed, answers)
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
                trigger=Trigger.DRILL,
                started_by=f"drill:{_actor(spec)}",
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
    registry = registry or default_registry(settings)
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


def _started(loaded: LoadedScenario, speed: float, answers: AnswerMode) -> dict[str, Any]:
    """The `drill.started` record's data: what a resume needs to go on exactly as begun."""
    spec = loaded.scenario
    return {
        "scenario": spec.id,
        "title": spec.title,
        "scenario_path": str(loaded.path),
        "scenario_sha256": loaded.sha256,
        "speed": speed,
        "answers": answers,
        "participants": [p.model_dump() for p in spec.participants],
        "targets": spec.targets,
    }


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
