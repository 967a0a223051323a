"""`runbook serve`: take the port, load and check the library, recover the intake, start
workers, serve HTTP."""

from __future__ import annotations

import errno
import gc
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

import uvicorn
from slack_sdk import WebClient

from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.triggers.app import build_app
from flows.triggers.server import Server, is_loopback, load_library, make_server
from flows.triggers.worker_process import start_worker_process
from integrations.slack.socket import SocketModeBridge


def freeze_startup_objects() -> None:
    """Hide what start-up made (modules, the app, the library) from the garbage collector.

    It lives as long as the server; left in view, every full collection walks all of it, a pause
    of tens of milliseconds on whichever webhook is being answered during an alert storm.
    """
    gc.collect()
    gc.freeze()


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before anything else starts; RunbookError naming
    the address and what to do when it cannot be had (a busy port, an unknown host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn itself binds: a port a stopped server left in TIME_WAIT can be taken again.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise RunbookError(
                f"cannot listen on {host}:{port}: the port is in use (another runbook serve?);"
                f" stop what listens there or choose another port with --port"
            ) from None
        raise RunbookError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; check --host and --port"
        ) from None
    except (OverflowError, UnicodeError) as error:  # a port past 65535, a host IDNA refuses
        listener.close()
        raise RunbookError(f"cannot listen on {host}:{port}: {error}") from None
    return listener


def serve(
    settings: Settings,
    listener: socket.socket,
    *,
    host: str,
    runbooks_dir: Path,
    dev: bool,
    socket_mode: bool = False,
    via_deployments: bool = False,
) -> int:
    """Run the trigger server on `listener` (from `listen`) until interrupted; it closes it."""
    with listener:
        return _serve(settings, listener, host, runbooks_dir, dev, socket_mode, via_deployments)


def _serve(
    settings: Settings,
    listener: socket.socket,
    host: str,
    runbooks_dir: Path,
    dev: bool,
    socket_mode: bool,
    via_deployments: bool,
) -> int:
    if dev and not is_loopback(host):
        raise RunbookError("--dev accepts unauthenticated requests: bind it to 127.0.0.1 only")
    runbooks = load_library(runbooks_dir)
    server = make_server(settings, runbooks, dev=dev, via_deployments=via_deployments)
    for note in server.state.notes:
        print(f"note: {note}", file=sys.stderr)
    bridge = _socket_mode(settings, server) if socket_mode else None
    if via_deployments:
        server.workers.start()  # submitting to Prefect is light: it stays in this process
        stop_workers = server.workers.stop
    else:
        pending = server.state.intake.recover()
        if pending:
            print(f"note: {pending} job(s) left by the previous server will run", file=sys.stderr)
        worker = start_worker_process(settings, runbooks_dir, server.state.intake, settings.workers)
        stop_workers = worker.stop
    port = listener.getsockname()[1]
    print(f"serving {len(runbooks)} runbook(s) on http://{host}:{port}", file=sys.stderr)
    freeze_startup_objects()
    # No lifespan: the app has no start-up or shutdown hooks, and a lifespan task cut off by
    # Ctrl-C is logged as an error with a traceback.
    config = uvicorn.Config(build_app(server.state), log_level="warning", lifespan="off")
    http = uvicorn.Server(config)
    # uvicorn stops serving on SIGTERM (systemd, docker stop, Kubernetes), then raises it again
    # with the handler found before it: with the default one that would end the process before
    # the workers are stopped, cutting their runs off. This handler turns it into Terminated.
    previous = signal.signal(signal.SIGTERM, _terminated) if _main_thread() else None
    try:
        http.run(sockets=[listener])
    except (KeyboardInterrupt, Terminated):  # passed on by uvicorn once it has stopped serving
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if bridge is not None:
            bridge.close()
        stop_workers()
    return 0


class Terminated(Exception):
    """SIGTERM reached the server: stop serving, let the workers finish, exit 0."""


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _socket_mode(settings: Settings, server: Server) -> SocketModeBridge:
    slack = settings.slack()
    if settings.slack_app_token is None or slack is None:
        raise RunbookError(
            "--slack-socket-mode needs RUNBOOK_SLACK_APP_TOKEN (xapp-...) and "
            "RUNBOOK_SLACK_BOT_TOKEN"
        )
    web = WebClient(token=slack.bot_token.get_secret_value(), base_url=slack.api_url)
    handlers = server.state.slack
    bridge = SocketModeBridge(
        settings.slack_app_token.get_secret_value(), web, handlers.command, handlers.interaction
    )
    bridge.start()
    return bridge
