"""`/metrics`: every alert counted by what became of it, one `endpoint` label spelled as the
path, and what the intake knows (jobs pending, workers alive) read when Prometheus scrapes."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from flows.engine.settings import Settings
from flows.triggers.app import build_app
from flows.triggers.server import INTAKE_DB, Server, load_library, make_server
from tests.flows.triggers.test_server import alertmanager_payload, post_alert
from tests.support import FIXTURES, serve_in_thread

LIBRARY = FIXTURES / "library"
TOKEN = "hook-token-5d2c"


@pytest.fixture
def server(home: Path) -> Server:
    """A server whose workers are not started: what it queued stays pending."""
    settings = Settings(
        home=home,
        prefect="external",
        webhook_token=SecretStr(TOKEN),
        slack_signing_secret=SecretStr("slack-signing-9f1e"),
    )
    return make_server(settings, load_library(LIBRARY), dev=False)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield client


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when it is not there."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = "^" + re.escape(f"{name}{{{wanted}}}" if labels else name) + r" (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_each_alert_is_counted_by_what_became_of_it(client: httpx.Client) -> None:
    """Received, joined, unmatched and unroutable alerts each have their counter, by source."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    post_alert(client, alertmanager_payload(), auth)
    post_alert(client, alertmanager_payload(), auth)  # the same alert again: it joins
    unmatched = alertmanager_payload(instance="db-2")
    unmatched["alerts"][0]["labels"]["alertname"] = "CpuHot"
    post_alert(client, unmatched, auth)
    unroutable = alertmanager_payload(instance="db-3")
    del unroutable["alerts"][0]["labels"]["instance"]  # the trigger's input needs it
    answer = post_alert(client, unroutable, auth).json()
    assert answer["unroutable"], answer
    text = client.get("/metrics").text
    counted = {
        name: sample(text, f"runbook_alerts_{name}_total", source="alertmanager")
        for name in ("received", "joined", "unmatched", "unroutable")
    }
    assert counted == {"received": 4.0, "joined": 1.0, "unmatched": 1.0, "unroutable": 1.0}


def test_every_endpoint_label_is_spelled_as_its_path(client: httpx.Client) -> None:
    """A refused alert, a refused Slack request and an unknown source are each labelled with
    the path they came to, in the refusals and in the latency histogram alike."""
    client.post("/alerts/alertmanager", content=b"{}")
    client.post("/slack/commands", content=b"command=%2Frunbook")
    client.post("/alerts/nagios-or-anything", content=b"{}")
    text = client.get("/metrics").text
    for endpoint in ("/alerts/alertmanager", "/slack/commands"):
        assert sample(
            text, "runbook_webhooks_rejected_total", endpoint=endpoint, reason="unauthenticated"
        ), text
        assert sample(text, "runbook_webhook_seconds_count", endpoint=endpoint) == 1.0
    # Whoever sends to an unknown source cannot make up label values.
    assert sample(
        text,
        "runbook_webhooks_rejected_total",
        endpoint="/alerts/{source}",
        reason="unknown_source",
    )
    endpoints = set(re.findall(r'endpoint="([^"]*)"', text))
    assert endpoints == {"/alerts/alertmanager", "/slack/commands", "/alerts/{source}"}


def test_jobs_pending_and_workers_alive_are_read_from_the_intake_at_scrape(
    client: httpx.Client, server: Server, home: Path
) -> None:
    """Jobs pending counts what the intake holds, and workers alive sums the threads of every
    worker pool whose heartbeat is fresh: a pool silent past the limit counts for nothing."""
    assert sample(client.get("/metrics").text, "runbook_jobs_pending") == 0.0
    post_alert(client, alertmanager_payload(), {"Authorization": f"Bearer {TOKEN}"})
    intake = server.state.intake
    intake.beat("host:101", alive=2, threads=2)
    intake.beat("host:102", alive=1, threads=2)
    text = client.get("/metrics").text
    assert sample(text, "runbook_jobs_pending") == 1.0
    assert sample(text, "runbook_workers_alive") == 3.0
    with sqlite3.connect(home / INTAKE_DB) as conn:
        conn.execute("UPDATE workers SET beat_at = ? WHERE name = 'host:101'", (time.time() - 600,))
    assert sample(client.get("/metrics").text, "runbook_workers_alive") == 1.0
