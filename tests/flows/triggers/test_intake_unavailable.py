"""An intake that cannot commit (locked, read-only, disk full) is answered 503 with Retry-After
within a bound, records nothing of the request, and takes the sender's retry once the cause is
gone."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from pydantic import SecretStr

from flows.engine.settings import Settings
from flows.triggers.app import build_app
from flows.triggers.intake import COMMIT_WAIT_S
from flows.triggers.jobs import JobState
from flows.triggers.server import INTAKE_DB, Server, load_library, make_server
from tests.disks import fill, remount, small_disk
from tests.flows.triggers.test_bounded_input import slack_signed
from tests.flows.triggers.test_server import alertmanager_payload, post_alert
from tests.flows.triggers.test_slack_server import command_body
from tests.support import FIXTURES, serve_in_thread

LIBRARY = FIXTURES / "library"
TOKEN = "hook-token-5d2c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def idle_server(home: Path) -> Server:
    """A server whose workers are not started, so the intake is all that writes."""
    settings = Settings(
        home=home,
        prefect="external",
        webhook_token=SecretStr(TOKEN),
        slack_signing_secret=SecretStr("slack-signing-9f1e"),
    )
    return make_server(settings, load_library(LIBRARY), dev=False)


@contextlib.contextmanager
def client_of(server: Server) -> Iterator[httpx.Client]:
    with (
        serve_in_thread(build_app(server.state)) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client


@contextlib.contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Another process's write transaction on the database, held for the block."""
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def assert_unavailable(answer: httpx.Response, cause: str) -> None:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["retry-after"]) > 0
    error = answer.json()["error"]
    assert cause in error and "nothing was recorded" in error, error


def assert_nothing_recorded(server: Server, home: Path) -> None:
    assert server.state.intake.incidents() == []
    assert server.state.intake.count_jobs(JobState.PENDING) == 0
    with sqlite3.connect(home / INTAKE_DB) as conn:
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 0


def test_a_locked_intake_answers_503_in_bounded_time_then_takes_the_retry(home: Path) -> None:
    """While another process holds the intake's write lock, an alert is answered 503 with
    Retry-After naming the lock, within the intake's bound and with nothing recorded; the same
    alert sent again after the lock is released starts its incident."""
    server = idle_server(home)
    with client_of(server) as client:
        with write_lock(home / INTAKE_DB):
            started = time.monotonic()
            refused = post_alert(client, alertmanager_payload(), AUTH)
            waited = time.monotonic() - started
        assert_unavailable(refused, "database is locked")
        assert waited < COMMIT_WAIT_S + 2
        assert_nothing_recorded(server, home)
        retried = post_alert(client, alertmanager_payload(), AUTH)
        metrics = client.get("/metrics").text
    assert retried.status_code == 202 and len(retried.json()["started"]) == 1, retried.text
    assert 'endpoint="/alerts/alertmanager",reason="intake_unavailable"} 1.0' in metrics


def test_a_locked_intake_answers_a_slack_command_503_too(home: Path) -> None:
    """A signed Slack command reaching a locked intake is a 503 with Retry-After, and queues
    nothing; once the lock is gone the same command is acted on."""
    server = idle_server(home)
    body = command_body("disk host=db-1")
    with client_of(server) as client:
        with write_lock(home / INTAKE_DB):
            signed = slack_signed(body, str(int(time.time())))
            refused = client.post("/slack/commands", content=body, headers=signed)
        assert_unavailable(refused, "database is locked")
        assert server.state.intake.count_jobs(JobState.PENDING) == 0
        again = command_body("disk host=db-1")  # typed again: Slack sends a new request
        retried = client.post(
            "/slack/commands", content=again, headers=slack_signed(again, str(int(time.time())))
        )
    assert retried.status_code == 200, retried.text
    assert "Starting" in retried.json()["text"]
    assert server.state.intake.count_jobs(JobState.PENDING) == 1


def test_a_read_only_home_answers_503_and_recovers_when_writable_again(home: Path) -> None:
    """A home that turned read-only before the first alert is a 503 naming it, later webhooks
    do not hang behind it, and once writable again the next alert is accepted."""
    with small_disk(home):
        server = idle_server(home)
        with client_of(server) as client:
            remount(home, "ro")
            try:
                started = time.monotonic()
                answers = [post_alert(client, alertmanager_payload(), AUTH) for _ in range(3)]
                waited = time.monotonic() - started
            finally:
                remount(home, "rw")
            assert waited < COMMIT_WAIT_S + 2  # all three: none waits behind another
            for answer in answers:
                assert_unavailable(answer, "unable to open database file")
            retried = post_alert(client, alertmanager_payload(), AUTH)
    assert retried.status_code == 202 and len(retried.json()["started"]) == 1, retried.text


def test_a_full_disk_answers_503_and_recovers_when_there_is_room(home: Path) -> None:
    """On a full disk an alert is a 503 naming it with nothing recorded; with room again the
    sender's retry is accepted."""
    with small_disk(home):
        server = idle_server(home)
        with client_of(server) as client:
            filler = fill(home)
            refused = post_alert(client, alertmanager_payload(), AUTH)
            filler.unlink()
            assert_unavailable(refused, "disk I/O error")
            assert_nothing_recorded(server, home)
            retried = post_alert(client, alertmanager_payload(), AUTH)
    assert retried.status_code == 202 and len(retried.json()["started"]) == 1, retried.text
