"""The sandboxed template environment: rendering, conditions and reference extraction."""

from __future__ import annotations

import pytest
from jinja2 import TemplateSyntaxError

from flows.runbook.templates import (
    Escaped,
    Reference,
    TemplateFailure,
    condition_references,
    escapes_of,
    evaluate,
    references,
    render,
    render_arguments,
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


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


HOSTILE = {"alert": {"service": "<!channel> rotate at <https://evil.example|the console> & co"}}


def test_escaped_render_escapes_values_and_keeps_the_template_text() -> None:
    """With an escape, interpolated values are escaped; markup written in the template stays."""
    text = render("<!here> {{ alert.service }}", HOSTILE, escape=_mrkdwn)
    assert text == (
        "<!here> &lt;!channel&gt; rotate at &lt;https://evil.example|the console&gt; &amp; co"
    )


def test_escaped_render_leaves_trusted_values_as_they_are() -> None:
    """`| trusted` (and Jinja's `| safe`) pass a value through as markup."""
    context = {"inputs": {"who": "<@U0ALICE>"}}
    assert render("{{ inputs.who | trusted }}", context, escape=_mrkdwn) == "<@U0ALICE>"
    assert render("{{ inputs.who | safe }}", context, escape=_mrkdwn) == "<@U0ALICE>"


def test_trusted_changes_nothing_where_nothing_is_escaped() -> None:
    """The same template renders in a plain argument, where `trusted` is a no-op."""
    assert render("{{ alert.service | trusted }}", HOSTILE) == HOSTILE["alert"]["service"]


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{% autoescape false %}{{ alert.service }}{% endautoescape %}", id="off"),
        pytest.param("{{ alert.service | e | e }}", id="escape-filter"),
        pytest.param("{{ alert | tojson }}", id="tojson"),
        pytest.param("{{ 'x' ~ alert.service }}", id="concat"),
        pytest.param("{{ [alert.service] | join(', ') }}", id="join"),
        pytest.param("{{ alert.service | upper }}", id="filter"),
    ],
)
def test_escaped_render_has_no_way_around_the_escape(template: str) -> None:
    """Turning autoescape off, Jinja's HTML filters, joins or concatenation still escape."""
    text = render(template, HOSTILE, escape=_mrkdwn)
    assert "<" not in text and ">" not in text


def test_escaped_render_keeps_template_markup_in_blocks_and_macros() -> None:
    """Text a `{% set %}` block or a macro writes stays markup; its values are escaped once."""
    block = "{% set head %}<!here> {{ alert.service }}{% endset %}{{ head }}"
    macro = "{% macro ping(what) %}<!here> {{ what }}{% endmacro %}{{ ping(alert.service) }}"
    for template in (block, macro):
        text = render(template, HOSTILE, escape=_mrkdwn)
        assert text.startswith("<!here> &lt;!channel&gt;") and "&amp;lt;" not in text


def test_escaped_render_has_no_html_only_filters() -> None:
    """`urlize` would make HTML the escape then trusts: it is not there when escaping."""
    with pytest.raises(TemplateFailure):
        render("{{ alert.service | urlize }}", HOSTILE, escape=_mrkdwn)


def test_render_arguments_escapes_only_the_marked_arguments() -> None:
    """Arguments with an escape are markup; the others render as plain text."""
    rendered = render_arguments(
        {
            "channel": "{{ alert.service }}",
            "text": "{{ alert.service }}",
            "blocks": [{"t": "{{ alert.service }}"}],
        },
        HOSTILE,
        escapes={"text": _mrkdwn, "blocks": _mrkdwn},
    )
    assert rendered["channel"] == HOSTILE["alert"]["service"]
    assert rendered["text"] == _mrkdwn(HOSTILE["alert"]["service"])
    assert rendered["blocks"] == [{"t": _mrkdwn(HOSTILE["alert"]["service"])}]


def test_render_arguments_masks_secrets_before_escaping_them() -> None:
    """Markup sees the context as shown to people: a secret is masked before escaping could
    change it past recognition."""
    context = {"inputs": {"token": "p&ss<word>-1234"}}
    rendered = render_arguments(
        {"text": "{{ inputs.token }}", "header": "{{ inputs.token }}"},
        context,
        escapes={"text": _mrkdwn},
        shown=lambda c: {"inputs": {"token": "[REDACTED]"}},
    )
    assert rendered == {"text": "[REDACTED]", "header": "p&ss<word>-1234"}


def test_escapes_of_reads_the_arguments_marked_escaped() -> None:
    """An action's model declares which arguments are markup with `Escaped`."""
    from typing import Annotated

    from pydantic import BaseModel

    class Args(BaseModel):
        text: Annotated[str, Escaped(_mrkdwn)]
        channel: str

    assert escapes_of(Args) == {"text": _mrkdwn}
