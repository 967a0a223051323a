"""The trigger server: authenticated webhooks become durable incidents, deduplicated and run."""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from flows.engine.settings import Settings
from flows.evidence.verify import read_records
from flows.triggers.app import build_app
from flows.triggers.jobs import JobState
from flows.triggers.server import Server, load_library, make_server
from integrations.jira.local import LocalTicketStore
from tests.support import FIXTURES, serve_in_thread, wait_idle

LIBRARY = FIXTURES / "library"
TOKEN = "hook-token-5d2c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def alertmanager_payload(status: str = "firing", instance: str = "db-1") -> dict:
    """A webhook v4 body with one DiskFull alert."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "status": status,
        "receiver": "runbook",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "instance": instance},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "DiskFull", "instance": instance},
                "annotations": {"summary": "disk 95% full"},
                "startsAt": "2026-11-26T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-26T11:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": f"fp-{instance}",
            }
        ],
    }


def settings_for(home: Path) -> Settings:
    return Settings(home=home, prefect="external", webhook_token=SecretStr(TOKEN))


@pytest.fixture
def server(home: Path) -> Iterator[Server]:
    """A server (workers running) over the fixture library with local backends."""
    built = make_server(settings_for(home), load_library(LIBRARY), dev=False, threads=2)
    built.workers.start()
    yield built
    built.workers.stop()


@contextlib.contextmanager
def http_client(server: Server) -> Iterator[httpx.Client]:
    """An HTTP client for the server's app, served by uvicorn on a loopback port."""
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with http_client(server) as client:
        yield client


def post_alert(
    client: httpx.Client, body: object, headers: dict | None = None, source: str = "alertmanager"
):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        f"/alerts/{source}", content=raw, headers=headers if headers is not None else AUTH
    )


@pytest.mark.usefixtures("prefect_api")
def test_alert_starts_an_incident_that_runs_to_its_gate(
    client: httpx.Client, server: Server, home: Path
) -> None:
    """A firing alert is answered 202, then its runbook runs with inputs mapped from labels."""
    answer = post_alert(client, alertmanager_payload())
    assert answer.status_code == 202, answer.text
    [incident] = answer.json()["started"]
    wait_idle(server)
    records = read_records(home / "incidents" / incident)
    assert ("gate.waiting", "free-space") in [(r.event, r.step) for r in records]
    started = next(r for r in records if r.event == "run.started")
    assert started.data["inputs"] == {"host": "db-1"}
    tickets = LocalTicketStore(home / "tickets.db").list_tickets()
    assert [t.summary for t in tickets] == ["Disk almost full on db-1"]


@pytest.mark.usefixtures("prefect_api")
def test_duplicate_alerts_join_the_incident(
    client: httpx.Client, server: Server, home: Path
) -> None:
    """The same alert twice (an HA pair, a repeat) opens one incident and one ticket."""
    first = post_alert(client, alertmanager_payload()).json()
    second = post_alert(client, alertmanager_payload()).json()
    assert second["started"] == [] and second["joined"] == first["started"]
    wait_idle(server)
    assert len(LocalTicketStore(home / "tickets.db").list_tickets()) == 1
    metrics = client.get("/metrics").text
    assert 'runbook_alerts_deduplicated_total{source="alertmanager"} 1.0' in metrics


@pytest.mark.usefixtures("prefect_api")
def test_resolved_alert_is_recorded_and_comments_without_starting(
    client: httpx.Client, server: Server, home: Path
) -> None:
    """A resolved alert goes into the incident's evidence and its ticket, starting nothing."""
    [incident] = post_alert(client, alertmanager_payload()).json()["started"]
    wait_idle(server)
    answer = post_alert(client, alertmanager_payload(status="resolved")).json()
    assert answer["resolved"] == [incident] and answer["started"] == []
    wait_idle(server)
    events = [r.event for r in read_records(home / "incidents" / incident)]
    assert "alert.resolved" in events
    store = LocalTicketStore(home / "tickets.db")
    [ticket] = store.list_tickets()
    assert any("resolved" in c.body for c in store.comments(ticket.key))


def test_unmatched_alert_is_counted_not_dropped(client: httpx.Client, server: Server) -> None:
    """An alert no trigger matches is answered 202, recorded and counted."""
    body = alertmanager_payload()
    body["alerts"][0]["labels"]["alertname"] = "CpuHot"
    answer = post_alert(client, body)
    assert answer.status_code == 202 and answer.json()["unmatched"] == 1
    assert server.state.intake.count_jobs(JobState.PENDING) == 0
    assert (
        'runbook_alerts_unmatched_total{source="alertmanager"} 1.0' in client.get("/metrics").text
    )


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Og=="}]
)
def test_unauthenticated_webhook_changes_nothing(
    client: httpx.Client, server: Server, headers: dict
) -> None:
    """Without the right token the answer is 401 and no incident or job is recorded."""
    answer = post_alert(client, alertmanager_payload(), headers=headers)
    assert answer.status_code == 401
    assert server.state.intake.incidents() == []
    assert server.state.intake.count_jobs(JobState.PENDING) == 0


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"alerts": "x"}', b"{}"])
def test_bad_payload_is_a_4xx_and_changes_nothing(
    client: httpx.Client, server: Server, body: bytes
) -> None:
    """A malformed body gets 400/422 with a reason and leaves the intake untouched."""
    answer = post_alert(client, body)
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["error"]
    assert server.state.intake.incidents() == []


