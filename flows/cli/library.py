"""Commands on the runbook library: validate, schema, actions, list, freshness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from flows.cli.common import EXIT_FAILED, EXIT_OK, err, settings
from flows.drills.freshness import freshness as freshness_rows
from flows.engine.reference import actions_reference
from flows.engine.registry import default_registry
from flows.errors import RunbookError
from flows.evidence.records import ledger_schema
from flows.runbook.schema import runbook_schema
from flows.runbook.validate import library_problems, roster_notes, validate_paths


def validate(*paths: Path) -> int:
    """Check runbooks (files or folders); print every problem as path:line: message."""
    folders, roster = list(paths) or [Path("runbooks")], settings().roster
    valid, problems = library_problems(folders, default_registry(), roster=roster)
    for problem in problems:
        print(problem)
    for note in roster_notes(folders, roster=roster):
        err(note)
    if problems:
        err(f"{len(problems)} problem(s) found")
        return EXIT_FAILED
    print(f"{valid} runbook(s) valid")
    return EXIT_OK


def schema(*, ledger: Annotated[bool, Parameter(negative="")] = False) -> int:
    """Print the JSON Schema of runbooks (for editors), or with --ledger of evidence records."""
    print(json.dumps(ledger_schema() if ledger else runbook_schema(), indent=2))
    return EXIT_OK


def actions() -> int:
    """Print the actions reference (Markdown): every action, its arguments and outputs."""
    print(actions_reference(default_registry()), end="")
    return EXIT_OK


def list_runbooks(folder: Path = Path("runbooks")) -> int:
    """List runbooks with id, kind, severity, triggers and when each was last drilled."""
    runbooks, problems = validate_paths([folder], default_registry())
    runbooks = sorted(runbooks, key=lambda r: r.id)
    drilled = {
        row.runbook: row for row in freshness_rows(settings().home, [r.id for r in runbooks])
    }
    rows = [("ID", "KIND", "SEVERITY", "TRIGGERS", "LAST DRILL", "TITLE")]
    for runbook in runbooks:
        triggers = [f"alert:{a.source}" for a in runbook.meta.triggers.alerts]
        if runbook.meta.triggers.slack:
            triggers.append(f"slack:/runbook {runbook.meta.triggers.slack.command}")
        last = drilled[runbook.id].last_drill
        meta = runbook.meta
        rows.append(
            (
                meta.id,
                meta.kind,
                meta.severity,
                ", ".join(triggers) or "-",
                last.date().isoformat() if last else "never",
                meta.title,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        print(f"{cells}  {row[5]}")
    for problem in problems:
        err(f"invalid: {problem}")
    return EXIT_OK if not problems else EXIT_FAILED


def _max_age_days(text: str) -> int:
    value = text.strip().lower().removesuffix("d")
    if not value.isdigit():
        raise RunbookError(f"--max-age {text!r}: give days, e.g. 90d")
    return int(value)


def freshness(folder: Path = Path("runbooks"), *, max_age: str = "90d") -> int:
    """List runbooks by last drill and last real run; exit 1 when any is older than --max-age."""
    runbooks, _ = validate_paths([folder], default_registry())
    rows = freshness_rows(settings().home, sorted(r.id for r in runbooks), _max_age_days(max_age))
    print(f"{'RUNBOOK':<28} {'LAST DRILL':<12} {'LAST REAL RUN':<14} STATUS")
    for row in rows:
        state = "STALE" if row.stale else "ok"
        drilled = row.last_drill.date().isoformat() if row.last_drill else "never"
        real = row.last_real.date().isoformat() if row.last_real else "never"
        print(f"{row.runbook:<28} {drilled:<12} {real:<14} {state}")
    return EXIT_FAILED if any(row.stale for row in rows) else EXIT_OK
