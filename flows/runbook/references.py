"""Every name a template reads, checked against what provides it where the template runs.

A step's templates may read inputs, the alert, the incident and the outputs of the steps that
run before it (and, in the `with` of a for_each step, the `item` at hand); an alert trigger's
templates only the alert. Names that a broken part of the
document would provide (an unread input or step) are not reported: that part's problem is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jinja2 import TemplateSyntaxError

from flows.errors import Problem
from flows.runbook.catalog import ActionCatalog
from flows.runbook.hints import line_of, suggest
from flows.runbook.model import Runbook, Step, Unread
from flows.runbook.plan import Plan, ancestors
from flows.runbook.templates import (
    GLOBALS,
    ROOTS,
    Reference,
    condition_references,
    references,
)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(dotted key, string) for every string inside a `with` value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")


def step_template_problems(
    runbook: Runbook, step: Step, registry: ActionCatalog, plan: Plan | None, unread: Unread
) -> list[Problem]:
    """Syntax errors and unknown or not-yet-available names in a step's `with` and `if`."""
    sources = [(key, text, False) for key, text in _strings(step.spec.with_, "with")]
    if step.spec.if_ is not None:
        sources.append(("if", step.spec.if_, True))
    for_each = step.spec.for_each
    if isinstance(for_each, str):
        sources.append(("for_each", for_each, True))
    elif isinstance(for_each, list):
        sources.extend((key, text, False) for key, text in _strings(for_each, "for_each"))
    problems = []
    available = _available_steps(plan, step) if plan is not None else None
    for key, text, is_condition in sources:
        # `item` exists only where one item is at hand: in the `with` of a for_each step.
        has_item = for_each is not None and key.startswith("with")
        line = line_of(step.key_lines, key.split("."), step.line)
        try:
            refs = condition_references(text) if is_condition else references(text)
        except TemplateSyntaxError as error:
            problems.append(
                Problem(
                    runbook.path,
                    line,
                    f"step '{step.id}': template syntax error in `{key}`: {error.message}",
                    "templates are Jinja2: {{ inputs.name }}, {% if ... %}...{% endif %}",
                )
            )
            continue
        for ref in refs:
            if ref.root == ITEM:
                message, hint = _item_problem(step, ref, key, has_item)
            else:
                message, hint = _step_reference_problem(
                    runbook, step, ref, registry, available, unread
                )
            if message:
                problems.append(Problem(runbook.path, line, message, hint))
    return problems


ITEM = "item"
"""The name a for_each step's `with` templates give the item at hand."""


def _item_problem(step: Step, ref: Reference, key: str, has_item: bool) -> tuple[str, str]:
    who = f"step '{step.id}'"
    if not has_item and step.spec.for_each is None:
        return (
            f"{who} uses '{ref}', but only a step with for_each has an item",
            "add `for_each:` with the list to run the step over",
        )
    if not has_item:
        return (
            f"{who} uses '{ref}' in `{key.split('.')[0]}`, which is evaluated once for the step",
            "`item` is the item at hand in `with` only",
        )
    return _generic_reference_problem(who, ref, ROOTS | GLOBALS | {ITEM})


def _available_steps(plan: Plan, step: Step) -> frozenset[str]:
    """Items whose outputs exist when `step` runs; a rollback also sees what its failed step saw."""
    before = ancestors(plan, step.id)
    if step.id in plan.rollbacks:
        failing = [s for s in plan.runbook.steps if s.spec.on_failure == step.id]
        before |= frozenset.intersection(*(ancestors(plan, s.id) for s in failing))
    return before


def _step_reference_problem(
    runbook: Runbook,
    step: Step,
    ref: Reference,
    registry: ActionCatalog,
    available: frozenset[str] | None,
    unread: Unread,
) -> tuple[str, str]:
    """The message and hint for a bad name in a step's template, or ("", "")."""
    who = f"step '{step.id}'"
    generic = _generic_reference_problem(who, ref, ROOTS | GLOBALS)
    if generic[0] or not ref.path:
        return generic
    name = ref.path[0]
    if (
        ref.root == "inputs"
        and name not in runbook.meta.inputs
        and not unread.has(f"inputs.{name}")
    ):
        return (
            f"{who} uses inputs.{name}, which is not a declared input",
            suggest(
                name,
                runbook.meta.inputs,
                known="declared inputs",
                prefix="declare it under `inputs:` in the front matter",
            ),
        )
    if ref.root != "steps":
        return "", ""
    ids = [item.id for item in runbook.items]
    if name in unread.items:
        return "", ""
    if name not in ids:
        return f"{who} uses steps.{name}, but there is no step '{name}'", suggest(
            name, ids, known="steps and gates"
        )
    if name == step.id:
        return f"{who} uses its own output steps.{name}", "a step can use only earlier steps"
    if available is not None and name not in available:
        return (
            f"{who} uses steps.{name}, which does not run before it; add `needs: [{name}]`",
            "a step sees the outputs of the steps it waits for (directly or through needs)",
        )
    target = runbook.item(name)
    if isinstance(target, Step) and target.spec.for_each is not None and len(ref.path) > 1:
        output = ref.path[1]
        return (
            f"{who} uses steps.{name}.{output}, but steps.{name} is a list: one entry per item"
            " of its for_each",
            f"one item's: steps.{name}[0].{output}; every item's:"
            f" steps.{name} | map(attribute='{output}') | list",
        )
    action = registry.get(target.spec.uses) if isinstance(target, Step) else None
    if action is not None and action.outputs and len(ref.path) > 1:
        output = ref.path[1]
        if output not in action.outputs:
            return (
                f"{who} uses steps.{name}.{output}, but {action.name} returns only "
                + ", ".join(action.outputs),
                suggest(output, action.outputs, known="outputs"),
            )
    return "", ""


def _generic_reference_problem(who: str, ref: Reference, roots: frozenset[str]) -> tuple[str, str]:
    """Problems any template can have: private attributes and names nothing provides."""
    private = next((part for part in ref.path if part.startswith("_")), None)
    if private is not None:
        return (
            f"{who} uses '{ref}': names starting with '_' are not allowed in templates",
            "templates run in a sandbox and may only read data",
        )
    if ref.root not in roots:
        return (
            f"{who} uses unknown name '{ref.root}'",
            suggest(ref.root, roots & ROOTS, known="templates here can use"),
        )
    return "", ""


def alert_trigger_problems(runbook: Runbook, unread: Unread) -> list[Problem]:
    """Alert triggers may set only declared inputs, from templates over `alert` alone."""
    problems = []
    for index, trigger in enumerate(runbook.meta.triggers.alerts):
        for name, template in trigger.inputs.items():
            key = f"triggers.alerts.{index}.inputs.{name}"
            line = line_of(runbook.meta_lines, key.split("."), 1)
            who = f"alert trigger {index + 1} ({trigger.source})"
            if name not in runbook.meta.inputs and not unread.has(f"inputs.{name}"):
                problems.append(
                    Problem(
                        runbook.path,
                        line,
                        f"{who} sets input '{name}', which is not a declared input",
                        suggest(name, runbook.meta.inputs, known="declared inputs"),
                    )
                )
            try:
                refs = references(template)
            except TemplateSyntaxError as error:
                problems.append(
                    Problem(
                        runbook.path,
                        line,
                        f"{who}: template syntax error in input '{name}': {error.message}",
                        "e.g. {{ alert.labels.service }}",
                    )
                )
                continue
            for ref in refs:
                message, hint = _generic_reference_problem(who, ref, GLOBALS | {"alert"})
                if message:
                    problems.append(Problem(runbook.path, line, message, hint))
    return problems
