"""`runbook serve` as users run it: a process of its own, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support import PROJECT, RUNBOOK_CLI, cli_env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.usefixtures("prefect_api")  # the session's server: serve starts none of its own
def test_ctrl_c_stops_the_server_and_its_workers_without_a_traceback(home: Path) -> None:
    """Ctrl-C reaches the server and its worker process; both stop, and nothing is dumped."""
    port = free_port()
    server = subprocess.Popen(
        [*RUNBOOK_CLI, "serve", "--dev", "--port", str(port)],
        cwd=PROJECT,
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr
                time.sleep(0.3)
        assert health.json()["runbooks"] == 3
        time.sleep(2)  # the worker process is up too
        os.killpg(server.pid, signal.SIGINT)  # what Ctrl-C sends: the whole group
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert server.returncode in (0, 130), stderr
    assert "Traceback" not in stderr, stderr
    assert "serving 3 runbook(s)" in stderr
    assert not (home / "prefect").exists()  # no local Prefect server was left behind
