"""A bounded storm under faults, as `runbook serve` runs in production: alerts arrive while the
worker process is killed twice, the server is killed with SIGKILL and started again, the home's
disk is full for a while, Jira answers 503, drops a create's answer and lags its search, and
Slack answers 429 and 503. Every alert the sender got a 202 for ends in exactly one incident
that finished, with exactly one ticket and one message, and evidence that verifies.

The sender behaves like Alertmanager: it resends a delivery until it is answered 2xx.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flows.evidence.records import Event
from flows.evidence.verify import read_records, verify_ledger
from tests.disks import fill, mount_tmpfs, unmount
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.triggers.test_serve_dies_together import (
    alive,
    start_serving,
    stop_serving,
    wait_for,
    worker_of,
)

pytestmark = pytest.mark.usefixtures("prefect_api")

ALERTS = 30
RUNBOOK = """---
id: soak
title: Soak
kind: outage
severity: sev3
version: 1
owner: "#ops"
inputs:
  host: {type: string, required: true}
triggers:
  alerts:
    - source: generic
      match: {alertname: Soak}
      inputs: {host: "{{ alert.labels.host }}"}
---
# Soak

## Ticket
```step
id: ticket
uses: jira.create_issue
with: {project: OPS, summary: "Soak {{ inputs.host }}"}
retries: 4
retry_delay_s: 1
```

## Tell
```step
id: tell
uses: slack.post
with: {channel: "#ops", text: "Soak {{ inputs.host }}: {{ steps.ticket.key }}"}
retries: 4
retry_delay_s: 1
```
"""


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    server = FakeJira().start()
    yield server
    server.stop()


@pytest.fixture
def disk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, bool]]:
    """The engine home, on a tmpfs of its own when one can be mounted (to fill it up)."""
    home = tmp_path / "home"
    home.mkdir()
    mounted = mount_tmpfs(home, "64m") is None  # without it, the storm runs on without a full disk
    monkeypatch.setenv("RUNBOOK_HOME", str(home))
    try:
        yield home, mounted
    finally:
        if mounted:
            unmount(home)


class Sender:
    """Posts each alert until the server answers 202, whichever server is up (like Alertmanager)."""

    def __init__(self) -> None:
        self.url = ""
        self.acknowledged: dict[str, list[str]] = {}
        self.refusals = 0
        self.done = threading.Event()

    def run(self) -> None:
        for n in range(ALERTS):
            body = {"id": f"soak-{n}", "labels": {"alertname": "Soak", "host": f"h{n}"}}
            while True:
                try:
                    answer = httpx.post(f"{self.url}/alerts/generic", json=body, timeout=10)
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code == 202:
                    reply = answer.json()
                    self.acknowledged[f"h{n}"] = reply["started"] + reply["joined"]
                    break
                self.refusals += 1
                time.sleep(0.3)
            time.sleep(0.4)
        self.done.set()


def test_a_storm_under_faults_gives_every_alert_one_incident_one_ticket_one_message(
    disk_home: tuple[Path, bool],
    tmp_path: Path,
    slack: FakeSlack,
    jira: FakeJira,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home, mounted = disk_home
    library = tmp_path / "library"
    library.mkdir()
    (library / "soak.md").write_text(RUNBOOK)
    env = {
        "RUNBOOK_SLACK_BOT_TOKEN": slack.token,
        "RUNBOOK_SLACK_API_URL": slack.url,
        "RUNBOOK_JIRA_URL": jira.url,
        "RUNBOOK_JIRA_USER": "bot@example.com",
        "RUNBOOK_JIRA_TOKEN": "api-token",
        "RUNBOOK_JIRA_TIMEOUT_S": "2",
        "RUNBOOK_JIRA_RECONCILE_S": "10",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the served processes' configuration
    log = tmp_path / "serve.log"
    slack.fail_next("chat.postMessage", 429, retry_after=1, times=3)
    slack.fail_next("chat.postMessage", 503, times=2)
    jira.fail_next(r"/issue$", 503, times=2, method="POST")
    jira.drop_response_after_create(2)
    jira.search_lag_s(1.0)

    server, url = start_serving(home, library, log)
    sender = Sender()
    sender.url = url
    feeding = threading.Thread(target=sender.run, daemon=True)
    try:
        feeding.start()
        wait_for(lambda: len(sender.acknowledged) >= 5, what="the first alerts")
        worker = worker_of(server.pid)
        assert worker is not None
        os.kill(worker, signal.SIGKILL)  # the worker process, mid-storm

        if mounted:
            wait_for(lambda: len(sender.acknowledged) >= 10, what="more alerts")
            filler = fill(home)  # the home's disk is full for three seconds
            time.sleep(3)
            filler.unlink()

        wait_for(lambda: len(sender.acknowledged) >= 15, what="more alerts")
        worker = worker_of(server.pid)
        assert worker is not None
        os.kill(server.pid, signal.SIGKILL)  # the server itself; its worker dies with it
        server.wait(10)
        wait_for(lambda: not alive(worker), timeout=10, what="the worker to die with the server")
        server, url = start_serving(home, library, log)
        sender.url = url

        wait_for(lambda: len(sender.acknowledged) >= 22, what="more alerts")
        worker = worker_of(server.pid)
        assert worker is not None and alive(worker)
        os.kill(worker, signal.SIGKILL)

        wait_for(sender.done.is_set, timeout=180, what="every alert to be acknowledged")
        wait_for(lambda: _settled(home / "intake.db"), timeout=240, what="every job to end")
    finally:
        stop_serving(server)

    with sqlite3.connect(home / "intake.db") as conn:
        opened = dict(conn.execute("SELECT key, incident FROM incidents").fetchall())
        failed = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'failed'").fetchone()[0]
    assert failed == 0, log.read_text()[-4000:]
    assert len(opened) == ALERTS and len(set(opened.values())) == ALERTS
    for host, incidents in sender.acknowledged.items():
        [incident] = set(incidents)  # a resent delivery joins the incident its first one opened
        records = read_records(home / "incidents" / incident)
        finished = [r.data["status"] for r in records if r.event is Event.RUN_FINISHED]
        assert finished and finished[-1] == "succeeded", (host, finished)
        assert verify_ledger(home / "incidents" / incident).ok, host
    summaries = [issue.fields["summary"] for issue in jira.issues.values()]
    assert sorted(summaries) == sorted(f"Soak h{n}" for n in range(ALERTS))
    ops = slack.channel_named("ops")
    assert ops is not None
    told = [m["text"].split(":")[0] for m in slack.messages[ops.id]]
    assert sorted(told) == sorted(f"Soak h{n}" for n in range(ALERTS))


def _settled(intake: Path) -> bool:
    with sqlite3.connect(intake) as conn:
        left = conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')"
        ).fetchone()[0]
    return int(left) == 0
