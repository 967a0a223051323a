"""Tabletop drills: run a library runbook against sandboxes with scripted events, and score it.

A scenario (runbooks/drills/*.yaml) names the runbook, how it is triggered, who takes part,
targets per step or gate, timed injects, canned outputs for simulated steps and scripted gate
answers. The drill runs the very same runbook through `start_run` with sandbox backends under
`<home>/drills/`, and the score goes into the incident's ledger (`drill.scored`), so the record
verifies and exports like any incident's (SOC 2 CC7.5 / CC9.1: the plan is periodically tested).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from flows.contract.actions import ActionRegistry
from flows.contract.ports import ChatSystem, GateResponder, NoResponder
from flows.drills.clock import clock_reading, paused_since
from flows.drills.injects import InjectClock
from flows.drills.logs import quiet_injected_failures
from flows.drills.scenario import (
    LoadedScenario,
    drill_alert,
    load_drilled_scenario,
    load_scenario,
    trigger_inputs,
)
from flows.drills.score import DrillScore, score_drill
from flows.drills.simulate import ScriptedResponder, drill_simulator
from flows.engine.execute import RunOutcome
from flows.engine.participants import drill_people
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
    SCENARIO_FILE,
    Trigger,
    incident_folder,
    keep_scenario,
    load_incident,
    new_incident_id,
)
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, Record, RunbookRef
from flows.evidence.redact import Redactor
from flows.evidence.verify import read_records
from flows.runbook.parse import parse_runbook
from flows.times import utc_now
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
    facilitator: str | None = None,
) -> DrillResult:
    """Run a scenario against the sandboxes, fire its injects, score it into the ledger.

    Gates are answered by `responder` (a terminal prompt in a live tabletop); without one, by
    buttons in the drill channel when `live_chat` is given and the settings name a drill
    channel, and from the scenario's `answers` otherwise. `speed` N runs N drill seconds per
    real second. `facilitator` overrides the scenario's.
    """
    if speed <= 0:
        raise RunbookError("--speed must be greater than 0")
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario)
    spec, runbook = loaded.scenario, loaded.runbook
    registry = registry or default_registry(settings)
    load_plan(loaded.runbook_path, registry)  # refuse a broken runbook before any record
    inputs = {**trigger_inputs(spec, runbook), **spec.inputs}
    alert = None
    if spec.trigger is not None and spec.trigger.alert is not None:
        alert = drill_alert(spec).template_context()
    incident = new_incident_id(f"drill-{spec.id}")
    sandbox = _sandbox(settings, echo, live_chat)
    answers: AnswerMode = "participants" if responder else _default_answers(sandbox)
    lead = spec.facilitator if facilitator is None else facilitator.strip()
    folder = incident_folder(settings.incidents_dir, incident)

    def opening() -> tuple[Event, dict[str, Any]]:
        # The copy is kept as the clock starts, once the incident's folder is open, and the
        # record that starts the clock vouches for it.
        sha256 = keep_scenario(folder, loaded.raw)
        return Event.DRILL_STARTED, _started(loaded, sha256, speed, answers, lead)

    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident, ref, Redactor()) as ledger:
        clock = InjectClock(
            spec.injects, speed, ledger, sandbox, incident, lead or "drill", opening
        )
        try:
            with quiet_injected_failures():
                outcome = start_run(
                    settings,
                    loaded.runbook_path,
                    inputs,
                    incident_id=incident,
                    alert=alert,
                    drill=True,
                    trigger=Trigger.DRILL,
                    started_by=f"drill:{lead or 'drill'}",
                    responder=clock.responder(
                        responder or _answerer(answers, loaded, speed, sandbox)
                    ),
                    registry=registry,
                    backends=lambda _: Backends(tickets=sandbox[0], chat=sandbox[1]),
                    simulate=clock.simulator(drill_simulator(spec.canned)),
                )
        finally:
            clock.stop()
        score = _score(ledger, folder, outcome, registry, loaded)
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

    Its scenario and runbook are the copies in its folder, as the drill first ran them; its
    clock goes on where it stopped. Gates are answered as when the drill started: from the
    script, by buttons in the drill channel, or by `responder` when participants answer at a
    terminal. A drill never continues against real backends, whoever resumes it.
    """
    registry = registry or default_registry(settings)
    folder = incident_folder(settings.incidents_dir, incident)
    if not load_incident(settings.incidents_dir, incident).drill:
        raise RunbookError(f"incident {incident!r} is not a drill")
    records = read_records(folder)
    started = next((r for r in records if r.event is Event.DRILL_STARTED), None)
    if started is None:
        raise RunbookError(f"drill {incident!r} has no drill.started record to continue from")
    people = drill_people(records)
    if people is not None and people.closed_by is not None:
        raise RunbookError(
            f"drill {incident!r} was closed by {people.closed_by}'s reviewer sign-off; a closed"
            " exercise never runs again: start a new drill"
        )
    loaded = drilled_scenario(folder, started)
    speed = float(started.data["speed"])
    answers: AnswerMode = started.data.get("answers", "script")
    actor = str(started.data.get("facilitator") or "") or started.actor
    sandbox = _sandbox(settings, None, live_chat if answers == "slack" else None)
    offset = clock_reading(records, speed)
    fired = sum(1 for r in records if r.event is Event.DRILL_INJECT)
    stopped = paused_since(records)

    def opening() -> tuple[Event, dict[str, Any]]:
        paused = (utc_now() - stopped).total_seconds() if stopped is not None else 0.0
        return Event.DRILL_RESUMED, {"paused_s": round(max(0.0, paused), 3), "fired": fired}

    runbook = loaded.runbook
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident, ref, Redactor()) as ledger:
        clock = InjectClock(
            loaded.scenario.injects,
            speed,
            ledger,
            sandbox,
            incident,
            actor,
            opening,
            offset_s=offset,
            fired=fired,
        )
        answerer = responder if answers == "participants" and responder else None
        try:
            with quiet_injected_failures():
                outcome = resume_run(
                    settings,
                    incident,
                    responder=clock.responder(
                        answerer or _answerer(answers, loaded, speed, sandbox)
                    ),
                    registry=registry,
                    backends=lambda _: Backends(tickets=sandbox[0], chat=sandbox[1]),
                    simulate=clock.simulator(drill_simulator(loaded.scenario.canned)),
                )
        finally:
            clock.stop()
        score = _score(ledger, folder, outcome, registry, loaded)
    return DrillResult(outcome=outcome, score=score)


