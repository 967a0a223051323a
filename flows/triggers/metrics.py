"""Prometheus metrics of the trigger server, on a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    """Counters and histograms the server and its workers update; `/metrics` renders them."""

    def __init__(self) -> None:
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
        self.alerts_unmatched = Counter(
            "runbook_alerts_unmatched",
            "Alerts no runbook trigger matched.",
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
            "Runs started by the server, by runbook.",
            ["runbook"],
            registry=r,
        )
        self.runs_finished = Counter(
            "runbook_runs_finished",
            "Runs finished, by runbook and outcome.",
            ["runbook", "status"],
            registry=r,
        )
        self.jobs_failed = Counter(
            "runbook_jobs_failed", "Jobs that raised instead of finishing.", ["kind"], registry=r
        )
        self.webhook_seconds = Histogram(
            "runbook_webhook_seconds",
            "Time to answer a webhook, by endpoint.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
