"""`runbook drill`: run, check, score and annotate tabletop drills."""

from __future__ import annotations

from pathlib import Path

from cyclopts import App

from flows.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    JsonOption,
    NoInputOption,
    prepare_prefect,
    report,
    settings,
)
from flows.cli.terminal import terminal_responder
from flows.drills.debrief import add_drill_note, drill_report
from flows.drills.drill import run_drill
from flows.drills.scenario import load_scenario
from flows.errors import RunbookError
from integrations.slack.local import echo_to_stderr

drill_app = App(name="drill", help="Tabletop drills: rehearse a runbook in sandboxes, scored.")


@drill_app.default
def drill(
    scenario: Path,
    *,
    speed: float = 1.0,
    facilitator: str | None = None,
    json_output: JsonOption = False,
    no_input: NoInputOption = False,
) -> int:
    """Run a drill scenario: the same runbook, sandboxed, gates answered by participants."""
    current = settings()
    loaded = load_scenario(scenario)  # a bad scenario stops here, before Prefect starts
    prepare_prefect(current)
    responder = terminal_responder(no_input)
    result = run_drill(current, loaded, speed=speed, responder=responder, echo=echo_to_stderr)
    incident = result.outcome.incident
    if facilitator:
        add_drill_note(current, incident, f"facilitated by {facilitator}", facilitator)
    if not json_output:
        print(drill_report(current.home, incident))
    return report(result.outcome, json_output)


drill_app.command(
    drill, name="run", help="Run a drill scenario (the same as `runbook drill SCENARIO`)."
)


@drill_app.command(name="validate")
def drill_validate(*scenarios: Path) -> int:
    """Check drill scenarios; print every problem as path:line: message."""
    problems = 0
    for scenario in scenarios or tuple(sorted(Path("runbooks/drills").glob("*.yaml"))):
        try:
            load_scenario(scenario)
        except RunbookError as error:
            problems += len(error.problems)
            for problem in error.problems:
                print(problem)
    if problems:
        return EXIT_FAILED
    print("scenario(s) valid")
    return EXIT_OK


@drill_app.command(name="report")
def drill_report_command(incident: str) -> int:
    """Print a drill's score: times against targets, who acknowledged, injects, notes, lessons."""
    print(drill_report(settings().home, incident))
    return EXIT_OK


@drill_app.command(name="note")
def drill_note(incident: str, text: str, *, by: str, lesson: bool = False) -> int:
    """Record a facilitator's note (or, with --lesson, a lesson learned) in a drill's record."""
    add_drill_note(settings(), incident, text, by, lesson=lesson)
    print("recorded")
    return EXIT_OK
