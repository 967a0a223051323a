"""Actions from other packages: loaded from `runbook.actions` entry points, broken ones named."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest
from pydantic import BaseModel

from flows.contract.actions import Action, ActionContext, Reach
from flows.engine.registry import ENTRY_POINT_GROUP, registry_with
from flows.errors import RunbookError
from integrations.catalog import builtin_actions


class PageArgs(BaseModel):
    """Arguments of the plug-in's action."""

    team: str


def page(args: PageArgs, ctx: ActionContext) -> dict[str, Any]:
    """Pretend to page a team."""
    return {"page_id": f"P-{args.team}"}


ACTIONS = (Action("acme.page", PageArgs, page, outputs=("page_id",), reach=Reach.OUTSIDE),)
NOT_ACTIONS = ("acme.page",)
PAGE = ACTIONS[0]


def point(value: str, name: str = "acme") -> EntryPoint:
    """An entry point in the `runbook.actions` group, as an installed package declares it."""
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_plugin_actions_join_the_built_in_ones() -> None:
    """An entry point naming a sequence of Actions adds them after the built-in actions."""
    registry = registry_with([point(f"{__name__}:ACTIONS")])
    assert registry.get("acme.page") is ACTIONS[0]
    assert set(registry.names()) == {"acme.page", *(a.name for a in builtin_actions())}


def test_no_entry_points_give_the_built_in_actions() -> None:
    """Without plug-ins the registry holds exactly the built-in actions."""
    assert registry_with([]).names() == sorted(a.name for a in builtin_actions())


@pytest.mark.parametrize(
    "value",
    ["acme_runbook_not_installed.pager:ACTIONS", f"{__name__}:NO_SUCH_ATTRIBUTE"],
    ids=["missing module", "missing attribute"],
)
def test_entry_point_that_does_not_load_is_named(value: str) -> None:
    """A plug-in that fails to import is reported by name and value, with what to do."""
    with pytest.raises(RunbookError) as raised:
        registry_with([point(value)])
    message = str(raised.value)
    assert f"the action plug-in 'acme' ({value}) does not load" in message
    assert "fix or uninstall the package" in message


def test_entry_point_naming_a_function_is_refused() -> None:
    """An entry point at a function instead of a sequence of Actions says so."""
    with pytest.raises(RunbookError, match=r"names <function builtin_actions .*not a sequence"):
        registry_with([point("integrations.catalog:builtin_actions")])


def test_entry_point_naming_a_single_action_is_refused() -> None:
    """One Action, not wrapped in a sequence, is refused with a hint to wrap it."""
    with pytest.raises(RunbookError) as raised:
        registry_with([point(f"{__name__}:PAGE")])
    assert "not a sequence of flows.contract.actions.Action" in str(raised.value)


def test_entry_point_registering_a_non_action_is_refused() -> None:
    """A sequence holding anything but Actions names the offending item."""
    with pytest.raises(RunbookError) as raised:
        registry_with([point(f"{__name__}:NOT_ACTIONS")])
    message = str(raised.value)
    assert "registers 'acme.page', which is not a flows.contract.actions.Action" in message


def test_plugin_reusing_a_built_in_name_is_refused() -> None:
    """A plug-in registering a name already taken is refused, naming the plug-in and the name."""
    with pytest.raises(RunbookError) as raised:
        registry_with([point("integrations.evidence:ACTIONS", name="notes")])
    message = str(raised.value)
    assert "the action plug-in 'notes' (integrations.evidence:ACTIONS)" in message
    assert "registers 'evidence.note', which is already registered" in message
