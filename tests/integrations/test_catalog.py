"""The built-in action catalog: complete, documented, and cheap to import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flows.contract.actions import Action, ActionRegistry, Reach
from integrations.catalog import builtin_actions

ACTIONS = builtin_actions()


def test_catalog_has_the_builtin_actions() -> None:
    """Every built-in action is registered exactly once under its documented name."""
    assert ActionRegistry(ACTIONS).names() == [
        "evidence.note",
        "forensics.snapshot",
        "http.request",
        "jira.attach",
        "jira.comment",
        "jira.create_issue",
        "jira.link",
        "jira.transition",
        "mlflow.model_versions",
        "mlflow.set_alias",
        "mlflow.tag_version",
        "shell.run",
        "slack.create_channel",
        "slack.post",
        "slack.update",
    ]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_every_argument_is_described(action: Action) -> None:
    """Each field of each argument model has a description, as the docs are built from them."""
    undescribed = [n for n, f in action.args.model_fields.items() if not f.description]
    assert undescribed == []


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_argument_models_forbid_unknown_keys(action: Action) -> None:
    """A misspelt `with:` key is an error, not silently ignored."""
    assert action.args.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_every_action_is_described_and_has_outputs(action: Action) -> None:
    """Each action says what it does and which outputs later steps can use."""
    assert action.description and action.outputs


def test_every_action_declares_its_reach() -> None:
    """Each built-in says what it reaches: notes the evidence, tickets and chat the ports."""
    assert {a.name: a.reach for a in ACTIONS} == {
        "evidence.note": Reach.EVIDENCE,
        "forensics.snapshot": Reach.OUTSIDE,
        "http.request": Reach.OUTSIDE,
        "jira.attach": Reach.PORTS,
        "jira.comment": Reach.PORTS,
        "jira.create_issue": Reach.PORTS,
        "jira.link": Reach.PORTS,
        "jira.transition": Reach.PORTS,
        "mlflow.model_versions": Reach.OUTSIDE,
        "mlflow.set_alias": Reach.OUTSIDE,
        "mlflow.tag_version": Reach.OUTSIDE,
        "shell.run": Reach.OUTSIDE,
        "slack.create_channel": Reach.PORTS,
        "slack.post": Reach.PORTS,
        "slack.update": Reach.PORTS,
    }


def test_importing_the_catalog_loads_no_sdk() -> None:
    """Importing the catalog and listing its actions loads no SDK, HTTP client or Prefect."""
    code = (
        "import json, sys\n"
        "from integrations.catalog import builtin_actions\n"
        "builtin_actions()\n"
        "heavy = ('slack_sdk', 'jira', 'requests', 'httpx', 'prefect')\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
