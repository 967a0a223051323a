"""`runbook validate`: every problem in a runbook library, each at its file line with a hint.

Checks what parsing cannot: actions and their arguments, the plan (unknown needs, cycles,
rollbacks), every template's names against inputs, alert and the steps that run before it, and
gate policies against the roster (responders.yaml) that governs each runbook.
A document with broken front matter or steps is still checked as far as it can be read, so
one pass reports every problem. Nothing here imports Prefect, so validating stays fast.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import re
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from flows.errors import Problem, RunbookError
from flows.runbook.catalog import ActionCatalog, ActionSpec
from flows.runbook.clock_checks import clock_problems, clock_roster_problems
from flows.runbook.hints import line_of, suggest
from flows.runbook.model import ANYONE, STARTER, STEERING_ACTS, Runbook, Step, Unread
from flows.runbook.parse import find_runbook_files, read_runbook
from flows.runbook.plan import Plan, build_plan
from flows.runbook.policies import policy_problems, roster_problems
from flows.runbook.references import alert_trigger_problems, step_template_problems
from flows.runbook.roster import ROSTER_FILE, Roster, load_roster, roster_path
from flows.runbook.schema import allowed_keys
from flows.runbook.templates import is_template


def validate_paths(
    paths: Iterable[Path], registry: ActionCatalog, *, roster: Path | None = None
) -> tuple[list[Runbook], list[Problem]]:
    """Parse and check every runbook file under `paths`: the valid runbooks and all problems.

    `roster` is the RUNBOOK_ROSTER setting; without it each runbook is checked against the
    responders.yaml nearest to it (see `flows.runbook.roster`), if any.
    """
    valid, problems = _check_library(paths, registry, keep=True, rosters=_Rosters(roster))
    return [entry.runbook for entry in valid if entry.runbook is not None], problems


def library_problems(
    paths: Iterable[Path], registry: ActionCatalog, *, roster: Path | None = None
) -> tuple[int, list[Problem]]:
    """How many runbooks under `paths` are valid, and every problem: `validate_paths` for callers
    that only report, so parallel workers send back problems instead of whole runbooks."""
    valid, problems = _check_library(paths, registry, keep=False, rosters=_Rosters(roster))
    return len(valid), problems


def roster_notes(paths: Iterable[Path], *, roster: Path | None = None) -> list[str]:
    """What `runbook validate` says besides problems: the runbooks no roster governs, whose
    gates anyone may pass (gates declaring approvers there are problems, not notes)."""
    if roster is not None:
        return []
    stop = Path.cwd()
    loose = [
        path for path in find_runbook_files(paths) if roster_path(path, None, stop=stop) is None
    ]
    if not loose:
        return []
    where = sorted({str(path.parent) for path in loose})
    return [
        f"note: no {ROSTER_FILE} (nor RUNBOOK_ROSTER) governs {len(loose)} runbook(s) in "
        f"{', '.join(where)}: anyone may acknowledge their gates, recorded as who they are"
    ]


@dataclass
class _Rosters:
    """The roster of each runbook, each roster file read once per library check."""

    setting: Path | None
    stop: Path = field(default_factory=Path.cwd)
    loaded: dict[Path, tuple[Roster | None, list[Problem]]] = field(default_factory=dict)

    def of(self, runbook: Path) -> tuple[Roster | None, list[Problem]]:
        """The roster governing `runbook` (None when there is none), or the problems of its file."""
        try:
            path = roster_path(runbook, self.setting, stop=self.stop)
        except RunbookError as error:
            return None, list(error.problems)
        if path is None:
            return None, []
        if path not in self.loaded:
            try:
                self.loaded[path] = (load_roster(path), [])
            except RunbookError as error:
                self.loaded[path] = (None, list(error.problems))
        return self.loaded[path]


class _Checked(NamedTuple):
    """One file checked: its problems, what the library-wide check needs, the runbook if kept."""

    path: Path
    problems: list[Problem]
    identity: tuple[str, int, str | None, int] | None  # id, its line, slack command, its line
    runbook: Runbook | None = None


def _check_library(
    paths: Iterable[Path], registry: ActionCatalog, *, keep: bool, rosters: _Rosters
) -> tuple[list[_Checked], list[Problem]]:
    valid: list[_Checked] = []
    problems: list[Problem] = []
    for entry in _checked_files(find_runbook_files(paths), registry, keep, rosters):
        problems.extend(entry.problems)
        if entry.identity is not None and not entry.problems:
            valid.append(entry)
    clashes = _library_clashes(valid)
    problems.extend(clashes)
    clashing = {str(problem.path) for problem in clashes}
    # A broken roster is reported by every runbook it governs: say it once.
    problems = list(dict.fromkeys(problems))
    problems.sort(key=lambda problem: (str(problem.path), problem.line or 0))
    return [entry for entry in valid if str(entry.path) not in clashing], problems


PARALLEL_FROM = 64
"""Libraries at least this large are checked on every core: parsing is CPU-bound."""


def _check_file(path: Path, registry: ActionCatalog, keep: bool, rosters: _Rosters) -> _Checked:
    reading = read_runbook(path)
    runbook = reading.runbook
    if runbook is None:
        return _Checked(path, list(reading.problems), None)
    problems = [*reading.problems, *check_runbook(runbook, registry, reading.unread)]
    roster, unreadable = rosters.of(path)
    problems.extend(
        unreadable
        or [
            *roster_problems(runbook, roster),
            *steering_problems(runbook, roster),
            *clock_roster_problems(runbook, roster),
        ]
    )
    if problems:
        return _Checked(path, sorted(problems, key=_line), None)
    slack = runbook.meta.triggers.slack
    identity = (
        runbook.id,
        runbook.meta_lines.get("id", 1),
        slack.command if slack else None,
        runbook.meta_lines.get("triggers.slack.command", 1),
    )
    return _Checked(path, [], identity, runbook if keep else None)


def _check_chunk(
    files: list[Path], registry: ActionCatalog, keep: bool, rosters: _Rosters
) -> list[_Checked]:
    return [_check_file(path, registry, keep, rosters) for path in files]


def _start_worker() -> None:
    # A worker lives for one library check: collecting garbage would only walk the parent's
    # inherited objects, touching (and so copying) every page of them.
    gc.disable()


def _checked_files(
    files: list[Path], registry: ActionCatalog, keep: bool, rosters: _Rosters
) -> list[_Checked]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if len(files) < PARALLEL_FROM or cores < 2 or "fork" not in mp.get_all_start_methods():
        return _check_chunk(files, registry, keep, rosters)
    # Forked workers inherit the imports and the registry; they and this process each take an
    # equal slice.
    chunks = [files[i::cores] for i in range(cores)]
    gc.freeze()  # what exists now is shared with the workers; keep the collector off it
    try:
        with ProcessPoolExecutor(
            cores - 1, mp_context=mp.get_context("fork"), initializer=_start_worker
        ) as pool:
            theirs = pool.map(
                _check_chunk, chunks[1:], [registry] * cores, [keep] * cores, [rosters] * cores
            )
            results = [_check_chunk(chunks[0], registry, keep, rosters), *theirs]
    finally:
        gc.unfreeze()
    ordered = {entry.path: entry for result in results for entry in result}
    return [ordered[path] for path in files]


def check_runbook(
    runbook: Runbook, registry: ActionCatalog, unread: Unread | None = None
) -> list[Problem]:
    """Every problem in one parsed runbook beyond its syntax, sorted by line.

    `unread` says what of the document could not be read (see `read_runbook`): checks needing
    it are skipped.
    """
    unread = Unread() if unread is None else unread
    problems: list[Problem] = []
    try:
        plan: Plan | None = build_plan(runbook, unread=unread.items)
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
        problems.extend(step_template_problems(runbook, step, registry, plan, unread))
    problems.extend(alert_trigger_problems(runbook, unread))
    problems.extend(_slack_problems(runbook))
    problems.extend(policy_problems(runbook))
    problems.extend(clock_problems(runbook, plan))
    return sorted(problems, key=_line)


def _line(problem: Problem) -> int:
    return problem.line or 0


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


def _slack_problems(runbook: Runbook) -> list[Problem]:
    """A Slack command must not be one of /runbook's own; each allowed entry must match someone."""
    problems = []
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


