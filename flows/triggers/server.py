"""The trigger server's parts wired together: the checked library, intake, handlers and workers.

`runbook serve` builds one in its own process; the worker process builds another over the same
intake database, so both see the same library and backends.
"""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows.contract.ports import GateResponder, NoResponder
from flows.engine.registry import default_registry
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import load_incident
from flows.prefect.database import check_for_deployments
from flows.prefect.deployments import deployment_name
from flows.prefect.flow_runs import Patience, PrefectClients, prefect_clients, see_through
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
WATCHED_AT_ONCE = 16
"""Jobs in flight at once with --via-deployments (at least): each job's thread only waits on
its flow run, which a Prefect worker elsewhere runs."""


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


class FlowRunNotCompleted(Exception):
    """The job's last flow run ended Failed, Cancelled, or lost after its last attempt."""


def deployment_runner(
    settings: Settings,
    runbooks: list[Runbook],
    intake: Intake,
    *,
    clients: PrefectClients = prefect_clients,
    patience: Patience | None = None,
    stopping: threading.Event | None = None,
) -> Callable[[Job], None]:
    """Run jobs on the runbooks' Prefect deployments (`runbook deploy`): a job ends when its
    flow run is final, and each flow run it took and how it ended is recorded on it.

    When `stopping` is set (the worker pool stops), a job still waiting is put back in the
    queue: its flow run goes on, and the next server watches it again.
    """
    ids = {str(r.path): r.id for r in runbooks}
    patience = patience or Patience(
        pending_s=settings.flow_run_pending_s, scheduled_s=settings.flow_run_scheduled_s
    )

    def run(job: Job) -> None:
        key = f"{job.incident}:{job.kind}:{job.id}"
        match job.kind:
            case JobKind.START:
                runbook_id = ids[job.runbook_path]
                trigger, started_by = job_origin(job)
                parameters = {
                    "inputs": job.payload.get("inputs", {}),
                    "alert": job.payload.get("alert"),
                    "trigger": str(trigger),
                    "started_by": started_by,
                }
            case JobKind.RESUME:
                runbook_id = load_incident(settings.incidents_dir, job.incident).runbook.id
                parameters = {}
            case JobKind.DRILL | JobKind.RESOLVED | JobKind.ALERT_EVENT:
                raise ValueError(f"{job.kind} jobs run in the server, not on workers")
        first = {"incident": job.incident, **parameters, "kind": str(job.kind)}
        # A lost flow run is followed by a resume: the start's parameters let it open the
        # incident when the lost run never did.
        resume = {**first, "kind": "resume"}
        settled = see_through(
            deployment_name(runbook_id),
            key,
            first,
            resume,
            clients=clients,
            patience=patience,
            stopping=stopping,
        )
        try:
            intake.record_outcome(job.id, settled.describe())
        except (sqlite3.Error, OSError) as error:
            LOG.error("job %s: could not record %s: %s", job.id, settled.describe(), error)
        if not settled.completed:
            raise FlowRunNotCompleted(settled.describe())

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
    submit_job: Callable[[Job], None] | None = None  # set below, once the workers exist

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
        threads=threads
        or (max(settings.workers, WATCHED_AT_ONCE) if via_deployments else settings.workers),
        responder_for=responder_for,
        backends=lambda _settings: backends,
        runner=run_job,
    )
    if via_deployments:
        state.notes.extend(check_for_deployments(allow_sqlite=settings.allow_sqlite_prefect))
        submit_job = deployment_runner(settings, runbooks, intake, stopping=workers.stopping)
    return Server(state, workers)
