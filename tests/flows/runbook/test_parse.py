"""Parsing runbook documents: front matter, steps, gates and their source lines."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from flows.errors import RunbookError
from flows.runbook.model import Gate, Runbook, Step
from flows.runbook.parse import find_runbook_files, parse_runbook, read_runbook, slug
from tests.support import FIXTURES

FIXTURE = FIXTURES / "leak.md"

FRONT = """---
id: demo
title: Demo runbook
kind: outage
severity: sev2
version: 1
owner: "#ops"
---
"""


def parse(body: str, front: str = FRONT) -> Runbook:
    """Parse an inline document made of the standard front matter and `body`."""
    return parse_runbook(Path("demo.md"), front + body)


def problems_of(text: str) -> list[str]:
    """`line: message` of every problem parsing `text` reports."""
    with pytest.raises(RunbookError) as caught:
        parse_runbook(Path("bad.md"), text)
    return [f"{p.line}: {p.message}" for p in caught.value.problems]


def test_fixture_items_are_steps_and_gates_in_document_order() -> None:
    """Step fences and the checklist become items in the order they are written."""
    runbook = parse_runbook(FIXTURE)
    kinds = [(type(item).__name__, item.id) for item in runbook.items]
    assert kinds == [
        ("Step", "ticket"),
        ("Step", "announce"),
        ("Gate", "contain"),
        ("Step", "close"),
    ]


def test_fixture_front_matter_is_validated_into_the_model() -> None:
    """Front matter values land in FrontMatter, inputs and triggers included."""
    meta = parse_runbook(FIXTURE).meta
    assert (meta.id, meta.kind, meta.severity, meta.version) == (
        "credential-leak",
        "breach",
        "sev1",
        3,
    )
    assert meta.inputs["region"].default == "eu-west-1"
    assert meta.triggers.alerts[0].inputs == {"service": "{{ alert.labels.service }}"}


def test_fixture_steps_take_the_heading_above_as_title_and_the_fence_line() -> None:
    """A step's title is its nearest heading and its line is the fence opening."""
    steps = parse_runbook(FIXTURE).steps
    assert [(s.title, s.line) for s in steps] == [
        ("Open the incident ticket", 29),
        ("Tell the responders", 39),
        ("Close", 58),
    ]


def test_fixture_step_key_lines_point_at_file_lines() -> None:
    """key_lines maps dotted key paths, nested ones too, to 1-based file lines."""
    ticket, announce, close = parse_runbook(FIXTURE).steps
    assert ticket.key_lines["id"] == 30
    assert ticket.key_lines["uses"] == 31
    assert ticket.key_lines["with"] == 32
    assert ticket.key_lines["with.project"] == 33
    assert ticket.key_lines["with.labels.1"] == 35
    assert announce.key_lines["needs"] == 42
    assert announce.key_lines["with.text"] == 45
    assert close.key_lines["if"] == 61


def test_fixture_step_specs_keep_with_and_if_aliases() -> None:
    """`with` and `if` fill the spec's with_ and if_ fields, block scalars included."""
    _, announce, close = parse_runbook(FIXTURE).steps
    assert announce.spec.with_["text"] == "Ticket {{ steps.ticket.key }} is open.\n"
    assert announce.spec.needs == ["ticket"]
    assert close.spec.if_ == "inputs.service != 'test'"


def test_fixture_gate_groups_checklist_items_under_its_heading() -> None:
    """One gate per heading: explicit id, stripped title, items without boxes, first item line."""
    gate = parse_runbook(FIXTURE).item("contain")
    assert gate == Gate(
        id="contain",
        title="Contain the leak",
        items=(
            "Revoke the leaked key in the secrets manager",
            "Confirm no new sessions use it",
        ),
        line=51,
    )


def test_fixture_meta_lines_map_front_matter_keys() -> None:
    """meta_lines holds file lines of front matter keys, nested and in lists."""
    lines = parse_runbook(FIXTURE).meta_lines
    assert lines["id"] == 2
    assert lines["inputs.region.default"] == 13
    assert lines["triggers.alerts.0.inputs.service"] == 18


