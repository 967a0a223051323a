"""Flow runs of a deployment seen through to their end.

A submission is retried while the Prefect API cannot be reached or answers 5xx (its
idempotency key makes a retry return the flow run a lost answer created). The flow run is then
watched until Prefect says it is final. One that crashed, or that never started (left Pending by
a worker Prefect now says is offline, or left Scheduled, Late or Pending past a limit), is
cancelled if need be and submitted again as a resume of the incident under the next attempt's
key: resume semantics, so no step that already happened happens again. The keys are derived
from the first one, so a server restarted mid-watch finds the same attempts again and carries
on from the last.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType, WorkerStatus
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Cancelled, State

from flows.errors import RunbookError
from flows.evidence.incident import IncidentBusy

LOG = logging.getLogger("runbook.deployments")

PrefectClients = Callable[[], SyncPrefectClient]
"""Opens a Prefect API client; called once per API call, so each retry starts afresh."""

WORKER_LABEL, POOL_LABEL = "prefect.worker.name", "prefect.work-pool.name"
"""The labels a Prefect worker gives the flow runs it takes."""
WORKER_CHECK_S = 5.0
"""How often the worker of a Pending flow run is looked up."""
UNLABELLED_S = 60.0
"""How long a Pending flow run may wait for the worker that took it to label it (it does so
within a second or two)."""
ABANDONED = "Abandoned"
"""The name of the Cancelled state given to a flow run no worker started: it is resumed."""
RETRY_MAX_S = 30.0
T = TypeVar("T")


def prefect_clients() -> SyncPrefectClient:
    """A client for the Prefect API this process is configured with."""
    return get_client(sync_client=True)


@dataclass(frozen=True)
class Patience:
    """How long the server waits on Prefect before it acts, and how often it may act."""

    pending_s: float = 900.0
    """A flow run a worker took (Pending) and did not start within this is given up on, even
    while that worker lives; one whose worker went offline is given up on at once."""
    scheduled_s: float = 3600.0
    """A flow run no worker took within this (Scheduled, Late) is submitted again."""
    unreachable_s: float = 600.0
    """How long the API may fail to answer before the job fails with the last error."""
    attempts: int = 3
    """Flow runs per job: the first one and the resumes after it crashed or never started."""
    poll_s: float = 2.0
    """How often the flow run is read while it runs."""


@dataclass(frozen=True)
class Attempt:
    """One flow run of a job and how it ended."""

    flow_run: str
    state: str
    """The final state's name: Completed, Failed, Crashed, Cancelled, Abandoned..."""
    kind: StateType
    message: str = ""

    def describe(self) -> str:
        """`flow run <id>: <state> (<message>)`, as the job records it."""
        why = f" ({self.message})" if self.message else ""
        return f"flow run {self.flow_run}: {self.state}{why}"

    @property
    def lost(self) -> bool:
        """True when the run never got to an end of its own: it is resumed."""
        return self.kind == StateType.CRASHED or self.state == ABANDONED


@dataclass(frozen=True)
class Settled:
    """Every flow run a job took, the last one final."""

    attempts: list[Attempt] = field(default_factory=list)

    @property
    def last(self) -> Attempt:
        """The flow run that ended the job."""
        return self.attempts[-1]

    @property
    def completed(self) -> bool:
        """True when the last flow run completed (the runbook ran, to its end or a gate)."""
        return self.last.kind == StateType.COMPLETED

    def describe(self) -> str:
        """Each flow run and its end, oldest first."""
        return "; ".join(attempt.describe() for attempt in self.attempts)


class PrefectUnreachable(RuntimeError):
    """The Prefect API did not answer for longer than the patience allows."""


class WatchStopped(IncidentBusy):
    """The server stops while the job's flow run runs on a Prefect worker: the job waits in
    the queue, and the next server finds the same flow run (same key) and watches it again."""


