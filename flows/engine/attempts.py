"""A step's attempts: the thunk its task runs once per attempt, which acts (or simulates), ends
an attempt at the step's `timeout_s`, and records the outcome.

It runs on the step's own thread (Prefect's pool), beside other steps' attempts: it only acts
and appends its records to the ledger, which takes one at a time; the walk reads the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from flows.contract.actions import Action, ActionContext
from flows.engine.brief import timeline_text
from flows.engine.execution import Execution
from flows.engine.timeouts import GRACE_S, Abandoned, act_by_deadline
from flows.evidence.records import Event, Record
from flows.evidence.redact import REDACTED
from flows.evidence.verify import read_records
from flows.runbook.model import Step


class Walking(Protocol):
    """What an attempt reads of the walk it belongs to."""

    run: Execution
    severity: str
    brief: str
    secrets: threading.Lock

    def record(
        self,
        event: Event,
        item: str | None,
        data: Mapping[str, Any],
        actor: str = "engine",
        durable: bool = True,
    ) -> Record: ...


def describe(error: BaseException) -> str:
    """What went wrong, in the words the ledger records."""
    if isinstance(error, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'with'}: {e['msg']}" for e in error.errors()
        ]
        return "bad arguments after templating: " + "; ".join(parts)
    text = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        return f"timed out: {text}"
    return text


class StepAttempts:
    """The thunk Prefect runs once per attempt of a step: act (or simulate), then record it."""

    def __init__(
        self, walk: Walking, step: Step, action: Action, args: BaseModel, name: str
    ) -> None:
        self.walk, self.step, self.action, self.args = walk, step, action, args
        self.name = name
        """What its records are about: the step, or one for_each item of it (`scan[0]`)."""
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
                self.walk.record(Event.STEP_RETRIED, self.name, retried)
            self.failure = None
            try:
                outputs = _act(self.walk, self, self.count)
            except StepError as error:
                self.failure = str(error)
                raise
        self.outputs = outputs
        with self.walk.secrets:  # one step at a time widens the run's redactor
            shown, hidden = _recorded_outputs(run, self.action, outputs)
        if hidden:
            done["redactions"] = hidden
        try:
            run.ledger.record(Event.STEP_SUCCEEDED, step=self.name, data={"outputs": shown, **done})
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


def _act(walk: Walking, attempts: StepAttempts, attempt: int) -> dict[str, Any]:
    """One attempt of a step's action, for real, ended by the step's `timeout_s`; a failure
    leaves as a redacted StepError."""
    run = walk.run
    action, args = attempts.action, attempts.args
    limit = attempts.step.spec.timeout_s
    context = ActionContext(
        incident=run.incident.id,
        runbook=run.plan.runbook.id,
        # An item acts as `scan[0]`: its records say which item, and its dedupe key is its own.
        step=attempts.name,
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
        message, _ = run.redactor.redact(describe(error))
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