def test_unconfigured_source_refuses_everything(home: Path) -> None:
    """With no secret for a source (and no --dev), its endpoint answers 401 and says why."""
    built = make_server(Settings(home=home, prefect="external"), load_library(LIBRARY), dev=False)
    assert any("RUNBOOK_WEBHOOK_TOKEN" in note for note in built.state.notes)
    with http_client(built) as client:
        answer = client.post(
            "/alerts/alertmanager", content=json.dumps(alertmanager_payload()).encode()
        )
    assert answer.status_code == 401 and "not configured" in answer.json()["error"]


@pytest.mark.usefixtures("prefect_api")
def test_work_acknowledged_before_a_restart_is_picked_up(home: Path) -> None:
    """Alerts accepted by a server that stopped before running them run after a restart."""
    stopped = make_server(settings_for(home), load_library(LIBRARY), dev=False)
    with http_client(stopped) as client:
        answer = post_alert(client, alertmanager_payload())
    [incident] = answer.json()["started"]
    assert not (home / "incidents" / incident).exists()
    restarted = make_server(settings_for(home), load_library(LIBRARY), dev=False)
    restarted.workers.start()
    try:
        wait_idle(restarted)
    finally:
        restarted.workers.stop()
    assert (home / "incidents" / incident / "ledger.jsonl").exists()


def test_fuzzed_bodies_never_cause_a_server_error(client: httpx.Client) -> None:
    """Random bodies and shapes on every endpoint get answers below 500."""
    rng = random.Random(7)
    shapes = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))),
        lambda: json.dumps(rng.choice([[], {}, None, 1, "x", {"alerts": [1, None]}])).encode(),
        lambda: json.dumps(
            {"alerts": [{"labels": rng.choice([1, [], "x", {"a": None}])}]}
        ).encode(),
        lambda: json.dumps({"event": {"data": rng.choice([None, 1, {"id": []}])}}).encode(),
    ]
    for source in ("alertmanager", "grafana", "datadog", "pagerduty", "generic"):
        for _ in range(60):
            answer = post_alert(client, rng.choice(shapes)(), source=source)
            assert answer.status_code < 500, (source, answer.text)
    for path in ("/slack/commands", "/slack/interactions"):
        for _ in range(30):
            assert client.post(path, content=rng.choice(shapes)()).status_code < 500


@pytest.mark.usefixtures("prefect_api")
def test_worker_process_runs_what_the_server_accepts(home: Path) -> None:
    """With workers in their own process, an accepted alert still becomes a run promptly."""
    from flows.triggers.worker_process import start_worker_process

    settings = settings_for(home)
    built = make_server(settings, load_library(LIBRARY), dev=False)
    worker = start_worker_process(settings, LIBRARY, built.state.intake, threads=1)
    try:
        with http_client(built) as client:
            [incident] = post_alert(client, alertmanager_payload()).json()["started"]
        ledger = home / "incidents" / incident / "ledger.jsonl"
        deadline = time.monotonic() + 90
        while not (ledger.exists() and b"run.finished" in ledger.read_bytes()):
            assert time.monotonic() < deadline, "the worker process never ran the incident"
            time.sleep(0.2)
    finally:
        worker.stop()
    assert not worker.process.is_alive()


@pytest.mark.usefixtures("prefect_api")
def test_secrets_in_an_alert_are_stored_nowhere(
    client: httpx.Client, server: Server, home: Path
) -> None:
    """A password label, a bearer annotation and an AWS key never reach the intake or evidence."""
    body = alertmanager_payload()
    secrets = ("hunter2-db-pass", "eyJraWQiOiJhYmMifQ.eyJzdWIiOiJ4In0.c2ln", "AKIAIOSFODNN7EXAMPLE")
    alert = body["alerts"][0]
    alert["labels"]["password"] = secrets[0]
    alert["annotations"]["curl"] = f"Authorization: Bearer {secrets[1]}"
    alert["annotations"]["leaked"] = f"found {secrets[2]} in a commit"
    answer = post_alert(client, body)
    assert answer.status_code == 202, answer.text
    [incident] = answer.json()["started"]
    wait_idle(server)
    stored = [
        *(path.read_bytes() for path in home.glob("intake.db*")),  # the WAL too
        *(path.read_bytes() for path in (home / "incidents" / incident).iterdir()),
    ]
    for secret in secrets:
        assert not any(secret.encode() in data for data in stored), secret


def test_a_resolution_sent_again_is_recorded_once(home: Path) -> None:
    """Alertmanager repeats resolutions and anyone can replay one: the second queues nothing,
    and its answer still names the resolved incident."""
    idle = make_server(settings_for(home), load_library(LIBRARY), dev=False)
    with http_client(idle) as client:
        [incident] = post_alert(client, alertmanager_payload()).json()["started"]
        first = post_alert(client, alertmanager_payload(status="resolved")).json()
        again = post_alert(client, alertmanager_payload(status="resolved")).json()
    assert first["resolved"] == again["resolved"] == [incident]
    assert idle.state.intake.count_jobs(JobState.PENDING) == 2  # the start and one resolution
