"""Drill scenarios: the YAML documents in runbooks/drills/, checked at their lines.

A scenario names the runbook, how it is triggered, who takes part, targets per step or gate,
timed injects, canned outputs for simulated steps and scripted gate answers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator

from flows.engine.routing import route_alert
from flows.errors import Problem, RunbookError
from flows.evidence.incident import DOCUMENT_FILE, SCENARIO_FILE
from flows.runbook.hints import line_of, suggest
from flows.runbook.model import IDENTIFIER, AlertSource, Runbook, Strict
from flows.runbook.parse import YamlProblem, find_runbook_files, load_yaml, parse_runbook
from flows.runbook.schema import validation_problems
from integrations.alerts import Alert, PayloadError
from integrations.slack.commands import parse_command_text

_DURATION = re.compile(r"^\+?\s*(\d+(?:\.\d+)?)\s*(s|m|h)?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from `90`, `"90s"`, `"2m"`, `"+5m"` or `"1h"`."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '5m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.match(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a duration: write seconds, '90s', '5m' or '1h'")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Participant(Strict):
    """Someone taking part: they acknowledge gates under this name."""

    name: str = Field(min_length=1)
    role: str = ""


class DrillAlert(Strict):
    """An alert as a monitoring source would send it; routed through the runbook's triggers."""

    source: AlertSource
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)


class DrillSlack(Strict):
    """A Slack command as a responder would type it after `/runbook`."""

    command: str = Field(min_length=1, description="e.g. `breach service=api`.")


class DrillTrigger(Strict):
    """How the drill starts the runbook: exactly one of an alert or a Slack command."""

    alert: DrillAlert | None = None
    slack: DrillSlack | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DrillTrigger:
        if (self.alert is None) == (self.slack is None):
            raise ValueError("give exactly one of `alert` or `slack`")
        return self


class Inject(Strict):
    """A scripted event at a time after the drill starts."""

    at: Duration = Field(description="When, after the start: seconds or '+5m'.")
    kind: Literal["note", "alert", "fail_integration"]
    text: str = ""
    system: Literal["tickets", "chat"] = Field(
        default="tickets", description="fail_integration: which sandbox fails."
    )
    times: int = Field(default=1, ge=1, description="fail_integration: how many calls fail.")
    labels: dict[str, str] = Field(default_factory=dict, description="alert: its labels.")


class ScriptedAnswer(Strict):
    """How a participant answers a gate in a scripted drill."""

    by: str
    after: Duration = Field(default=0.0, description="Time taken once the gate opens.")
    note: str = ""


class Scenario(Strict):
    """A drill scenario document."""

    id: str = Field(pattern=IDENTIFIER)
    title: str
    runbook: str = Field(description="Path relative to this file, or a library runbook id.")
    description: str = ""
    trigger: DrillTrigger | None = None
    inputs: dict[str, str | int | float | bool] = Field(default_factory=dict)
    participants: list[Participant] = Field(min_length=1)
    facilitator: str = ""
    targets: dict[str, Duration] = Field(default_factory=dict)
    injects: list[Inject] = Field(default_factory=list)
    canned: dict[str, dict[str, Any]] = Field(default_factory=dict)
    answers: dict[str, ScriptedAnswer] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    lessons: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class LoadedScenario:
    """A checked scenario, the runbook it drills, and where both came from."""

    scenario: Scenario
    path: Path
    runbook_path: Path
    runbook: Runbook
    sha256: str
    raw: bytes = b""
    """The scenario document's bytes, as the drill keeps them in its incident folder."""


def load_scenario(path: Path, library: Path | None = None) -> LoadedScenario:
    """Read and check a scenario; every problem is raised at its file line as a RunbookError.

    `library` is where runbook ids are looked up (default: the scenario folder's parent).
    """
    scenario, lines, raw = _read_scenario(path)
    runbook_path = _find_runbook(scenario, path, library or path.parent.parent, lines)
    return _checked(scenario, lines, raw, path, runbook_path)


def load_drilled_scenario(folder: Path) -> LoadedScenario:
    """The scenario and runbook a drill ran, from the copies in its incident folder.

    A drill is continued and scored with these, never with the library files, which may have
    changed since it started.
    """
    scenario, lines, raw = _read_scenario(folder / SCENARIO_FILE)
    return _checked(scenario, lines, raw, folder / SCENARIO_FILE, folder / DOCUMENT_FILE)


def scenario_files(paths: Iterable[Path]) -> tuple[list[Path], list[Problem]]:
    """The scenario documents among `paths`: files as given, folders searched for *.yaml and
    *.yml (sorted); a path that does not exist, or a folder without any, is a problem."""
    found: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            inside = sorted({*path.rglob("*.yaml"), *path.rglob("*.yml")})
            if not inside:
                problems.append(Problem(path, None, "no scenarios (*.yaml) in this folder"))
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            problems.append(
                Problem(path, None, "no such scenario file or folder", "check the path")
            )
    return found, problems


