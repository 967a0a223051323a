"""The built-in actions, gathered for the registry.

Cheap to import: the action modules load SDKs and HTTP clients inside the functions that use them.
"""

from __future__ import annotations

from flows.contract.actions import Action
from integrations import evidence, http, shell
from integrations.config import MlflowConfig
from integrations.forensics import actions as forensics_actions
from integrations.jira import actions as jira_actions
from integrations.mlflow import actions as mlflow_actions
from integrations.slack import actions as slack_actions


def builtin_actions(mlflow: MlflowConfig | None = None) -> list[Action]:
    """Every action shipped with the engine, in documentation order; the `mlflow.*` ones talk
    to the tracking server `mlflow` names (None: their steps fail saying how to set one)."""
    return [
        *jira_actions.ACTIONS,
        *slack_actions.ACTIONS,
        *evidence.ACTIONS,
        *http.ACTIONS,
        *shell.ACTIONS,
        *forensics_actions.ACTIONS,
        *mlflow_actions.registry_actions(mlflow),
    ]
