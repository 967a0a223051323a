"""`runbook serve` as a process of its own, as users run it, for tests that need the real one."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import PROJECT, RUNBOOK_CLI, cli_env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    """A running `runbook serve`: its process, its URL, and (once stopped) what it wrote."""

    process: subprocess.Popen[str]
    url: str
    stderr: str = ""


@contextlib.contextmanager
def running_server(home: Path, *args: str, **env: str) -> Iterator[Served]:
    """Start `runbook serve` on a free port, wait until it answers, stop it with Ctrl-C after.

    Its stderr is in `Served.stderr` once the block has ended.
    """
    port = free_port()
    process = subprocess.Popen(
        [*RUNBOOK_CLI, "serve", "--port", str(port), *args],
        cwd=PROJECT,
        env=cli_env(home, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    served = Served(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{served.url}/metrics", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    _, stderr = process.communicate(timeout=30)
                    raise AssertionError(f"runbook serve did not start:\n{stderr}") from None
                time.sleep(0.3)
        yield served
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the whole group
        _, served.stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)


def peak_rss_bytes(pid: int) -> int:
    """The most memory the process has ever had resident (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")
