"""Runbooks with regulatory clocks, their roster, and incidents waiting at their gates, as a run
leaves them (without running one): what the clock tests answer gates of."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from flows.engine.runner import acknowledge_gate
from flows.engine.settings import Settings
from flows.evidence.incident import (
    Incident,
    incident_facts,
    incident_folder,
    open_incident,
    runbook_info,
)
from flows.evidence.ledger import Ledger
from flows.evidence.population import note_opened, note_standing
from flows.evidence.records import Event, Record, RunbookRef
from flows.evidence.verify import read_records
from flows.runbook.identity import os_identity
from flows.runbook.parse import parse_runbook
from flows.times import utc_stamp

RUNBOOK = """---
id: {id}
title: Personal data exposed
kind: breach
severity: sev1
version: 1
owner: "#ops"
clocks:
{clocks}
---
# Personal data exposed

## Opened
```step
id: note
uses: evidence.note
with: {{text: opened}}
```
{gates}
"""

GATE = """
## {title} {{#{id}}}
- [ ] {title}
"""

ROSTER = """roles: {legal: {}, security: {}}
people:
  lee: {name: Lee, slack: [U0LEE], os_users: [lee], roles: [legal]}
  sam: {name: Sam, slack: [U0SAM], os_users: [sam], roles: [security]}
"""

LEE = os_identity("lee", "laptop")


def write_runbook(folder: Path, clocks: str, gates: list[str], runbook_id: str = "privacy") -> Path:
    """A runbook with these `clocks:` lines and a gate per id in `gates` (in that order),
    beside its roster; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    sections = "".join(
        GATE.format(id=gate, title=gate.replace("-", " ").capitalize()) for gate in gates
    )
    path = folder / f"{runbook_id}.md"
    path.write_text(RUNBOOK.format(id=runbook_id, clocks=clocks, gates=sections))
    (folder / "responders.yaml").write_text(ROSTER)
    return path


def open_waiting(
    settings: Settings,
    path: Path,
    incident_id: str,
    gates: list[str],
    *,
    opened: datetime | None = None,
) -> None:
    """An incident of the runbook at `path`, opened at `opened` (default now), whose run has
    reached `gates` and stopped there waiting."""
    runbook = parse_runbook(path)
    incident = Incident(
        id=incident_id,
        runbook=runbook_info(runbook, path.resolve()),
        inputs={},
        started_at=utc_stamp(opened),
    )
    note_opened(settings.incidents_dir, incident, actor="engine")
    open_incident(settings.incidents_dir, incident, runbook.text)
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    folder = incident_folder(settings.incidents_dir, incident_id)
    facts = incident_facts(incident.model_dump(mode="json"))
    with Ledger(folder, incident_id, ref, settings.redactor()) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False, "incident": facts})
        ledger.record(Event.STEP_SUCCEEDED, step="note", data={"outputs": {}, "attempts": 1})
        for gate in gates:
            ledger.record(Event.GATE_WAITING, step=gate, data={"title": gate})
        ledger.record(Event.RUN_FINISHED, data={"status": "waiting", "waiting": gates})
    note_standing(settings.incidents_dir, folder)


def ack(settings: Settings, incident: str, gate: str, note: str = "") -> None:
    """Lee acknowledges `gate` from the terminal, as `runbook ack` does."""
    assert acknowledge_gate(settings, incident, gate, LEE, note).acknowledged


def clock_records(settings: Settings, incident: str) -> list[Record]:
    folder = incident_folder(settings.incidents_dir, incident)
    return [r for r in read_records(folder) if r.event.value.startswith("clock.")]
