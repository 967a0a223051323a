"""Every accepted alert of a new identity gets an incident of its own: ids are drawn in the
intake's transaction and checked unused against every id it ever handed out, so even an id
generator that repeats itself cannot make two alerts share an incident."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

from flows.engine.routing import route_alert
from flows.triggers.intake import Intake
from flows.triggers.jobs import JobKind
from flows.triggers.server import load_library
from integrations.alerts import Alert
from tests.support import FIXTURES

LIBRARY = load_library(FIXTURES / "library")


def disk_alert(n: int) -> Alert:
    return Alert(
        source="alertmanager",
        identity=f"fp-{n}",
        status="firing",
        labels={"alertname": "DiskFull", "instance": f"db-{n}"},
    )


def route(alert: Alert):  # type: ignore[no-untyped-def]
    return route_alert(alert, LIBRARY)


def start_jobs(intake: Intake) -> list[str]:
    claimed = []
    while (job := intake.claim("test")) is not None:
        assert job.kind is JobKind.START
        claimed.append(job.incident)
        intake.finish(job.id)
    return claimed


def test_ten_thousand_alerts_in_a_burst_open_ten_thousand_incidents(tmp_path: Path) -> None:
    intake = Intake(tmp_path / "intake.db")
    started: list[str] = []
    for first in range(0, 10_000, 1_000):
        alerts = [disk_alert(n) for n in range(first, first + 1_000)]
        accepted = intake.accept_alerts("alertmanager", alerts, route)
        assert accepted.unmatched == 0 and accepted.joined == []
        started += accepted.started
    assert len(started) == len(set(started)) == 10_000
    with sqlite3.connect(intake.path) as conn:
        queued = [row[0] for row in conn.execute("SELECT incident FROM jobs WHERE kind = 'start'")]
    assert sorted(queued) == sorted(started)


def test_an_id_generator_that_repeats_itself_still_gives_each_alert_its_own_incident(
    tmp_path: Path,
) -> None:
    """The generator repeats every id it drew before giving a new one (id-1; id-1, id-2; id-1,
    id-2, id-3; ...): the intake draws again until it has an unused id, for alerts of one
    delivery, of a later delivery, and for a Slack start."""
    blocks = (f"disk-full-{n}" for size in itertools.count(1) for n in range(1, size + 1))
    intake = Intake(tmp_path / "intake.db", new_id=lambda runbook: next(blocks))
    first = intake.accept_alerts("alertmanager", [disk_alert(n) for n in range(3)], route)
    second = intake.accept_alerts("alertmanager", [disk_alert(n) for n in range(3, 6)], route)
    typed = intake.start(JobKind.START, "disk-full", "disk-full.md", {})
    every = [*first.started, *second.started, typed]
    assert every == [f"disk-full-{n}" for n in range(1, 8)]
    assert sorted(start_jobs(intake)) == sorted(every)
