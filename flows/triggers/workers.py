"""Workers: threads that take jobs from the intake and run them through the engine.

Jobs of one incident never run at the same time (the intake hands out one at a time per
incident); jobs of different incidents run side by side, one per thread.

The pool supervises itself: a beat thread restarts a worker thread that died, renews the leases
of the jobs its threads run (a job whose lease runs out lost its worker, and is claimed again),
and writes a heartbeat to the intake, which `/healthz` reads, whichever process the pool is in.
A worker that cannot reach the intake (locked, disk full, read-only) waits and tries again, so
the pool recovers by itself when the cause goes away.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.contract.ports import GateResponder, NoResponder
from flows.drills.drill import resume_incident, run_drill
from flows.engine.execute import RunOutcome
from flows.engine.runner import BackendFactory, default_backends, record_alert_event, start_run
from flows.engine.settings import Settings
from flows.evidence.incident import IncidentBusy
from flows.triggers.gate_clock import GateClock
from flows.triggers.intake import Intake
from flows.triggers.jobs import Job, JobKind, job_origin
from flows.triggers.metrics import Metrics

LOG = logging.getLogger(__name__)
IDLE_WAIT_S = 1.0
BEAT_S = 5.0
"""How often the pool renews its jobs' leases, restarts dead threads and writes its heartbeat."""
BUSY_RETRY_S = 5.0
"""How long a job waits when another process runs its incident (a terminal's `runbook resume`)."""
BACKOFF_MAX_S = 10.0
STORAGE_RETRY_S = 15.0
"""How long a job whose run could not write (disk full, read-only) waits before it runs again."""

ResponderFactory = Callable[[Job], GateResponder]


