"""A local Prefect server that the engine starts once and reuses, so runs start in seconds.

Without `PREFECT_API_URL`, every Prefect process boots a temporary server (17-25 s here). Keeping
one server alive under `$RUNBOOK_HOME/prefect` turns later runs into plain API calls. The server is
Prefect's own, started with its own CLI; we only remember its address and check it is healthy.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from flows.errors import RunbookError

START_TIMEOUT_S = 120.0

# Cheaper server defaults for a single-machine install (why: docs/deploying.md):
# bigger write batches keep SQLite from locking under step bursts; services a local
# install does not use are off.
SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
}


# Servers started by this process. Holding the handles keeps Python from warning that a child
# it still owns is running, and lets `stop_server` reap it.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServerInfo:
    """Where the local server listens and which process it is."""

    url: str
    pid: int
    port: int


def prefect_home(home: Path) -> Path:
    """Prefect's own state (database, profiles) for this engine home."""
    return (home / "prefect").resolve()


def _state_file(home: Path) -> Path:
    return prefect_home(home) / "server.json"


def read_server(home: Path) -> ServerInfo | None:
    """The recorded local server, if one was started and is still answering."""
    try:
        raw = json.loads(_state_file(home).read_text())
        info = ServerInfo(url=raw["url"], pid=int(raw["pid"]), port=int(raw["port"]))
    except (OSError, ValueError, KeyError):
        return None
    return info if _healthy(info.url) else None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _start_lock(home: Path) -> Iterator[None]:
    # Two CLIs started at once must not boot two servers.
    folder = prefect_home(home)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _ui_env(port: int) -> dict[str, str]:
    """Where the UI finds the API: `--port` moves only the listener, and the UI's settings (the
    API it calls, the links printed) are otherwise derived from Prefect's default port, 4200."""
    return {
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
    }


def start_server(home: Path, *, ui: bool = False) -> ServerInfo:
    """Return the running local server, starting one in the background when there is none."""
    with _start_lock(home):
        running = read_server(home)
        if running:
            return running
        folder = prefect_home(home)
        port = _free_port()
        url = f"http://127.0.0.1:{port}/api"
        env = {
            **os.environ,
            **SERVER_ENV,
            "PREFECT_HOME": str(folder),
            "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
            **_ui_env(port),
        }
        env.pop("PREFECT_API_URL", None)
        log = open(folder / "server.log", "ab")  # noqa: SIM115 - handed to the child process
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this CLI: later runs reuse it
        )
        log.close()
        _STARTED[process.pid] = process
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RunbookError(
                    f"the local Prefect server exited with code {process.returncode}; "
                    f"see {folder / 'server.log'}"
                )
            if _healthy(url):
                info = ServerInfo(url=url, pid=process.pid, port=port)
                _state_file(home).write_text(json.dumps(info.__dict__))
                return info
            time.sleep(0.25)
        process.kill()
        raise RunbookError(
            f"the local Prefect server did not answer within {START_TIMEOUT_S:.0f} s; "
            f"see {folder / 'server.log'}"
        )


def stop_server(home: Path) -> bool:
    """Stop the local server if it runs; True when one was stopped."""
    info = read_server(home)
    _state_file(home).unlink(missing_ok=True)
    if info is None:
        return False
    try:
        os.killpg(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    child = _STARTED.pop(info.pid, None)
    if child is not None:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(info.pid, signal.SIGKILL)
            child.wait()
        return True
    for _ in range(40):
        if not _healthy(info.url):
            break
        time.sleep(0.25)
    return True


def configure_prefect_client(home: Path, mode: str, *, ui: bool = False) -> str | None:
    """Point this process's Prefect client at the right API before Prefect is imported.

    Returns the API URL in use (None for Prefect's temporary per-process server).
    """
    os.environ.setdefault("PREFECT_HOME", str(prefect_home(home)))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if mode == "external":
        if not os.environ.get("PREFECT_API_URL"):
            raise RunbookError(
                "RUNBOOK_PREFECT=external but PREFECT_API_URL is not set; "
                "set it or use RUNBOOK_PREFECT=local-server"
            )
        return os.environ["PREFECT_API_URL"]
    if mode == "ephemeral" or os.environ.get("PREFECT_API_URL"):
        return os.environ.get("PREFECT_API_URL")
    info = start_server(home, ui=ui)
    os.environ["PREFECT_API_URL"] = info.url
    return info.url
