"""Commands on the runbook library: validate, schema, actions, list, freshness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from flows.cli.common import EXIT_FAILED, EXIT_OK, JsonOption, err, settings
from flows.drills.freshness import MaxAge, Row, home_warning, parse_max_age
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
    drilled = {row.runbook: row for row in freshness_rows(settings().home, runbooks)}
    rows = [("ID", "KIND", "SEVERITY", "TRIGGERS", "LAST DRILL", "TITLE")]
    for runbook in runbooks:
        triggers = [f"alert:{a.source}" for a in runbook.meta.triggers.alerts]
        if runbook.meta.triggers.slack:
            triggers.append(f"slack:/runbook {runbook.meta.triggers.slack.command}")
        meta = runbook.meta
        rows.append(
            (
                meta.id,
                meta.kind,
                meta.severity,
                ", ".join(triggers) or "-",
                _last_drill(drilled[runbook.id]),
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


def _last_drill(row: Row) -> str:
    """The date of the last completed drill of the runbook as it is now, or rehearsal."""
    if row.last_drill is not None:
        return row.last_drill.started_at.date().isoformat()
    if row.last_rehearsal is not None:
        return f"{row.last_rehearsal.started_at.date().isoformat()} (rehearsal)"
    return "never"


def freshness(
    folder: Path = Path("runbooks"), *, max_age: str = "90d", json_output: JsonOption = False
) -> int:
    """Whether each runbook, as it is now, was drilled (or run) to completion within --max-age.

    Only a completed drill or real run of the current version counts; scripted rehearsals are
    listed apart and count where the runbook says `drills: {rehearsals_count: true}`. Exit 0
    when every runbook is fresh, 1 when any is stale, 2 on a usage error.
    """
    age = parse_max_age(max_age)
    if not folder.exists():
        raise RunbookError(f"no runbook file or folder {folder}: give the runbook library")
    runbooks, problems = validate_paths([folder], default_registry())
    for problem in problems:
        err(f"invalid, not judged: {problem}")
    if not runbooks:
        raise RunbookError(f"no valid runbooks under {folder}: nothing to judge")
    home = settings().home
    warning = home_warning(home)
    if warning:
        err(warning)
    rows = freshness_rows(home, sorted(runbooks, key=lambda r: r.id), age)
    if json_output:
        shown = {"max_age": str(age), "runbooks": [row.model_dump(mode="json") for row in rows]}
        print(json.dumps(shown, indent=2))
    else:
        print(_freshness_table(rows, age))
    return EXIT_FAILED if any(row.stale for row in rows) else EXIT_OK


def _freshness_table(rows: list[Row], age: MaxAge) -> str:
    """One line per runbook with what keeps it fresh, then the rehearsals, then why stale."""
    table: list[tuple[str, ...]] = [
        ("RUNBOOK", "VERSION", "STATUS", "LAST COUNTED", "BY", "INCIDENT", "SCORE")
    ]
    for row in rows:
        counted = row.fresh_by
        table.append(
            (
                row.runbook,
                f"v{row.version}",
                "STALE" if row.stale else "ok",
                counted.started_at.date().isoformat() if counted else "never",
                counted.kind if counted else "-",
                counted.incident if counted else "-",
                (counted.score or "-") if counted else "-",
            )
        )
    lines = [_columns(table)]
    rehearsed = [row for row in rows if row.last_rehearsal is not None]
    if rehearsed:
        lines += ["", "Scripted rehearsals (gates answered from the scenario):"]
        for row in rehearsed:
            rehearsal = row.last_rehearsal
            assert rehearsal is not None
            counts = "counts" if row.rehearsals_count else "does not count"
            lines.append(
                f"  {row.runbook} v{row.version}: {rehearsal.started_at.date().isoformat()}"
                f" {rehearsal.incident} ({rehearsal.score or 'no score'}); {counts}"
            )
    stale = [row for row in rows if row.stale]
    if stale:
        lines += ["", f"Stale (nothing counts within {age.words()}):"]
        lines += [f"  {row.runbook}: {row.reason}" for row in stale]
    return "\n".join(lines)


def _columns(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in table
    )
