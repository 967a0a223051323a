"""Workers that never stop silently: a pool that cannot reach the intake waits and recovers, a
dead worker thread is replaced, a job whose worker died is claimed again once its lease runs
out, a job whose incident another process is running waits instead of failing, and `/healthz`
answers 503 with the reason whenever accepted work would not run."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from flows.engine.settings import Settings
from flows.evidence.incident import IncidentBusy
from flows.triggers import workers as workers_module
from flows.triggers.app import ServerState, build_app
from flows.triggers.health import check_health, judge
from flows.triggers.intake import Beat, Intake, Standing
from flows.triggers.jobs import Job, JobKind, JobState
from flows.triggers.metrics import Metrics
from flows.triggers.workers import Workers
from tests.support import serve_in_thread


class Gone(BaseException):
    """What kills a worker thread outright (nothing a job raises should, but a bug might)."""


def queue(intake: Intake, n: int = 1) -> list[int]:
    return [intake.enqueue(JobKind.RESUME, f"inc-{i}", "rb.md", {}) for i in range(n)]


def state_of(intake: Intake, job: int) -> tuple[str, int]:
    with sqlite3.connect(intake.path) as conn:
        row = conn.execute("SELECT state, attempts FROM jobs WHERE id = ?", (job,)).fetchone()
    return str(row[0]), int(row[1])


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def make(intake: Intake, runner: Callable[[Job], None]) -> Workers:
        settings = Settings(home=tmp_path, prefect="external")
        workers = Workers(intake, settings, Metrics(), threads=1, runner=runner)
        workers.gate_clock.start = lambda: None  # type: ignore[method-assign]  # no runbooks here
        workers.start()
        made.append(workers)
        return workers

    yield make
    for workers in made:
        workers.stop(timeout=5)


@pytest.fixture(autouse=True)
def quick_beats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers_module, "BEAT_S", 0.2)
    monkeypatch.setattr(workers_module, "BUSY_RETRY_S", 0.3)


def test_a_locked_intake_pauses_the_workers_and_they_recover(
    tmp_path: Path, pool: Callable[..., Workers]
) -> None:
    """Another process holds the intake's write lock for longer than a claim waits: the pool
    says why it cannot claim (and /healthz fails), and runs the job once the lock is gone."""
    intake = Intake(tmp_path / "intake.db", busy_timeout_s=0.2, commit_wait_s=1.0)
    [job] = queue(intake)
    intake.postpone(job, 1.0, "not yet")  # claimable only once the lock below is held
    ran: list[int] = []
    workers = pool(intake, lambda j: ran.append(j.id))
    locker = sqlite3.connect(intake.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        wait_for(lambda: workers.trouble == "cannot claim jobs: database is locked")
        health = check_health(intake, stuck_after_s=600)
        assert not health.ok and health.problems[0].startswith("intake: ")
        time.sleep(1.5)
        assert ran == [] and workers.alive == 1
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    wait_for(lambda: ran == [job])
    assert state_of(intake, job)[0] == JobState.DONE
    wait_for(lambda: workers.trouble is None)
    wait_for(lambda: check_health(intake, stuck_after_s=600).ok)  # by the next heartbeat


# The thread is killed on purpose; pytest reports an exception that ends a thread.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_thread_is_replaced_and_its_job_claimed_again(
    tmp_path: Path, pool: Callable[..., Workers]
) -> None:
    intake = Intake(tmp_path / "intake.db")
    first, second = queue(intake, 2)
    ran: list[int] = []

    def runner(job: Job) -> None:
        if job.id == first and not ran:
            ran.append(-1)
            raise Gone
        ran.append(job.id)

    workers = pool(intake, runner)
    wait_for(lambda: second in ran)
    assert workers.restarts == 1 and workers.alive == 1
    assert state_of(intake, first)[0] == JobState.RUNNING  # its lease has not run out yet
    with sqlite3.connect(intake.path) as conn:  # as if LEASE_S had passed
        conn.execute("UPDATE jobs SET lease_until = 0 WHERE id = ?", (first,))
    assert not check_health(intake, stuck_after_s=600).ok  # a job lost its worker
    intake.new_work()
    wait_for(lambda: first in ran)
    assert state_of(intake, first) == (JobState.DONE, 2)


def test_a_job_whose_incident_another_process_runs_waits_instead_of_failing(
    tmp_path: Path, pool: Callable[..., Workers]
) -> None:
    intake = Intake(tmp_path / "intake.db")
    [job] = queue(intake)
    tries: list[int] = []

    def runner(claimed: Job) -> None:
        tries.append(claimed.id)
        if len(tries) == 1:
            raise IncidentBusy("incident 'inc-0' is being run by process 4242 right now")

    pool(intake, runner)
    wait_for(lambda: state_of(intake, job)[0] == JobState.DONE)
    assert tries == [job, job]


def test_healthz_is_503_until_workers_beat_and_says_why(
    tmp_path: Path, pool: Callable[..., Workers]
) -> None:
    intake = Intake(tmp_path / "intake.db")
    settings = Settings(home=tmp_path, prefect="external")
    state = ServerState(settings, [], intake, Metrics(), {})
    with serve_in_thread(build_app(state)) as url:
        down = httpx.get(f"{url}/healthz")
        assert down.status_code == 503
        assert down.json()["problems"] == ["workers: none has started"]
        pool(intake, lambda job: None)
        up = httpx.get(f"{url}/healthz")
        assert up.status_code == 200, up.text
        assert up.json()["status"] == "ok" and up.json()["workers"] == 1


def test_judge_names_every_reason_work_would_not_run() -> None:
    stale = Beat("host:1", 1, 60.0, 2, 2, None)
    half = Beat("host:2", 2, 1.0, 1, 2, "cannot claim jobs: disk I/O error")
    assert judge(Standing([stale], 0, 0.0, 0), stuck_after_s=600).problems == [
        "workers: no heartbeat for 60 s"
    ]
    problems = judge(Standing([stale, half], 3, 900.0, 1), stuck_after_s=600).problems
    assert problems == [
        "workers: 1 of 2 threads alive in host:2",
        "workers: cannot claim jobs: disk I/O error",
        "jobs: 1 running job(s) lost their worker",
        "jobs: the oldest of 3 queued job(s) has waited 900 s (limit 600 s)",
    ]


def test_an_incidents_jobs_run_in_order_even_while_the_first_waits(tmp_path: Path) -> None:
    """A start postponed (its incident busy, its disk full) keeps the resolution queued after
    it from running first, against an incident that does not exist yet."""
    intake = Intake(tmp_path / "intake.db")
    start = intake.enqueue(JobKind.START, "inc-a", "rb.md", {})
    resolved = intake.enqueue(JobKind.RESOLVED, "inc-a", "rb.md", {})
    other = intake.enqueue(JobKind.START, "inc-b", "rb.md", {})
    intake.postpone(start, 60, "busy")
    claimed = intake.claim("test")
    assert claimed is not None and claimed.id == other
    intake.finish(other)
    assert intake.claim("test") is None
    with sqlite3.connect(intake.path) as conn:
        conn.execute("UPDATE jobs SET not_before = 0 WHERE id = ?", (start,))
    first = intake.claim("test")
    assert first is not None and first.id == start
    intake.finish(start)
    second = intake.claim("test")
    assert second is not None and second.id == resolved
