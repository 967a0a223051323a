"""What one run of one incident needs, and how it ended: built by the runner, walked by `execute`.

The seams the walk runs steps through live here too: a `StepCall` runs one step after the
other (tests of the walking rules), a `StepSubmit` starts steps on a runner that runs them side
by side (Prefect's, from `compile.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from flows.contract.actions import Action, ActionRegistry
from flows.contract.ports import ChatSystem, GateResponder, NoResponder, TicketSystem
from flows.evidence.incident import Incident
from flows.evidence.ledger import Ledger
from flows.evidence.progress import ItemStatus, RunStatus
from flows.evidence.redact import Redactor
from flows.runbook.model import Step
from flows.runbook.plan import Plan
from flows.runbook.roster import Roster

Simulator = Callable[[Step, Action, BaseModel], Mapping[str, Any] | None]
"""Given a step, its action and rendered arguments: canned outputs, or None to act for real."""

StepCall = Callable[[Step, Callable[[], Mapping[str, Any]]], Mapping[str, Any]]
"""Runs one step's action thunk (with retries) and returns its outputs. Each call of the thunk
is one attempt, and the thunk itself ends an attempt at the step's `timeout_s`."""


StepSubmit = Callable[[Step, str, Callable[[], Mapping[str, Any]]], Future[Mapping[str, Any]]]
"""Starts one step's action thunk (with retries) on the orchestrator's runner, named by the text:
the step's id, or one for_each item's (`scan[0]`); the future gives its outputs or its error."""


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
    submit_step: StepSubmit | None = None
    """Starts steps on a runner that runs them side by side (Prefect's); None: every step goes
    through `call_step`, one after the other."""
    simulate: Simulator | None = None
    """Drills: outputs to use instead of running a step's action (None runs it for real)."""
    roster: Roster | None = None
    """Who may pass the gates (responders.yaml); None: no roster governs this incident."""
