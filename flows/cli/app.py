"""The `runbook` command line: validate, run, acknowledge, resume, and inspect evidence.

Exit codes: 0 succeeded, 1 failed (or invalid for `validate`), 2 usage or validation error,
3 waiting at a manual gate. User errors print as `path:line: message`, never as tracebacks.

Each command group is a module of its own, registered by import path: a command imports only
its own module, so `runbook validate` never loads Prefect (over a second of start-up).
"""

from __future__ import annotations

import gc
import sqlite3
import sys

from cyclopts import App
from cyclopts.exceptions import CycloptsError

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err
from flows.errors import RunbookError

app = App(name="runbook", help="Incident response runbooks compiled into Prefect flows.")
# name, where it lives, and the one line `runbook --help` shows without importing it
COMMANDS = [
    ("validate", "library:validate", "Check runbooks; print every problem as path:line: message."),
    ("list", "library:list_runbooks", "List runbooks: id, kind, severity, triggers, last drill."),
    ("schema", "library:schema", "Print the JSON Schema of runbooks, or of ledger records."),
    ("actions", "library:actions", "Print the actions reference: arguments and outputs."),
    ("freshness", "library:freshness", "When each runbook was last drilled and last run."),
    ("run", "incidents:run", "Run a runbook for a new incident; waits at manual gates."),
    ("resume", "incidents:resume", "Continue an incident from its first unfinished step."),
    ("ack", "incidents:ack", "Acknowledge a manual gate of an incident."),
    ("reject", "incidents:reject", "Turn down a manual gate of an incident, with a reason."),
    ("status", "steering:status", "Where an incident stands; without one, the open incidents."),
    ("retry", "steering:retry", "Run a failed step of an incident again, then continue."),
    ("skip", "steering:skip", "Skip a step of an incident, with a reason, then continue."),
    ("abort", "steering:abort", "Stop an incident for good, with a reason."),
    ("assign", "steering:assign", "Assign a role of an incident (its commander) to a person."),
    ("severity", "steering:severity", "Change an incident's severity."),
    ("note", "steering:note", "Add a note to an incident's timeline."),
    ("tickets", "incidents:tickets", "List tickets in the local ticket store."),
    ("evidence", "evidence:evidence_app", "Inspect, verify, seal and export incident evidence."),
    ("postmortem", "postmortem:postmortem", "Draft a postmortem from an incident's evidence."),
    ("drill", "drill:drill_app", "Tabletop drills: rehearse a runbook in sandboxes, scored."),
    ("serve", "serve:serve", "Serve alert webhooks and Slack commands."),
    ("deploy", "serve:deploy", "Create a Prefect deployment per runbook on a work pool."),
    ("server", "server:server_app", "The local Prefect server the engine starts and reuses."),
    ("doctor", "server:doctor", "Say which backends are used and check their credentials."),
]
for name, where, summary in COMMANDS:
    app.command(f"flows.cli.{where}", name=name, help=summary)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `runbook` command."""
    try:
        code = app(argv, exit_on_error=False, print_error=True, result_action="return_value")
    except CycloptsError:
        return EXIT_USAGE
    except RunbookError as error:
        for problem in error.problems:
            err(str(problem))
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted; progress is kept: runbook resume INCIDENT continues")
        return 130
    except OSError as error:
        # A full disk, a read-only home, a file-size limit: what was recorded stays recorded
        # (each record and file is written whole or not at all), so the run can be continued.
        where = f" {error.filename}" if error.filename else ""
        err(
            f"cannot write{where}: {error.strerror or error}; free space or make the engine home"
            " writable, then continue with: runbook resume INCIDENT"
        )
        return EXIT_FAILED
    except sqlite3.Error as error:  # the ticket store, the intake: SQLite under the home
        err(
            f"the engine's database under the home failed: {error}; free space or make the"
            " engine home writable, then continue with: runbook resume INCIDENT"
        )
        return EXIT_FAILED
    return code if isinstance(code, int) else EXIT_OK


def console() -> int:
    """The `runbook` console script: `main`, made quick to exit."""
    code = main()
    # Everything a command made lives until the process ends; frozen, it is skipped by the
    # interpreter's final collection, which otherwise walks it all (a tenth of a second).
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console())
