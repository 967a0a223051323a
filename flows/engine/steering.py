"""Steering an incident: resume, retry, skip, abort, assign, severity and notes, each recorded.

Every act comes here from the command line (`runbook skip ...`) or Slack (`/runbook skip ...`)
with the identity the channel proved. `decide_steering` says whether that person may do it, by
the runbook's `steering` section and the roster; then the act, or its refusal
(`steer.refused`, with the reason), is written to the incident's ledger. What follows an act is
the caller's: the command line resumes the run in the foreground, Slack queues a resume.

Without a roster anyone may steer, recorded as who they are, as at gates. Someone assigned a
role on the incident (`assign incident-commander bob`) holds it for this incident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from flows.engine.participants import drill_people, outsider_problem
from flows.engine.settings import Settings
from flows.engine.steerers import Scene, SteerDecision, decide_steering, load_scene
from flows.errors import RunbookError
from flows.evidence.incident import running
from flows.evidence.ledger import Ledger
from flows.evidence.population import note_standing
from flows.evidence.progress import DONE, ItemStatus, RunStatus
from flows.evidence.records import Event, RunbookRef
from flows.runbook.hints import suggest
from flows.runbook.identity import Identity, identify, who_acted
from flows.runbook.model import IDENTIFIER, SteeringAct, Step
from flows.runbook.plan import build_plan
from flows.runbook.roster import Roster

SEVERITY = re.compile(r"^sev[1-5]$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_ROLE = re.compile(IDENTIFIER)


# -- the acts ---------------------------------------------------------------------------------


def request_resume(settings: Settings, incident_id: str, identity: Identity) -> SteerDecision:
    """Ask for the run to continue (`run.resume_requested`); the caller then resumes it."""
    scene = load_scene(settings, incident_id)
    problem = _ended(scene) or (
        "its run has finished; nothing is left to run"
        if scene.last_status() == RunStatus.SUCCEEDED
        else ""
    )
    return _act(settings, scene, identity, "resume", Event.RUN_RESUME_REQUESTED, {}, problem)


def may_resume(settings: Settings, incident_id: str, identity: Identity) -> SteerDecision:
    """Whether this person may continue the run (`runbook resume`); a refusal is recorded.

    An allowed resume records nothing here: its own `run.resumed` record says it happened.
    """
    scene = load_scene(settings, incident_id)
    actor = identify(identity, scene.roster)
    decision = decide_steering(
        "resume", actor, scene.runbook, scene.incident, scene.progress, scene.roster
    )
    if not decision.allowed:
        refused = {"act": "resume", "asked": {}, **who_acted(actor, scene.roster)}
        _record(
            settings,
            scene,
            Event.STEER_REFUSED,
            None,
            actor.label,
            refused | {"reason": decision.reason},
        )
    return decision


def retry_step(
    settings: Settings, incident_id: str, identity: Identity, step: str
) -> SteerDecision:
    """Ask for a failed step to run again (`step.retry_requested`); the caller then resumes,
    which runs it once more with the same dedupe key (no second ticket or message)."""
    scene = load_scene(settings, incident_id)
    found = _step(scene, step)
    status = scene.progress.statuses.get(found.id, ItemStatus.PENDING)
    problem = _ended(scene)
    if not problem and found.id in build_plan(scene.runbook).rollbacks:
        problem = f"step {step!r} is a rollback: it runs when the step it rolls back fails"
    elif not problem and status != ItemStatus.FAILED:
        problem = f"step {step!r} is {status}, not failed: only a failed step is retried"
    return _act(
        settings, scene, identity, "retry", Event.STEP_RETRY_REQUESTED, {}, problem, step=step
    )


def skip_step(
    settings: Settings, incident_id: str, identity: Identity, step: str, reason: str
) -> SteerDecision:
    """Skip a step that has not succeeded (`step.skipped`, with the reason and who): the run
    goes on past it, and steps using its outputs fail for want of them."""
    reason = _given(reason, "a reason for skipping")
    scene = load_scene(settings, incident_id)
    found = _step(scene, step)
    status = scene.progress.statuses.get(found.id, ItemStatus.PENDING)
    problem = _ended(scene)
    if not problem and status in DONE:
        problem = f"step {step!r} is already {status}"
    elif not problem and status == ItemStatus.RUNNING and _run_going_on(scene.folder):
        problem = f"step {step!r} is running now; skip it if it fails"
    data = {"reason": reason}
    return _act(settings, scene, identity, "skip", Event.STEP_SKIPPED, data, problem, step=step)


def abort_incident(
    settings: Settings, incident_id: str, identity: Identity, reason: str
) -> SteerDecision:
    """Stop an incident for good (`run.aborted`): no step or gate of it runs again.

    A run going on stops before its next step and finishes as failed; otherwise the abort
    finishes the run itself (`run.finished`, failed, with the abort).
    """
    reason = _given(reason, "a reason for aborting")
    scene = load_scene(settings, incident_id)
    problem = _ended(scene)
    if not problem and scene.last_status() == RunStatus.SUCCEEDED:
        problem = "its run has finished; there is nothing to abort"
    with ExitStack() as stack:
        # Held, the run lock keeps any run from starting between the abort and its finish.
        held = not problem and _hold_run(stack, scene.folder)
        decision = _act(
            settings, scene, identity, "abort", Event.RUN_ABORTED, {"reason": reason}, problem
        )
        if decision.allowed and held:
            _finish_aborted(settings, scene, decision.by, reason)
    return decision


def assign_role(
    settings: Settings, incident_id: str, identity: Identity, role: str, who: str
) -> SteerDecision:
    """Assign a role of this incident to a person (`incident.assigned`): the commander, or any
    roster role. The person holds that role for this incident's steering.

    `who` is a roster person, a Slack user id or @handle the roster lists; without a roster,
    whoever is named (a Slack user id as `slack:<id>`).
    """
    scene = load_scene(settings, incident_id)
    role = _role(scene.roster, role)
    person = _person(scene.roster, who)
    commander = role == scene.runbook.meta.steering.commander
    data = {
        "role": role,
        "assignee": person,
        "commander": commander,
        "previous": scene.progress.assignments.get(role),
    }
    return _act(settings, scene, identity, "assign", Event.INCIDENT_ASSIGNED, data, _ended(scene))


def set_severity(
    settings: Settings, incident_id: str, identity: Identity, severity: str
) -> SteerDecision:
    """Change the incident's severity (`incident.severity`); steps from now on see it."""
    severity = severity.strip().lower()
    if not SEVERITY.match(severity):
        raise RunbookError(f"{severity!r} is not a severity: use sev1 (worst) to sev5")
    scene = load_scene(settings, incident_id)
    previous = scene.progress.severity or scene.incident.runbook.severity
    data = {"severity": severity, "previous": previous}
    return _act(settings, scene, identity, "severity", Event.INCIDENT_SEVERITY, data, _ended(scene))


