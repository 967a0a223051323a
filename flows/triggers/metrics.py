"""Prometheus metrics of the trigger server and its worker process, served from one place.

`runbook serve` answers webhooks in one process and runs jobs in another (`worker_process.py`);
each counts what it sees. In prometheus_client's multiprocess mode, which `runbook serve` turns
on before the library is imported (`flows.triggers.shared_metrics`), every process writes its
values to files in one folder and `/metrics` adds them up: a run finished in the worker process
is counted where Prometheus scrapes. Without it (a server built in one process, as tests do),
the values live in this object's own registry. What the intake knows (jobs pending, workers
alive by their heartbeats) is read at scrape time, whichever process the workers are in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from flows.triggers.shared_metrics import MULTIPROC_VARIABLE

PREFIX = "runbook_"
"""Our metrics' names begin so; others a library made in a shared process are left out."""


class Metrics:
    """Counters and histograms the server and its workers update; `/metrics` renders them."""

    def __init__(self) -> None:
        # The folder prometheus_client itself writes to in multiprocess mode, chosen from the
        # same variable when it was imported: None when every value is in this process.
        shared = os.environ.get(MULTIPROC_VARIABLE)
        self.shared: Path | None = Path(shared) if shared else None
        self.registry = CollectorRegistry()
        r = self.registry
        self.alerts_received = Counter(
            "runbook_alerts_received", "Alerts received, by source.", ["source"], registry=r
        )
        self.alerts_deduplicated = Counter(
            "runbook_alerts_deduplicated",
            "Alerts that joined an existing incident (or repeated a delivery), by source.",
            ["source"],
            registry=r,
        )
        self.alerts_joined = Counter(
            "runbook_alerts_joined",
            "Alerts that joined the incident open for them (a repeat, an acknowledgement, an"
            " escalation, a new firing), by source.",
            ["source"],
            registry=r,
        )
        self.alerts_unmatched = Counter(
            "runbook_alerts_unmatched",
            "Alerts no runbook trigger matched and no incident was open for, by source.",
            ["source"],
            registry=r,
        )
        self.alerts_unroutable = Counter(
            "runbook_alerts_unroutable",
            "Runbooks an alert matched but could not start (its input templates failed on the"
            " alert), by source.",
            ["source"],
            registry=r,
        )
        self.webhooks_rejected = Counter(
            "runbook_webhooks_rejected",
            "Webhooks refused, by endpoint and reason.",
            ["endpoint", "reason"],
            registry=r,
        )
        self.runs_started = Counter(
            "runbook_runs_started",
            "Incidents whose run the workers started, by runbook and trigger (alert, slack).",
            ["runbook", "trigger"],
            registry=r,
        )
        self.runs_finished = Counter(
            "runbook_runs_finished",
            "Runs finished, by runbook and outcome (succeeded, failed, waiting).",
            ["runbook", "status"],
            registry=r,
        )
        self.jobs_failed = Counter(
            "runbook_jobs_failed", "Jobs that raised instead of finishing.", ["kind"], registry=r
        )
        self.webhook_seconds = Histogram(
            "runbook_webhook_seconds",
            "Time to answer a webhook, refusals included, by endpoint.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )

    def render(self, *, jobs_pending: int | None = None, workers_alive: int | None = None) -> bytes:
        """The Prometheus text of every metric, from every process, with what the intake says
        now (a value it could not read is left out rather than guessed)."""
        families = [*self._counted(), *_read_now(jobs_pending, workers_alive)]
        registry = CollectorRegistry()
        registry.register(_Families(families))
        return generate_latest(registry)

    def _counted(self) -> list[Metric]:
        if self.shared is None:
            return list(self.registry.collect())
        merged = MultiProcessCollector(None, path=str(self.shared)).collect()
        return [family for family in merged if family.name.startswith(PREFIX)]


def _read_now(jobs_pending: int | None, workers_alive: int | None) -> list[Metric]:
    families: list[Metric] = []
    if jobs_pending is not None:
        families.append(
            GaugeMetricFamily(
                "runbook_jobs_pending", "Jobs queued in the intake, not yet run.", jobs_pending
            )
        )
    if workers_alive is not None:
        families.append(
            GaugeMetricFamily(
                "runbook_workers_alive",
                "Worker threads alive, by the heartbeats of every worker pool.",
                workers_alive,
            )
        )
    return families


class _Families:
    """A collector over metric families gathered for one scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families
