"""What a drill simulates, and gates answered as the scenario scripts them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from flows.contract.actions import Action, Reach
from flows.contract.ports import GateAnswer
from flows.drills.scenario import ScriptedAnswer
from flows.engine.execute import Simulator
from flows.runbook.model import Gate, Step

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
