"""What every command shares: settings, messages, exit codes, and the run outcome's report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from flows.engine.execute import RunOutcome
from flows.engine.settings import Settings, load_settings
from flows.errors import RunbookError
from flows.evidence.incident import incident_folder
from flows.evidence.progress import ItemStatus, RunStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3
EXIT_BY_STATUS = {
    RunStatus.SUCCEEDED: EXIT_OK,
    RunStatus.FAILED: EXIT_FAILED,
    RunStatus.WAITING: EXIT_WAITING,
}


def settings() -> Settings:
    """The settings of this install, read once per command."""
    return load_settings()


def err(text: str) -> None:
    """A message for the person at the terminal: stderr, so stdout stays the command's output."""
    print(text, file=sys.stderr)


def prepare_prefect(settings: Settings) -> None:
    """Point Prefect's client at the engine's local server (started on first use)."""
    # Imported here: it loads httpx (80 ms), which only the commands that run flows need.
    from flows.prefect.local_server import configure_prefect_client

    configure_prefect_client(settings.home, settings.prefect, ui=settings.prefect_ui)


def report(outcome: RunOutcome, as_json: bool) -> int:
    """Print how a run ended (text or `--json`) and return the command's exit code."""
    if as_json:
        print(json.dumps(outcome.to_json()))
        return EXIT_BY_STATUS[outcome.status]
    print(f"incident {outcome.incident} ({outcome.runbook}): {outcome.status}")
    for item, status in outcome.steps.items():
        print(f"  {status:<12} {item}")
    if outcome.error:
        print(f"error: {outcome.error}")
    waiting = [i for i, s in outcome.steps.items() if s == ItemStatus.WAITING]
    for gate in waiting:
        print(
            f"waiting at gate {gate!r}: runbook ack {outcome.incident} {gate}, "
            f"then runbook resume {outcome.incident}"
        )
    print(f"evidence: {outcome.evidence}")
    return EXIT_BY_STATUS[outcome.status]


def evidence_folder(settings: Settings, target: str) -> Path:
    """An incident's evidence folder, given its id or the folder itself."""
    path = Path(target)
    if path.is_dir():
        return path
    folder = incident_folder(settings.incidents_dir, target)
    if not folder.is_dir():
        raise RunbookError(f"no incident or evidence folder {target!r}")
    return folder


InputOption = Annotated[list[str] | None, Parameter(name=["--input", "-i"], negative="")]
JsonOption = Annotated[bool, Parameter(name="--json", negative="")]
NoInputOption = Annotated[bool, Parameter(name="--no-input", negative="")]
ReasonOption = Annotated[str, Parameter(name="--reason")]
