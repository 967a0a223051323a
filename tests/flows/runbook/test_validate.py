"""`runbook validate`: each kind of mistake is reported at its line with a useful message."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from flows.contract.actions import Action, ActionContext, ActionRegistry
from flows.errors import Problem, RunbookError
from flows.runbook.parse import parse_runbook
from flows.runbook.validate import check_runbook, validate_paths
from tests.support import PROJECT


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateIssue(_Args):
    project: str
    summary: str
    labels: list[str] = []


class Comment(_Args):
    issue: str
    body: str


class Post(_Args):
    channel: str
    text: str


class Wait(_Args):
    seconds: int


def _act(args: BaseModel, context: ActionContext) -> Mapping[str, Any]:
    return {}


REGISTRY = ActionRegistry(
    [
        Action("jira.create_issue", CreateIssue, _act, outputs=("key", "url")),
        Action("jira.comment", Comment, _act),
        Action("slack.post", Post, _act, outputs=("ts",)),
        Action("wait.seconds", Wait, _act, side_effects=False),
    ]
)

FRONT = """---
id: demo
title: Demo
kind: breach
severity: sev1
version: 1
owner: "#sec"
inputs:
  service: {type: string, required: true}
---
"""
# Front matter is lines 1-10; a body therefore starts at line 11.

TICKET = """```step
id: ticket
uses: jira.create_issue
with:
  project: SEC
  summary: "Leak on {{ inputs.service }}"
```
"""
# With TICKET first, the next body line is 18.


def problems_in(text: str) -> list[Problem]:
    """Every problem parsing and checking `text` finds."""
    try:
        runbook = parse_runbook(Path("doc.md"), text)
    except RunbookError as error:
        return error.problems
    return check_runbook(runbook, REGISTRY)


MALFORMED = [
    pytest.param("# Just prose\n", 1, "missing front matter", id="missing-front-matter"),
    pytest.param("---\nid: demo\n# Title\n", 1, "front matter is not closed", id="unclosed-front"),
    pytest.param(
        FRONT.replace("title: Demo", "title: [Demo"), 3, "bad YAML", id="front-matter-bad-yaml"
    ),
    pytest.param(
        FRONT.replace("owner:", "ownr:"),
        7,
        "front matter: unknown key 'ownr'",
        id="front-matter-unknown-key",
    ),
    pytest.param(
        FRONT.replace('owner: "#sec"\n', ""),
        1,
        "front matter: missing required key 'owner'",
        id="front-matter-missing-key",
    ),
    pytest.param(
        FRONT.replace("kind: breach", "kind: breech"),
        4,
        "kind: Input should be 'breach'",
        id="front-matter-bad-kind",
    ),
    pytest.param(
        FRONT.replace("type: string", "type: str"),
        9,
        "inputs.service.type: Input should be",
        id="input-bad-type",
    ),
    pytest.param(
        FRONT + "```step\nid: a\nuses: jira.comment\nwith: {issue: X-1, body: [oops}\n```\n",
        14,
        "step: bad YAML",
        id="step-bad-yaml",
    ),
    pytest.param(
        FRONT + "```step\nid: a\nuses: slack.post\nwith:\n  text: {{ inputs.service }}\n```\n",
        15,
        "a mapping key must be a plain name",
        id="step-unquoted-template",
    ),
    pytest.param(
        FRONT + "```step\nid: a\nid: b\nuses: wait.seconds\n```\n",
        13,
        "duplicate key 'id'",
        id="step-duplicate-yaml-key",
    ),
    pytest.param(FRONT + "```step\n```\n", 11, "a step must be a YAML mapping", id="step-empty"),
    pytest.param(
        FRONT + "```step\nid: a\nuses: wait.seconds\nretry: 3\n```\n",
        14,
        "step 'a': unknown key 'retry'",
        id="step-unknown-key",
    ),
    pytest.param(
        FRONT + "```step\nid: a\n```\n",
        11,
        "step 'a': missing required key 'uses'",
        id="step-missing-uses",
    ),
    pytest.param(
        FRONT + "```step\nid: Ticket\nuses: wait.seconds\n```\n",
        12,
        "id: String should match pattern",
        id="step-bad-id",
    ),
    pytest.param(
        FRONT + "```step\nid: a\nuses: wait.seconds\nretries: 99\n```\n",
        14,
        "retries: Input should be less than or equal to 20",
        id="step-retries-out-of-range",
    ),
    pytest.param(
        FRONT + "```step\nid: a\nuses: wait.seconds\nwith: {seconds: !!binary aGk=}\n```\n",
        14,
        "unsupported YAML tag",
        id="step-yaml-tag",
    ),
    pytest.param(
        FRONT + TICKET + TICKET,
        19,
        "duplicate id 'ticket' (first used at line 12)",
        id="duplicate-step-id",
    ),
    pytest.param(
        FRONT + TICKET + "## Ticket\n- [ ] Check it\n",
        18,
        "duplicate id 'ticket'",
        id="gate-id-collides-with-step",
    ),
    pytest.param(
        FRONT + "## Contain {#Bad Id}\n- [ ] Revoke\n",
        11,
        "heading id 'Bad Id' is not a valid id",
        id="bad-heading-id",
    ),
    pytest.param(
        FRONT + TICKET.replace("jira.create_issue", "jira.create_isue"),
        13,
        "unknown action 'jira.create_isue' in step 'ticket'",
        id="unknown-action",
    ),
    pytest.param(
        FRONT + TICKET.replace("project:", "projct:"),
        15,
        "jira.create_issue has no argument 'projct'",
        id="unknown-argument",
    ),
    pytest.param(
        FRONT + TICKET.replace('  summary: "Leak on {{ inputs.service }}"\n', ""),
        14,
        "jira.create_issue needs argument 'summary'",
        id="missing-argument",
    ),
    pytest.param(
        FRONT + "```step\nid: a\nuses: wait.seconds\nwith:\n  seconds: soon\n```\n",
        15,
        "wait.seconds argument 'seconds': Input should be a valid integer",
        id="bad-argument-value",
    ),
    pytest.param(
        FRONT
        + TICKET
        + "```step\nid: b\nuses: wait.seconds\nwith: {seconds: 1}\nneeds: [tickt]\n```\n",
        22,
        "'b' needs 'tickt', which is not a step or gate",
        id="unknown-needs",
    ),
    pytest.param(
        FRONT
        + "```step\nid: a\nuses: wait.seconds\nwith: {seconds: 1}\nneeds: [b]\n```\n"
        + "```step\nid: b\nuses: wait.seconds\nwith: {seconds: 1}\n```\n",
        15,
        "dependency cycle: a needs b, b follows a",
        id="dependency-cycle",
    ),
    pytest.param(
        FRONT + TICKET.replace("```\n", "on_failure: undo\n```\n", 1),
        17,
        "has on_failure 'undo', which is not a step",
        id="unknown-on-failure",
    ),
    pytest.param(
        FRONT + TICKET.replace("{{ inputs.service }}", "{{ inputs.service }"),
        16,
        "step 'ticket': template syntax error in `with.summary`",
        id="template-syntax-error",
    ),
    pytest.param(
        FRONT + TICKET.replace("{{ inputs.service }}", "{{ input.service }}"),
        16,
        "step 'ticket' uses unknown name 'input'",
        id="unknown-template-root",
    ),
    pytest.param(
        FRONT + TICKET.replace("{{ inputs.service }}", "{{ inputs.servce }}"),
        16,
        "step 'ticket' uses inputs.servce, which is not a declared input",
        id="undeclared-input",
    ),
    pytest.param(
        FRONT + TICKET.replace("{{ inputs.service }}", "{{ inputs.service.__class__ }}"),
        16,
        "names starting with '_' are not allowed",
        id="private-attribute",
    ),
    pytest.param(
        FRONT
        + "```step\nid: a\nuses: slack.post\n"
        + "with: {channel: x, text: '{{ steps.ticket.key }}'}\n```\n"
        + TICKET,
        14,
        "step 'a' uses steps.ticket, which does not run before it; add `needs: [ticket]`",
        id="step-output-not-yet-run",
    ),
    pytest.param(
        FRONT
        + TICKET
        + "```step\nid: b\nuses: slack.post\n"
        + "with: {channel: x, text: '{{ steps.ticket.kee }}'}\n```\n",
        21,
        "steps.ticket.kee, but jira.create_issue returns only key, url",
        id="unknown-step-output",
    ),
    pytest.param(
        FRONT
        + "```step\nid: b\nuses: slack.post\n"
        + "with: {channel: x, text: '{{ steps.nope.ts }}'}\n```\n",
        14,
        "step 'b' uses steps.nope, but there is no step 'nope'",
        id="step-output-of-unknown-step",
    ),
    pytest.param(
        FRONT
        + "```step\nid: b\nuses: wait.seconds\nwith: {seconds: 1}\nif: inputs.service ==\n```\n",
        15,
        "template syntax error in `if`",
        id="if-syntax-error",
    ),
    pytest.param(
        FRONT + "```step\nid: b\nuses: wait.seconds\nwith: {seconds: 1}\nif: env.prod\n```\n",
        15,
        "step 'b' uses unknown name 'env'",
        id="if-unknown-root",
    ),
    pytest.param(
        FRONT[:-4]
        + "triggers:\n  alerts:\n    - source: grafana\n      inputs: {servce: x}\n---\n",
        13,
        "alert trigger 1 (grafana) sets input 'servce', which is not a declared input",
        id="trigger-undeclared-input",
    ),
    pytest.param(
        FRONT[:-4]
        + "triggers:\n  alerts:\n    - source: grafana\n"
        + "      inputs: {service: '{{ inputs.service }}'}\n---\n",
        13,
        "alert trigger 1 (grafana) uses unknown name 'inputs'",
        id="trigger-template-uses-inputs",
    ),
    pytest.param(
        FRONT
        + "```step\nid: a\nuses: wait.seconds\nwith: {seconds: 1}\non_failure: undo\n```\n"
        + "```step\nid: undo\nuses: wait.seconds\nwith: {seconds: 1}\n```\n"
        + "```step\nid: c\nuses: wait.seconds\nwith: {seconds: 1}\nneeds: [undo]\n```\n",
        26,
        "'c' needs 'undo', which runs only as a rollback",
        id="needs-rollback",
    ),
    pytest.param(
        FRONT[:-4] + "triggers:\n  slack: {command: list}\n---\n",
        11,
        "slack command 'list' is one of /runbook's own subcommands",
        id="slack-reserved-command",
    ),
    pytest.param(
        FRONT[:-4] + "triggers:\n  slack:\n    command: leak\n    allowed: [sec-oncall]\n---\n",
        13,
        "slack allowed entry 'sec-oncall' would match nobody",
        id="slack-allowed-matches-nobody",
    ),
]


@pytest.mark.parametrize(("text", "line", "phrase"), MALFORMED)
def test_malformed_document_is_reported_at_its_line(text: str, line: int, phrase: str) -> None:
    """Each malformed document yields a problem at the offending line naming the mistake."""
    problems = problems_in(text)
    assert any(p.line == line and phrase in p.message for p in problems), problems


VALID = (
    FRONT[:-4]
    + """triggers:
  alerts:
    - source: alertmanager
      inputs: {service: "{{ alert.labels.service | default('api') }}"}