def add_note(settings: Settings, incident_id: str, identity: Identity, text: str) -> SteerDecision:
    """Add a note to the incident's timeline (`note`), also after it ended."""
    text = _given(text, "the note's text")
    scene = load_scene(settings, incident_id)
    problem = _outsider(scene, identity, "add notes")
    return _act(settings, scene, identity, "note", Event.NOTE, {"text": text}, problem)


# -- recording --------------------------------------------------------------------------------


def _act(
    settings: Settings,
    scene: Scene,
    identity: Identity,
    act: SteeringAct,
    event: Event,
    data: Mapping[str, Any],
    problem: str,
    *,
    step: str | None = None,
) -> SteerDecision:
    """Decide, then record the act (or its refusal) in the ledger; return the decision."""
    actor = identify(identity, scene.roster)
    decision = decide_steering(
        act, actor, scene.runbook, scene.incident, scene.progress, scene.roster
    )
    if decision.allowed and problem:
        decision = SteerDecision(act, scene.incident.id, actor.label, False, reason=problem)
    who = who_acted(actor, scene.roster)
    if decision.allowed:
        recorded = {**data, **who, "authority": decision.authority, "roles": sorted(actor.roles)}
        _record(settings, scene, event, step, actor.label, recorded)
        done = _done(act, scene.incident.id, actor.label, step, data)
        return SteerDecision(
            act, scene.incident.id, actor.label, True, decision.authority, done=done
        )
    refused = {"act": act, "asked": dict(data), **who, "reason": decision.reason}
    _record(settings, scene, Event.STEER_REFUSED, step, actor.label, refused)
    return decision


def _record(
    settings: Settings,
    scene: Scene,
    event: Event,
    step: str | None,
    actor: str,
    data: Mapping[str, Any],
) -> None:
    runbook = scene.runbook
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(scene.folder, scene.incident.id, ref, settings.redactor()) as ledger:
        ledger.record(event, step=step, actor=actor, data=data)
    # The population index learns the new head, as after a gate answer.
    note_standing(settings.incidents_dir, scene.folder)


