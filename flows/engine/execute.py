"""Walk a checked plan for one incident: gates, conditions, templates, failures, evidence.

This module knows nothing of Prefect. `compile.py` hands it a `StepCall` that runs each step as a
Prefect task; tests of the walking rules can hand it a plain function. Every state change is written
to the ledger before the walk moves on, so the ledger always tells where a resume must start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from flows.contract.actions import Action, ActionContext, ActionRegistry
from flows.contract.ports import (
    ChatSystem,
    GateListener,
    GateResponder,
    NoResponder,
    TicketSystem,
)
from flows.engine.approvals import answer_gate, answer_identity
from flows.engine.brief import incident_brief, timeline_text
from flows.engine.gate_timers import act_on_due
from flows.engine.timeouts import GRACE_S, Abandoned, act_by_deadline
from flows.evidence.incident import Incident, incident_facts
from flows.evidence.ledger import Ledger
from flows.evidence.progress import DONE, Abort, ItemStatus, RunStatus, progress_from_records
from flows.evidence.records import Event, Record
from flows.evidence.redact import REDACTED, Redactor
from flows.evidence.verify import read_records
from flows.runbook.model import Gate, Step
from flows.runbook.plan import Plan
from flows.runbook.roster import Roster
from flows.runbook.templates import TemplateFailure, escapes_of, evaluate, render_arguments
from flows.times import utc_now

Simulator = Callable[[Step, Action, BaseModel], Mapping[str, Any] | None]
"""Given a step, its action and rendered arguments: canned outputs, or None to act for real."""

StepCall = Callable[[Step, Callable[[], Mapping[str, Any]]], Mapping[str, Any]]
"""Runs one step's action thunk (with retries) and returns its outputs. Each call of the thunk
is one attempt, and the thunk itself ends an attempt at the step's `timeout_s`."""


