"""What a run redacts where: collected evidence loses personal data, responders' text keeps it."""

from __future__ import annotations

from pathlib import Path

from flows.engine.execute import Execution, call_directly, execute
from flows.engine.registry import default_registry
from flows.engine.runner import load_plan
from flows.evidence.incident import Incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.personal import PersonalDataRedactor
from flows.evidence.records import RunbookRef
from flows.evidence.redact import Redactor
from flows.evidence.verify import read_records, verify_ledger
from integrations.backends import local_backends

RUNBOOK = """---
id: account-takeover
title: Account takeover
kind: breach
severity: sev2
version: 1
owner: "#sec"
---
# Snapshot the auth log, then tell the team
```step
id: snap
uses: forensics.snapshot
with:
  collectors:
    - {{type: file, paths: ["{log}"]}}
```
```step
id: tell
uses: slack.post
with:
  channel: "#sec"
  text: "Locked the account of alice@example.com; auth log collected."
```
"""


def test_snapshots_lose_personal_data_while_chat_keeps_the_responders_text(
    tmp_path: Path,
) -> None:
    """A run's collected artifacts are redacted of personal data and count it in their custody
    record; what the runbook tells people keeps the address they need to act on."""
    log = tmp_path / "auth.log"
    log.write_text("login failed for alice@example.com card 4111 1111 1111 1111\n")
    path = tmp_path / "runbook.md"
    path.write_text(RUNBOOK.format(log=log))
    registry = default_registry()
    plan = load_plan(path, registry)
    incident = Incident(
        id="INC-1",
        runbook=runbook_info(plan.runbook, path),
        inputs={},
        started_at="2026-11-27T00:00:00+00:00",
    )
    home, evidence = tmp_path / "home", tmp_path / "evidence"
    backends = local_backends(home, echo=None)
    redactor = Redactor(personal=PersonalDataRedactor())
    ref = RunbookRef(
        id=plan.runbook.id, version=plan.runbook.meta.version, sha256=plan.runbook.sha256
    )
    with Ledger(evidence, incident.id, ref, redactor) as ledger:
        run = Execution(
            plan=plan,
            incident=incident,
            inputs={},
            registry=registry,
            tickets=backends.tickets,
            chat=backends.chat,
            ledger=ledger,
            redactor=redactor,
            home=home,
            evidence=evidence,
            call_step=call_directly,
        )
        assert execute(run).status == "succeeded"
    assert verify_ledger(evidence).ok
    [custody] = [r.data for r in read_records(evidence) if r.event == "artifact.collected"]
    assert custody["personal_data"] == {"email": 1, "card": 1}
    assert (evidence / custody["path"]).read_bytes() == (
        b"login failed for [REDACTED:email] card [REDACTED:card]\n"
    )
    assert "Locked the account of alice@example.com" in (home / "outbox.jsonl").read_text()
