"""Every event of an alert an incident is open for joins that incident, whatever the runbook's
`match` names: PagerDuty's acknowledgement, escalation and resolution of an incident whose
trigger matches only `incident.triggered`, Datadog's recovery of a monitor matched on
`Triggered`, and an Alertmanager alert that fires again after it resolved. Each is recorded in
the incident's evidence and commented on its ticket; only a firing event opens an incident."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from flows.engine.settings import Settings
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records, verify_ledger
from flows.triggers.app import build_app
from flows.triggers.server import Server, load_library, make_server
from integrations.jira.local import LocalTicketStore
from tests.flows.triggers.test_server import alertmanager_payload
from tests.support import serve_in_thread, wait_idle

pytestmark = pytest.mark.usefixtures("prefect_api")

TOKEN = "hook-token-77a1"
PD_SECRET = "pd-secret-31c"
RUNBOOK = """---
id: db-down
title: Database down
kind: outage
severity: sev2
version: 1
owner: "#ops"
inputs:
  host: {type: string, default: unknown}
triggers:
  alerts:
    - source: pagerduty
      match: {event_type: incident.triggered}
    - source: datadog
      match: {transition: Triggered}
    - source: alertmanager
      match: {alertname: DiskFull}
---
# Database down

## Ticket
```step
id: ticket
uses: jira.create_issue
with: {project: OPS, summary: "Database down"}
```

## Look {#look}
- [ ] Looked at it
"""


@pytest.fixture
def served(home: Path, tmp_path: Path) -> Iterator[tuple[Server, httpx.Client]]:
    library = tmp_path / "library"
    library.mkdir()
    (library / "db-down.md").write_text(RUNBOOK)
    settings = Settings(
        home=home,
        prefect="external",
        webhook_token=SecretStr(TOKEN),
        pagerduty_secret=SecretStr(PD_SECRET),
    )
    server = make_server(settings, load_library(library), dev=False, threads=2)
    server.workers.start()
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield server, client
    server.workers.stop()


def pagerduty(client: httpx.Client, event_type: str, incident: str = "PD0001") -> dict[str, Any]:
    body = json.dumps(
        {
            "event": {
                "id": f"ev-{event_type}-{incident}",
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": "2026-12-02T06:00:00Z",
                "data": {
                    "id": incident,
                    "type": "incident",
                    "title": "db-1 is down",
                    "service": {"id": "SVC1", "summary": "db"},
                    "status": event_type.removeprefix("incident."),
                },
            }
        }
    ).encode()
    signature = "v1=" + hmac.new(PD_SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = client.post(
        "/alerts/pagerduty", content=body, headers={"X-PagerDuty-Signature": signature}
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def datadog(client: httpx.Client, transition: str) -> dict[str, Any]:
    body = {"alert_cycle_key": "cycle-9", "alert_id": "1234", "transition": transition}
    answer = client.post("/alerts/datadog", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def alertmanager(client: httpx.Client, status: str) -> dict[str, Any]:
    answer = client.post(
        "/alerts/alertmanager",
        json=alertmanager_payload(status=status),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def alert_records(home: Path, incident: str) -> list[Record]:
    kinds = (Event.ALERT_UPDATED, Event.ALERT_RESOLVED)
    return [r for r in read_records(home / "incidents" / incident) if r.event in kinds]


def comments(home: Path) -> list[str]:
    store = LocalTicketStore(home / "tickets.db")
    [ticket] = store.list_tickets()
    return [c.body for c in store.comments(ticket.key)]


def test_pagerduty_acknowledge_escalate_and_resolve_join_the_incident(
    served: tuple[Server, httpx.Client], home: Path
) -> None:
    server, client = served
    [incident] = pagerduty(client, "incident.triggered")["started"]
    wait_idle(server)
    for event_type in ("incident.acknowledged", "incident.escalated", "incident.annotated"):
        answer = pagerduty(client, event_type)
        assert answer["joined"] == [incident] and answer["unmatched"] == 0, event_type
    assert pagerduty(client, "incident.resolved")["resolved"] == [incident]
    wait_idle(server)

    recorded = alert_records(home, incident)
    assert [(r.event, r.data.get("event")) for r in recorded] == [
        (Event.ALERT_UPDATED, "acknowledged"),
        (Event.ALERT_UPDATED, "escalated"),
        (Event.ALERT_UPDATED, "updated"),
        (Event.ALERT_RESOLVED, None),
    ]
    assert all(r.actor == "alert:pagerduty" for r in recorded)
    said = comments(home)
    assert len(said) == 4
    assert "was acknowledged at the source (pagerduty)" in said[0]
    assert "has resolved" in said[-1]
    assert len(LocalTicketStore(home / "tickets.db").list_tickets()) == 1
    assert verify_ledger(home / "incidents" / incident).ok


def test_only_a_firing_event_opens_an_incident(
    served: tuple[Server, httpx.Client], home: Path
) -> None:
    """An acknowledgement or resolution of an incident nothing is open for starts nothing, and
    says so in the deliveries log."""
    server, client = served
    for event_type in ("incident.acknowledged", "incident.resolved"):
        answer = pagerduty(client, event_type, incident="PD0404")
        assert answer["started"] == [] and answer["unmatched"] == 1, event_type
    wait_idle(server)
    assert not (home / "incidents").exists() or not list((home / "incidents").glob("db-down-*"))


def test_datadog_recovery_joins_a_monitor_matched_on_triggered(
    served: tuple[Server, httpx.Client], home: Path
) -> None:
    server, client = served
    [incident] = datadog(client, "Triggered")["started"]
    wait_idle(server)
    assert datadog(client, "Re-Triggered")["joined"] == [incident]  # a repeat: nothing to add
    assert datadog(client, "Recovered")["resolved"] == [incident]
    wait_idle(server)
    assert [r.event for r in alert_records(home, incident)] == [Event.ALERT_RESOLVED]
    assert len(comments(home)) == 1


def test_an_alert_that_fires_again_after_it_resolved_is_recorded_each_time(
    served: tuple[Server, httpx.Client], home: Path
) -> None:
    server, client = served
    [incident] = alertmanager(client, "firing")["started"]
    wait_idle(server)
    assert alertmanager(client, "resolved")["resolved"] == [incident]
    assert alertmanager(client, "firing")["joined"] == [incident]
    assert alertmanager(client, "firing")["joined"] == [incident]  # a repeat of the re-fire
    assert alertmanager(client, "resolved")["resolved"] == [incident]
    wait_idle(server)
    assert [(r.event, r.data.get("event")) for r in alert_records(home, incident)] == [
        (Event.ALERT_RESOLVED, None),
        (Event.ALERT_UPDATED, "fired again"),
        (Event.ALERT_RESOLVED, None),
    ]
    assert len(comments(home)) == 3
