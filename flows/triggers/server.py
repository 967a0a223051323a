"""The trigger server's parts wired together: the checked library, intake, handlers and workers.

`runbook serve` builds one in its own process; the worker process builds another over the same
intake database, so both see the same library and backends.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows.contract.ports import GateResponder, NoResponder
from flows.engine.registry import default_registry
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import load_incident
from flows.prefect.deployments import submit
from flows.runbook.model import Runbook
from flows.runbook.validate import validate_paths
from flows.triggers.app import ServerState, build_verifiers
from flows.triggers.intake import Intake
from flows.triggers.jobs import Job, JobKind, job_origin
from flows.triggers.metrics import Metrics
from flows.triggers.notices import IncidentNotices
from flows.triggers.slack import SlackHandlers
from flows.triggers.workers import Workers
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
    try:
        return load_incident(settings.incidents_dir, incident).drill
    except RunbookError:
        return False


def deployment_runner(settings: Settings, runbooks: list[Runbook]) -> Callable[[Job], None]:
    """Run jobs by submitting them to the runbooks' Prefect deployments (`runbook deploy`)."""
    ids = {str(r.path): r.id for r in runbooks}

    def run(job: Job) -> None:
        key = f"{job.incident}:{job.kind}:{job.id}"
        match job.kind:
            case JobKind.START:
                trigger, started_by = job_origin(job)
                parameters = {
                    "inputs": job.payload.get("inputs", {}),
                    "alert": job.payload.get("alert"),
                    "trigger": str(trigger),
                    "started_by": started_by,
                }
                submit(ids[job.runbook_path], job.incident, key, parameters)
            case JobKind.RESUME:
                incident = load_incident(settings.incidents_dir, job.incident)
                submit(incident.runbook.id, job.incident, key, {"kind": "resume"})
            case JobKind.DRILL | JobKind.RESOLVED | JobKind.ALERT_EVENT:
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
    intake = Intake(settings.home / INTAKE_DB, settings.redactor())
    metrics = Metrics()
    verifiers, notes = build_verifiers(settings, dev=dev)
    backends = select_backends(settings.home, settings.jira(), settings.slack())
    notices = IncidentNotices(settings, backends.chat, runbooks)

    def responder_for(job: Job) -> GateResponder:
        if job.kind == JobKind.RESUME and _is_drill(settings, job.incident):
            return NoResponder()  # a drill answers its gates in its own sandboxes
        return notices.responder(job)

    state = ServerState(
        settings=settings,
        runbooks=runbooks,
        intake=intake,
        metrics=metrics,
        verifiers=verifiers,
        slack=SlackHandlers(
            settings,
            runbooks,
            intake,
            chat=backends.chat,
            # Roster groups backed by a Slack user group are matched by asking Slack; the
            # local outbox knows no groups.
            user_groups_of=getattr(backends.chat, "user_groups_of", None),
        ),
        notes=notes,
    )
    submit_job = deployment_runner(settings, runbooks) if via_deployments else None

    def run_job(job: Job) -> None:
        # Resolutions only touch evidence and tickets, drills only sandboxes: they stay here.
        if submit_job is not None and job.kind in (JobKind.START, JobKind.RESUME):
            submit_job(job)
            return
        told = job.kind == JobKind.START or (
            job.kind == JobKind.RESUME and not _is_drill(settings, job.incident)
        )
        try:
            outcome = workers.run_job(job)
        except Exception as error:
            if told:
                notices.crashed(job, error)
            raise  # the worker loop records it on the job
        if told and outcome is not None:
            notices.finished(job, outcome)

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
