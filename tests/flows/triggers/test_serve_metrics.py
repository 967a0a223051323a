"""`/metrics` of the real `runbook serve`: what its worker process counts is served with what the
server counts, and a new server starts its counts afresh."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.flows.triggers.test_metrics import sample
from tests.flows.triggers.test_server import alertmanager_payload
from tests.serve_process import running_server
from tests.support import FIXTURES

LIBRARY = str(FIXTURES / "library")
TOKEN = "hook-token-5d2c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.usefixtures("prefect_api")
def test_a_run_in_the_worker_process_is_counted_in_the_servers_metrics(home: Path) -> None:
    """An alert answered by the server and run in its worker process shows in the server's
    /metrics: received, its run started and finished (waiting at its gate), nothing pending,
    and the worker process's two threads alive."""
    with (
        running_server(home, "--runbooks", LIBRARY, RUNBOOK_WEBHOOK_TOKEN=TOKEN) as served,
        httpx.Client(base_url=served.url, timeout=30) as client,
    ):
        answer = client.post("/alerts/alertmanager", json=alertmanager_payload(), headers=AUTH)
        assert answer.status_code == 202, answer.text
        deadline = time.monotonic() + 120
        while True:
            text = client.get("/metrics").text
            finished = sample(
                text, "runbook_runs_finished_total", runbook="disk-full", status="waiting"
            )
            if finished or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert finished == 1.0, text
    assert sample(text, "runbook_runs_started_total", runbook="disk-full", trigger="alert") == 1.0
    assert sample(text, "runbook_alerts_received_total", source="alertmanager") == 1.0
    assert sample(text, "runbook_webhook_seconds_count", endpoint="/alerts/alertmanager") == 1.0
    assert sample(text, "runbook_jobs_pending") == 0.0
    assert sample(text, "runbook_workers_alive") == 2.0
    assert "Traceback" not in served.stderr, served.stderr


def test_a_new_server_does_not_carry_the_last_ones_counts(home: Path) -> None:
    """The metrics folder under the engine home is emptied at start: what a stopped server
    counted is not added to the next one's."""
    settings = {"RUNBOOK_WEBHOOK_TOKEN": TOKEN, "RUNBOOK_PREFECT": "ephemeral"}
    unmatched = alertmanager_payload()
    unmatched["alerts"][0]["labels"]["alertname"] = "CpuHot"  # runs nothing
    counts = []
    for _ in range(2):
        with (
            running_server(home, "--runbooks", LIBRARY, **settings) as served,
            httpx.Client(base_url=served.url, timeout=30) as client,
        ):
            client.post("/alerts/alertmanager", json=unmatched, headers=AUTH)
            text = client.get("/metrics").text
        counts.append(sample(text, "runbook_alerts_received_total", source="alertmanager"))
    assert counts == [1.0, 1.0]
    assert (home / "metrics").is_dir()
