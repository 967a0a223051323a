"""`runbook drill`: run, check, score and annotate tabletop drills, and sign them off.

Who acts in a drill (notes, attendance, sign-off) is your OS account on this host, matched to
the roster as for `runbook ack`; `--by` names you without a roster and must be you with one.
Refusals exit 1.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from flows.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    JsonOption,
    NoInputOption,
    err,
    prepare_prefect,
    report,
    settings,
)
from flows.cli.terminal import terminal_responder
from flows.drills.debrief import drill_report
from flows.drills.drill import run_drill
from flows.drills.people import (
    DrillRefused,
    SignOffAs,
    add_drill_note,
    attend_drill,
    sign_off_drill,
)
from flows.drills.scenario import load_scenario, scenario_files
from flows.errors import RunbookError
from flows.runbook.identity import Identity, os_identity
from integrations.slack.local import echo_to_stderr

drill_app = App(name="drill", help="Tabletop drills: rehearse a runbook in sandboxes, scored.")

ByOption = Annotated[str | None, Parameter(name="--by")]
DRILLS = Path("runbooks/drills")


@drill_app.default
def drill(
    scenario: Path,
    *,
    speed: float = 1.0,
    facilitator: str | None = None,
    json_output: JsonOption = False,
    no_input: NoInputOption = False,
) -> int:
    """Run a drill scenario: the same runbook, sandboxed, gates answered by participants.

    --facilitator names who facilitates (instead of the scenario's facilitator).
    """
    current = settings()
    loaded = load_scenario(scenario)  # a bad scenario stops here, before Prefect starts
    prepare_prefect(current)
    responder = terminal_responder(no_input)
    result = run_drill(
        current,
        loaded,
        speed=speed,
        responder=responder,
        echo=echo_to_stderr,
        facilitator=facilitator,
    )
    if not json_output:
        print(drill_report(current.home, result.outcome.incident))
    return report(result.outcome, json_output)


drill_app.command(
    drill, name="run", help="Run a drill scenario (the same as `runbook drill SCENARIO`)."
)


@drill_app.command(name="validate")
def drill_validate(*paths: Path) -> int:
    """Check drill scenarios (files or folders; default runbooks/drills): every problem as
    path:line: message, then how many scenarios are valid."""
    files, problems = scenario_files(paths or (DRILLS,))
    valid = 0
    for scenario in files:
        try:
            load_scenario(scenario)
        except RunbookError as error:
            problems.extend(error.problems)
        else:
            valid += 1
    for problem in problems:
        print(problem)
    if problems:
        err(f"{len(problems)} problem(s) found; {valid} of {len(files)} scenario(s) ok")
        return EXIT_FAILED
    print(f"{valid} scenario{'s' if valid != 1 else ''} ok")
    return EXIT_OK


@drill_app.command(name="report")
def drill_report_command(incident: str) -> int:
    """Print a drill's score: times against targets, who acknowledged, injects, people, notes,
    lessons and sign-offs."""
    print(drill_report(settings().home, incident))
    return EXIT_OK


@drill_app.command(name="note")
def drill_note(incident: str, *text: str, by: ByOption = None, lesson: bool = False) -> int:
    """Record a note (or, with --lesson, a lesson learned) in a drill's record, as one of its
    participants or its facilitator."""
    return _told(
        lambda: add_drill_note(settings(), incident, _me(by), " ".join(text), lesson=lesson)
    )


@drill_app.command(name="attend")
def drill_attend(incident: str, *, by: ByOption = None) -> int:
    """Sign a drill's attendance as one of its participants (or its facilitator)."""
    return _told(lambda: attend_drill(settings(), incident, _me(by)))


@drill_app.command(name="signoff")
def drill_signoff(
    incident: str,
    *,
    signing: Annotated[SignOffAs, Parameter(name="--as")],
    by: ByOption = None,
    note: str = "",
) -> int:
    """Sign a drill off as its facilitator, or as a reviewer who took no part in it; the first
    reviewer's sign-off closes the exercise."""
    return _told(lambda: sign_off_drill(settings(), incident, _me(by), signing=signing, note=note))


def _me(by: str | None) -> Identity:
    """Who is at this terminal: the OS account on this host, and the name typed with --by."""
    return os_identity(getpass.getuser(), socket.gethostname(), claimed=by)


def _told(act: Callable[[], str]) -> int:
    """Do the act and print what was done; a refusal goes to stderr and exits 1."""
    try:
        print(act())
    except DrillRefused as refused:
        err(f"refused: {refused}")
        return EXIT_FAILED
    return EXIT_OK
