"""A runbook whose contain gate has a timer, its roster, and an incident waiting at that gate."""

from __future__ import annotations

from pathlib import Path

from flows.engine.settings import Settings
from flows.evidence.incident import Incident, incident_folder, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, Record, RunbookRef
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from flows.times import utc_stamp

RUNBOOK = """---
id: timed
title: Timed <containment>
kind: breach
severity: sev1
version: 1
owner: "#ops"
---
# Timed

## Note
```step
id: note
uses: evidence.note
with: {{text: started}}
```

## Contain {{#contain}}

```gate
approvers: {{roles: [security]}}
timeout_s: {timeout_s}
on_timeout: {on_timeout}
{extra}
```

- [ ] Keys revoked

## Close
```step
id: close
uses: evidence.note
with: {{text: closed}}
```
"""

ROSTER = """roles: {security: {}, incident-commander: {}}
people:
  sam: {name: Sam, slack: [U0SAM], roles: [security]}
  bob: {name: Bob, slack: [U0BOB], roles: [security]}
  ivy: {name: Ivy, slack: [U0IVY], roles: [incident-commander]}
  max: {name: "Max <here>", roles: [incident-commander]}
groups:
  oncall: {slack: S0ONCALL, roles: [incident-commander]}
"""


def write_library(
    folder: Path,
    on_timeout: str,
    timeout_s: float = 1,
    remind_before_s: float | None = None,
) -> Path:
    """The timed runbook in `folder`, beside its roster; returns the runbook's path."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = []
    if on_timeout in ("escalate", "page"):
        extra.append("escalate_to: incident-commander")
    if remind_before_s is not None:
        extra.append(f"remind_before_s: {remind_before_s:g}")
    text = RUNBOOK.format(timeout_s=f"{timeout_s:g}", on_timeout=on_timeout, extra="\n".join(extra))
    (folder / "timed.md").write_text(text)
    (folder / "responders.yaml").write_text(ROSTER)
    return folder / "timed.md"


def waiting_incident(settings: Settings, path: Path, incident_id: str) -> Record:
    """An incident of the runbook at `path` whose run stopped at the contain gate, as a run
    leaves it (without running one); returns the gate's `gate.waiting` record."""
    runbook: Runbook = parse_runbook(path)
    incident = Incident(
        id=incident_id,
        runbook=runbook_info(runbook, path.resolve()),
        inputs={},
        started_at=utc_stamp(),
    )
    open_incident(settings.incidents_dir, incident, runbook.text)
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    folder = incident_folder(settings.incidents_dir, incident_id)
    with Ledger(folder, incident_id, ref, settings.redactor()) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False})
        ledger.record(Event.STEP_SUCCEEDED, step="note", data={"outputs": {}, "attempts": 1})
        waiting = ledger.record(Event.GATE_WAITING, step="contain", data={"title": "Contain"})
        ledger.record(Event.RUN_FINISHED, data={"status": "waiting", "waiting": ["contain"]})
    return waiting
