"""`for_each` in the runbook format: the schema knows it, `runbook validate` checks its names."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from flows.errors import Problem, RunbookError
from flows.runbook.parse import parse_runbook
from flows.runbook.schema import runbook_schema
from flows.runbook.validate import check_runbook
from tests.flows.runbook.test_validate import FRONT, REGISTRY, TICKET


def problems_in(text: str) -> list[Problem]:
    try:
        runbook = parse_runbook(Path("doc.md"), text)
    except RunbookError as error:
        return error.problems
    return check_runbook(runbook, REGISTRY)


def each_ticket(for_each: str, summary: str = "{{ item }} leaked") -> str:
    return (
        f"```step\nid: each\nuses: jira.create_issue\nfor_each: {for_each}\n"
        f'with:\n  project: SEC\n  summary: "{summary}"\n```\n'
    )


def test_a_step_over_an_input_or_a_list_with_item_in_its_templates_is_valid() -> None:
    """`for_each` over an input, a YAML list or an earlier step's list, with `item` in `with`."""
    assert problems_in(FRONT + each_ticket('"{{ inputs.service }}"')) == []
    assert problems_in(FRONT + each_ticket("[api, '{{ inputs.service }}']")) == []
    over_keys = each_ticket("\"{{ steps.each | map(attribute='key') | list }}\"").replace(
        "id: each", "id: again"
    )
    assert problems_in(FRONT + each_ticket('"inputs.service"') + over_keys) == []


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        pytest.param(
            each_ticket('"{{ inputs.servce }}"'),
            14,
            "step 'each' uses inputs.servce, which is not a declared input",
            id="unknown-input",
        ),
        pytest.param(
            each_ticket('"{{ item }}"'),
            14,
            "step 'each' uses 'item' in `for_each`, which is evaluated once for the step",
            id="item-in-for-each",
        ),
        pytest.param(
            TICKET.replace("Leak on {{ inputs.service }}", "{{ item }}"),
            16,
            "step 'ticket' uses 'item', but only a step with for_each has an item",
            id="item-without-for-each",
        ),
        pytest.param(
            each_ticket('"{{ inputs.service }}"')
            + TICKET.replace("id: ticket", "id: after").replace(
                "Leak on {{ inputs.service }}", "{{ steps.each.key }}"
            ),
            24,
            "step 'after' uses steps.each.key, but steps.each is a list: one entry per item",
            id="a-list-read-as-one",
        ),
        pytest.param(
            each_ticket("{every: host}"),
            14,
            "for_each: Value error, a list of items, or a template or expression that gives one",
            id="not-a-list-or-text",
        ),
    ],
)
def test_for_each_mistakes_are_reported_at_their_line(body: str, line: int, message: str) -> None:
    """Each mistake with `for_each` or `item` is a problem at the line that makes it."""
    problems = problems_in(FRONT + body)
    assert any(p.line == line and message in p.message for p in problems), problems


def test_the_schema_describes_for_each() -> None:
    """`runbook schema` accepts a step's for_each as a list or a template, nothing else."""
    schema = runbook_schema()
    step = {"$ref": "#/$defs/StepSpec", "$defs": schema["$defs"]}
    validator = jsonschema.Draft202012Validator(step)
    base = {"id": "scan", "uses": "shell.run"}
    validator.validate({**base, "for_each": ["web-1", "web-2"]})
    validator.validate({**base, "for_each": "{{ inputs.hosts }}"})
    assert not validator.is_valid({**base, "for_each": 3})
    assert "item" in schema["$defs"]["StepSpec"]["properties"]["for_each"]["description"]
