"""Helpers shared by tests: fixture paths and how to run the `runbook` CLI as a subprocess."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from flows.contract.ports import GateAnswer
from flows.runbook.model import Gate
from flows.runbook.roster import load_roster
from flows.triggers.jobs import JobState

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = Path(__file__).parent.parent
RUNBOOK_CLI = [sys.executable, "-m", "flows.cli"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a `runbook` subprocess using this test's home and the session's server."""
    env = {**os.environ, "RUNBOOK_HOME": str(home), **extra}
    env.setdefault("RUNBOOK_PREFECT", "external" if "PREFECT_API_URL" in env else "local-server")
    return env


def run_cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the CLI non-interactively (stdin closed) with this test's home."""
    return subprocess.run(
        [*RUNBOOK_CLI, *args],
        env=cli_env(home),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        cwd=PROJECT,
    )


@contextlib.contextmanager
def serve_in_thread(app: object) -> Iterator[str]:
    """Run an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yield its URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_idle(server: object, timeout: float = 60) -> None:
    """Wait until a trigger server's workers have finished every queued job."""
    intake = server.state.intake  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if intake.count_jobs(JobState.PENDING) == 0 and intake.count_jobs(JobState.RUNNING) == 0:
            return
        time.sleep(0.1)
    raise AssertionError("jobs still queued")


class RosterResponder:
    """Answers every gate as a person of the library's roster whom its policy admits, never one
    its separation rules out; gates open to anyone are answered by `anyone`."""

    def __init__(self, roster: Path = PROJECT / "runbooks" / "responders.yaml", anyone: str = "ic"):
        self.roster, self.anyone = load_roster(roster), anyone
        self.answered: dict[str, str] = {}

    def ask(self, gate: Gate, incident: str) -> GateAnswer:
        """One answer per gate, as someone allowed to give it."""
        approvers = gate.policy.approvers if gate.policy else None
        person = self.anyone
        if approvers is not None and gate.policy is not None:
            ruled_out = {self.answered[i] for i in gate.policy.separation if i in self.answered}
            person = sorted((self.roster.eligible(approvers) or set()) - ruled_out)[0]
        self.answered[gate.id] = person
        return GateAnswer(by=person, note=f"done: {gate.title}", via="test")