---
# Demo
"""
    + TICKET
    + """
## Tell
```step
id: tell
uses: slack.post
if: "inputs.service != 'test'"
with:
  channel: "#sec"
  text: >-
    {% for label in alert.labels %}{{ label }} {{ loop.index }}{% endfor %}
    {{ steps.ticket.url }} {{ incident.id }}
on_failure: undo
```

## Contain
- [ ] Revoke the key

```step
id: wait
uses: wait.seconds
with:
  seconds: "{{ inputs.service | length }}"
```

```step
id: undo
uses: jira.comment
with:
  issue: "{{ steps.ticket.key }}"
  body: rolled back
```
"""
)


def test_valid_document_has_no_problems() -> None:
    """Templated arguments, loops, conditions, gates and rollbacks that are right pass."""
    assert problems_in(VALID) == []


def test_rollback_may_use_what_its_failing_step_could_use() -> None:
    """A rollback sees the outputs of the steps before the step that failed."""
    runbook = parse_runbook(Path("doc.md"), VALID)
    assert runbook.item("undo").spec.with_["issue"] == "{{ steps.ticket.key }}"
    assert check_runbook(runbook, REGISTRY) == []


def test_templated_argument_is_not_type_checked() -> None:
    """A value holding a template is checked at run time, when it is known."""
    text = (
        FRONT + "```step\nid: a\nuses: wait.seconds\nwith: {seconds: '{{ inputs.service }}'}\n```\n"
    )
    assert problems_in(text) == []


def test_unknown_action_hint_names_the_closest_action() -> None:
    """The hint of an unknown action suggests the nearest registered names."""
    (problem,) = problems_in(FRONT + TICKET.replace("jira.create_issue", "jira.create_isue"))
    assert "'jira.create_issue'" in problem.hint


def test_unknown_key_hint_names_the_closest_key() -> None:
    """The hint of an unknown step key suggests the key it resembles and lists allowed ones."""
    (problem,) = problems_in(FRONT + "```step\nid: a\nuses: wait.seconds\nretry: 3\n```\n")
    assert problem.hint == (
        "did you mean 'retries'?; allowed keys: drill, for_each, id, if, needs, on_failure,"
        " retries, retry_delay_s, timeout_s, uses, with"
    )


def test_validate_paths_returns_valid_runbooks_and_sorted_problems(tmp_path: Path) -> None:
    """Valid files become runbooks; problems from every file come sorted by path and line."""
    (tmp_path / "b.md").write_text(
        FRONT.replace("id: demo", "id: b") + TICKET.replace("SEC", "S", 1)
    )
    (tmp_path / "a.md").write_text(
        FRONT.replace("id: demo", "id: a") + TICKET.replace("summary", "summry")
    )
    (tmp_path / "c.md").write_text("no front matter\n")
    (tmp_path / "ok.md").write_text(FRONT.replace("id: demo", "id: ok") + TICKET)
    runbooks, problems = validate_paths([tmp_path], REGISTRY)
    assert [r.id for r in runbooks] == ["b", "ok"]
    assert [(Path(p.path).name, p.line) for p in problems] == [
        ("a.md", 14),
        ("a.md", 16),
        ("c.md", 1),
    ]


def test_validate_paths_reports_a_runbook_id_used_twice(tmp_path: Path) -> None:
    """Two files with one runbook id: the later one is reported and left out."""
    (tmp_path / "a.md").write_text(FRONT + TICKET)
    (tmp_path / "b.md").write_text(FRONT + TICKET)
    runbooks, problems = validate_paths([tmp_path], REGISTRY)
    assert [r.path.name for r in runbooks] == ["a.md"]
    assert [(Path(p.path).name, p.line, p.message.split(" is ")[0]) for p in problems] == [
        ("b.md", 2, "runbook id 'demo'")
    ]


def test_validate_paths_reports_an_unreadable_path(tmp_path: Path) -> None:
    """A path that does not exist is a problem, not a crash."""
    _, problems = validate_paths([tmp_path / "missing.md"], REGISTRY)
    assert [p.message.split(":")[0] for p in problems] == ["cannot read runbook"]


def test_validation_does_not_import_prefect() -> None:
    """Parsing, planning, templates and validation never pull in Prefect."""
    code = (
        "import sys\n"
        "import flows.runbook.validate, flows.runbook.parse, flows.runbook.plan\n"
        "import flows.runbook.templates, flows.runbook.schema\n"
        "assert 'prefect' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT)