class Workers:
    """A small pool of threads draining the intake until stopped."""

    def __init__(
        self,
        intake: Intake,
        settings: Settings,
        metrics: Metrics,
        *,
        threads: int = 2,
        responder_for: ResponderFactory = lambda job: NoResponder(),
        backends: BackendFactory = default_backends,
        runner: Callable[[Job], None] | None = None,
    ) -> None:
        self.intake, self.settings, self.metrics = intake, settings, metrics
        self.responder_for, self.backends = responder_for, backends
        self._run = runner or self.run_job
        self._stop = threading.Event()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        """The pool's name in the intake's heartbeats."""
        self._threads = [self._thread(n) for n in range(threads)]
        self._running: dict[str, int] = {}
        """Thread name -> the job it runs, for lease renewal."""
        self._lock = threading.Lock()
        self.trouble: str | None = None
        """The last reason a worker could not reach the intake; None once it could again."""
        self.restarts = 0
        self._beat_failing = False
        self._beat = threading.Thread(
            target=self._beat_loop, name="runbook-workers-beat", daemon=True
        )
        # Beside the workers, wherever they run: one clock per server, queueing what it settles.
        self.gate_clock = GateClock(settings, intake, lambda: self.backends(self.settings).chat)

    def _thread(self, n: int) -> threading.Thread:
        return threading.Thread(target=self._loop, name=f"runbook-worker-{n}", daemon=True)

    def start(self) -> None:
        """Requeue what a previous server left unfinished, then start the threads and the gate
        clock."""
        recovered = self.intake.recover()
        if recovered:
            LOG.info("starting with %d queued job(s), any a stopped server left", recovered)
        for thread in self._threads:
            thread.start()
        self._heartbeat()
        self._beat.start()
        self.gate_clock.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; wait for running ones (a job cut off is rerun on the next start)."""
        self._stop.set()
        self.intake.wakeup.set()
        self.gate_clock.stop()
        for thread in self._threads:
            thread.join(timeout)
        if self._beat.is_alive():
            self._beat.join(timeout)
        with _storage_errors_logged("say the workers stopped"):
            self.intake.gone(self.name)

    @property
    def stopping(self) -> threading.Event:
        """Set once the pool is told to stop: a job waiting on work done elsewhere (a Prefect
        flow run) stops waiting, and the next pool takes it up again."""
        return self._stop

    @property
    def alive(self) -> int:
        """How many worker threads are running."""
        return sum(1 for thread in self._threads if thread.is_alive())

    def _loop(self) -> None:
        me = threading.current_thread().name
        owner = f"{os.getpid()}:{me}"
        backoff = IDLE_WAIT_S
        while not self._stop.is_set():
            try:
                job = self.intake.claim(owner)
            except (sqlite3.Error, OSError) as error:
                # Locked, full or read-only: nothing was claimed. Try again, less and less often.
                self._troubled(f"cannot claim jobs: {error}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = IDLE_WAIT_S
            self.trouble = None
            if job is None:
                self.intake.wakeup.wait(IDLE_WAIT_S)
                self.intake.wakeup.clear()
                continue
            self.intake.wakeup.set()  # others may find work of other incidents meanwhile
            with self._lock:
                self._running[me] = job.id
            try:
                self._settle(job)
            finally:
                with self._lock:
                    self._running.pop(me, None)

    def _settle(self, job: Job) -> None:
        """Run one job and record how it ended; a job whose end cannot be recorded stays leased
        to this thread until the lease runs out, then runs again (resume semantics)."""
        try:
            self._run(job)
        except IncidentBusy as busy:  # not a failure: its incident is being run elsewhere
            LOG.info("job %s waits: %s", job.id, busy)
            with _storage_errors_logged(f"postpone job {job.id}"):
                self.intake.postpone(job.id, BUSY_RETRY_S, str(busy))
        except (sqlite3.Error, OSError) as error:
            # A full disk, a read-only home, a locked database: the job did not fail, the
            # storage did. It runs again once the cause is gone (finished steps never repeat).
            LOG.error("job %s (%s %s) waits for storage: %s", job.id, job.kind, job.incident, error)
            with _storage_errors_logged(f"postpone job {job.id}"):
                self.intake.postpone(job.id, STORAGE_RETRY_S, f"storage: {error}")
        except Exception as error:  # recorded on the job and counted, then the loop goes on
            LOG.error("job %s (%s %s) failed: %s", job.id, job.kind, job.incident, error)
            self.metrics.jobs_failed.labels(kind=job.kind).inc()
            with _storage_errors_logged(f"record that job {job.id} failed"):
                self.intake.finish(job.id, error=str(error) or type(error).__name__)
        else:
            with _storage_errors_logged(f"record that job {job.id} is done"):
                self.intake.finish(job.id)

    def _troubled(self, reason: str) -> None:
        if reason != self.trouble:
            LOG.error("workers: %s", reason)
        self.trouble = reason

    def _beat_loop(self) -> None:
        while not self._stop.wait(BEAT_S):
            self._supervise()
            self._heartbeat()

    def _supervise(self) -> None:
        """Start a new thread in place of any worker thread that died."""
        for n, thread in enumerate(self._threads):
            if not thread.is_alive() and not self._stop.is_set():
                LOG.error("workers: %s died; starting another in its place", thread.name)
                self.restarts += 1
                self._threads[n] = self._thread(n)
                self._threads[n].start()

    def _heartbeat(self) -> None:
        """Renew the running jobs' leases and say how the pool is; a failure is logged once."""
        with self._lock:
            running = list(self._running.items())
        try:
            for thread_name, job_id in running:
                self.intake.renew(f"{os.getpid()}:{thread_name}", [job_id])
            self.intake.beat(
                self.name, alive=self.alive, threads=len(self._threads), error=self.trouble
            )
        except (sqlite3.Error, OSError) as error:
            if not self._beat_failing:
                LOG.error("workers: cannot write the heartbeat: %s", error)
            self._beat_failing = True
        else:
            self._beat_failing = False

    def run_job(self, job: Job) -> RunOutcome | None:
        """Run one job through the engine; how its run ended (None for a resolution)."""
        match job.kind:
            case JobKind.START:
                outcome = self._start(job)
            case JobKind.RESUME:
                outcome = resume_incident(
                    self.settings,
                    job.incident,
                    responder=self.responder_for(job),
                    backends=self.backends,
                )
            case JobKind.DRILL:
                live_chat = self.backends(self.settings).chat
                result = run_drill(self.settings, Path(job.runbook_path), live_chat=live_chat)
                outcome = result.outcome
            case JobKind.RESOLVED | JobKind.ALERT_EVENT:
                alert = job.payload.get("alert", {})
                event = str(job.payload.get("event", "resolved"))
                dedupe = f"{job.incident}:alert:{job.id}"
                record_alert_event(
                    self.settings, job.incident, alert, event, dedupe, backends=self.backends
                )
                return None
        self._finished(outcome)
        return outcome

    def _start(self, job: Job) -> RunOutcome:
        runbook = Path(job.runbook_path)
        trigger, started_by = job_origin(job)
        self.metrics.runs_started.labels(runbook=runbook.stem, trigger=trigger).inc()
        return start_run(
            self.settings,
            runbook,
            job.payload.get("inputs", {}),
            incident_id=job.incident,
            alert=job.payload.get("alert"),
            trigger=trigger,
            started_by=started_by,
            responder=self.responder_for(job),
            backends=self.backends,
        )

    def _finished(self, outcome: RunOutcome) -> None:
        self.metrics.runs_finished.labels(runbook=outcome.runbook, status=outcome.status).inc()


@contextmanager
def _storage_errors_logged(doing: str) -> Iterator[None]:
    """Log a storage failure (sqlite, OS) as one line instead of ending the worker thread."""
    try:
        yield
    except (sqlite3.Error, OSError) as error:
        LOG.error("workers: could not %s: %s", doing, error)
