"""Workers: threads that take jobs from the intake and run them through the engine.

Jobs of one incident never run at the same time (the intake hands out one at a time per
incident); jobs of different incidents run side by side, one per thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from flows.contract.ports import GateResponder, NoResponder
from flows.drills.drill import resume_incident, run_drill
from flows.engine.execute import RunOutcome
from flows.engine.runner import BackendFactory, default_backends, record_alert_event, start_run
from flows.engine.settings import Settings
from flows.triggers.gate_clock import GateClock
from flows.triggers.intake import Intake
from flows.triggers.jobs import Job, JobKind, job_origin
from flows.triggers.metrics import Metrics

LOG = logging.getLogger(__name__)
IDLE_WAIT_S = 1.0

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
        self._threads = [
            threading.Thread(target=self._loop, name=f"runbook-worker-{n}", daemon=True)
            for n in range(threads)
        ]
        # Beside the workers, wherever they run: one clock per server, queueing what it settles.
        self.gate_clock = GateClock(settings, intake, lambda: self.backends(self.settings).chat)

    def start(self) -> None:
        """Requeue what a previous server left unfinished, then start the threads and the gate
        clock."""
        recovered = self.intake.recover()
        if recovered:
            LOG.info("starting with %d queued job(s), any a stopped server left", recovered)
        for thread in self._threads:
            thread.start()
        self.gate_clock.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; wait for running ones (a job cut off is rerun on the next start)."""
        self._stop.set()
        self.intake.wakeup.set()
        self.gate_clock.stop()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.intake.claim()
            if job is None:
                self.intake.wakeup.wait(IDLE_WAIT_S)
                self.intake.wakeup.clear()
                continue
            self.intake.wakeup.set()  # others may find work of other incidents meanwhile
            try:
                self._run(job)
            except Exception as error:  # recorded on the job and counted, then the loop goes on
                LOG.error("job %s (%s %s) failed: %s", job.id, job.kind, job.incident, error)
                self.metrics.jobs_failed.labels(kind=job.kind).inc()
                self.intake.finish(job.id, error=str(error) or type(error).__name__)
            else:
                self.intake.finish(job.id)

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
        self.metrics.runs_started.labels(runbook=runbook.stem).inc()
        trigger, started_by = job_origin(job)
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