def drilled_scenario(folder: Path, started: Record) -> LoadedScenario:
    """The scenario and runbook a drill ran: the copies in its folder; a drill started before
    the scenario was kept there has its library file, if unchanged since."""
    if (folder / SCENARIO_FILE).exists():
        return load_drilled_scenario(folder)
    loaded = load_scenario(Path(started.data["scenario_path"]))
    if loaded.sha256 != started.data["scenario_sha256"]:
        raise RunbookError(
            f"{loaded.path} changed since drill {folder.name!r} started, and the drill kept no"
            " copy of it: start a new drill instead"
        )
    runbook = parse_runbook(folder / DOCUMENT_FILE)
    return replace(loaded, runbook=runbook, runbook_path=folder / DOCUMENT_FILE)


AnswerMode = Literal["script", "slack", "participants"]


def _started(
    loaded: LoadedScenario, sha256: str, speed: float, answers: AnswerMode, facilitator: str
) -> dict[str, Any]:
    """The `drill.started` record's data: what a resume and the score need to go on as begun."""
    spec = loaded.scenario
    return {
        "scenario": spec.id,
        "title": spec.title,
        "scenario_path": str(loaded.path),
        "scenario_file": SCENARIO_FILE,
        "scenario_sha256": sha256,
        "speed": speed,
        "answers": answers,
        "facilitator": facilitator,
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


def _score(
    ledger: Ledger,
    folder: Path,
    outcome: RunOutcome,
    registry: ActionRegistry,
    loaded: LoadedScenario,
) -> DrillScore:
    """Score the drill as it stands, against the documents as it first ran them, and record
    it; a later `drill.scored` supersedes it."""
    records = read_records(folder)
    started = next((r for r in records if r.event is Event.DRILL_STARTED), None)
    if started is not None:
        loaded = drilled_scenario(folder, started)
    # A drill stopped before its clock started (a bad input) kept no copies: the documents
    # given are the ones it would have run.
    speed = float(started.data["speed"]) if started is not None else 1.0
    lead = str(started.data.get("facilitator") or "") if started is not None else None
    rollbacks = load_plan(loaded.runbook_path, registry).rollbacks
    score = score_drill(
        records, loaded, speed, status=outcome.status, rollbacks=rollbacks, facilitator=lead
    )
    scored = score.model_dump(mode="json")
    ledger.record(Event.DRILL_SCORED, actor=score.facilitator or "drill", data=scored)
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
