"""Scale-out keeps every alert: a job submitted to a deployment ends only when its flow run is
final in Prefect, a submission the API refuses is retried, and a flow run that crashed or that no
worker started is resumed, so the incident runs once."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolUpdate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Crashed, Failed, Pending

from flows.engine.settings import Settings
from flows.evidence.verify import read_records
from flows.prefect.deployments import deploy_runbook, ensure_process_pool
from flows.prefect.flow_runs import Patience, PrefectClients
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from flows.triggers.intake import Intake
from flows.triggers.jobs import JobKind, JobState
from flows.triggers.metrics import Metrics
from flows.triggers.server import deployment_runner
from flows.triggers.workers import Workers
from integrations.jira.local import LocalTicketStore
from tests.flows.prefect.prefect_worker import job_row, prefect_worker, wait_for, worker_env
from tests.support import FIXTURES, PROJECT

pytestmark = pytest.mark.usefixtures("prefect_api")

POOL = "test-flow-runs"
QUICK = Patience(pending_s=600, scheduled_s=600, unreachable_s=60, attempts=3, poll_s=0.3)
RUN_TIMEOUT_S = 120.0
"""A flow run on the worker starts a Python process of its own: seconds, more on a busy box."""


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine home the server and the worker machine share."""
    return tmp_path_factory.mktemp("scaleout-home")


@pytest.fixture(scope="module")
def runbook(prefect_api: str) -> Runbook:
    """The disk-full runbook, deployed on the test pool."""
    found = parse_runbook(FIXTURES / "library" / "disk-full.md")
    ensure_process_pool(POOL)
    deploy_runbook(found.id, found.path, found.sha256, POOL, PROJECT)
    return found


