"""Scale-out on PostgreSQL: a burst of alerts through `runbook serve --via-deployments`, the
Prefect worker killed with SIGKILL mid-burst and started again, and every accepted alert still
runs exactly once: one incident each, waiting at its gate, one ticket and one message each."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from flows.evidence.verify import read_records
from integrations.jira.local import LocalTicketStore
from tests.flows.prefect.postgres import postgres_cluster, postgres_missing
from tests.flows.prefect.prefect_worker import start_worker, stop_worker, wait_for, worker_env
from tests.support import FIXTURES, PROJECT, RUNBOOK_CLI

pytestmark = [
    pytest.mark.scaleout,
    pytest.mark.skipif(postgres_missing() is not None, reason=postgres_missing() or ""),
]

ALERTS = 20
POOL = "scaleout"
LIBRARY = FIXTURES / "library"
LIBRARY_ARG = ["--runbooks", str(LIBRARY)]
SERVE = [*RUNBOOK_CLI, "serve", "--via-deployments", "--dev"]
SETTLE_S = 300.0
BEATING = {"PREFECT_WORKER_HEARTBEAT_SECONDS": "5"}
"""A worker's heartbeat every 5 s: offline 15 s after it stopped beating."""
TOLD = r"(Disk almost full on h-\d+): OPS-"
"""The runbook's Slack message, naming its ticket."""


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL cluster's URL for Prefect."""
    with postgres_cluster(tmp_path / "postgres") as url:
        yield url


def engine_env(home: Path, database: str) -> dict[str, str]:
    """The engine's local-server mode, its Prefect server on PostgreSQL."""
    env = {
        **os.environ,
        "RUNBOOK_HOME": str(home),
        "RUNBOOK_PREFECT": "local-server",
        "PREFECT_API_DATABASE_CONNECTION_URL": database,
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        # The server marks a worker offline after three missed heartbeats, looking every 5 s:
        # a flow run a killed worker had taken is resumed within half a minute.
        "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": "5",
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    return env


def runbook_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*RUNBOOK_CLI, *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def alert(host: str) -> dict:
    """An Alertmanager webhook with one DiskFull alert for `host`."""
    labels = {"alertname": "DiskFull", "instance": host}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{instance="{host}"}}',
        "status": "firing",
        "receiver": "runbook",
        "groupLabels": labels,
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "disk 95% full"},
                "startsAt": "2026-11-26T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"fp-{host}",
            }
        ],
    }


def flow_runs_in(api: str, *states: str) -> int:
    answer = httpx.post(
        f"{api}/flow_runs/count",
        json={"flow_runs": {"state": {"type": {"any_": list(states)}}}},
        timeout=10,
    )
    return int(answer.json())


def unfinished(api: str) -> list[tuple[str, str, object]]:
    """(state, state name, labels) of every flow run not yet final, to say where one hangs."""
    active = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"]
    answer = httpx.post(
        f"{api}/flow_runs/filter",
        json={"flow_runs": {"state": {"type": {"any_": active}}}},
        timeout=10,
    )
    return [(r["state_type"], r["state_name"], r.get("labels")) for r in answer.json()]


def unsettled_jobs(home: Path) -> int:
    with contextlib.closing(sqlite3.connect(home / "intake.db")) as conn:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')"
            ).fetchone()[0]
        )


def test_every_alert_of_a_burst_runs_once_though_the_worker_is_killed(
    tmp_path: Path, postgres: str
) -> None:
    """Kill -9 of the Prefect worker mid-burst loses no alert and repeats no step."""
    home = tmp_path / "home"
    env = engine_env(home, postgres)
    api = runbook_cli(env, "server", "start").split(" at ")[1].split()[0]
    worker_log = tmp_path / "worker.log"
    worker = serve = None
    try:
        runbook_cli(env, "deploy", "--pool", POOL, *LIBRARY_ARG)
        worker = start_worker(POOL, worker_env(home, api, **BEATING), worker_log)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with open(tmp_path / "serve.log", "w") as serve_log:
            serve = subprocess.Popen(
                [*SERVE, f"--port={port}", *LIBRARY_ARG],
                cwd=PROJECT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=serve_log,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"

        def answered() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            assert serve is not None and serve.poll() is None, (tmp_path / "serve.log").read_text()
            return False

        wait_for("runbook serve", answered, 90, 0.3)
        hosts = [f"h-{n:02d}" for n in range(ALERTS)]
        with ThreadPoolExecutor(8) as pool:

            def send(host: str) -> list[str]:
                answer = httpx.post(f"{url}/alerts/alertmanager", json=alert(host), timeout=30)
                assert answer.status_code == 202, answer.text
                return list(answer.json()["started"])

            accepted = list(pool.map(send, hosts[: ALERTS // 2]))
            wait_for("the worker to take runs", lambda: flow_runs_in(api, "PENDING"), 60)
            os.kill(worker.pid, signal.SIGKILL)  # mid-burst, runs taken and not yet finished
            worker.wait()
            accepted += pool.map(send, hosts[ALERTS // 2 :])
        worker = start_worker(POOL, worker_env(home, api, **BEATING), worker_log)
        try:
            wait_for("every job to end", lambda: unsettled_jobs(home) == 0, SETTLE_S, 1)
        except AssertionError as error:
            raise AssertionError(f"{error}; flow runs not final: {unfinished(api)}") from None
    finally:
        if serve is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(serve.pid, signal.SIGINT)
            serve.wait(timeout=60)
        if worker is not None:
            stop_worker(worker)
        subprocess.run([*RUNBOOK_CLI, "server", "stop"], env=env, capture_output=True)

    incidents = [started for started in accepted for started in started]
    assert len(incidents) == len(set(incidents)) == ALERTS
    with contextlib.closing(sqlite3.connect(home / "intake.db")) as conn:
        jobs = conn.execute("SELECT state, outcome FROM jobs ORDER BY id").fetchall()
    assert [state for state, _ in jobs] == ["done"] * ALERTS, jobs
    for incident in incidents:
        events = [record.event for record in read_records(home / "incidents" / incident)]
        assert events.count("run.started") == 1, (incident, events)
        assert "gate.waiting" in events, (incident, events)
    summaries = [ticket.summary for ticket in LocalTicketStore(home / "tickets.db").list_tickets()]
    assert sorted(summaries) == [f"Disk almost full on {host}" for host in hosts]
    lines = [json.loads(line) for line in (home / "outbox.jsonl").read_text().splitlines()]
    told = [re.match(TOLD, line.get("text") or "") for line in lines]
    assert sorted(match[1] for match in told if match) == sorted(summaries)
