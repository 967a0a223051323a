"""Commands on incidents: run, resume, ack, reject, and the local ticket store."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

from flows.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    InputOption,
    JsonOption,
    NoInputOption,
    ReasonOption,
    err,
    prepare_prefect,
    report,
    settings,
)
from flows.cli.terminal import terminal_responder
from flows.drills.drill import resume_incident
from flows.engine.authority import Outcome
from flows.engine.registry import default_registry
from flows.engine.runner import acknowledge_gate, load_plan, start_run
from flows.engine.steering import may_resume
from flows.evidence.incident import Trigger
from flows.runbook.identity import os_identity
from flows.runbook.inputs import parse_assignments
from integrations.jira.local import LocalTicketStore


def run(
    runbook: Path,
    *,
    input: InputOption = None,
    incident: str | None = None,
    json_output: JsonOption = False,
    no_input: NoInputOption = False,
) -> int:
    """Run a runbook for a new incident (or the given --incident); waits at manual gates."""
    current = settings()
    given = parse_assignments(input or [])
    registry = default_registry(current)
    plan = load_plan(runbook, registry)  # an invalid runbook stops here, before Prefect starts
    prepare_prefect(current)
    outcome = start_run(
        current,
        runbook,
        given,
        incident_id=incident,
        trigger=Trigger.CLI,
        started_by=f"cli:{getpass.getuser()}",
        responder=terminal_responder(no_input),
        registry=registry,
        plan=plan,
    )
    return report(outcome, json_output)


def resume(
    incident: str,
    *,
    input: InputOption = None,
    json_output: JsonOption = False,
    no_input: NoInputOption = False,
) -> int:
    """Continue an incident from its first unfinished step (if you may: the runbook's steering)."""
    current = settings()
    given = parse_assignments(input or [])
    allowed = may_resume(current, incident, os_identity(getpass.getuser(), socket.gethostname()))
    if not allowed.allowed:
        err(f"resume of {incident}: {allowed.message}")
        return EXIT_FAILED
    prepare_prefect(current)
    outcome = resume_incident(current, incident, given, responder=terminal_responder(no_input))
    return report(outcome, json_output)


def ack(incident: str, gate: str, *, by: str | None = None, note: str = "") -> int:
    """Acknowledge (or approve) a manual gate of an incident as yourself.

    Who you are is your OS account on this host, matched to the roster; --by, when given, must
    name that same person (without a roster it is kept beside the account). Refusals exit 1.
    """
    identity = os_identity(getpass.getuser(), socket.gethostname(), claimed=by)
    decision = acknowledge_gate(settings(), incident, gate, identity, note)
    if decision.outcome is Outcome.REFUSED:
        err(f"gate {gate!r} of {incident}: {decision.message}")
        return EXIT_FAILED
    if decision.acknowledged:
        print(f"{decision.message}; continue with: runbook resume {incident}")
    else:
        print(decision.message)
    return EXIT_OK


def reject(incident: str, gate: str, *, reason: ReasonOption, by: str | None = None) -> int:
    """Turn down a manual gate of an incident as yourself, with the reason the auditor reads.

    Who may reject is who may pass the gate (its approvers, separation of duties); the run stops
    at the gate as failed. --by is checked as for `runbook ack`. Refusals exit 1.
    """
    if not reason.strip():
        err(f"reject of gate {gate!r} of {incident}: give the reason with --reason TEXT")
        return EXIT_FAILED
    identity = os_identity(getpass.getuser(), socket.gethostname(), claimed=by)
    decision = acknowledge_gate(settings(), incident, gate, identity, reason, reject=True)
    if decision.outcome is Outcome.REFUSED:
        err(f"gate {gate!r} of {incident}: {decision.message}")
        return EXIT_FAILED
    print(decision.message)
    return EXIT_OK


def tickets() -> int:
    """List tickets in the local ticket store: key, summary, status and incident."""
    store = LocalTicketStore(settings().home / "tickets.db")
    rows = [("KEY", "STATUS", "INCIDENT", "SUMMARY")]
    rows += [(t.key, t.status, t.incident, t.summary) for t in store.list_tickets()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[3])
    return EXIT_OK