@pytest.fixture(scope="module")
def worker(
    prefect_api: str, runbook: Runbook, shared_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A real Prefect worker on the pool, running flow runs against the shared home."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with prefect_worker(POOL, worker_env(shared_home, prefect_api), log):
        yield


@pytest.fixture
def paused_pool(worker: None) -> Iterator[None]:
    """The pool paused (the worker takes nothing) until the test resumes it, or the test ends."""
    pause(True)
    yield
    pause(False)


def pause(paused: bool) -> None:
    with get_client(sync_client=True) as client:
        client.update_work_pool(POOL, WorkPoolUpdate(is_paused=paused))


def session_clients() -> SyncPrefectClient:
    """Clients of the session's server, whichever thread asks (a thread does not see the
    settings the test session set after Prefect was imported)."""
    return SyncPrefectClient(os.environ["PREFECT_API_URL"])


def serving(
    home: Path, runbook: Runbook, patience: Patience, clients: PrefectClients = session_clients
) -> Workers:
    """The server's side: the intake and a worker pool running jobs through the deployment."""
    settings = Settings(home=home, prefect="external", allow_sqlite_prefect=True)
    intake = Intake(home / "intake.db")
    workers = Workers(intake, settings, Metrics(), threads=2, runner=lambda job: runner(job))
    runner = deployment_runner(
        settings, [runbook], intake, clients=clients, patience=patience, stopping=workers.stopping
    )
    workers.start()
    return workers


def start_incident(workers: Workers, runbook: Runbook, host: str) -> str:
    alert = {"source": "alertmanager", "labels": {"alertname": "DiskFull", "instance": host}}
    payload = {"inputs": {"host": host}, "alert": alert}
    return workers.intake.start(JobKind.START, runbook.id, str(runbook.path), payload)


def flow_runs_of(incident: str) -> list[FlowRun]:
    """The flow runs submitted for an incident, oldest first."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["disk-full"]))
        )
    mine = [run for run in runs if run.parameters.get("incident") == incident]
    return sorted(mine, key=lambda run: run.created or 0)


def first_flow_run(incident: str) -> FlowRun:
    return wait_for(f"a flow run of {incident}", lambda: flow_runs_of(incident), 30)[0]


def set_state(run: FlowRun, state) -> None:
    with get_client(sync_client=True) as client:
        result = client.set_flow_run_state(run.id, state, force=True)
    assert result.state is not None and result.state.type == state.type


def job_ends(home: Path, incident: str) -> tuple[str, str | None, str | None]:
    """Wait for the incident's job to be done or failed; its (state, outcome, error)."""
    return wait_for(
        f"the job of {incident} to end",
        lambda: (
            (row := job_row(home / "intake.db", incident))[0] != JobState.RUNNING
            and row[0] != JobState.PENDING
            and row
        ),
        RUN_TIMEOUT_S,
    )


def ran_once(home: Path, incident: str, host: str) -> None:
    """The incident started once, waits at its gate, and opened one ticket."""
    events = [record.event for record in read_records(home / "incidents" / incident)]
    assert events.count("run.started") == 1, events
    assert "gate.waiting" in events, events
    tickets = LocalTicketStore(home / "tickets.db").list_tickets()
    assert [t.summary for t in tickets].count(f"Disk almost full on {host}") == 1


@pytest.mark.usefixtures("paused_pool")
def test_a_crashed_flow_run_is_resumed_and_the_incident_runs_once(
    shared_home: Path, runbook: Runbook
) -> None:
    """A flow run a worker reports Crashed is submitted again as a resume, which runs it once."""
    workers = serving(shared_home, runbook, QUICK)
    try:
        incident = start_incident(workers, runbook, "crash-1")
        first = first_flow_run(incident)
        set_state(first, Crashed(message="Failed to submit flow run to infrastructure"))
        resumed = wait_for("the resume", lambda: flow_runs_of(incident)[1:], 30)[0]
        pause(False)
        state, outcome, error = job_ends(shared_home, incident)
    finally:
        workers.stop()
    assert state == JobState.DONE, error
    assert resumed.parameters["kind"] == "resume"
    assert resumed.idempotency_key != first.idempotency_key
    assert outcome == (
        f"flow run {first.id}: Crashed (Failed to submit flow run to infrastructure);"
        f" flow run {resumed.id}: Completed"
    )
    assert [run.state_type for run in flow_runs_of(incident)] == [
        StateType.CRASHED,
        StateType.COMPLETED,
    ]
    ran_once(shared_home, incident, "crash-1")


@pytest.mark.usefixtures("paused_pool")
def test_the_job_stays_running_until_its_flow_run_is_final(
    shared_home: Path, runbook: Runbook
) -> None:
    """Submitted is not done: the job runs as long as its flow run waits, and ends with it."""
    workers = serving(shared_home, runbook, QUICK)
    try:
        incident = start_incident(workers, runbook, "wait-1")
        run = first_flow_run(incident)
        watched_until = time.monotonic() + 4  # no worker takes the run meanwhile
        while time.monotonic() < watched_until:
            assert job_row(shared_home / "intake.db", incident)[0] == JobState.RUNNING
            time.sleep(0.2)
        assert flow_runs_of(incident)[0].state_type == StateType.SCHEDULED
        pause(False)
        state, outcome, _ = job_ends(shared_home, incident)
    finally:
        workers.stop()
    assert state == JobState.DONE
    assert outcome == f"flow run {run.id}: Completed"
    ran_once(shared_home, incident, "wait-1")


def test_a_submission_the_api_refuses_is_retried_and_runs(
    shared_home: Path, runbook: Runbook, worker: None
) -> None:
    """The first submission meets a closed port; the next one reaches Prefect and the run runs."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # free once the probe closes: nothing listens there
    opened: list[str] = []

    def clients() -> SyncPrefectClient:
        opened.append("client")
        if len(opened) == 1:
            return SyncPrefectClient(f"http://127.0.0.1:{closed}/api")
        return session_clients()

    workers = serving(shared_home, runbook, QUICK, clients)
    try:
        incident = start_incident(workers, runbook, "retry-1")
        state, outcome, error = job_ends(shared_home, incident)
    finally:
        workers.stop()
    assert state == JobState.DONE, error
    [run] = flow_runs_of(incident)
    assert outcome == f"flow run {run.id}: Completed"
    ran_once(shared_home, incident, "retry-1")


@pytest.mark.usefixtures("paused_pool")
def test_a_flow_run_left_pending_by_a_dead_worker_is_abandoned_and_resumed(
    shared_home: Path, runbook: Runbook
) -> None:
    """A run a worker took (Pending) and never started is cancelled as Abandoned and resumed."""
    # Long enough for the real worker's own Pending (it starts a process), shorter than the test.
    workers = serving(shared_home, runbook, Patience(pending_s=15, poll_s=0.3, attempts=2))
    try:
        incident = start_incident(workers, runbook, "pending-1")
        first = first_flow_run(incident)
        set_state(first, Pending())  # what a worker does just before it starts the run
        resumed = wait_for("the resume", lambda: flow_runs_of(incident)[1:], 45)[0]
        pause(False)
        state, outcome, error = job_ends(shared_home, incident)
    finally:
        workers.stop()
    assert state == JobState.DONE, error
    [abandoned, completed] = flow_runs_of(incident)
    assert (abandoned.state_type, abandoned.state_name) == (StateType.CANCELLED, "Abandoned")
    assert completed.id == resumed.id and completed.state_type == StateType.COMPLETED
    assert outcome is not None and outcome.startswith(f"flow run {first.id}: Abandoned (pending")
    ran_once(shared_home, incident, "pending-1")


@pytest.mark.usefixtures("paused_pool")
def test_a_failed_flow_run_is_final_and_fails_the_job(shared_home: Path, runbook: Runbook) -> None:
    """A Failed flow run (the runbook failed) is not submitted again; the job fails, saying so."""
    workers = serving(shared_home, runbook, QUICK)
    try:
        incident = start_incident(workers, runbook, "failed-1")
        run = first_flow_run(incident)
        set_state(run, Failed(message="the runbook failed"))
        state, outcome, error = job_ends(shared_home, incident)
    finally:
        workers.stop()
    assert state == JobState.FAILED
    assert outcome == error == f"flow run {run.id}: Failed (the runbook failed)"
    assert len(flow_runs_of(incident)) == 1


@pytest.mark.usefixtures("paused_pool")
def test_a_flow_run_that_crashes_every_attempt_fails_the_job_naming_each(
    shared_home: Path, runbook: Runbook
) -> None:
    """Resumes are bounded: after the last attempt crashed, the job fails with every run named."""
    workers = serving(shared_home, runbook, Patience(poll_s=0.3, attempts=2))
    try:
        incident = start_incident(workers, runbook, "crashes-1")
        set_state(first_flow_run(incident), Crashed(message="lost"))
        second = wait_for("the resume", lambda: flow_runs_of(incident)[1:], 30)[0]
        set_state(second, Crashed(message="lost again"))
        state, _, error = job_ends(shared_home, incident)
    finally:
        workers.stop()
    assert state == JobState.FAILED
    runs = flow_runs_of(incident)
    assert len(runs) == 2
    assert error == (
        f"flow run {runs[0].id}: Crashed (lost); flow run {runs[1].id}: Crashed (lost again)"
    )


@pytest.mark.usefixtures("paused_pool")
def test_a_server_stopped_mid_watch_leaves_the_job_queued_and_the_next_one_ends_it(
    shared_home: Path, runbook: Runbook
) -> None:
    """Stopping the server puts a watched job back in the queue at once; the next server finds
    the same flow run (same key) and ends the job when it completes."""
    first_server = serving(shared_home, runbook, QUICK)
    incident = start_incident(first_server, runbook, "restart-1")
    run = first_flow_run(incident)
    stopped_at = time.monotonic()
    first_server.stop()
    assert time.monotonic() - stopped_at < 10
    assert job_row(shared_home / "intake.db", incident)[0] == JobState.PENDING
    next_server = serving(shared_home, runbook, QUICK)
    try:
        pause(False)
        state, outcome, error = job_ends(shared_home, incident)
    finally:
        next_server.stop()
    assert state == JobState.DONE, error
    assert outcome == f"flow run {run.id}: Completed"
    assert [r.id for r in flow_runs_of(incident)] == [run.id]
    ran_once(shared_home, incident, "restart-1")