def _read_scenario(path: Path) -> tuple[Scenario, dict[str, int], bytes]:
    """The scenario document at `path`, its key lines and its bytes; problems at their lines."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise RunbookError(Problem(path, None, f"cannot read scenario: {reason}")) from None
    lines: dict[str, int] = {}
    try:
        data = load_yaml(text, 1, lines)
    except YamlProblem as problem:
        raise RunbookError(Problem(path, problem.line, problem.message, problem.hint)) from None
    if not isinstance(data, dict):
        raise RunbookError(
            Problem(path, 1, "a scenario must be a YAML mapping", "start with `id:`")
        )
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        problems = validation_problems(
            error, Scenario, path=path, what="scenario", lines=lines, line=1
        )
        raise RunbookError(problems) from None
    return scenario, lines, raw


def _checked(
    scenario: Scenario, lines: dict[str, int], raw: bytes, path: Path, runbook_path: Path
) -> LoadedScenario:
    runbook = parse_runbook(runbook_path)
    problems = check_scenario(scenario, runbook, path, lines)
    if problems:
        raise RunbookError(problems)
    sha256 = hashlib.sha256(raw).hexdigest()
    return LoadedScenario(scenario, path, runbook_path, runbook, sha256, raw)


def _find_runbook(scenario: Scenario, path: Path, library: Path, lines: dict[str, int]) -> Path:
    relative = path.parent / scenario.runbook
    if relative.is_file():
        return relative
    ids: dict[str, Path] = {}
    for candidate in find_runbook_files([library]):
        try:
            ids.setdefault(parse_runbook(candidate).id, candidate)
        except RunbookError:
            continue  # `runbook validate` reports broken runbooks; here they are just not found
    if scenario.runbook in ids:
        return ids[scenario.runbook]
    hint = suggest(scenario.runbook, ids, known=f"runbook ids in {library}")
    message = f"scenario: no runbook file or library id '{scenario.runbook}'"
    raise RunbookError(Problem(path, lines.get("runbook", 1), message, hint))


def check_scenario(
    scenario: Scenario, runbook: Runbook, path: Path, lines: dict[str, int]
) -> list[Problem]:
    """Problems with what the scenario names: steps, gates, participants, inputs, its trigger."""
    problems: list[Problem] = []
    steps = {step.id: step for step in runbook.steps}
    gates = {gate.id for gate in runbook.gates}
    people = {p.name for p in scenario.participants}

    def problem(loc: tuple[str, ...], message: str, hint: str = "") -> None:
        problems.append(Problem(path, line_of(lines, loc, 1), f"scenario: {message}", hint))

    for item in scenario.targets:
        if item not in steps and item not in gates:
            hint = suggest(item, [*steps, *gates], known=f"steps and gates of {runbook.id}")
            problem(("targets", item), f"targets: '{item}' is no step or gate", hint)
    for item in scenario.canned:
        if item not in steps:
            problem(
                ("canned", item),
                f"canned: '{item}' is no step",
                suggest(item, steps, known="steps"),
            )
        elif steps[item].spec.drill == "run":
            problem(
                ("canned", item),
                f"canned: step '{item}' says `drill: run`, so it runs for real in drills",
                "remove the canned outputs, or the step's `drill: run`",
            )
    for item, answer in scenario.answers.items():
        if item not in gates:
            problem(
                ("answers", item),
                f"answers: '{item}' is no gate",
                suggest(item, gates, known="gates"),
            )
        if answer.by not in people:
            hint = suggest(answer.by, people, known="participants")
            problem(("answers", item, "by"), f"answers: '{answer.by}' is not a participant", hint)
    for name in scenario.inputs:
        if name not in runbook.meta.inputs:
            hint = suggest(name, runbook.meta.inputs, known=f"inputs of {runbook.id}")
            problem(("inputs", name), f"inputs: '{name}' is not an input of {runbook.id}", hint)
    try:
        trigger_inputs(scenario, runbook)
    except RunbookError as error:
        problems.extend(
            Problem(path, line_of(lines, ("trigger",), 1), f"scenario: {p.message}", p.hint)
            for p in error.problems
        )
    return problems


def trigger_inputs(scenario: Scenario, runbook: Runbook) -> dict[str, Any]:
    """The inputs the scenario's trigger gives the runbook, the way a real trigger would."""
    trigger = scenario.trigger
    if trigger is None:
        return {}
    if trigger.alert is not None:
        routes, failures = route_alert(drill_alert(scenario), [runbook])
        if failures:
            raise RunbookError(f"trigger: {failures[0].reason}")
        if not routes:
            raise RunbookError(
                Problem(
                    None,
                    None,
                    f"trigger: the alert does not start {runbook.id}",
                    "give the alert the source and labels of one of its `triggers.alerts`",
                )
            )
        return routes[0].inputs
    assert trigger.slack is not None
    command = runbook.meta.triggers.slack
    try:
        request = parse_command_text(trigger.slack.command)
    except PayloadError as error:
        raise RunbookError(f"trigger: {error.reason}") from None
    if command is None or request.name != command.command:
        wanted = f"`{command.command} ...`" if command else "none (it has no slack trigger)"
        raise RunbookError(
            Problem(
                None,
                None,
                f"trigger: '{trigger.slack.command}' does not start {runbook.id}",
                f"its Slack command: {wanted}",
            )
        )
    return dict(request.inputs)


def drill_alert(scenario: Scenario) -> Alert:
    """The scenario's trigger alert as the alert sources would have parsed it."""
    assert scenario.trigger is not None and scenario.trigger.alert is not None
    spec = scenario.trigger.alert
    return Alert(
        source=spec.source,
        identity=f"drill:{scenario.id}",
        status="firing",
        labels=spec.labels,
        annotations=spec.annotations,
        fields=spec.fields,
    )