def test_fixture_hash_and_text_are_of_the_file() -> None:
    """sha256 is the file bytes' hash and the whole text is kept for responders."""
    runbook = parse_runbook(FIXTURE)
    assert runbook.sha256 == hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    assert "Prose for humans stays prose" in runbook.text


def test_given_text_is_parsed_instead_of_the_file() -> None:
    """With `text`, nothing is read from disk and the hash is of that text."""
    runbook = parse(
        "```step\nid: a\nuses: x.y\n```\n",
    )
    assert runbook.path == Path("demo.md")
    assert (
        runbook.sha256
        == hashlib.sha256((FRONT + "```step\nid: a\nuses: x.y\n```\n").encode()).hexdigest()
    )


def test_step_without_heading_takes_the_runbook_title() -> None:
    """A step above every heading is titled after the runbook."""
    step = parse("```step\nid: a\nuses: x.y\n```\n").steps[0]
    assert step.title == "Demo runbook"


def test_other_fences_are_prose() -> None:
    """Only fences whose info string is exactly `step` are steps."""
    runbook = parse("```yaml\nid: a\nuses: x.y\n```\n```step yaml\nid: b\n```\n")
    assert runbook.items == ()


def test_step_inside_an_html_comment_is_prose() -> None:
    """Commenting a step out with <!-- --> keeps it from running."""
    assert parse("<!--\n```step\nid: a\nuses: x.y\n```\n-->\n").items == ()


def test_gate_id_is_the_heading_slug() -> None:
    """Without an explicit id, the gate id is the slugged heading."""
    gate = parse("## Roll back: the API & workers!\n- [ ] Do it\n").gates[0]
    assert gate.id == "roll-back-the-api-workers"


def test_checklists_split_by_prose_under_one_heading_form_one_gate() -> None:
    """All checklist items until the next heading belong to one gate."""
    runbook = parse("## Verify\n- [ ] One\n\nSome prose.\n\n- [ ] Two\n## Next\n- [ ] Three\n")
    assert [(g.id, g.items) for g in runbook.gates] == [
        ("verify", ("One", "Two")),
        ("next", ("Three",)),
    ]


def test_plain_bullets_are_not_gates() -> None:
    """A bullet list without boxes is prose."""
    assert parse("## Notes\n- remember this\n- [link](x)\n").items == ()


def test_yaml_keeps_yes_and_dates_as_strings() -> None:
    """YAML 1.2 core schema: `yes`, `on` and dates stay strings; true and numbers convert."""
    step = parse(
        "```step\nid: a\nuses: x.y\n"
        "with: {a: yes, b: on, c: 2024-01-02, d: true, e: 0x10, f: 1.5}\n```\n"
    ).steps[0]
    assert step.spec.with_ == {
        "a": "yes",
        "b": "on",
        "c": "2024-01-02",
        "d": True,
        "e": 16,
        "f": 1.5,
    }


def test_every_problem_in_the_file_is_reported() -> None:
    """Parsing collects problems from all blocks instead of stopping at the first."""
    lines = problems_of(FRONT + "```step\nid: a\n```\n```step\nid: b\nuses: x.y\nbogus: 1\n```\n")
    assert lines == [
        "9: step 'a': missing required key 'uses'",
        "15: step 'b': unknown key 'bogus'",
    ]


def test_gate_id_colliding_with_a_step_id_is_a_problem() -> None:
    """A heading slug equal to a step id is reported as a duplicate id at the heading."""
    lines = problems_of(FRONT + "## Ticket\n```step\nid: ticket\nuses: x.y\n```\n- [ ] check\n")
    assert lines == ["9: duplicate id 'ticket' (first used at line 11)"]


def test_missing_front_matter_is_a_problem_at_line_one() -> None:
    """A document not starting with `---` front matter is reported at line 1."""
    assert problems_of("# Title\n") == ["1: missing front matter"]


