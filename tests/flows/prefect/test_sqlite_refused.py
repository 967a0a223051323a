"""`runbook serve --via-deployments` refuses a Prefect server on SQLite, saying why, unless
`--allow-sqlite-prefect` takes the risk; the database is told from the server's own settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from flows.prefect.database import POSTGRESQL, SQLITE, database_of
from tests.support import FIXTURES, PROJECT, RUNBOOK_CLI, cli_env

LIBRARY = FIXTURES / "library"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(home: Path, port: int, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*RUNBOOK_CLI, "serve", "--dev", "--port", str(port), "--runbooks", str(LIBRARY), *flags],
        cwd=PROJECT,
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.usefixtures("prefect_api")  # the engine's local server: SQLite
def test_via_deployments_on_a_sqlite_prefect_server_is_refused_with_the_reason(
    home: Path,
) -> None:
    """The start is refused (exit 2, no traceback), naming SQLite, the loss, and the way out."""
    server = serve(home, free_port(), "--via-deployments")
    try:
        _, stderr = server.communicate(timeout=90)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert server.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert "--via-deployments refused" in stderr
    assert "SQLite" in stderr and "loses flow-run submissions" in stderr
    assert "PostgreSQL" in stderr and "--allow-sqlite-prefect" in stderr


@pytest.mark.usefixtures("prefect_api")
def test_allow_sqlite_prefect_serves_and_warns(home: Path) -> None:
    """With --allow-sqlite-prefect the server starts, and says at start what it risks."""
    port = free_port()
    server = serve(home, port, "--via-deployments", "--allow-sqlite-prefect")
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr
                time.sleep(0.3)
        os.killpg(server.pid, signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert "runs on SQLite (--allow-sqlite-prefect)" in stderr, stderr
    assert "Traceback" not in stderr, stderr


def test_the_database_is_told_by_the_driver_the_server_names() -> None:
    """A named driver decides; a masked connection URL alone says nothing."""
    masked = {"connection_url": "**********", "driver": None}
    assert database_of({"server": {"database": masked}}) is None
    named = {**masked, "driver": "postgresql+asyncpg"}
    assert database_of({"server": {"database": named}}) == POSTGRESQL
    assert database_of({"server": {"database": {**masked, "driver": "sqlite+aiosqlite"}}}) == SQLITE
    shown = {"connection_url": "sqlite+aiosqlite:////srv/prefect.db", "driver": None}
    assert database_of({"server": {"database": shown}}) == SQLITE
    assert database_of({"detail": "Not Found"}) is None