def see_through(
    deployment: str,
    key: str,
    parameters: dict[str, Any],
    resume: dict[str, Any],
    *,
    clients: PrefectClients = prefect_clients,
    patience: Patience | None = None,
    stopping: threading.Event | None = None,
) -> Settled:
    """Run `deployment` once under `key` and wait for its flow run to be final.

    A lost flow run (crashed, never started) is followed by a run with `resume` parameters,
    up to `patience.attempts` runs in all; the last one's end is the job's.
    """
    patience = patience or Patience()
    stopping = stopping or threading.Event()
    attempts: list[Attempt] = []
    for number in range(1, patience.attempts + 1):
        attempt_key = key if number == 1 else f"{key}:attempt-{number}"
        given = parameters if number == 1 else resume
        run = submit_flow_run(
            deployment, attempt_key, given, clients=clients, patience=patience, stopping=stopping
        )
        LOG.info("%s: attempt %d is flow run %s", attempt_key, number, run)
        ended = watch_flow_run(run, clients=clients, patience=patience, stopping=stopping)
        attempts.append(ended)
        if not ended.lost:
            break
        if number < patience.attempts:
            LOG.warning(
                "%s: %s; submitting a resume (attempt %d of %d)",
                key,
                ended.describe(),
                number + 1,
                patience.attempts,
            )
        else:
            LOG.error("%s: %s; no attempts left", key, ended.describe())
    return Settled(attempts)


def submit_flow_run(
    deployment: str,
    key: str,
    parameters: dict[str, Any],
    *,
    clients: PrefectClients = prefect_clients,
    patience: Patience | None = None,
    stopping: threading.Event | None = None,
) -> str:
    """Create the flow run of `deployment` for `key` (once per key); return its id."""

    def create(client: SyncPrefectClient) -> FlowRun:
        try:
            found = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise RunbookError(
                f"the Prefect server has no deployment {deployment!r}; "
                "create it with: runbook deploy --pool POOL"
            ) from None
        return client.create_flow_run_from_deployment(
            found.id, parameters=parameters, idempotency_key=key
        )

    waiting = _Waiting(clients, patience or Patience(), stopping or threading.Event())
    return str(waiting.call(create, f"submit {key}").id)


def watch_flow_run(
    flow_run: str,
    *,
    clients: PrefectClients = prefect_clients,
    patience: Patience | None = None,
    stopping: threading.Event | None = None,
) -> Attempt:
    """Read the flow run until it is final; a run no worker starts in time is abandoned.

    WatchStopped when `stopping` is set first: the flow run goes on, unwatched.
    """
    waiting = _Waiting(clients, patience or Patience(), stopping or threading.Event())
    seen: StateType | None = None
    since = time.monotonic()
    next_worker_check = 0.0
    while True:
        try:
            run = waiting.call(
                lambda client: client.read_flow_run(UUID(flow_run)), f"read flow run {flow_run}"
            )
        except ObjectNotFound:
            return Attempt(flow_run, "Deleted", StateType.CRASHED, "deleted from Prefect")
        state = run.state
        kind = state.type if state is not None else StateType.SCHEDULED
        if kind != seen:
            seen, since = kind, time.monotonic()
        if state is not None and state.is_final():
            return Attempt(flow_run, state.name or kind.value, kind, state.message or "")
        waited = time.monotonic() - since
        why = None
        if kind == StateType.SCHEDULED and waited > waiting.patience.scheduled_s:
            why = f"scheduled for {waited:.0f} s: no worker took it"
        elif kind == StateType.PENDING and waited > waiting.patience.pending_s:
            why = f"pending for {waited:.0f} s: its worker did not start it"
        elif kind == StateType.PENDING and time.monotonic() >= next_worker_check:
            next_worker_check = time.monotonic() + WORKER_CHECK_S
            why = _worker_gone(run, waited, waiting)
        if why is not None and _abandon(flow_run, why, waiting):
            return Attempt(flow_run, ABANDONED, StateType.CANCELLED, why)
        waiting.sleep(waiting.patience.poll_s, f"flow run {flow_run} runs on a Prefect worker")


