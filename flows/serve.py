"""`runbook serve`: load and check the library, recover the intake, start workers, serve HTTP."""

from __future__ import annotations

import gc
import ipaddress
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows.actions import default_registry
from flows.errors import RunbookError
from flows.execute import GateResponder, NoResponder
from flows.intake import Intake, Job
from flows.metrics import Metrics
from flows.model import Runbook
from flows.server import ServerState, build_app, build_verifiers
from flows.settings import Settings
from flows.validate import validate_paths
from flows.worker import Workers
from integrations.backends import select_backends

LOG = logging.getLogger("runbook.server")
INTAKE_DB = "intake.db"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_library(folder: Path) -> list[Runbook]:
    """The valid runbooks of a library; any problem refuses the start with every message."""
    runbooks, problems = validate_paths([folder], default_registry())
    if problems:
        raise RunbookError(problems)
    return runbooks


@dataclass
class Server:
    """Everything `runbook serve` runs: the app state and the workers."""

    state: ServerState
    workers: Workers


def _is_drill(settings: Settings, incident: str) -> bool:
    from flows.incident import load_incident

    try:
        return load_incident(settings.incidents_dir, incident).drill
    except RunbookError:
        return False


def deployment_runner(runbooks: list[Runbook]) -> Callable[[Job], None]:
    """Run jobs by submitting them to the runbooks' Prefect deployments (`runbook deploy`)."""
    from flows.deployment import submit
    from flows.incident import load_incident

    ids = {str(r.path): r.id for r in runbooks}

    def run(job: Job) -> None:
        key = f"{job.incident}:{job.kind}:{job.id}"
        if job.kind == "start":
            parameters = {
                "inputs": job.payload.get("inputs", {}),
                "alert": job.payload.get("alert"),
            }
            submit(ids[job.runbook_path], job.incident, key, parameters)
        elif job.kind == "resume":
            incident = load_incident(Path(job.runbook_path).parent.parent, job.incident)
            submit(incident.runbook.id, job.incident, key, {"kind": "resume"})
        else:
            raise ValueError(f"{job.kind} jobs run in the server, not on workers")

    return run


def make_server(
    settings: Settings,
    runbooks: list[Runbook],
    *,
    dev: bool,
    threads: int | None = None,
    via_deployments: bool = False,
) -> Server:
    """Wire the intake, metrics, Slack handlers, gate messages and workers together."""
    from flows.slack_app import SlackHandlers
    from integrations.slack.gates import ChatGateResponder

    intake = Intake(settings.home / INTAKE_DB)
    metrics = Metrics()
    verifiers, notes = build_verifiers(settings, dev=dev)
    backends = select_backends(settings.home, settings.jira(), settings.slack())
    by_path = {str(r.path): r for r in runbooks}

    def responder_for(job: Job) -> GateResponder:
        runbook = by_path.get(job.runbook_path)
        if runbook is None and job.kind != "resume":
            return NoResponder()
        if job.kind == "resume" and _is_drill(settings, job.incident):
            return NoResponder()  # a drill answers its gates in its own sandboxes
        title = runbook.meta.title if runbook else job.incident
        owner = runbook.meta.owner if runbook else ""
        channel = owner if owner.startswith("#") else None
        return ChatGateResponder(backends.chat, title, lambda: channel)

    state = ServerState(
        settings=settings,
        runbooks=runbooks,
        intake=intake,
        metrics=metrics,
        verifiers=verifiers,
        slack=SlackHandlers(settings, runbooks, intake, chat=backends.chat),
        notes=notes,
    )
    submit_job = deployment_runner(runbooks) if via_deployments else None

    def run_job(job: Job) -> None:
        # Resolutions only touch evidence and tickets, drills only sandboxes: they stay here.
        if submit_job is not None and job.kind not in ("resolved", "drill"):
            submit_job(job)
        else:
            workers.run_job(job)

    workers = Workers(
        intake,
        settings,
        metrics,
        threads=threads or settings.workers,
        responder_for=responder_for,
        backends=lambda _settings: backends,
        runner=run_job,
    )
    return Server(state, workers)


def freeze_startup_objects() -> None:
    """Hide what start-up made (modules, the app, the library) from the garbage collector.

    It lives as long as the server; left in view, every full collection walks all of it, a pause
    of tens of milliseconds on whichever webhook is being answered during an alert storm.
    """
    gc.collect()
    gc.freeze()


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    runbooks_dir: Path,
    dev: bool,
    socket_mode: bool = False,
    via_deployments: bool = False,
) -> int:
    """Run the trigger server until interrupted."""
    import uvicorn

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
        from flows.worker_process import start_worker_process

        pending = server.state.intake.recover()
        if pending:
            print(f"note: {pending} job(s) left by the previous server will run", file=sys.stderr)
        worker = start_worker_process(settings, runbooks_dir, server.state.intake, settings.workers)
        stop_workers = worker.stop
    print(f"serving {len(runbooks)} runbook(s) on http://{host}:{port}", file=sys.stderr)
    freeze_startup_objects()
    try:
        # No lifespan: the app has no start-up or shutdown hooks, and a lifespan task cut off by
        # Ctrl-C is logged as an error with a traceback.
        uvicorn.run(
            build_app(server.state), host=host, port=port, log_level="warning", lifespan="off"
        )
    finally:
        if bridge is not None:
            bridge.close()
        stop_workers()
    return 0


def _socket_mode(settings: Settings, server: Server):  # type: ignore[no-untyped-def]
    from slack_sdk import WebClient

    from integrations.slack.socket import SocketModeBridge

    if settings.slack_app_token is None or settings.slack_bot_token is None:
        raise RunbookError(
            "--slack-socket-mode needs RUNBOOK_SLACK_APP_TOKEN (xapp-...) and "
            "RUNBOOK_SLACK_BOT_TOKEN"
        )
    web = WebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    handlers = server.state.slack
    bridge = SocketModeBridge(
        settings.slack_app_token.get_secret_value(), web, handlers.command, handlers.interaction
    )
    bridge.start()
    return bridge
