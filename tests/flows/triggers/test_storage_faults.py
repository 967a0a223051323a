"""A full or read-only disk never loses an accepted alert and never hangs the server.

The faults are real: a small tmpfs mounted for the test, filled to ENOSPC or remounted
read-only (the tests skip, saying why, where mounting is not allowed). The intake refuses
quickly while the disk is bad and works again by itself when it is good; a run that cannot
write its evidence is postponed, not failed, and finishes once space is back; the CLI says what
to do instead of dumping a traceback, and the incident it left verifies after it is continued.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.engine.routing import route_alert
from flows.engine.settings import Settings
from flows.evidence.verify import read_records, verify_ledger
from flows.triggers import workers as workers_module
from flows.triggers.intake import Intake, IntakeUnavailable
from flows.triggers.jobs import JobState
from flows.triggers.server import load_library, make_server
from integrations.alerts import Alert
from tests.disks import fill, remount, small_disk
from tests.support import FIXTURES, RUNBOOK_CLI, cli_env, wait_idle

LIBRARY = load_library(FIXTURES / "library")
GATED = FIXTURES / "runbooks" / "gated.md"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of this test's own, to fill up or make read-only."""
    with small_disk(tmp_path / "disk") as point:
        yield point


def disk_alert(n: int) -> Alert:
    return Alert(
        source="alertmanager",
        identity=f"fp-{n}",
        status="firing",
        labels={"alertname": "DiskFull", "instance": f"db-{n}"},
    )


def accept(intake: Intake, n: int) -> list[str]:
    return intake.accept_alerts(
        "alertmanager", [disk_alert(n)], lambda a: route_alert(a, LIBRARY)
    ).started


def counts(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        jobs = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        deliveries = conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    return int(jobs), int(deliveries)


def test_a_read_only_home_at_the_first_alert_refuses_quickly_then_recovers(disk: Path) -> None:
    intake = Intake(disk / "intake.db", commit_wait_s=3.0, busy_timeout_s=1.0)
    remount(disk, "ro")
    for _ in range(3):  # every later webhook too, not only the first
        began = time.monotonic()
        with pytest.raises(IntakeUnavailable):
            accept(intake, 1)
        assert time.monotonic() - began < 8
    remount(disk, "rw")
    assert len(accept(intake, 1)) == 1
    assert counts(intake.path) == (1, 1)


def test_a_full_disk_refuses_the_delivery_whole_then_recovers(disk: Path) -> None:
    intake = Intake(disk / "intake.db", commit_wait_s=3.0, busy_timeout_s=1.0)
    assert len(accept(intake, 1)) == 1
    filler = fill(disk)
    with pytest.raises(IntakeUnavailable, match="full"):
        intake.accept_alerts(
            "alertmanager",
            [disk_alert(n) for n in range(2, 400)],
            lambda a: route_alert(a, LIBRARY),
        )
    filler.unlink()
    assert counts(intake.path) == (1, 1)  # nothing of the refused delivery was kept
    assert len(accept(intake, 2)) == 1


@pytest.mark.usefixtures("prefect_api")
def test_a_run_that_cannot_write_its_evidence_waits_and_then_finishes(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The incidents folder is full when the worker starts the run: the job is postponed (not
    failed), and once space is back the incident runs to its gate, one of it, verifiable."""
    monkeypatch.setattr(workers_module, "STORAGE_RETRY_S", 0.5)
    incidents = home / "incidents"
    with small_disk(incidents, "2m"):
        filler = fill(incidents)
        server = make_server(Settings(home=home, prefect="external"), LIBRARY, dev=False, threads=1)
        server.workers.start()
        try:
            [incident] = accept(server.state.intake, 7)
            deadline = time.monotonic() + 30
            while "storage:" not in str(_job_error(server.state.intake.path)):
                assert time.monotonic() < deadline, "the job never met the full disk"
                time.sleep(0.2)
            assert server.state.intake.count_jobs(JobState.FAILED) == 0
            filler.unlink()
            wait_idle(server)
        finally:
            server.workers.stop()
        assert server.state.intake.count_jobs(JobState.FAILED) == 0
        folder = incidents / incident
        records = read_records(folder)
        assert [r.event for r in records].count("run.started") == 1
        assert ("gate.waiting", "free-space") in [(r.event, r.step) for r in records]
        assert verify_ledger(folder).ok
        assert [p.name for p in incidents.iterdir() if p.is_dir()] == [incident]


def _job_error(path: Path) -> str | None:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT error FROM jobs ORDER BY id LIMIT 1").fetchone()
    return None if row is None else row[0]


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("limit_kib", [2, 64])
def test_a_file_size_limit_in_the_cli_is_a_message_and_the_run_continues(
    home: Path, limit_kib: int
) -> None:
    """`ulimit -f` cuts the run's writes short wherever the limit falls: no traceback, a
    message saying what to do; the same command without the limit continues the incident,
    whose evidence then verifies."""
    command = " ".join(
        [*RUNBOOK_CLI, "run", str(GATED), "--input", "service=api", "--incident", "cli-full"]
    )
    limited = subprocess.run(
        ["bash", "-c", f"ulimit -f {limit_kib}; exec {command}"],
        env=cli_env(home),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert "Traceback" not in limited.stderr, limited.stderr
    if limited.returncode != 3:  # the limit fell before the run reached its gate
        assert limited.returncode == 1, limited.stderr
        assert "free space" in limited.stderr and "runbook resume" in limited.stderr
    again = subprocess.run(
        ["bash", "-c", f"exec {command}"],
        env=cli_env(home),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert again.returncode == 3, again.stderr  # waiting at its gate
    folder = home / "incidents" / "cli-full"
    assert verify_ledger(folder).ok
    assert [r.event for r in read_records(folder)].count("run.started") == 1