def call_directly(step: Step, act: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    """A StepCall without an orchestrator: call once, no retries."""
    return act()


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, in the shape `runbook run --json` prints."""

    incident: str
    runbook: str
    status: RunStatus
    steps: dict[str, ItemStatus]
    evidence: Path
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object printed by the CLI."""
        body: dict[str, Any] = {
            "incident": self.incident,
            "runbook": self.runbook,
            "status": self.status,
            "evidence": str(self.evidence),
            "steps": self.steps,
        }
        if self.error:
            body["error"] = self.error
        return body


@dataclass
class Execution:
    """Everything one run of one incident needs; built by the runner, walked by `execute`."""

    plan: Plan
    incident: Incident
    inputs: dict[str, Any]
    registry: ActionRegistry
    tickets: TicketSystem
    chat: ChatSystem
    ledger: Ledger
    redactor: Redactor
    home: Path
    evidence: Path
    responder: GateResponder = field(default_factory=NoResponder)
    call_step: StepCall = call_directly
    simulate: Simulator | None = None
    """Drills: outputs to use instead of running a step's action (None runs it for real)."""
    roster: Roster | None = None
    """Who may pass the gates (responders.yaml); None: no roster governs this incident."""


class _Walk:
    """The mutable state of one walk over the plan."""

    def __init__(self, run: Execution) -> None:
        self.run = run
        progress = progress_from_records(read_records(run.evidence))
        self.statuses: dict[str, ItemStatus] = dict(progress.statuses)
        self.outputs: dict[str, Any] = {k: dict(v) for k, v in progress.outputs.items()}
        self.error: str | None = None
        self.aborted: Abort | None = progress.aborted
        self.rejections = dict(progress.rejections)
        self.severity = progress.severity or run.plan.runbook.meta.severity
        shown_inputs, _ = run.redactor.redact(run.inputs)
        self.brief = incident_brief(run.plan.runbook, run.incident.id, shown_inputs)

    def template_context(self) -> dict[str, Any]:
        run = self.run
        return {
            "inputs": run.inputs,
            "alert": run.incident.alert or {},
            "incident": {**run.incident.template_context(), "severity": self.severity},
            "steps": self.outputs,
        }

    def steered(self, item_id: str) -> bool:
        """Take in what responders recorded while the walk went on; False once they aborted.

        Another process (`runbook skip`, `/runbook abort`) may write to the ledger meanwhile: a
        step they skipped counts as skipped, a severity they set holds from the next step on.
        """
        progress = progress_from_records(read_records(self.run.evidence))
        self.aborted = progress.aborted
        self.severity = progress.severity or self.severity
        if progress.statuses.get(item_id) == ItemStatus.SKIPPED:
            self.statuses[item_id] = ItemStatus.SKIPPED
        return self.aborted is None

    def satisfied(self, item_id: str) -> bool:
        status = self.statuses.get(item_id)
        if status in DONE:
            return True
        item = self.run.plan.runbook.item(item_id)
        return (
            status == ItemStatus.FAILED
            and isinstance(item, Step)
            and item.spec.on_failure == "continue"
        )

    def record(
        self,
        event: Event,
        item: str | None,
        data: Mapping[str, Any],
        actor: str = "engine",
        durable: bool = True,
    ) -> Record:
        return self.run.ledger.record(event, step=item, actor=actor, data=data, durable=durable)


def _open_gate(walk: _Walk, gate: Gate) -> bool:
    """Reach, settle or ask at a gate; False when its timeout failed it or someone rejected it,
    which stops the run."""
    run = walk.run
    status = walk.statuses.get(gate.id)
    if status == ItemStatus.WAITING:
        status = _settle_timer(walk, gate)
    if status in DONE:
        return True
    rejection = walk.rejections.get(gate.id)
    if status == ItemStatus.FAILED and rejection is not None:
        # A failed gate, as a failed step would be: the steps after it never run.
        walk.error = walk.error or (
            f"gate {gate.id!r} was rejected by {rejection.by}: {rejection.reason}"
        )
        return False
    if status == ItemStatus.FAILED:
        limit = gate.policy.timeout_s if gate.policy is not None else None
        within = f" within {limit:g} s" if limit is not None else ""
        walk.error = walk.error or f"gate {gate.id!r} was not passed{within} (on_timeout: fail)"
        return False
    if status != ItemStatus.WAITING:
        # Reached: recorded before anyone is asked, so the wait is measured from here and no
        # answer can come before it (an answer for a gate not reached is refused).
        reached: dict[str, Any] = {"title": gate.title, "checklist": list(gate.items)}
        if gate.policy is not None:
            reached["policy"] = gate.policy.model_dump(mode="json", exclude_defaults=True)
        if run.roster is not None:
            reached["roster"] = run.roster.ref
        walk.record(Event.GATE_WAITING, gate.id, reached)
        walk.statuses[gate.id] = ItemStatus.WAITING
    answer = run.responder.ask(gate, run.incident.id)
    if answer is None:
        return True
    decision = answer_gate(
        run.ledger,
        gate,
        answer_identity(answer),
        incident=run.incident,
        roster=run.roster,
        note=answer.note,
        via=answer.via,
    )
    if decision.acknowledged:
        walk.statuses[gate.id] = ItemStatus.ACKNOWLEDGED
    if isinstance(run.responder, GateListener):
        run.responder.heard(gate, run.incident.id, decision.message)
    return True


def _settle_timer(walk: _Walk, gate: Gate) -> ItemStatus:
    """Do what the gate's timer made due while nobody walked the plan; the gate's status then.

    Without a server's clock this is where a gate past its timeout fails or continues (a
    clock may have done it already: the ledger says, and nothing happens twice).
    """
    run = walk.run
    if gate.policy is None or gate.policy.timeout_s is None:
        return ItemStatus.WAITING
    chat, runbook = run.chat, run.plan.runbook
    act_on_due(run.ledger, run.incident, runbook, run.roster, chat, now=utc_now(), gates=[gate])
    status = progress_from_records(read_records(run.evidence)).statuses.get(gate.id)
    walk.statuses[gate.id] = status or ItemStatus.WAITING
    return walk.statuses[gate.id]


def _prepare(walk: _Walk, step: Step, action: Action) -> BaseModel:
    rendered = render_arguments(
        step.spec.with_,
        walk.template_context(),
        where=f"step '{step.id}'",
        escapes=escapes_of(action.args),
        shown=lambda context: walk.run.redactor.redact(context)[0],
    )
    return action.args.model_validate(rendered)


def _describe(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'with'}: {e['msg']}" for e in error.errors()
        ]
        return "bad arguments after templating: " + "; ".join(parts)
    text = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        return f"timed out: {text}"
    return text


