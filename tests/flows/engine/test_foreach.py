"""The items a for_each step runs over, from a list, a template or an expression."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flows.engine.foreach import MAX_ITEMS, for_each_items, item_id
from flows.runbook.model import Step, StepSpec
from flows.runbook.templates import TemplateFailure

CONTEXT: dict[str, Any] = {
    "inputs": {"hosts": "web-1, web-2,,web-3", "json": '["a", "b"]', "one": "solo"},
    "steps": {"find": {"hosts": ["db-1", "db-2"]}},
}


def items(for_each: Any, context: dict[str, Any] = CONTEXT) -> list[Any]:
    step = Step(spec=StepSpec(id="scan", uses="shell.run", for_each=for_each), title="t", line=1)
    return for_each_items(step, context, where="step 'scan'")


@pytest.mark.parametrize(
    ("for_each", "expected"),
    [
        pytest.param("{{ inputs.hosts }}", ["web-1", "web-2", "web-3"], id="text-at-commas"),
        pytest.param("inputs.hosts", ["web-1", "web-2", "web-3"], id="bare-expression"),
        pytest.param("{{ inputs.json }}", ["a", "b"], id="json-list-text"),
        pytest.param("{{ inputs.one }}", ["solo"], id="one-item"),
        pytest.param("{{ steps.find.hosts }}", ["db-1", "db-2"], id="a-list-stays-a-list"),
        pytest.param("steps.find.hosts + ['db-3']", ["db-1", "db-2", "db-3"], id="expression"),
        pytest.param(
            ["x", "{{ inputs.one }}", {"host": "{{ inputs.one }}"}],
            ["x", "solo", {"host": "solo"}],
            id="yaml-list-rendered",
        ),
    ],
)
def test_items_come_from_lists_templates_and_expressions(for_each: Any, expected: Any) -> None:
    """A list stays a list, text splits at commas (or reads as a JSON list), templates render."""
    assert items(for_each) == expected


def test_a_value_that_is_not_a_list_is_a_clear_failure() -> None:
    """A number is not a list of items: the step fails saying what it got."""
    with pytest.raises(TemplateFailure, match=r"for_each of step 'scan' gave int 3, not a list"):
        items("{{ 3 }}")


def test_an_undefined_name_is_named() -> None:
    """A missing input fails the step naming it, as any template does."""
    with pytest.raises(TemplateFailure, match=re.escape("uses undefined 'inputs.nope'")):
        items("{{ inputs.nope }}")


def test_too_many_items_are_refused() -> None:
    """A list longer than MAX_ITEMS is refused before anything runs."""
    with pytest.raises(TemplateFailure, match=f"at most {MAX_ITEMS} run in one step"):
        items("range(inputs.n)", {"inputs": {"n": MAX_ITEMS + 1}})


def test_items_are_named_after_their_step_and_place() -> None:
    """An item's records, task run and dedupe key are named `<step>[<index>]`."""
    assert item_id("scan", 2) == "scan[2]"