def test_unreadable_file_is_a_problem_with_its_path_and_no_line(tmp_path: Path) -> None:
    """A file that cannot be read has no line to point at: the problem prints `path: message`."""
    missing = tmp_path / "missing.md"
    with pytest.raises(RunbookError) as caught:
        parse_runbook(missing)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == (missing, None)
    assert str(problem).startswith(f"{missing}: cannot read runbook: ")


def test_reading_keeps_the_body_of_a_document_with_broken_front_matter() -> None:
    """read_runbook reports the front matter's problems and still returns every step."""
    text = FRONT.replace("version: 1\n", "") + "```step\nid: a\nuses: x.y\n```\n"
    reading = read_runbook(Path("bad.md"), text)
    assert [f"{p.line}: {p.message}" for p in reading.problems] == [
        "1: front matter: missing required key 'version'"
    ]
    assert reading.runbook is not None
    assert [item.id for item in reading.runbook.items] == ["a"]
    assert reading.runbook.meta.title == "Demo runbook"
    assert reading.unread.front_matter == {"version"}
    assert problems_of(text) == ["1: front matter: missing required key 'version'"]


def test_a_broken_input_leaves_the_other_inputs_declared() -> None:
    """Only the input with a bad declaration is unread; the others stay in the front matter."""
    front = FRONT.removesuffix("---\n") + "inputs:\n  a: {type: string}\n  b: {type: text}\n---\n"
    reading = read_runbook(Path("bad.md"), front)
    assert reading.runbook is not None
    assert list(reading.runbook.meta.inputs) == ["a"]
    assert reading.unread.front_matter == {"inputs.b"}


def test_a_document_without_front_matter_has_all_of_it_unread() -> None:
    """Missing front matter leaves every key unread and titles items after the file."""
    reading = read_runbook(Path("notes.md"), "```step\nid: a\nuses: x.y\n```\n")
    assert reading.runbook is not None
    assert reading.runbook.steps[0].title == "notes"
    assert {"id", "version", "owner", "inputs", "triggers"} <= reading.unread.front_matter


def test_broken_steps_are_left_out_and_their_ids_kept_as_unread() -> None:
    """A step with bad YAML or a bad key is no item, but its id is known to be written."""
    body = (
        "```step\nid: a\nuses: [x.y\n```\n"
        "```step\nid: b\nuses: x.y\nretries: many\n```\n"
        "```step\nid: c\nuses: x.y\n```\n"
    )
    reading = read_runbook(Path("bad.md"), FRONT + body)
    assert reading.runbook is not None
    assert [item.id for item in reading.runbook.items] == ["c"]
    assert reading.unread.items == {"a", "b"}


def test_a_duplicate_id_is_left_out_of_the_items() -> None:
    """The second item with an id is reported and dropped, so every id names one item."""
    step = "```step\nid: a\nuses: x.y\n```\n"
    reading = read_runbook(Path("bad.md"), FRONT + step + "## A\n- [ ] check\n")
    assert reading.runbook is not None
    assert [type(item).__name__ for item in reading.runbook.items] == ["Step"]
    assert [p.message.split(" (")[0] for p in reading.problems] == ["duplicate id 'a'"]


def test_slug_collapses_and_trims_separators() -> None:
    """Runs of non-alphanumerics become one dash; ends are trimmed."""
    assert slug("  Fail over -- now! ") == "fail-over-now"


def test_find_runbook_files_walks_folders_and_keeps_files_as_given(tmp_path: Path) -> None:
    """Folders give their *.md sorted (no README, no hidden paths); files are kept as given."""
    for name in ("b.md", "a/c.md", "README.md", ".hidden/d.md", "notes.txt", "a/.e.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    given = tmp_path / "notes.txt"
    assert find_runbook_files([given, tmp_path]) == [given, tmp_path / "a/c.md", tmp_path / "b.md"]


def test_steps_are_step_models() -> None:
    """Parsed steps carry validated StepSpec models with defaults filled in."""
    step = parse("```step\nid: a\nuses: x.y\n```\n").steps[0]
    assert isinstance(step, Step)
    assert (step.spec.retries, step.spec.on_failure, step.spec.drill) == (0, "stop", "simulate")