def _run_step(walk: _Walk, step: Step) -> bool:
    """Run one step; True when it succeeded or was skipped."""
    run = walk.run
    spec = step.spec
    action = run.registry.get(spec.uses)
    if action is None:  # validation prevents this; kept as a clear failure, not a KeyError
        return _fail(walk, step, f"unknown action {spec.uses!r}")
    try:
        where = f"step '{step.id}'"
        if spec.if_ is not None and not evaluate(spec.if_, walk.template_context(), where=where):
            walk.record(Event.STEP_SKIPPED, step.id, {"reason": f"if: {spec.if_}"})
            walk.statuses[step.id] = ItemStatus.SKIPPED
            return True
        args = _prepare(walk, step, action)
    except (TemplateFailure, ValidationError) as error:
        return _fail(walk, step, _describe(error))

    # Not fsynced on its own: the step's outcome record, fsynced, carries it to disk.
    walk.record(
        Event.STEP_STARTED,
        step.id,
        {"uses": spec.uses, "title": step.title, "with": args.model_dump(mode="json")},
        durable=False,
    )
    walk.statuses[step.id] = ItemStatus.RUNNING
    attempts = _StepAttempts(walk, step, action, args)
    try:
        outputs = dict(run.call_step(step, attempts))
    except Exception as error:
        if attempts.outputs is None:
            return _fail(walk, step, _describe(error), attempts=attempts.count)
        outputs = attempts.outputs  # Prefect failed after the step had succeeded
    if attempts.ledger_error is not None:
        raise attempts.ledger_error
    walk.statuses[step.id] = ItemStatus.SUCCEEDED
    walk.outputs[step.id] = outputs
    return True


class _StepAttempts:
    """The thunk Prefect runs once per attempt of a step: act (or simulate), then record it."""

    def __init__(self, walk: _Walk, step: Step, action: Action, args: BaseModel) -> None:
        self.walk, self.step, self.action, self.args = walk, step, action, args
        self.count = 0
        self.outputs: dict[str, Any] | None = None
        """The outputs of the attempt that succeeded; its record is on disk before it returns."""
        self.ledger_error: Exception | None = None
        """What kept that record from the ledger; raised after the task, where it belongs."""
        self.failure: str | None = None
        """Why the latest attempt failed: the next attempt's `step.retried` record keeps it."""

    def __call__(self) -> Mapping[str, Any]:
        if self.outputs is not None:
            # Prefect ran the task again after an attempt already succeeded and was recorded:
            # the step is done, so doing it twice is wrong.
            return self.outputs
        run, step = self.walk.run, self.step
        self.count += 1
        done: dict[str, Any] = {"attempts": self.count}
        outputs: dict[str, Any] | None = None
        if run.simulate is not None:
            canned = run.simulate(step, self.action, self.args)
            if canned is not None:
                outputs = dict(canned)
                done["simulated"] = True
        if outputs is None:
            if self.count > 1:
                retried: dict[str, Any] = {"attempt": self.count}
                if self.failure is not None:
                    retried["error"] = self.failure
                self.walk.record(Event.STEP_RETRIED, step.id, retried)
            self.failure = None
            try:
                outputs = _act(self.walk, step, self.action, self.args, self.count)
            except StepError as error:
                self.failure = str(error)
                raise
        self.outputs = outputs
        shown, hidden = _recorded_outputs(run, self.action, outputs)
        if hidden:
            done["redactions"] = hidden
        try:
            run.ledger.record(Event.STEP_SUCCEEDED, step=step.id, data={"outputs": shown, **done})
        except Exception as error:  # raised after the task, where a ledger failure belongs
            self.ledger_error = error
        return outputs


def _recorded_outputs(
    run: Execution, action: Action, outputs: Mapping[str, Any]
) -> tuple[dict[str, Any], int]:
    """The outputs as the ledger may keep them, and how many secrets were masked in them.

    The run's redactor, and the ledger's, learn the values of the action's `secret_outputs`, so
    records (later steps' arguments), chat messages and errors from here on mask them too. Later
    steps' templates get the real values from memory; a resumed run reads outputs back from the
    ledger, where secret ones stay redacted.
    """
    secret = {name: outputs[name] for name in action.secret_outputs if name in outputs}
    if secret:
        run.redactor = run.redactor.with_secrets(_strings(list(secret.values())))
        run.ledger.redactor = run.redactor
    hidden = sum(1 for value in secret.values() if value not in (None, ""))
    masked = {k: REDACTED if k in secret and v not in (None, "") else v for k, v in outputs.items()}
    shown, found = run.redactor.redact(masked)
    return shown, hidden + found


