"""A real Prefect worker (`prefect worker start --pool ...`) as a subprocess, for scale-out."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support import PROJECT


def worker_env(home: Path, api_url: str, **extra: str) -> dict[str, str]:
    """What a worker machine runs with: the server's engine home and the same Prefect API."""
    return {
        **os.environ,
        "RUNBOOK_HOME": str(home),
        "RUNBOOK_PREFECT": "external",
        "PREFECT_API_URL": api_url,
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        # The worker asks for scheduled runs every second instead of every ten.
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        **extra,
    }


def start_worker(pool: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a Prefect worker on `pool`, in its own process group, its output to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool],
            cwd=PROJECT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Stop a worker (SIGTERM to its group, SIGKILL if it lingers) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


@contextlib.contextmanager
def prefect_worker(pool: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A worker running on `pool` for the duration of the block."""
    worker = start_worker(pool, env, log)
    try:
        yield worker
    finally:
        stop_worker(worker)


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.25) -> Any:
    """Poll `check` until it returns something true; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def job_row(intake_db: Path, incident: str) -> tuple[str, str | None, str | None]:
    """(state, outcome, error) of the one job of an incident."""
    with contextlib.closing(sqlite3.connect(intake_db)) as conn:
        row = conn.execute(
            "SELECT state, outcome, error FROM jobs WHERE incident = ? ORDER BY id", (incident,)
        ).fetchone()
    return str(row[0]), row[1], row[2]