def _worker_gone(run: FlowRun, waited: float, waiting: _Waiting) -> str | None:
    """Why the worker that took a run Pending for `waited` seconds is gone (Prefect says it is
    offline, or knows it no more), or None while it lives. A process worker's runs die with it
    (they report Crashed once running); one that had not started yet would stay Pending."""
    name, pool = run.labels.get(WORKER_LABEL), run.labels.get(POOL_LABEL)
    if not isinstance(name, str) or not isinstance(pool, str):
        # A worker labels a run it took right after it moved it to Pending: unlabelled for
        # long, the run lost its worker in between, and nothing says which worker that was.
        if waited > UNLABELLED_S:
            return f"pending for {waited:.0f} s, and no worker said it took it"
        return None
    workers = waiting.call(
        lambda client: client.read_workers_for_work_pool(pool),
        f"read the workers of pool {pool!r}",
    )
    found = next((worker for worker in workers if worker.name == name), None)
    if found is None:
        return f"pending, and its worker {name!r} is gone from pool {pool!r}"
    if found.status == WorkerStatus.OFFLINE:
        return f"pending, and its worker {name!r} is offline"
    return None


def _abandon(flow_run: str, why: str, waiting: _Waiting) -> bool:
    """Cancel a flow run that never started; False when it started meanwhile.

    Cancelled, not Crashed: Prefect refuses to move a cancelled run to Pending, so a worker
    that read it before it was cancelled cannot start it after the resume was submitted.
    """
    message = f"{why}; the runbook server resumes the incident"
    state: State[Any] = Cancelled(name=ABANDONED, message=message)
    result = waiting.call(
        lambda client: client.set_flow_run_state(UUID(flow_run), state),
        f"abandon flow run {flow_run}",
    )
    accepted = result.state is not None and result.state.name == ABANDONED
    if not accepted:
        LOG.info("flow run %s started before it could be abandoned: %s", flow_run, result.details)
    return accepted


@dataclass(frozen=True)
class _Waiting:
    """How API calls are made and waited between: retried with backoff while Prefect does not
    answer, and cut short when the server stops."""

    clients: PrefectClients
    patience: Patience
    stopping: threading.Event

    def call(self, work: Callable[[SyncPrefectClient], T], doing: str) -> T:
        """Do one API call, trying again while Prefect is unreachable or answers 5xx."""
        deadline = time.monotonic() + self.patience.unreachable_s
        delay = 1.0
        while True:
            try:
                with self.clients() as client:
                    return work(client)
            except (httpx.TransportError, PrefectHTTPStatusError) as error:
                if not _transient(error):
                    raise
                if time.monotonic() + delay > deadline:
                    raise PrefectUnreachable(
                        f"could not {doing}: the Prefect API did not answer for"
                        f" {self.patience.unreachable_s:.0f} s ({_reason(error)})"
                    ) from error
                LOG.warning(
                    "could not %s (%s); trying again in %.0f s", doing, _reason(error), delay
                )
                self.sleep(delay, f"could not {doing} ({_reason(error)})")
                delay = min(delay * 2, RETRY_MAX_S)

    def sleep(self, seconds: float, why: str) -> None:
        """Wait, unless the server stops meanwhile (WatchStopped, saying `why`)."""
        if self.stopping.wait(seconds):
            raise WatchStopped(f"the server stopped while waiting ({why}); the next one goes on")


def _transient(error: Exception) -> bool:
    if isinstance(error, PrefectHTTPStatusError):
        code = error.response.status_code
        return code >= 500 or code in (408, 429)
    return True  # a transport error: refused, reset, timed out


def _reason(error: Exception) -> str:
    if isinstance(error, PrefectHTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
