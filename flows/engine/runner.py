"""Start, resume and acknowledge incidents: glue between the CLI or server and the engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flows.contract.actions import ActionRegistry
from flows.contract.ports import GateResponder, NoResponder
from flows.engine.approvals import answer_gate, incident_roster
from flows.engine.authority import GateDecision, Outcome
from flows.engine.execute import Execution, RunOutcome, Simulator
from flows.engine.registry import default_registry
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import (
    DOCUMENT_FILE,
    INCIDENT_FILE,
    Incident,
    Trigger,
    check_incident_id,
    incident_folder,
    load_incident,
    new_incident_id,
    open_incident,
    runbook_info,
    running,
)
from flows.evidence.ledger import Ledger
from flows.evidence.population import note_opened, note_standing
from flows.evidence.progress import progress_from_records
from flows.evidence.records import Event, RunbookRef
from flows.evidence.verify import read_records
from flows.runbook.identity import Identity
from flows.runbook.inputs import resolve_inputs, secret_values
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from flows.runbook.plan import Plan, build_plan
from flows.runbook.policies import roster_problems
from flows.runbook.validate import check_runbook
from flows.times import utc_stamp
from integrations.backends import Backends, select_backends

BackendFactory = Callable[[Settings], Backends]


def default_backends(settings: Settings) -> Backends:
    """The backends for this install: Jira and Slack where configured, local ones otherwise."""
    return select_backends(settings.home, settings.jira(), settings.slack())


def load_plan(path: Path, registry: ActionRegistry) -> Plan:
    """Parse and check a runbook; any problem stops here with every message at its line."""
    runbook = parse_runbook(path)
    problems = check_runbook(runbook, registry)
    if problems:
        raise RunbookError(problems)
    return build_plan(runbook)


def _runbook_ref(runbook: Runbook) -> RunbookRef:
    return RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)


def _execution(
    settings: Settings,
    plan: Plan,
    incident: Incident,
    inputs: dict[str, Any],
    registry: ActionRegistry,
    backends: Backends,
    responder: GateResponder,
    simulate: Simulator | None = None,
) -> Execution:
    redactor = settings.redactor(secret_values(plan.runbook, inputs))
    evidence = incident_folder(settings.incidents_dir, incident.id)
    ledger = Ledger(evidence, incident.id, _runbook_ref(plan.runbook), redactor)
    return Execution(
        plan=plan,
        incident=incident,
        inputs=inputs,
        registry=registry,
        tickets=backends.tickets,
        chat=backends.chat,
        ledger=ledger,
        redactor=redactor,
        home=settings.home,
        evidence=evidence,
        responder=responder,
        simulate=simulate,
        roster=incident_roster(settings, incident.runbook.source),
    )


def _run(execution: Execution, resumed: bool) -> RunOutcome:
    from flows.engine.compile import run_flow  # Prefect is imported only when something runs

    try:
        with running(execution.evidence):
            return run_flow(execution, resumed=resumed)
    finally:
        execution.ledger.close()
        # However the run ended, the population index learns the ledger's head and status.
        note_standing(execution.evidence.parent, execution.evidence)


def start_run(
    settings: Settings,
    path: Path,
    given: Mapping[str, Any],
    *,
    incident_id: str | None = None,
    alert: dict[str, Any] | None = None,
    drill: bool = False,
    trigger: Trigger = Trigger.CLI,
    started_by: str | None = None,
    responder: GateResponder | None = None,
    registry: ActionRegistry | None = None,
    backends: BackendFactory = default_backends,
    simulate: Simulator | None = None,
    plan: Plan | None = None,
) -> RunOutcome:
    """Run a runbook for a new incident (or continue an existing one given the same id).

    `trigger` and `started_by` say how and by whom it started (kept in the chain with the
    incident's facts); `plan` is the checked plan of `path` when the caller already has it.
    """
    registry = registry or default_registry(settings)
    plan = plan or load_plan(path, registry)
    runbook = plan.runbook
    # Gates must name only who the roster knows, or nobody could ever pass them.
    problems = roster_problems(runbook, incident_roster(settings, path))
    if problems:
        raise RunbookError(problems)
    inputs = resolve_inputs(runbook, given)
    incident_id = check_incident_id(incident_id) if incident_id else new_incident_id(runbook.id)
    folder = incident_folder(settings.incidents_dir, incident_id)
    if (folder / INCIDENT_FILE).exists():
        existing = load_incident(settings.incidents_dir, incident_id)
        if existing.runbook.id != runbook.id:
            raise RunbookError(
                f"incident {incident_id!r} runs runbook {existing.runbook.id!r}, "
                f"not {runbook.id!r}; pick another --incident"
            )
        return resume_run(
            settings,
            incident_id,
            given,
            responder=responder,
            registry=registry,
            backends=backends,
            simulate=simulate,
        )
    incident = _new_incident(settings, incident_id, path, runbook, inputs, alert, drill)
    incident = incident.model_copy(update={"trigger": trigger, "started_by": started_by})
    # Listed before its folder exists: a folder the index does not name was not made here.
    note_opened(settings.incidents_dir, incident, actor=started_by or "engine")
    open_incident(settings.incidents_dir, incident, runbook.text)
    means = (registry, backends(settings), responder or NoResponder(), simulate)
    return _run(_execution(settings, plan, incident, inputs, *means), resumed=False)


def _new_incident(
    settings: Settings,
    incident_id: str,
    path: Path,
    runbook: Runbook,
    inputs: dict[str, Any],
    alert: dict[str, Any] | None,
    drill: bool,
) -> Incident:
    """What a new incident starts with: its runbook, inputs (secrets redacted), alert, time."""
    redactor = settings.redactor(secret_values(runbook, inputs))
    stored_inputs, _ = redactor.redact(inputs)
    # Alert payloads are untrusted and may carry secrets (a password label, a bearer token).
    stored_alert = None if alert is None else dict(redactor.redact(alert)[0])
    return Incident(
        id=incident_id,
        # Absolute: the roster is found from it by whoever answers later, from any folder.
        runbook=runbook_info(runbook, path.resolve()),
        inputs=stored_inputs,
        secret_inputs=tuple(n for n, s in runbook.meta.inputs.items() if s.secret),
        alert=stored_alert,
        started_at=utc_stamp(),
        drill=drill,
    )


def _incident_plan(settings: Settings, incident: Incident, registry: ActionRegistry) -> Plan:
    """The plan of the document exactly as the incident first ran it."""
    document = incident_folder(settings.incidents_dir, incident.id) / DOCUMENT_FILE
    plan = load_plan(document, registry)
    if plan.runbook.sha256 != incident.runbook.sha256:
        raise RunbookError(
            f"{document} no longer matches the hash recorded when incident {incident.id!r} "
            "started; the copy of the document as run must not be edited"
        )
    return plan


def resume_run(
    settings: Settings,
    incident_id: str,
    given: Mapping[str, Any] | None = None,
    *,
    responder: GateResponder | None = None,
    registry: ActionRegistry | None = None,
    backends: BackendFactory = default_backends,
    simulate: Simulator | None = None,
) -> RunOutcome:
    """Continue an incident from its first unfinished step; finished steps never run again."""
    registry = registry or default_registry(settings)
    incident = load_incident(settings.incidents_dir, incident_id)
    records = read_records(incident_folder(settings.incidents_dir, incident_id))
    aborted = progress_from_records(records).aborted
    if aborted is not None:
        raise RunbookError(
            f"incident {incident_id!r} was aborted by {aborted.by} at {aborted.at}"
            f" ({aborted.reason}); an aborted incident never runs again"
        )
    if incident.drill and simulate is None:
        # A drill never continues against real backends: flows.drills resumes it in its sandboxes.
        raise RunbookError(
            f"incident {incident_id!r} is a drill; it continues in its sandboxes: "
            f"runbook resume {incident_id}"
        )
    plan = _incident_plan(settings, incident, registry)
    given = dict(given or {})
    missing = [name for name in incident.secret_inputs if name not in given]
    stored = {k: v for k, v in incident.inputs.items() if k not in incident.secret_inputs}
    if missing:
        declared = plan.runbook.meta.inputs
        required = [n for n in missing if declared[n].required and declared[n].default is None]
        if required:
            raise RunbookError(
                f"incident {incident_id!r} has secret inputs that are never stored: "
                + ", ".join(f"--input {n}=..." for n in required)
            )
    inputs = resolve_inputs(plan.runbook, {**stored, **given})
    means = (registry, backends(settings), responder or NoResponder(), simulate)
    # A run stopped before its first record (a full disk, a kill) still starts the ledger.
    started = any(r.event is Event.RUN_STARTED for r in records)
    return _run(_execution(settings, plan, incident, inputs, *means), resumed=started)


def acknowledge_gate(
    settings: Settings,
    incident_id: str,
    gate_id: str,
    identity: Identity,
    note: str = "",
    *,
    reject: bool = False,
) -> GateDecision:
    """Answer a gate of an incident as `identity` (who the channel proved is acting).

    The decision is recorded (`gate.acknowledged`, `gate.approved` or `gate.refused`; with
    `reject`, `gate.rejected` and `note` as its reason) and returned; nothing is recorded for a
    gate already acknowledged. Build the identity with
    `flows.runbook.identity`: `os_identity` for the command line, `slack_identity` for a
    signed Slack request.
    """
    incident = load_incident(settings.incidents_dir, incident_id)
    folder = incident_folder(settings.incidents_dir, incident_id)
    runbook = parse_runbook(folder / DOCUMENT_FILE)
    gates = {gate.id: gate for gate in runbook.gates}
    if gate_id not in gates:
        known = ", ".join(gates) or "none"
        raise RunbookError(f"runbook {runbook.id!r} has no gate {gate_id!r}; its gates: {known}")
    roster = incident_roster(settings, incident.runbook.source)
    with Ledger(folder, incident.id, _runbook_ref(runbook), settings.redactor()) as ledger:
        decision = answer_gate(
            ledger,
            gates[gate_id],
            identity,
            incident=incident,
            roster=roster,
            note=note,
            reject=reject,
        )
    if decision.outcome is not Outcome.ALREADY:
        note_standing(settings.incidents_dir, folder)
    return decision


def record_alert_event(
    settings: Settings,
    incident_id: str,
    alert: Mapping[str, Any],
    event: str,
    dedupe_key: str,
    *,
    backends: BackendFactory = default_backends,
) -> list[str]:
    """Record an event of the incident's alert in its evidence and comment on its tickets.

    `event` is what happened (`resolved`, `acknowledged`, `escalated`, `updated`, `fired
    again`): a resolution is `alert.resolved`, anything else `alert.updated`. Nothing new
    starts: the responders decide when the incident is over. `dedupe_key` names this one event
    (the job that carries it), so a retried job comments once. Returns the ticket keys
    commented on.
    """
    incident = load_incident(settings.incidents_dir, incident_id)
    folder = incident_folder(settings.incidents_dir, incident_id)
    runbook = parse_runbook(folder / DOCUMENT_FILE)
    records = read_records(folder)
    uses = {r.step: r.data.get("uses") for r in records if r.event is Event.STEP_STARTED}
    keys = [
        str(r.outputs["key"])
        for r in records
        if uses.get(r.step) == "jira.create_issue" and "key" in r.outputs
    ]
    source = str(alert.get("source", "alert"))
    resolved = event == "resolved"
    kind = Event.ALERT_RESOLVED if resolved else Event.ALERT_UPDATED
    data: dict[str, Any] = (
        {"alert": dict(alert)} if resolved else {"alert": dict(alert), "event": event}
    )
    with Ledger(folder, incident.id, _runbook_ref(runbook), settings.redactor()) as ledger:
        if not any(r.event is kind and r.data.get("dedupe") == dedupe_key for r in records):
            ledger.record(kind, actor=f"alert:{source}", data={**data, "dedupe": dedupe_key})
    note_standing(settings.incidents_dir, folder)
    tickets = backends(settings).tickets
    name = alert.get("labels", {}).get("alertname") or alert.get("identity", "")
    said = (
        "has resolved. Nothing was started; close the incident when the runbook's gates are done."
        if resolved
        else f"was {event} at the source ({source}). Nothing was started."
    )
    for key in keys:
        tickets.comment(
            key, f"The {source} alert that opened this incident ({name}) {said}", dedupe_key
        )
    return keys
