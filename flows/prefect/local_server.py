"""A local Prefect server that the engine starts once and reuses, so runs start in seconds.

Without `PREFECT_API_URL`, every Prefect process boots a temporary server (17-25 s here). Keeping
one server alive under `$RUNBOOK_HOME/prefect` turns later runs into plain API calls. The server is
Prefect's own, started with its own CLI; we only remember its address and check it is healthy.

Only one server runs per home: the server process holds `server.lock` (an flock handed to it
at start) for as long as it lives, so a start that finds the lock held waits for that server
instead of booting a second one on the same database, and a server whose starter was stopped
during the boot (SIGTERM, SIGINT) is stopped with it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from flows.errors import RunbookError

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0

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
DATABASE_URL_ENV = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")
DATABASE_DRIVER_ENV = ("PREFECT_SERVER_DATABASE_DRIVER", "PREFECT_API_DATABASE_DRIVER")
DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
BOOT_SIGNALS = (signal.SIGTERM, signal.SIGINT)
LOCK_FILE = "server.lock"


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


def _recorded(home: Path) -> ServerInfo | None:
    try:
        raw = json.loads(_state_file(home).read_text())
        return ServerInfo(url=raw["url"], pid=int(raw["pid"]), port=int(raw["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_server(home: Path) -> ServerInfo | None:
    """The recorded local server, if one was started and is still answering."""
    info = _recorded(home)
    return info if info is not None and _healthy(info.url) else None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _take_lock(home: Path) -> IO[str] | None:
    """The home's server lock, held; None while a server (running or booting) holds it."""
    folder = prefect_home(home)
    folder.mkdir(parents=True, exist_ok=True)
    lock = open(folder / LOCK_FILE, "a")  # noqa: SIM115 - handed to the server process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def server_lock_held(home: Path) -> bool:
    """True while a local server process of this home lives (running, booting or hung)."""
    if not (prefect_home(home) / LOCK_FILE).exists():
        return False  # no server was ever started here
    lock = _take_lock(home)
    if lock is None:
        return True
    lock.close()
    return False


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
    """Return the running local server, starting one in the background when there is none.

    A server another start is booting is waited for and reused, never doubled.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        running = read_server(home)
        if running:
            return running
        lock = _take_lock(home)
        if lock is not None:
            with lock:
                # A server started before servers held the lock answers without holding it.
                return read_server(home) or _boot(home, lock, ui=ui)
        if time.monotonic() > deadline:
            recorded = _recorded(home)
            who = f" (pid {recorded.pid}, {recorded.url})" if recorded else ""
            raise RunbookError(
                f"a local Prefect server{who} holds {prefect_home(home) / LOCK_FILE} but did"
                f" not answer within {START_TIMEOUT_S:.0f} s; see"
                f" {prefect_home(home) / 'server.log'}, or stop it with: runbook server stop"
            )
        time.sleep(0.25)


def _server_env(folder: Path, ui: bool) -> dict[str, str]:
    env = {
        **os.environ,
        **SERVER_ENV,
        "PREFECT_HOME": str(folder),
        "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
    }
    env.pop("PREFECT_API_URL", None)
    # Said out loud, the database driver is what the server's API reports in its settings (its
    # connection URL is masked): how `runbook serve --via-deployments` tells SQLite from
    # PostgreSQL. Set only when the environment names no driver of its own.
    if not any(env.get(name) for name in DATABASE_DRIVER_ENV):
        url = next((env[name] for name in DATABASE_URL_ENV if env.get(name)), None)
        driver = "sqlite+aiosqlite" if url is None else url.partition("://")[0]
        if driver in DRIVERS:
            env["PREFECT_SERVER_DATABASE_DRIVER"] = driver
    return env


def _boot(home: Path, lock: IO[str], *, ui: bool) -> ServerInfo:
    folder = prefect_home(home)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    with _signals_held() as stopped, open(folder / "server.log", "ab") as log:
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
            env={**_server_env(folder, ui), **_ui_env(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this CLI: later runs reuse it
            pass_fds=(lock.fileno(),),  # the server holds the home's lock while it lives
        )
        _STARTED[process.pid] = process
        info = ServerInfo(url=url, pid=process.pid, port=port)
        try:
            # Recorded before it answers: a start that comes meanwhile waits for this server.
            _state_file(home).write_text(json.dumps(info.__dict__))
            _wait_healthy(process, url, folder, stopped)
        except BaseException:
            _kill(process)
            _state_file(home).unlink(missing_ok=True)
            raise
    return info


def _wait_healthy(
    process: subprocess.Popen[bytes], url: str, folder: Path, stopped: list[int]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if stopped:
            raise RunbookError(
                f"stopped by signal {stopped[0]} while the local Prefect server booted;"
                " the server was stopped too"
            )
        if process.poll() is not None:
            raise RunbookError(
                f"the local Prefect server exited with code {process.returncode}; "
                f"see {folder / 'server.log'}"
            )
        if _healthy(url):
            return
        time.sleep(0.25)
    raise RunbookError(
        f"the local Prefect server did not answer within {START_TIMEOUT_S:.0f} s; "
        f"see {folder / 'server.log'}"
    )


@contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Hold SIGTERM and SIGINT while the server boots, noting them in the list yielded, so a
    stop first kills the half-started server; the signal then goes to its usual handler."""
    stopped: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield stopped  # handlers can only be set in the main thread
        return

    def note(signum: int, _frame: FrameType | None) -> None:
        stopped.append(signum)

    previous: dict[int, Any] = {s: signal.signal(s, note) for s in BOOT_SIGNALS}
    try:
        yield stopped
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if stopped:
            signal.raise_signal(stopped[0])


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Stop a server this process started, its whole process group, and reap it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()
    _STARTED.pop(process.pid, None)


def stop_server(home: Path) -> bool:
    """Stop the local server if it runs (or boots, or hangs); True when one was stopped."""
    info = _recorded(home)
    lives = server_lock_held(home) or (info is not None and _healthy(info.url))
    if info is None or not lives:
        _state_file(home).unlink(missing_ok=True)
        return False
    child = _STARTED.get(info.pid)
    if child is not None:
        _kill(child)
    else:
        with suppress(ProcessLookupError):
            os.killpg(info.pid, signal.SIGTERM)
        _wait_gone(home, info)
    _state_file(home).unlink(missing_ok=True)
    return True


def _wait_gone(home: Path, info: ServerInfo) -> None:
    """Wait for a server another process started to let go of the home's lock."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while server_lock_held(home) or _healthy(info.url):
        if time.monotonic() > deadline:
            with suppress(ProcessLookupError):
                os.killpg(info.pid, signal.SIGKILL)
            return
        time.sleep(0.25)


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
    _settings_read_again()
    return info.url


def _settings_read_again() -> None:
    """Have an already imported Prefect see the environment as it is now.

    Prefect reads its settings once, at import, for every thread that enters no settings of its
    own: a process that imported it before the local server was up (`runbook serve` takes its
    port first) would otherwise send its flow runs to a temporary server of its own.
    """
    context = sys.modules.get("prefect.context")
    refresh = getattr(context, "refresh_global_settings_context", None)
    if callable(refresh):
        refresh()
