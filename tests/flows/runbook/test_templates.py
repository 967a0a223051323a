"""The sandboxed template environment: rendering, conditions and reference extraction."""

from __future__ import annotations

import pytest
from jinja2 import TemplateSyntaxError

from flows.runbook.templates import (
    Reference,
    TemplateFailure,
    condition_references,
    evaluate,
    references,
    render,
    render_value,
)

CONTEXT = {
    "inputs": {"service": "api", "count": 3},
    "alert": {"labels": {"service": "{{ inputs.service }}"}},
    "incident": {"id": "INC-1"},
    "steps": {"ticket": {"key": "SEC-1", "url": "https://jira/SEC-1"}},
}


def test_render_fills_in_values() -> None:
    """Names from inputs, incident and step outputs are substituted."""
    text = "{{ incident.id }}: {{ inputs.service }} {{ steps.ticket.key }}"
    assert render(text, CONTEXT) == "INC-1: api SEC-1"


def test_render_output_is_not_rendered_again() -> None:
    """An alert payload that looks like a template stays data."""
    assert render("{{ alert.labels.service }}", CONTEXT) == "{{ inputs.service }}"


def test_render_value_renders_strings_inside_containers() -> None:
    """Strings in nested dicts and lists are rendered; keys and non-strings are unchanged."""
    value = {"{{ k }}": ["{{ inputs.service }}", 2, None], "n": {"x": "{{ inputs.count + 1 }}"}}
    assert render_value(value, CONTEXT) == {"{{ k }}": ["api", 2, None], "n": {"x": "4"}}


def test_undefined_name_names_the_full_reference() -> None:
    """An undefined name fails with the place and the dotted reference."""
    with pytest.raises(
        TemplateFailure, match=r"template in step 'a' uses undefined 'steps\.foo\.bar'"
    ):
        render("{{ steps.foo.bar }}", CONTEXT, where="step 'a'")


def test_sandbox_blocks_private_attributes() -> None:
    """Reaching Python internals through dunder attributes is refused."""
    with pytest.raises(TemplateFailure, match="is not allowed"):
        render("{{ ''.__class__.__mro__ }}", CONTEXT)


def test_sandbox_blocks_huge_repetition() -> None:
    """Multiplying a string into a memory bomb is refused."""
    with pytest.raises(TemplateFailure, match="is not allowed"):
        render("{{ 'x' * 100000000 }}", CONTEXT)


def test_templates_cannot_include_files() -> None:
    """There is no loader, so include and import fail instead of reading files."""
    with pytest.raises(TemplateFailure, match="no loader"):
        render("{% include '/etc/passwd' %}", CONTEXT)


def test_syntax_error_at_render_is_a_template_failure() -> None:
    """A broken template fails with its line."""
    with pytest.raises(TemplateFailure, match="syntax error on its line 2"):
        render("ok\n{{ inputs.service ", CONTEXT)


def test_references_gives_root_and_path() -> None:
    """A dotted use is one reference with its path."""
    assert references("{{ steps.ticket.key }}") == [Reference("steps", ("ticket", "key"))]


def test_references_follow_constant_subscripts_and_stop_at_dynamic_ones() -> None:
    """`a['b']` extends the path; `a[x]` ends it and x is a reference of its own."""
    found = references("{{ alert['labels']['env'] }} {{ steps[inputs.step].key }}")
    assert found == [
        Reference("alert", ("labels", "env")),
        Reference("inputs", ("step",)),
        Reference("steps", ()),
    ]


def test_references_leave_out_names_the_template_binds() -> None:
    """Loop variables, `loop` and `set` targets are not references."""
    text = "{% for a in alert.alerts %}{{ a.x }}{{ loop.index }}{% endfor %}{% set y = 1 %}{{ y }}"
    assert references(text) == [Reference("alert", ("alerts",))]


def test_references_of_a_method_call_stop_at_the_receiver() -> None:
    """`alert.labels.get('x')` references alert.labels, not a `get` output."""
    assert references("{{ alert.labels.get('x') }}") == [Reference("alert", ("labels",))]


def test_references_of_plain_text_are_empty() -> None:
    """A string without markup references nothing."""
    assert references("just text") == []


def test_references_raise_syntax_errors_with_their_line() -> None:
    """A template that does not parse raises TemplateSyntaxError with its line."""
    with pytest.raises(TemplateSyntaxError) as caught:
        references("line one\n{% if %}")
    assert caught.value.lineno == 2


def test_condition_references_accept_bare_expressions() -> None:
    """A bare `if:` expression is parsed as an expression."""
    assert condition_references("inputs.service == 'api' and steps.ticket.key") == [
        Reference("inputs", ("service",)),
        Reference("steps", ("ticket", "key")),
    ]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("inputs.service == 'api'", True),
        ("inputs.count > 5", False),
        ("steps.ticket", True),
        ("{{ inputs.service == 'api' }}", True),
        ("{{ inputs.count > 5 }}", False),
        ("{{ '' }}", False),
        ("{{ 'no' }}", False),
    ],
)
def test_evaluate_accepts_expressions_and_templates(expression: str, expected: bool) -> None:
    """Bare expressions use Python truth; template output `False`, empty or `no` is false."""
    assert evaluate(expression, CONTEXT) is expected


def test_evaluate_undefined_name_is_a_template_failure() -> None:
    """A condition over an undefined name fails rather than silently skipping."""
    with pytest.raises(TemplateFailure, match=r"uses undefined 'inputs\.missing'"):
        evaluate("inputs.missing == 'x'", CONTEXT)


def test_evaluate_rejects_trailing_text() -> None:
    """An expression followed by more text is a syntax error."""
    with pytest.raises(TemplateFailure, match="syntax error"):
        evaluate("inputs.service api", CONTEXT)
