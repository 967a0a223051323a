"""The action registry this install runs with: the built-in actions and any a package registers.

Third-party packages add actions through the `runbook.actions` entry-point group: each entry point
names a module attribute holding a sequence of `Action`s (see CONTRIBUTING.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points

from flows.contract.actions import Action, ActionRegistry
from flows.errors import RunbookError
from integrations.catalog import builtin_actions

ENTRY_POINT_GROUP = "runbook.actions"


def registered_actions() -> list[Action]:
    """Actions that installed packages register under the `runbook.actions` entry-point group."""
    found: list[Action] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            actions: Iterable[object] = point.load()
        except Exception as error:  # a broken plug-in must say which one, not crash the CLI
            raise RunbookError(
                f"the action plug-in {point.name!r} ({point.value}) does not load: {error}; "
                "fix or uninstall the package that registers it"
            ) from error
        for action in actions:
            if not isinstance(action, Action):
                raise RunbookError(
                    f"the action plug-in {point.name!r} ({point.value}) registers "
                    f"{action!r}, which is not a flows.contract.actions.Action"
                )
            found.append(action)
    return found


def default_registry() -> ActionRegistry:
    """The built-in actions shipped in `integrations`, then those plug-ins register."""
    return ActionRegistry([*builtin_actions(), *registered_actions()])
