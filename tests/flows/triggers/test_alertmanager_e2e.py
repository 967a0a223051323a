"""A real Prometheus Alertmanager (Debian's binary) delivering webhooks to the trigger server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows.engine.settings import Settings
from flows.triggers.app import build_app
from flows.triggers.server import Server, load_library, make_server
from tests.support import FIXTURES, serve_in_thread

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
TOKEN = "am-token-71f0"

pytestmark = [
    pytest.mark.skipif(
        BINARY is None,
        reason="Prometheus Alertmanager is not installed (apt-get install prometheus-alertmanager)",
    ),
    pytest.mark.usefixtures("prefect_api"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(home: Path) -> Iterator[tuple[Server, str]]:
    """The trigger server over real HTTP, its workers running."""
    settings = Settings(home=home, prefect="external", webhook_token=SecretStr(TOKEN))
    built = make_server(settings, load_library(FIXTURES / "library"), dev=False)
    built.workers.start()
    with serve_in_thread(build_app(built.state)) as url:
        yield built, url
    built.workers.stop()


def start_alertmanager(tmp_path: Path, name: str, webhook: str) -> tuple[subprocess.Popen, str]:
    """One Alertmanager (clustering off) routing every alert to the server within a second."""
    folder = tmp_path / name
    folder.mkdir()
    config = folder / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: runbook\n  group_by: [alertname, instance]\n"
        "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
        "receivers:\n  - name: runbook\n    webhook_configs:\n"
        f"      - url: {webhook}\n        send_resolved: true\n"
        f"        http_config:\n          authorization:\n            credentials: {TOKEN}\n"
    )
    port = free_port()
    with (folder / "log").open("wb") as log:
        process = subprocess.Popen(
            [
                BINARY,
                f"--config.file={config}",
                f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError((folder / "log").read_text())


def fire(alertmanager: str, instance: str) -> None:
    """Post one DiskFull alert to Alertmanager's API, as Prometheus would."""
    alert = [
        {
            "labels": {"alertname": "DiskFull", "instance": instance},
            "annotations": {"summary": "disk 95% full"},
            "startsAt": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
    ]
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps(alert).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def wait_for(predicate, timeout: float = 45):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_alertmanager_pair_opens_one_incident(
    server: tuple[Server, str], tmp_path: Path, home: Path
) -> None:
    """The same alert sent by two Alertmanagers (an HA pair) opens exactly one incident."""
    built, url = server
    managers = [start_alertmanager(tmp_path, n, f"{url}/alerts/alertmanager") for n in ("a", "b")]
    try:
        for _, manager in managers:
            fire(manager, "db-7")
        registry = built.state.metrics.registry
        # Answered, not just received: the histogram is observed once the intake committed.
        answered = {"endpoint": "/alerts/alertmanager"}
        wait_for(
            lambda: (registry.get_sample_value("runbook_webhook_seconds_count", answered) or 0) >= 2
        )
        [(_, incident, runbook)] = built.state.intake.incidents()
        assert runbook == "disk-full"
        wait_for(lambda: (home / "incidents" / incident / "ledger.jsonl").exists())
    finally:
        for process, _ in managers:
            process.terminate()
            process.wait(10)
