"""The action registry this install runs with: the built-in actions and any a package registers.

Third-party packages add actions through the `runbook.actions` entry-point group: each entry point
names a module attribute holding a sequence of `Action`s (see "Actions from other packages" in
docs/actions.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from flows.contract.actions import Action, ActionRegistry
from flows.engine.settings import Settings
from flows.errors import RunbookError
from integrations.catalog import builtin_actions
from integrations.config import MlflowConfig

ENTRY_POINT_GROUP = "runbook.actions"


def registry_with(
    points: Iterable[EntryPoint], mlflow: MlflowConfig | None = None
) -> ActionRegistry:
    """The built-in actions, then those these entry points name; a RunbookError names a bad one."""
    registry = ActionRegistry(builtin_actions(mlflow))
    for point in points:
        for action in _load(point):
            if action.name in registry:
                raise RunbookError(
                    f"{_plugin(point)} registers {action.name!r}, which is already registered"
                    " (built in or by another plug-in): rename it or uninstall one of them"
                )
            registry.add(action)
    return registry


def default_registry(settings: Settings | None = None) -> ActionRegistry:
    """The built-in actions shipped in `integrations`, then those installed plug-ins register.

    Actions that reach a service the settings configure (MLflow) are bound to it here; without
    `settings` (listing or validating runbooks) their steps would fail saying it is not set.
    """
    mlflow = settings.mlflow() if settings is not None else None
    return registry_with(entry_points(group=ENTRY_POINT_GROUP), mlflow)


def _plugin(point: EntryPoint) -> str:
    return f"the action plug-in {point.name!r} ({point.value})"


def _load(point: EntryPoint) -> list[Action]:
    """The actions one entry point names."""
    try:
        loaded = point.load()
    except Exception as error:  # a broken plug-in must say which one, not crash the CLI
        raise RunbookError(
            f"{_plugin(point)} does not load: {error}; fix or uninstall the package that"
            " registers it"
        ) from error
    if isinstance(loaded, Action | str | bytes) or not isinstance(loaded, Iterable):
        raise RunbookError(
            f"{_plugin(point)} names {loaded!r}, not a sequence of flows.contract.actions.Action:"
            " point it at a list or tuple of them"
        )
    actions = list(loaded)
    for action in actions:
        if not isinstance(action, Action):
            raise RunbookError(
                f"{_plugin(point)} registers {action!r}, which is not a"
                " flows.contract.actions.Action"
            )
    return actions
