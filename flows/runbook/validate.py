"""`runbook validate`: every problem in a runbook library, each at its file line with a hint.

Checks what parsing cannot: actions and their arguments, the plan (unknown needs, cycles,
rollbacks) and every template's names against inputs, alert and the steps that run before it.
Nothing here imports Prefect, so validating stays fast.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import TemplateSyntaxError
from pydantic import ValidationError

from flows.errors import Problem, RunbookError
from flows.runbook.catalog import ActionCatalog, ActionSpec
from flows.runbook.hints import line_of, suggest
from flows.runbook.model import Runbook, Step
from flows.runbook.parse import find_runbook_files, parse_runbook
from flows.runbook.plan import Plan, ancestors, build_plan
from flows.runbook.schema import allowed_keys
from flows.runbook.templates import (
    GLOBALS,
    ROOTS,
    Reference,
    condition_references,
    is_template,
    references,
)


def validate_paths(
    paths: Iterable[Path], registry: ActionCatalog
) -> tuple[list[Runbook], list[Problem]]:
    """Parse and check every runbook file under `paths`: the valid runbooks and all problems."""
    valid, problems = _check_library(paths, registry, keep=True)
    return [entry.runbook for entry in valid if entry.runbook is not None], problems


def library_problems(paths: Iterable[Path], registry: ActionCatalog) -> tuple[int, list[Problem]]:
    """How many runbooks under `paths` are valid, and every problem: `validate_paths` for callers
    that only report, so parallel workers send back problems instead of whole runbooks."""
    valid, problems = _check_library(paths, registry, keep=False)
    return len(valid), problems


class _Checked(NamedTuple):
    """One file checked: its problems, what the library-wide check needs, the runbook if kept."""

    path: Path
    problems: list[Problem]
    identity: tuple[str, int, str | None, int] | None  # id, its line, slack command, its line
    runbook: Runbook | None = None


def _check_library(
    paths: Iterable[Path], registry: ActionCatalog, *, keep: bool
) -> tuple[list[_Checked], list[Problem]]:
    valid: list[_Checked] = []
    problems: list[Problem] = []
    for entry in _checked_files(find_runbook_files(paths), registry, keep):
        problems.extend(entry.problems)
        if entry.identity is not None and not entry.problems:
            valid.append(entry)
    clashes = _library_clashes(valid)
    problems.extend(clashes)
    clashing = {str(problem.path) for problem in clashes}
    problems.sort(key=lambda problem: (str(problem.path), problem.line))
    return [entry for entry in valid if str(entry.path) not in clashing], problems


PARALLEL_FROM = 64
"""Libraries at least this large are checked on every core: parsing is CPU-bound."""


def _check_file(path: Path, registry: ActionCatalog, keep: bool) -> _Checked:
    try:
        runbook = parse_runbook(path)
    except RunbookError as error:
        return _Checked(path, error.problems, None)
    slack = runbook.meta.triggers.slack
    identity = (
        runbook.id,
        runbook.meta_lines.get("id", 1),
        slack.command if slack else None,
        runbook.meta_lines.get("triggers.slack.command", 1),
    )
    return _Checked(path, check_runbook(runbook, registry), identity, runbook if keep else None)


def _check_chunk(files: list[Path], registry: ActionCatalog, keep: bool) -> list[_Checked]:
    return [_check_file(path, registry, keep) for path in files]


def _start_worker() -> None:
    # A worker lives for one library check: collecting garbage would only walk the parent's
    # inherited objects, touching (and so copying) every page of them.
    gc.disable()


def _checked_files(files: list[Path], registry: ActionCatalog, keep: bool) -> list[_Checked]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if len(files) < PARALLEL_FROM or cores < 2 or "fork" not in mp.get_all_start_methods():
        return _check_chunk(files, registry, keep)
    # Forked workers inherit the imports and the registry; they and this process each take an
    # equal slice.
    chunks = [files[i::cores] for i in range(cores)]
    gc.freeze()  # what exists now is shared with the workers; keep the collector off it
    try:
        with ProcessPoolExecutor(
            cores - 1, mp_context=mp.get_context("fork"), initializer=_start_worker
        ) as pool:
            theirs = pool.map(_check_chunk, chunks[1:], [registry] * cores, [keep] * cores)
            results = [_check_chunk(chunks[0], registry, keep), *theirs]
    finally:
        gc.unfreeze()
    ordered = {entry.path: entry for result in results for entry in result}
    return [ordered[path] for path in files]


def check_runbook(runbook: Runbook, registry: ActionCatalog) -> list[Problem]:
    """Every problem in one parsed runbook beyond its syntax, sorted by line."""
    problems: list[Problem] = []
    try:
        plan: Plan | None = build_plan(runbook)
    except RunbookError as error:
        problems.extend(error.problems)
        plan = None
    for step in runbook.steps:
        action = registry.get(step.spec.uses)
        if action is None:
            problems.append(
                Problem(
                    runbook.path,
                    step.key_lines.get("uses", step.line),
                    f"unknown action '{step.spec.uses}' in step '{step.id}'",
                    suggest(step.spec.uses, registry.names(), known="actions"),
                )
            )
        else:
            problems.extend(_argument_problems(runbook, step, action))
        problems.extend(_step_template_problems(runbook, step, registry, plan))
    problems.extend(_trigger_problems(runbook))
    return sorted(problems, key=lambda problem: problem.line)


def _argument_problems(runbook: Runbook, step: Step, action: ActionSpec) -> list[Problem]:
    """Check `with` against the action's argument model; templated values are checked at run."""
    arguments = step.spec.with_
    allowed = allowed_keys(action.args, ())
    where = f"step '{step.id}': {action.name}"
    problems = []
    if action.args.model_config.get("extra") != "allow":
        for name in arguments:
            if name not in allowed:
                problems.append(
                    Problem(
                        runbook.path,
                        step.key_lines.get(f"with.{name}", step.line),
                        f"{where} has no argument '{name}'",
                        suggest(name, allowed, known="arguments", listing=True),
                    )
                )
    try:
        action.args.model_validate(arguments)
    except ValidationError as error:
        for detail in error.errors():
            loc = ("with", *(str(part) for part in detail["loc"]))
            line = line_of(step.key_lines, loc, step.line)
            if detail["type"] == "missing":
                message = f"{where} needs argument '{'.'.join(loc[1:])}'"
                hint = f"add it under `with:`; arguments: {', '.join(allowed)}"
            elif detail["type"] == "extra_forbidden" or _templated(detail.get("input")):
                continue
            else:
                message = f"{where} argument '{'.'.join(loc[1:])}': {detail['msg']}"
                hint = ""
            problems.append(Problem(runbook.path, line, message, hint))
    return problems


