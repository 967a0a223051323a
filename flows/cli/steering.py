"""Steering incidents from the terminal: status, retry, skip, abort, assign, severity, note.

Who you are is your OS account on this host, as for `runbook ack`, matched to the roster; each
act, or its refusal, goes into the incident's ledger. `retry` and `skip` then continue the run
here, as `runbook resume` does. Refusals exit 1.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import asdict
from typing import Any

from flows.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    InputOption,
    JsonOption,
    NoInputOption,
    ReasonOption,
    err,
)
from flows.cli.common import settings as load_settings
from flows.engine import steering
from flows.engine.status import IncidentStatus, incident_status, open_incidents
from flows.engine.steerers import SteerDecision
from flows.runbook.identity import Identity, os_identity


def _me() -> Identity:
    """Who is at this terminal: the OS account on this host (`runbook ack` proves the same)."""
    return os_identity(getpass.getuser(), socket.gethostname())


def _told(decision: SteerDecision) -> int:
    """Print what was done, or the refusal on stderr; the exit code."""
    if not decision.allowed:
        err(f"{decision.act} of {decision.incident}: {decision.message}")
        return EXIT_FAILED
    print(decision.message)
    return EXIT_OK


def status(incident: str | None = None, *, json_output: JsonOption = False) -> int:
    """Where an incident stands; without one, every open incident you may see."""
    current = load_settings()
    if incident is not None:
        decision, found = incident_status(current, incident, _me())
        if found is None:
            return _told(decision)
        print(json.dumps(_json(found)) if json_output else _one(found))
        return EXIT_OK
    shown = open_incidents(current, _me())
    if json_output:
        print(json.dumps([_json(s) for s in shown]))
    elif not shown:
        print("no open incidents you may see")
    else:
        print(_table(shown))
    return EXIT_OK


def retry(
    incident: str,
    step: str,
    *,
    input: InputOption = None,
    json_output: JsonOption = False,
    no_input: NoInputOption = False,
) -> int:
    """Run a failed step again, then continue the run (its dedupe key makes no second ticket)."""
    decision = steering.retry_step(load_settings(), incident, _me(), step)
    if _told(decision) != EXIT_OK:
        return EXIT_FAILED
    return _resume(incident, input, json_output, no_input)


def skip(
    incident: str,
    step: str,
    *,
    reason: ReasonOption,
    input: InputOption = None,
    json_output: JsonOption = False,
    no_input: NoInputOption = False,
) -> int:
    """Skip a step that has not succeeded, saying why, then continue the run past it."""
    decision = steering.skip_step(load_settings(), incident, _me(), step, reason)
    if _told(decision) != EXIT_OK:
        return EXIT_FAILED
    return _resume(incident, input, json_output, no_input)


def abort(incident: str, *, reason: ReasonOption) -> int:
    """Stop an incident for good, saying why: none of its steps or gates runs again."""
    return _told(steering.abort_incident(load_settings(), incident, _me(), reason))


def assign(incident: str, role: str, person: str) -> int:
    """Assign a role of the incident (its commander, ...) to a person of the roster."""
    return _told(steering.assign_role(load_settings(), incident, _me(), role, person))


def severity(incident: str, level: str) -> int:
    """Change the incident's severity (sev1 to sev5); later steps see the new one."""
    return _told(steering.set_severity(load_settings(), incident, _me(), level))


def note(incident: str, *text: str) -> int:
    """Add a note to the incident's timeline."""
    return _told(steering.add_note(load_settings(), incident, _me(), " ".join(text)))


def _resume(incident: str, given: list[str] | None, as_json: bool, no_input: bool) -> int:
    """Continue the run here, exactly as `runbook resume` does."""
    # Imported here: it loads the drills and Prefect's client, which `status` never needs.
    from flows.cli.incidents import resume

    return resume(incident, input=given, json_output=as_json, no_input=no_input)


def _one(found: IncidentStatus) -> str:
    lines = [
        f"incident {found.id} ({found.runbook}): {found.status}",
        f"  {found.title}, {found.severity}, commander {found.commander or '-'},"
        f" started {found.started_at}",
    ]
    lines += [f"  assigned {role}: {person}" for role, person in found.assignments.items()]
    if found.aborted is not None:
        lines.append(
            f"  aborted by {found.aborted.by} at {found.aborted.at}: {found.aborted.reason}"
        )
    lines += [f"  {status:<12} {item}" for item, status in found.steps.items()]
    for clock in found.clocks:
        which = f"{clock.clock} {clock.milestone}".strip()
        lines.append(f"  clock {which}: {clock.summary}")
        lines.append(f"    {clock.title}")
    return "\n".join(lines)


def _table(shown: list[IncidentStatus]) -> str:
    rows = [("INCIDENT", "SEVERITY", "STATUS", "COMMANDER", "WAITING", "FAILED", "TITLE")]
    rows += [
        (
            s.id,
            s.severity,
            s.status,
            s.commander or "-",
            ",".join(s.waiting) or "-",
            ",".join(s.failed) or "-",
            s.title,
        )
        for s in shown
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    )


def _json(found: IncidentStatus) -> dict[str, Any]:
    body = asdict(found)
    body["steps"] = {item: str(status) for item, status in found.steps.items()}
    return body
