"""Jobs: the work the intake queues for the workers, what each does, and where it stands."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flows.evidence.incident import Trigger


class JobKind(StrEnum):
    """What a job does to its incident."""

    START = "start"
    """Run the runbook for a new incident (or continue it, when it already exists)."""
    RESUME = "resume"
    """Continue the incident from its first unfinished step (after a gate is acknowledged)."""
    DRILL = "drill"
    """Run a drill scenario in its sandboxes."""
    RESOLVED = "resolved"
    """Record that the alert resolved and comment on the incident's tickets."""
    ALERT_EVENT = "alert"
    """Record another event of the incident's alert (acknowledged, escalated, updated, fired
    again after it resolved) and comment on the incident's tickets."""


class JobState(StrEnum):
    """Where a job is in its life; a job left `running` by a stopped server is rerun."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """One unit of work for a worker: start, resume or record a resolution for an incident."""

    id: int
    kind: JobKind
    incident: str
    runbook_path: str
    payload: dict[str, Any]


def job_origin(job: Job) -> tuple[Trigger, str]:
    """How a start job's incident began and who began it: a Slack user, or the alert's source."""
    started_by = job.payload.get("started_by")
    if isinstance(started_by, str) and started_by.startswith("slack:"):
        return Trigger.SLACK, started_by
    alert = job.payload.get("alert")
    source = alert.get("source", "webhook") if isinstance(alert, dict) else "webhook"
    return Trigger.ALERT, f"alert:{source}"
