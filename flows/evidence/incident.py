"""Incidents on disk: the folder every run of one incident shares, and what it started with."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from flows.errors import RunbookError
from flows.evidence.records import canonical_json
from flows.files import write_atomically
from flows.runbook.model import Runbook
from flows.times import utc_now

INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
INCIDENT_FILE = "incident.json"
DOCUMENT_FILE = "runbook.md"
SCENARIO_FILE = "scenario.yaml"
"""A drill's scenario document as run; its `drill.started` record holds its sha256."""
INCIDENTS_FOLDER = "incidents"
RUN_LOCK_FILE = "run.lock"


class Trigger(StrEnum):
    """How an incident was started."""

    CLI = "cli"
    """`runbook run` on a responder's machine."""
    SLACK = "slack"
    """`/runbook <name>` in Slack."""
    ALERT = "alert"
    """A monitoring alert that arrived on a webhook."""
    DRILL = "drill"
    """A tabletop drill."""


class RunbookInfo(BaseModel):
    """Which runbook document an incident runs: id, version, content hash and source path."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    version: int
    severity: str
    sha256: str
    source: str
    kind: str | None = None
    """breach, model-failure, outage or other; None in incidents opened before it was kept."""


class Incident(BaseModel):
    """What an incident started with; secret inputs are never stored, only their names."""

    model_config = ConfigDict(frozen=True)

    id: str
    runbook: RunbookInfo
    inputs: dict[str, Any]
    secret_inputs: tuple[str, ...] = ()
    alert: dict[str, Any] | None = None
    started_at: str
    drill: bool = False
    trigger: Trigger | None = None
    """None in incidents opened before it was kept."""
    started_by: str | None = None
    """Who started it: `cli:<user>`, `slack:<user>`, `alert:<source>`, `drill:<facilitator>`."""

    def template_context(self) -> dict[str, Any]:
        """The `incident` object templates see."""
        return {
            "id": self.id,
            "runbook": self.runbook.id,
            "title": self.runbook.title,
            "severity": self.runbook.severity,
            "started_at": self.started_at,
            "drill": self.drill,
        }


def runbook_info(runbook: Runbook, source: Path | str) -> RunbookInfo:
    """What an incident records about the runbook document it runs."""
    return RunbookInfo(
        id=runbook.id,
        title=runbook.meta.title,
        version=runbook.meta.version,
        severity=runbook.meta.severity,
        sha256=runbook.sha256,
        source=str(source),
        kind=runbook.meta.kind,
    )


def new_incident_id(runbook_id: str, now: datetime | None = None) -> str:
    """A readable, unique incident id: `<runbook>-<yyyymmdd>-<hhmmss>-<12 hex>`.

    Time-ordered for people; 48 random bits so that a burst of thousands of alerts in one
    second still gives each its own incident (a collision in 10,000 is about 2 in 10 million).
    """
    now = now or utc_now()
    return f"{runbook_id}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(6)}"


def check_incident_id(incident_id: str) -> str:
    """Reject ids that could escape the incidents folder or break ticket labels."""
    if not INCIDENT_ID.match(incident_id):
        raise RunbookError(
            f"incident id {incident_id!r} is not valid: use letters, digits, '.', '_' and '-' "
            "(at most 128 characters, starting with a letter or digit)"
        )
    return incident_id


def incident_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger's `run.started` record keeps of incident.json, so that file is checked.

    Of incident.json (as JSON) it keeps the id, start time, drill flag, document, trigger and
    who started it, and the alert as a sha256 of its canonical JSON: the record vouches for the
    alert without copying what it holds.
    """
    alert = facts.get("alert")
    alert_sha256 = None if alert is None else hashlib.sha256(canonical_json(alert)).hexdigest()
    runbook = facts.get("runbook") or {}
    return {
        "id": facts.get("id"),
        "started_at": facts.get("started_at"),
        "drill": facts.get("drill", False),
        "runbook_sha256": runbook.get("sha256") if isinstance(runbook, Mapping) else None,
        "alert_sha256": alert_sha256,
        "trigger": facts.get("trigger"),
        "started_by": facts.get("started_by"),
    }


def incidents_under(home: Path) -> Path:
    """The folder of every incident's evidence folder, under an engine home."""
    return home / INCIDENTS_FOLDER


def incident_folder(incidents_dir: Path, incident_id: str) -> Path:
    """The evidence folder of one incident."""
    return incidents_dir / check_incident_id(incident_id)


def open_incident(incidents_dir: Path, incident: Incident, document: str) -> Path:
    """Create the incident's folder with its record and a read-only copy of the document as run."""
    folder = incident_folder(incidents_dir, incident.id)
    folder.mkdir(parents=True, exist_ok=True)
    # The document first: incident.json is what says the incident exists (a start run again
    # resumes it), so it is written last, once everything it names is on disk.
    copy = folder / DOCUMENT_FILE
    if not copy.exists():
        write_atomically(copy, document.encode())
        copy.chmod(0o444)
    write_atomically(folder / INCIDENT_FILE, incident.model_dump_json(indent=2).encode())
    return folder


def keep_scenario(folder: Path, scenario: bytes) -> str:
    """Keep a read-only copy of the scenario a drill runs in its folder; return its sha256.

    A drill is continued and scored with this copy, never with the library file, which may
    have been edited since; `drill.started` records the hash so that verify checks the copy.
    """
    copy = folder / SCENARIO_FILE
    if not copy.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(copy, scenario)
        copy.chmod(0o444)
    return hashlib.sha256(copy.read_bytes()).hexdigest()


class IncidentBusy(RunbookError):
    """Another live process holds the incident's run lock (a terminal's run, another worker)."""


@contextmanager
def running(folder: Path) -> Iterator[None]:
    """Hold the incident's run lock: one process runs an incident's steps at a time.

    Two runs of one incident at once (a `runbook resume` while the server resumes it after a
    button) could both find a step unfinished and both act; Jira and Slack offer no lock to
    stop the second ticket or message. The kernel drops the lock when its process dies, so a
    killed run never blocks the resume that follows it.
    """
    fd = os.open(folder / RUN_LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise IncidentBusy(
                f"incident {folder.name!r} is being run by {holder} right now; wait for that "
                f"run to stop at a gate or finish, then `runbook resume {folder.name}`"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def load_incident(incidents_dir: Path, incident_id: str) -> Incident:
    """Read an incident's record, with a clear error when there is no such incident."""
    path = incident_folder(incidents_dir, incident_id) / INCIDENT_FILE
    try:
        return Incident.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise RunbookError(
            f"no incident {incident_id!r} under {incidents_dir}; "
            "`runbook evidence list` shows the known incidents"
        ) from None


def list_incidents(incidents_dir: Path) -> list[Incident]:
    """Every incident recorded under this home, oldest first."""
    found = []
    for path in sorted(incidents_dir.glob(f"*/{INCIDENT_FILE}")):
        try:
            found.append(Incident.model_validate(json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda incident: incident.started_at)