def _templated(value: Any) -> bool:
    """True when a value holds a template anywhere: its real value is known only at run time."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(_templated(item) for item in value.values())
    if isinstance(value, list):
        return any(_templated(item) for item in value)
    return False


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


def _step_template_problems(
    runbook: Runbook, step: Step, registry: ActionCatalog, plan: Plan | None
) -> list[Problem]:
    sources = [(key, text, False) for key, text in _strings(step.spec.with_, "with")]
    if step.spec.if_ is not None:
        sources.append(("if", step.spec.if_, True))
    problems = []
    available = _available_steps(plan, step) if plan is not None else None
    for key, text, is_condition in sources:
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
            message, hint = _step_reference_problem(runbook, step, ref, registry, available)
            if message:
                problems.append(Problem(runbook.path, line, message, hint))
    return problems


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
) -> tuple[str, str]:
    """The message and hint for a bad name in a step's template, or ("", "")."""
    who = f"step '{step.id}'"
    generic = _generic_reference_problem(who, ref, ROOTS | GLOBALS)
    if generic[0] or not ref.path:
        return generic
    name = ref.path[0]
    if ref.root == "inputs" and name not in runbook.meta.inputs:
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


def _trigger_problems(runbook: Runbook) -> list[Problem]:
    """Alert triggers may set only declared inputs, from templates over `alert` alone."""
    problems = []
    for index, trigger in enumerate(runbook.meta.triggers.alerts):
        for name, template in trigger.inputs.items():
            key = f"triggers.alerts.{index}.inputs.{name}"
            line = line_of(runbook.meta_lines, key.split("."), 1)
            who = f"alert trigger {index + 1} ({trigger.source})"
            if name not in runbook.meta.inputs:
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
    slack = runbook.meta.triggers.slack
    if slack is not None:
        line = line_of(runbook.meta_lines, ["triggers", "slack", "command"], 1)
        if slack.command.lower() in RESERVED_SLACK_COMMANDS:
            problems.append(
                Problem(
                    runbook.path,
                    line,
                    f"slack command '{slack.command}' is one of /runbook's own subcommands",
                    f"pick another name; reserved: {', '.join(sorted(RESERVED_SLACK_COMMANDS))}",
                )
            )
        for entry in slack.allowed:
            if not _ALLOWED_ENTRY.match(entry):
                problems.append(
                    Problem(
                        runbook.path,
                        line_of(runbook.meta_lines, ["triggers", "slack", "allowed"], line),
                        f"slack allowed entry '{entry}' would match nobody",
                        "use #channel, @user or @user-group, or a Slack id (C.., U.., S..)",
                    )
                )
    return problems


RESERVED_SLACK_COMMANDS = frozenset({"list", "status", "drill", "help"})
_ALLOWED_ENTRY = re.compile(r"^(?:[#@]\S+|[CGUWS][A-Z0-9]{2,})$")


def _library_clashes(entries: list[_Checked]) -> list[Problem]:
    """Two runbooks with one id, or one Slack command, would make starting them ambiguous."""
    problems = []
    ids: dict[str, Path] = {}
    commands: dict[str, Path] = {}
    for entry in entries:
        if entry.identity is None:
            continue
        runbook_id, id_line, command, command_line = entry.identity
        if runbook_id in ids:
            problems.append(
                Problem(
                    entry.path,
                    id_line,
                    f"runbook id '{runbook_id}' is also used by {ids[runbook_id]}",
                    "runbook ids must be unique across the library",
                )
            )
        ids.setdefault(runbook_id, entry.path)
        if command is None:
            continue
        if command in commands:
            problems.append(
                Problem(
                    entry.path,
                    command_line,
                    f"slack command '{command}' is also used by {commands[command]}",
                    "each runbook needs its own slack command",
                )
            )
        commands.setdefault(command, entry.path)
    return problems
