"""`runbook validate` on a document with broken parts: every problem in one pass, none made up."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from flows.contract.actions import Action, ActionContext, ActionRegistry
from flows.runbook.parse import read_runbook
from flows.runbook.validate import check_runbook, library_problems, validate_paths


class Post(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str
    text: str


class Wait(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: int


def _act(args: BaseModel, context: ActionContext) -> Mapping[str, Any]:
    return {}


REGISTRY = ActionRegistry(
    [
        Action("slack.post", Post, _act, outputs=("ts",)),
        Action("wait.seconds", Wait, _act, side_effects=False),
    ]
)

FRONT_WITHOUT_VERSION_AND_OWNER = """---
id: demo
title: Demo
kind: breach
severity: sev1
inputs:
  service: {type: string}
---
"""
# Front matter is lines 1-8; a body therefore starts at line 9.


def step(step_id: str, *lines: str) -> str:
    """A ```step fence with `id: step_id` and the given YAML lines."""
    return "\n".join(("```step", f"id: {step_id}", *lines, "```", ""))


def located(path: Path, text: str) -> list[str]:
    """Every problem `runbook validate` reports for a file holding `text`, as `name:line: ...`."""
    path.write_text(text)
    _, problems = library_problems([path], REGISTRY)
    return [str(problem).removeprefix(f"{path.parent}/") for problem in problems]


def test_front_matter_and_body_problems_are_reported_together(tmp_path: Path) -> None:
    """Missing front-matter keys do not hide an unknown action, a cycle or a template error."""
    text = (
        FRONT_WITHOUT_VERSION_AND_OWNER
        + step("a", "uses: wait.secnds", "needs: [b]")  # lines 9-13
        + step("b", "uses: slack.post", "with:", '  channel: "#sec"', '  text: "{{ inputs.x }"')
    )
    problems = located(tmp_path / "doc.md", text)
    assert [problem.split(" (hint: ")[0] for problem in problems] == [
        "doc.md:1: front matter: missing required key 'version'",
        "doc.md:1: front matter: missing required key 'owner'",
        "doc.md:11: unknown action 'wait.secnds' in step 'a'",
        "doc.md:12: dependency cycle: a needs b, b follows a",
        "doc.md:19: step 'b': template syntax error in `with.text`: unexpected '}'",
    ]


def test_body_is_checked_when_the_front_matter_is_missing(tmp_path: Path) -> None:
    """Without any front matter, steps are still read and checked against the actions."""
    problems = located(tmp_path / "doc.md", "# Demo\n" + step("a", "uses: wait.secnds"))
    assert [problem.split(" (hint: ")[0] for problem in problems] == [
        "doc.md:1: missing front matter",
        "doc.md:4: unknown action 'wait.secnds' in step 'a'",
    ]


def test_step_yaml_problems_are_reported_with_the_front_matter_ones(tmp_path: Path) -> None:
    """A bad step block is reported beside the front matter's problems and the other steps'."""
    text = (
        FRONT_WITHOUT_VERSION_AND_OWNER
        + step("a", "uses: [wait.seconds")  # lines 9-12
        + step("b", "uses: slack.post", "with: {channel: x}")  # lines 13-17
    )
    problems = located(tmp_path / "doc.md", text)
    assert [problem.split(": ", 2)[:2] for problem in problems] == [
        ["doc.md:1", "front matter"],
        ["doc.md:1", "front matter"],
        ["doc.md:11", "step"],
        ["doc.md:16", "step 'b'"],
    ]
    assert "slack.post needs argument 'text'" in problems[-1]


def test_an_input_whose_declaration_is_broken_is_not_reported_as_undeclared() -> None:
    """A template using an input with a bad declaration gets no second problem; others still do."""
    text = (
        FRONT_WITHOUT_VERSION_AND_OWNER.replace("owner", "x").replace(
            "inputs:\n", "version: 1\nowner: o\ninputs:\n  region: {type: strng}\n"
        )
        + step("a", "uses: slack.post", "with: {channel: x, text: '{{ inputs.region }}'}")
        + step("b", "uses: slack.post", "with: {channel: x, text: '{{ inputs.zone }}'}")
    )
    reading = read_runbook(Path("doc.md"), text)
    assert reading.runbook is not None
    problems = [*reading.problems, *check_runbook(reading.runbook, REGISTRY, reading.unread)]
    assert [problem.message.split(":")[0] for problem in problems] == [
        "front matter",
        "step 'b' uses inputs.zone, which is not a declared input",
    ]


def test_an_alert_trigger_setting_a_broken_input_is_not_reported() -> None:
    """An alert trigger may set an input whose declaration is broken: that is one problem."""
    text = FRONT_WITHOUT_VERSION_AND_OWNER.replace(
        "inputs:\n  service: {type: string}\n",
        "version: 1\nowner: o\ninputs:\n  service: {type: str}\n"
        "triggers:\n  alerts:\n    - source: grafana\n      inputs: {service: x, zone: y}\n",
    )
    reading = read_runbook(Path("doc.md"), text)
    assert reading.runbook is not None
    problems = check_runbook(reading.runbook, REGISTRY, reading.unread)
    assert [problem.message for problem in problems] == [
        "alert trigger 1 (grafana) sets input 'zone', which is not a declared input"
    ]


def test_a_step_left_out_as_broken_is_not_reported_as_missing(tmp_path: Path) -> None:
    """Needs, rollbacks and outputs naming a broken step add no problem of their own."""
    text = (
        FRONT_WITHOUT_VERSION_AND_OWNER.replace("inputs:", "version: 1\nowner: o\ninputs:")
        + step("undo", "uses: wait.seconds", "retries: many")
        + step("a", "uses: wait.seconds", "with: {seconds: 1}", "on_failure: undo")
        + step(
            "b",
            "uses: slack.post",
            "needs: [undo]",
            "with: {channel: x, text: '{{ steps.undo.ts }}'}",
        )
        + step("c", "uses: wait.seconds", "with: {seconds: [1}")
        + step("d", "uses: wait.seconds", "needs: [c]", "with: {seconds: 1}")
    )
    problems = located(tmp_path / "doc.md", text)
    assert [problem.split(": ", 2)[1] for problem in problems] == ["step 'undo'", "step"]


def test_a_misspelt_need_is_still_reported_beside_a_broken_step(tmp_path: Path) -> None:
    """Only the broken step's own id is excused: other unknown names are still problems."""
    text = (
        FRONT_WITHOUT_VERSION_AND_OWNER.replace("inputs:", "version: 1\nowner: o\ninputs:")
        + step("a", "uses: wait.seconds", "retries: many")
        + step("b", "uses: wait.seconds", "needs: [aa]", "with: {seconds: 1}")
    )
    problems = located(tmp_path / "doc.md", text)
    assert [problem.split(": ", 2)[1] for problem in problems] == [
        "step 'a'",
        "'b' needs 'aa', which is not a step or gate in this runbook",
    ]


def test_a_document_with_broken_front_matter_is_not_a_valid_runbook(tmp_path: Path) -> None:
    """Checking on past broken front matter never makes the document count as valid."""
    (tmp_path / "doc.md").write_text(FRONT_WITHOUT_VERSION_AND_OWNER + step("a", "uses: x"))
    runbooks, problems = validate_paths([tmp_path], REGISTRY)
    assert runbooks == []
    assert len(problems) == 3