RESERVED_SLACK_COMMANDS = frozenset({"list", "status", "drill", "help", *STEERING_ACTS})
_ALLOWED_ENTRY = re.compile(r"^(?:[#@]\S+|[CGUWS][A-Z0-9]{2,})$")


def steering_problems(runbook: Runbook, roster: Roster | None) -> list[Problem]:
    """Every role `steering` names must be in the roster; without one, anyone may steer and
    there is nothing to check names against."""
    if roster is None:
        return []
    steering = runbook.meta.steering
    roles = roster.spec.roles
    problems = []

    def unknown(loc: list[str], role: str, words: tuple[str, ...] = ()) -> None:
        problems.append(
            Problem(
                runbook.path,
                line_of(runbook.meta_lines, loc, 1),
                f"steering.{'.'.join(loc[1:2])}: role '{role}' is not in {roster.path}",
                suggest(role, [*roles, *words], known="roles" + (" and words" if words else "")),
            )
        )

    if "commander" in steering.model_fields_set and steering.commander not in roles:
        unknown(["steering", "commander"], steering.commander)
    for act in STEERING_ACTS:
        for index, entry in enumerate(getattr(steering, act) or ()):
            if entry not in (STARTER, ANYONE) and entry not in roles:
                unknown(["steering", act, str(index)], entry, (STARTER, ANYONE))
    return problems


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