def _finish_aborted(settings: Settings, scene: Scene, by: str, reason: str) -> None:
    """The `run.finished` of an incident aborted while no run went on: failed, for good."""
    plan = build_plan(scene.runbook)
    statuses = scene.progress.statuses
    steps = {item: statuses.get(item, ItemStatus.PENDING) for item in plan.order}
    steps.update({r: statuses[r] for r in sorted(plan.rollbacks) if r in statuses})
    data = {
        "status": RunStatus.FAILED,
        "steps": steps,
        "waiting": [],
        "aborted": {"by": by, "reason": reason},
    }
    _record(settings, scene, Event.RUN_FINISHED, None, "engine", data)


def _done(
    act: SteeringAct, incident: str, by: str, step: str | None, data: Mapping[str, Any]
) -> str:
    """What an act did, in words, for the person who acted and the channel."""
    match act:
        case "resume":
            return f"{by} resumed incident {incident}"
        case "retry":
            return f"{by} asked for step {step!r} of {incident} to run again"
        case "skip":
            return f"{by} skipped step {step!r} of {incident}: {data['reason']}"
        case "abort":
            return f"{by} aborted incident {incident}: {data['reason']}"
        case "assign":
            return f"{by} assigned {data['role']} of {incident} to {data['assignee']}"
        case "severity":
            return f"{by} set incident {incident} to {data['severity']} (was {data['previous']})"
    return f"{by} noted on {incident}: {data.get('text', '')}"


# -- checks -------------------------------------------------------------------------------------


def _ended(scene: Scene) -> str:
    """Why nothing more may be done to an aborted incident; '' when it is not aborted."""
    aborted = scene.progress.aborted
    if aborted is None:
        return ""
    return f"incident {scene.incident.id} was aborted by {aborted.by} ({aborted.reason})"


def _outsider(scene: Scene, identity: Identity, doing: str) -> str:
    """Why someone may not do this in a drill: only its participants and facilitator may."""
    people = drill_people(scene.records) if scene.incident.drill else None
    if people is None:
        return ""
    return outsider_problem(identify(identity, scene.roster), people, doing)


def _step(scene: Scene, step: str) -> Step:
    """The runbook's step with this id; a RunbookError naming the steps when there is none."""
    steps = {s.id: s for s in scene.runbook.steps}
    if step in steps:
        return steps[step]
    if any(gate.id == step for gate in scene.runbook.gates):
        raise RunbookError(
            f"{step!r} is a gate of {scene.runbook.id!r}: a gate is passed by acknowledging it"
            f" (runbook ack {scene.incident.id} {step}), never retried or skipped"
        )
    raise RunbookError(
        f"runbook {scene.runbook.id!r} has no step {step!r}; "
        + suggest(step, steps, known="its steps")
    )


def _given(text: str, what: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise RunbookError(f"give {what}: it goes into the incident's evidence")
    return text


def _role(roster: Roster | None, role: str) -> str:
    """A role that may be assigned: one of the roster's, or any role name without a roster."""
    if roster is not None and role not in roster.spec.roles:
        raise RunbookError(
            f"role {role!r} is not in the roster {roster.path}; "
            + suggest(role, roster.spec.roles, known="roles")
        )
    if not _ROLE.match(role):
        raise RunbookError(f"{role!r} is not a role name: lowercase letters, digits, '-', '_'")
    return role


def _person(roster: Roster | None, who: str) -> str:
    """The roster person `who` names (id, Slack user id, @handle, OS user); without a roster,
    `who` as given (a Slack user id as `slack:<id>`)."""
    who = who.strip()
    if not who:
        raise RunbookError("name the person to assign: a roster id or a Slack @mention")
    if roster is None:
        return f"slack:{who}" if _SLACK_USER.match(who) else who
    people = roster.spec.people
    found: set[str] = {who} if who in people else set()
    if not found and _SLACK_USER.match(who):
        found = {p for p in [roster.person_of_slack_user(who)] if p}
    if not found and who.startswith("@"):
        found = roster.people_of_slack_name(who[1:])
    if not found:
        found = {p for p in [roster.person_of_os_user(who)] if p}
    if len(found) != 1:
        raise RunbookError(
            f"{who!r} is not a person of the roster {roster.path}; "
            + suggest(who, people, known="people")
        )
    return found.pop()


def _run_going_on(folder: Path) -> bool:
    """Whether a process is running this incident's steps now (it holds the run lock)."""
    with ExitStack() as stack:
        return not _hold_run(stack, folder)


def _hold_run(stack: ExitStack, folder: Path) -> bool:
    """Take the incident's run lock into `stack` when it is free; False when a run holds it."""
    try:
        stack.enter_context(running(folder))
    except RunbookError:  # held: `running` refuses at once, naming the process
        return False
    return True