def _strings(value: Any) -> list[str]:
    """Every string (and number, as text) inside a JSON-like value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []


def _act(walk: _Walk, step: Step, action: Action, args: BaseModel, attempt: int) -> dict[str, Any]:
    """One attempt of a step's action, for real, ended by the step's `timeout_s`; a failure
    leaves as a redacted StepError."""
    run = walk.run
    limit = step.spec.timeout_s
    context = ActionContext(
        incident=run.incident.id,
        runbook=run.plan.runbook.id,
        step=step.id,
        tickets=run.tickets,
        chat=run.chat,
        evidence=run.ledger,
        home=run.home,
        drill=run.incident.drill,
        attempt=attempt,
        redact=lambda text: run.redactor.redact(text)[0],
        redact_collected=lambda text: run.redactor.redact(text, personal=True)[0],
        severity=walk.severity,
        brief=walk.brief,
        evidence_dir=run.evidence,
        timeline=lambda: timeline_text(read_records(run.evidence)),
    )
    try:
        if limit is None:
            return dict(action.run(args, context))
        return _act_within(context, action, args, limit)
    except StepError:
        raise
    except Exception as error:
        # What leaves this function is what Prefect logs and stores: redact it first.
        message, _ = run.redactor.redact(_describe(error))
        raise StepError(message) from None


def _act_within(
    context: ActionContext, action: Action, args: BaseModel, limit: float
) -> dict[str, Any]:
    """The action with `limit` seconds from now: the deadline in its context, and the engine
    giving up on it shortly after (flows/engine/timeouts.py)."""
    # Each attempt gets the whole limit: Prefect's retries call `_act` again, with a new deadline.
    deadline = time.monotonic() + limit
    timed_out = f"timed out after {limit:g} s"
    try:
        outputs = act_by_deadline(
            replace(context, deadline=deadline), lambda given: action.run(args, given)
        )
    except Abandoned:
        raise StepError(
            f"{timed_out}; the action had not stopped {GRACE_S:g} s later and was left running,"
            " cut off from tickets, chat and evidence"
        ) from None
    except Exception:
        if time.monotonic() < deadline:
            raise
        # Past the deadline, whatever the action said (a wait cut short, a command killed), the
        # attempt failed by its timeout, and the ledger says so in the same words for every action.
        raise StepError(timed_out) from None
    if time.monotonic() >= deadline:
        # Done, but late: an attempt that took longer than its timeout_s fails, whatever it did.
        raise StepError(timed_out)
    return dict(outputs)


class StepError(Exception):
    """An action failed; the message is already redacted."""


def _fail(walk: _Walk, step: Step, reason: str, attempts: int = 0) -> bool:
    walk.record(
        Event.STEP_FAILED,
        step.id,
        {"error": reason, "attempts": attempts, "on_failure": step.spec.on_failure},
    )
    walk.statuses[step.id] = ItemStatus.FAILED
    walk.error = walk.error or f"step {step.id!r} failed: {reason}"
    return False


def execute(run: Execution, *, resumed: bool = False) -> RunOutcome:
    """Walk the plan from the first unfinished item; return how the run ended."""
    walk = _Walk(run)
    plan = run.plan
    inputs, _ = run.redactor.redact(run.inputs)
    walk.record(
        Event.RUN_RESUMED if resumed else Event.RUN_STARTED,
        None,
        {
            "inputs": inputs,
            "drill": run.incident.drill,
            "title": plan.runbook.meta.title,
            # incident.json lives beside the ledger: its facts go into the chain to be checked.
            "incident": incident_facts(run.incident.model_dump(mode="json")),
        },
    )
    stopped = False
    for item_id in plan.order:
        if not walk.steered(item_id):
            break
        if walk.statuses.get(item_id) in DONE:
            continue
        if not all(walk.satisfied(dep) for dep in plan.needs.get(item_id, ())):
            continue
        item = plan.runbook.item(item_id)
        if isinstance(item, Gate):
            if _open_gate(walk, item):
                continue
            stopped = True
            break
        if _run_step(walk, item):
            continue
        target = item.spec.on_failure
        if target == "continue":
            continue
        if target != "stop":
            rollback = plan.runbook.item(target)
            if isinstance(rollback, Step):
                _run_step(walk, rollback)
        stopped = True
        break

    steps = {item_id: walk.statuses.get(item_id, ItemStatus.PENDING) for item_id in plan.order}
    steps.update({r: walk.statuses[r] for r in sorted(plan.rollbacks) if r in walk.statuses})
    if walk.aborted is not None:
        status = RunStatus.FAILED
        walk.error = f"aborted by {walk.aborted.by}: {walk.aborted.reason}"
    elif stopped:
        status = RunStatus.FAILED
    elif all(walk.satisfied(item_id) for item_id in plan.order):
        status = RunStatus.SUCCEEDED
    else:
        status = RunStatus.WAITING
    # An aborted incident waits for nobody: its gates will never be passed.
    waiting = [i for i, s in steps.items() if s == ItemStatus.WAITING and walk.aborted is None]
    finished: dict[str, Any] = {"status": status, "steps": steps, "waiting": waiting}
    if walk.aborted is not None:
        finished["aborted"] = {"by": walk.aborted.by, "reason": walk.aborted.reason}
    walk.record(Event.RUN_FINISHED, None, finished)
    return RunOutcome(
        incident=run.incident.id,
        runbook=plan.runbook.id,
        status=status,
        steps=steps,
        evidence=run.evidence,
        error=walk.error if status is RunStatus.FAILED else None,
    )
