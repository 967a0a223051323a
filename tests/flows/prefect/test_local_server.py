"""One local Prefect server per engine home: a stop during its boot takes the half-started
server with it, and a start while another one boots waits for that server instead of doubling it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from flows.prefect.local_server import prefect_home, server_lock_held
from tests.flows.prefect.prefect_worker import wait_for
from tests.support import PROJECT, RUNBOOK_CLI

BOOT_S = 120.0


def server_env(home: Path) -> dict[str, str]:
    """The engine's own local server for this home, nothing the test session configured."""
    env = {**os.environ, "RUNBOOK_HOME": str(home), "RUNBOOK_PREFECT": "local-server"}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    return env


def server_start(home: Path) -> subprocess.Popen[str]:
    """`runbook server start` in its own process group, as a terminal or a unit file runs it."""
    return subprocess.Popen(
        [*RUNBOOK_CLI, "server", "start"],
        cwd=PROJECT,
        env=server_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def prefect_servers(home: Path) -> list[psutil.Process]:
    """Every `prefect server start` process whose Prefect home is this engine home's."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        words = process.info["cmdline"] or []
        if not any(words[n : n + 3] == ["prefect", "server", "start"] for n in range(len(words))):
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get("PREFECT_HOME") == str(prefect_home(home)):
                found.append(process)
    return found


@pytest.fixture
def fresh_home(tmp_path: Path) -> Iterator[Path]:
    """An engine home no server ever ran in; any server a test leaves behind is killed."""
    home = tmp_path / "home"
    yield home
    for process in prefect_servers(home):
        with contextlib.suppress(psutil.Error):
            os.killpg(process.pid, signal.SIGKILL)


def booting_server(home: Path) -> psutil.Process:
    """The Prefect server a start is booting, once its process exists."""
    return wait_for("the Prefect server process", lambda: prefect_servers(home)[:1], 30, 0.05)[0]


def test_sigterm_during_boot_leaves_no_prefect_server_behind(fresh_home: Path) -> None:
    """SIGTERM to `runbook server start` while the server boots stops the server too."""
    start = server_start(fresh_home)
    server = booting_server(fresh_home)
    os.killpg(start.pid, signal.SIGTERM)
    start.communicate(timeout=60)
    assert start.returncode == -signal.SIGTERM  # it went the way SIGTERM asked
    wait_for("the booting server to be gone", lambda: not server.is_running(), 20)
    assert prefect_servers(fresh_home) == []
    assert not server_lock_held(fresh_home)
    assert not (prefect_home(fresh_home) / "server.json").exists()


def test_a_start_reuses_the_server_a_killed_start_was_booting(fresh_home: Path) -> None:
    """The server of a start killed mid-boot (SIGKILL) is found and reused by the next start."""
    first = server_start(fresh_home)
    orphan = booting_server(fresh_home)
    os.killpg(first.pid, signal.SIGKILL)  # its server is in a session of its own: it boots on
    first.communicate(timeout=30)
    second = server_start(fresh_home)
    stdout, stderr = second.communicate(timeout=BOOT_S)
    assert second.returncode == 0, stderr
    assert f"(pid {orphan.pid})" in stdout
    assert [process.pid for process in prefect_servers(fresh_home)] == [orphan.pid]
    stop = subprocess.run(
        [*RUNBOOK_CLI, "server", "stop"], env=server_env(fresh_home), capture_output=True, text=True
    )
    assert stop.stdout.strip() == "stopped", stop.stderr
    wait_for("the server to stop", lambda: not orphan.is_running(), 30)


def test_two_starts_at_once_give_one_server(fresh_home: Path) -> None:
    """Two starts on one home at the same moment report the same single server."""
    starts = [server_start(fresh_home), server_start(fresh_home)]
    outputs = [start.communicate(timeout=BOOT_S) for start in starts]
    assert [start.returncode for start in starts] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]  # same address, same pid
    [server] = prefect_servers(fresh_home)
    assert f"(pid {server.pid})" in outputs[0][0]
    subprocess.run([*RUNBOOK_CLI, "server", "stop"], env=server_env(fresh_home), check=True)
