"""Execution plans: document order, needs, gates as barriers, rollbacks and cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.errors import RunbookError
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from flows.runbook.plan import ancestors, build_plan

FRONT = """---
id: demo
title: Demo
kind: outage
severity: sev2
version: 1
owner: "#ops"
---
"""


def runbook(*blocks: str) -> Runbook:
    """A runbook of the given blocks: markdown lines, or steps as `id key: value; key: value`."""
    body = []
    for block in blocks:
        if block.startswith(("#", "-")):
            body.append(block)
        else:
            step_id, _, extra = block.partition(" ")
            keys = [key.strip() for key in extra.split(";") if key.strip()]
            body.append("\n".join(["```step", f"id: {step_id}", "uses: x.y", *keys, "```"]))
    return parse_runbook(Path("demo.md"), FRONT + "\n".join(body) + "\n")


def plan_problems(book: Runbook) -> list[str]:
    """`line: message` of each problem build_plan raises."""
    with pytest.raises(RunbookError) as caught:
        build_plan(book)
    return [f"{p.line}: {p.message}" for p in caught.value.problems]


def test_items_without_needs_run_in_document_order() -> None:
    """Each item waits for the one above it."""
    plan = build_plan(runbook("a", "b", "c"))
    assert plan.order == ("a", "b", "c")
    assert dict(plan.needs) == {"a": (), "b": ("a",), "c": ("b",)}


def test_needs_moves_a_step_after_what_it_needs() -> None:
    """A step waits exactly for its needs (none for `needs: []`), even for steps below it."""
    plan = build_plan(runbook("a needs: [c]", "b", "c needs: []"))
    assert plan.order == ("c", "a", "b")
    assert plan.needs["a"] == ("c",)


def test_ties_are_broken_by_document_order() -> None:
    """Steps ready at the same time run in the order they are written."""
    plan = build_plan(runbook("a", "c needs: [a]", "b needs: [a]"))
    assert plan.order == ("a", "c", "b")


def test_a_gate_holds_back_the_items_below_it() -> None:
    """A gate waits for the item above it and the next item waits for the gate."""
    plan = build_plan(runbook("a", "## Contain", "- [ ] revoke", "b"))
    assert plan.needs["contain"] == ("a",)
    assert plan.needs["b"] == ("contain",)
    assert plan.order == ("a", "contain", "b")


def test_rollback_steps_are_left_out_of_the_order() -> None:
    """A step named by an on_failure runs only as a rollback and waits for nothing implicitly."""
    plan = build_plan(runbook("a on_failure: undo", "undo", "b"))
    assert plan.order == ("a", "b")
    assert plan.rollbacks == frozenset({"undo"})
    assert plan.needs["undo"] == ()
    assert plan.needs["b"] == ("a",)


def test_ancestors_are_transitive() -> None:
    """ancestors() follows needs and implicit order all the way up."""
    plan = build_plan(runbook("a", "b", "c needs: [b]", "d needs: [a]"))
    assert ancestors(plan, "c") == frozenset({"a", "b"})
    assert ancestors(plan, "d") == frozenset({"a"})


def test_cycle_is_reported_at_the_needs_line() -> None:
    """Steps needing each other are a cycle, reported where `needs` is written."""
    book = runbook("a needs: [b]", "b needs: [a]")
    assert plan_problems(book) == ["12: dependency cycle: a needs b, b needs a"]


def test_cycle_through_document_order_is_reported() -> None:
    """A step needing a later step it implicitly comes before is a cycle too."""
    book = runbook("a needs: [c]", "## Wait", "- [ ] ok", "c")
    assert plan_problems(book) == [
        "12: dependency cycle: a needs c, c follows wait, wait follows a"
    ]


def test_unknown_needs_is_reported_with_a_suggestion() -> None:
    """A needs entry naming nothing in the runbook is a problem at its line."""
    with pytest.raises(RunbookError) as caught:
        build_plan(runbook("ticket", "b needs: [tikcet]"))
    (problem,) = caught.value.problems
    assert (problem.line, problem.message) == (
        16,
        "'b' needs 'tikcet', which is not a step or gate in this runbook",
    )
    assert "ticket" in problem.hint


def test_needing_a_rollback_step_is_a_problem() -> None:
    """A rollback never runs in the normal order, so nothing can wait for it."""
    book = runbook("a on_failure: undo", "undo", "b needs: [undo]")
    assert plan_problems(book) == ["21: 'b' needs 'undo', which runs only as a rollback"]


def test_unknown_on_failure_target_is_a_problem() -> None:
    """on_failure names stop, continue or a step."""
    book = runbook("a on_failure: rollbak")
    assert plan_problems(book) == [
        "12: step 'a' has on_failure 'rollbak', which is not a step in this runbook"
    ]
