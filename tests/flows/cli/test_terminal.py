"""A responder at a real terminal (a pseudo-terminal) acknowledges a gate when the run asks."""

from __future__ import annotations

import getpass
import json
import os
import pty
import select
import socket
import subprocess
import time
from pathlib import Path

import pytest

from flows.evidence.verify import read_records
from tests.support import FIXTURES, PROJECT, RUNBOOK_CLI, cli_env

GATED = FIXTURES / "runbooks" / "gated.md"
ACCOUNT = f"{getpass.getuser()}@{socket.gethostname()}"


def read_until(fd: int, marker: bytes, deadline: float) -> bytes:
    """Read the terminal until `marker` shows up (or fail at the deadline)."""
    seen = b""
    while marker not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {marker!r}; got {seen[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


@pytest.mark.usefixtures("prefect_api")
def test_terminal_prompt_acknowledges_gate_and_run_succeeds(home: Path) -> None:
    """In a terminal the run asks at the gate to confirm; the OS account that answered and the
    note go into the evidence."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [
            *RUNBOOK_CLI,
            "run",
            str(GATED),
            "--input",
            "service=api",
            "--incident",
            "tty-1",
            "--json",
        ],
        env=cli_env(home),
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=terminal,
        cwd=PROJECT,
    )
    os.close(terminal)
    deadline = time.monotonic() + 90
    try:
        screen = read_until(controller, b"Acknowledge now? [y/N] ", deadline)
        assert b"Manual gate 'contain'" in screen
        assert b"[ ] Fail over to the standby" in screen
        assert f"You answer as {ACCOUNT}".encode() in screen
        os.write(controller, b"y\n")
        read_until(controller, b"Note (optional): ", deadline)
        os.write(controller, b"standby promoted\n")
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
        os.close(controller)
    assert process.returncode == 0
    assert json.loads(stdout.decode().strip().splitlines()[-1])["status"] == "succeeded"
    acks = [r for r in read_records(home / "incidents" / "tty-1") if r.event == "gate.acknowledged"]
    assert [(r.actor, r.data["note"], r.data["via"], r.data["identity"]) for r in acks] == [
        (ACCOUNT, "standby promoted", "terminal", ACCOUNT)
    ]
