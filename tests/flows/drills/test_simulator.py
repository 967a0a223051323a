"""What a drill simulates: decided by each action's declared reach, not by its name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from flows.contract.actions import Action, ActionContext, Reach
from flows.drills.simulate import drill_simulator
from flows.runbook.model import Step, StepSpec
from integrations.catalog import builtin_actions


class NoArgs(BaseModel):
    """No arguments."""


def _act(args: NoArgs, ctx: ActionContext) -> Mapping[str, Any]:
    return {"done": True}


def tiny_action(**declared: Any) -> Action:
    """A plug-in style action named `acme.page`, declaring only what the test passes."""
    return Action("acme.page", NoArgs, _act, outputs=("page_id", "status"), **declared)


def step(drill: Literal["simulate", "run"] = "simulate") -> Step:
    """A step using `acme.page`."""
    return Step(spec=StepSpec(id="page", uses="acme.page", drill=drill), title="Page", line=1)


def test_action_without_a_reach_declaration_is_simulated() -> None:
    """An action that does not say what it reaches gets simulated outputs: safe by default."""
    assert tiny_action().reach is Reach.UNDECLARED
    assert drill_simulator({})(step(), tiny_action(), NoArgs()) == {
        "simulated": True,
        "page_id": "",
        "status": 200,
    }


def test_action_acting_only_through_ports_runs() -> None:
    """An action declaring it acts only through the engine's ports runs against the sandboxes."""
    assert drill_simulator({})(step(), tiny_action(reach=Reach.PORTS), NoArgs()) is None


def test_action_touching_only_evidence_runs() -> None:
    """An action declaring it touches only the incident's evidence runs in a drill."""
    assert drill_simulator({})(step(), tiny_action(reach=Reach.EVIDENCE), NoArgs()) is None


def test_action_reaching_outside_is_simulated() -> None:
    """An action declaring it reaches hosts and services by itself is simulated."""
    outputs = drill_simulator({})(step(), tiny_action(reach=Reach.OUTSIDE), NoArgs())
    assert outputs is not None and outputs["simulated"] is True


@pytest.mark.parametrize("reach", list(Reach))
def test_drill_run_acts_for_real_whatever_the_reach(reach: Reach) -> None:
    """`drill: run` on the step runs its action, declared reach or not."""
    assert drill_simulator({})(step("run"), tiny_action(reach=reach), NoArgs()) is None


@pytest.mark.parametrize("reach", list(Reach))
def test_canned_outputs_win_whatever_the_reach(reach: Reach) -> None:
    """A scenario's canned outputs for the step are used, whatever the action declares."""
    simulate = drill_simulator({"page": {"page_id": "P-1"}})
    assert simulate(step(), tiny_action(reach=reach), NoArgs()) == {
        "simulated": True,
        "page_id": "P-1",
    }


def test_built_in_actions_reaching_hosts_are_the_simulated_ones() -> None:
    """Of the built-ins, shell, HTTP, forensics and MLflow's registry are simulated; tickets,
    chat and notes run."""
    simulate = drill_simulator({})
    simulated = {a.name for a in builtin_actions() if simulate(step(), a, NoArgs()) is not None}
    assert simulated == {
        "shell.run",
        "http.request",
        "forensics.snapshot",
        "mlflow.model_versions",
        "mlflow.set_alias",
        "mlflow.tag_version",
    }
