"""What `/healthz` says: whether accepted work will run, judged from the intake.

The server answers 202 only after an alert's jobs are committed, so "healthy" means those jobs
will be run: the intake takes commits, some worker pool has written a heartbeat lately with its
threads alive and the intake reachable, no running job has lost its worker, and no job has waited
for one past the limit. Heartbeats live in the intake, so this holds whichever process the
workers are in. Anything else is 503 with the reasons, for the load balancer and the on-call.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from flows.triggers.intake import Intake, IntakeUnavailable, Standing

BEAT_STALE_S = 20.0
"""A pool whose last heartbeat is older than this is taken for dead (it beats every 5 s)."""


@dataclass(frozen=True)
class Health:
    """The answer of `/healthz`: ok, or the problems that make it 503."""

    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unhealthy", "problems": self.problems, **self.facts}


def check_health(intake: Intake, *, stuck_after_s: float) -> Health:
    """Probe the intake with a commit, then judge its workers and queue."""
    try:
        intake.probe()
        standing = intake.standing()
    except (IntakeUnavailable, sqlite3.Error, OSError) as error:
        return Health([f"intake: {error}"])
    return judge(standing, stuck_after_s=stuck_after_s)


def judge(standing: Standing, *, stuck_after_s: float) -> Health:
    """The problems in what the intake says of its workers and queue (pure: for tests too)."""
    problems: list[str] = []
    pools = [beat for beat in standing.beats if beat.name != "probe"]
    live = [beat for beat in pools if beat.age_s <= BEAT_STALE_S]
    if not pools:
        problems.append("workers: none has started")
    elif not live:
        freshest = min(beat.age_s for beat in pools)
        problems.append(f"workers: no heartbeat for {freshest:.0f} s")
    for beat in live:
        if beat.alive < beat.threads:
            problems.append(f"workers: {beat.alive} of {beat.threads} threads alive in {beat.name}")
        if beat.error:
            problems.append(f"workers: {beat.error}")
    if standing.lapsed:
        problems.append(f"jobs: {standing.lapsed} running job(s) lost their worker")
    if standing.oldest_pending_s > stuck_after_s:
        problems.append(
            f"jobs: the oldest of {standing.pending} queued job(s) has waited"
            f" {standing.oldest_pending_s:.0f} s (limit {stuck_after_s:g} s)"
        )
    facts = {
        "pending_jobs": standing.pending,
        "workers": sum(beat.alive for beat in live),
    }
    return Health(problems, facts)
