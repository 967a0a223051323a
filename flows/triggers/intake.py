"""The durable intake: what triggers handed us, committed to disk before we answer them.

A webhook is acknowledged only after its alerts, their incidents and the jobs they start are
committed in one SQLite transaction (WAL, synchronous=FULL). Workers then run the jobs. A server
killed right after answering loses nothing: on restart, jobs that were pending or running are
run again, and running a start job twice is a resume (finished steps never repeat).
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from flows.engine.routing import Route, Unroutable
from flows.evidence.incident import new_incident_id
from flows.evidence.redact import Redactor
from flows.sqlite import connection, open_durable, transaction
from flows.times import utc_stamp
from flows.triggers.jobs import Job, JobKind, JobState
from integrations.alerts import Alert

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
  key TEXT PRIMARY KEY,
  incident TEXT NOT NULL,
  runbook TEXT NOT NULL,
  created_at TEXT NOT NULL,
  resolved_at TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
  id INTEGER PRIMARY KEY,
  received_at TEXT NOT NULL,
  source TEXT NOT NULL,
  delivery TEXT,
  identity TEXT,
  status TEXT,
  outcome TEXT NOT NULL,
  incident TEXT,
  runbook TEXT,
  reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_once ON deliveries (source, delivery)
  WHERE delivery IS NOT NULL AND outcome = 'delivery';
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  incident TEXT NOT NULL,
  runbook_path TEXT NOT NULL,
  payload TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  created_at TEXT NOT NULL,
  finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (state, id);
CREATE TABLE IF NOT EXISTS seen_requests (
  key TEXT PRIMARY KEY,
  expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_requests_expiry ON seen_requests (expires_at);
"""

REPLAY_WINDOW_S = 300
"""How far from now a signed request's timestamp may be (Slack's rule), so how long its
signature and trigger_id are remembered to refuse a replay."""
RouteFn = Callable[[Alert], tuple[list[Route], list[Unroutable]]]
T = TypeVar("T")
GROUP_COMMIT_MAX = 256


class Outcome(StrEnum):
    """What became of one alert of a delivery, as the deliveries table keeps it."""

    STARTED = "started"
    JOINED = "joined"
    RESOLVED = "resolved"
    UNMATCHED = "unmatched"
    UNROUTABLE = "unroutable"


@dataclass
class Accepted:
    """What one webhook delivery did; the answer the sender gets."""

    started: list[str] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    unmatched: int = 0
    unroutable: list[str] = field(default_factory=list)
    repeated_delivery: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON body of the webhook's answer."""
        return {
            "started": self.started,
            "joined": self.joined,
            "resolved": self.resolved,
            "unmatched": self.unmatched,
            "unroutable": self.unroutable,
            "repeated_delivery": self.repeated_delivery,
        }


def _log_delivery(
    conn: sqlite3.Connection,
    now: str,
    alert: Alert,
    outcome: Outcome,
    incident: str | None,
    runbook: str | None,
    reason: str,
) -> None:
    """Keep what became of one alert, for the audit of what the server was sent."""
    conn.execute(
        "INSERT INTO deliveries (received_at, source, delivery, identity, status, outcome,"
        " incident, runbook, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            now,
            alert.source,
            alert.delivery,
            alert.identity,
            alert.status,
            outcome,
            incident,
            runbook,
            reason,
        ),
    )


def _now() -> str:
    return utc_stamp()


class Intake:
    """The SQLite intake under the engine home; safe across threads and processes."""

    def __init__(self, path: Path, redactor: Redactor | None = None) -> None:
        self.path = path
        self.redactor = redactor or Redactor()
        """Alert payloads are untrusted and may carry secrets and personal data: both are
        redacted before they are stored (the runbook's own inputs keep what it maps from them)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.wakeup = threading.Event()
        self.on_new_work: list[Callable[[], None]] = []
        """Called after work is committed: a worker in another process may be told here."""
        self._pending: queue.SimpleQueue[
            tuple[Callable[[sqlite3.Connection], Any], Future[Any]]
        ] = queue.SimpleQueue()
        self._committer: threading.Thread | None = None
        self._committer_lock = threading.Lock()
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        # synchronous=FULL: committed means on disk, and we answer only after the commit.
        return connection(self.path)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with connection(self.path) as conn, transaction(conn):
            yield conn

    def accept_alerts(
        self, source: str, alerts: list[Alert], route: RouteFn, delivery: str | None = None
    ) -> Accepted:
        """Record a delivery's alerts, join or open incidents, queue their jobs; all or nothing.

        Returns once the transaction is committed and on disk.
        """
        routed = [(alert, *route(alert)) for alert in alerts]  # pure work, outside the lock
        accepted = self._commit(lambda conn: self._record(conn, source, routed, delivery))
        if accepted.started or accepted.resolved:
            self.new_work()
        return accepted

    def _record(
        self,
        conn: sqlite3.Connection,
        source: str,
        routed: list[tuple[Alert, list[Route], list[Unroutable]]],
        delivery: str | None,
    ) -> Accepted:
        accepted = Accepted()
        now = _now()
        if delivery is not None:
            seen = conn.execute(
                "INSERT OR IGNORE INTO deliveries (received_at, source, delivery, outcome)"
                " VALUES (?, ?, ?, 'delivery')",
                (now, source, delivery),
            )
            if seen.rowcount == 0:  # the sender retried a delivery we already have
                accepted.repeated_delivery = True
                return accepted
        for alert, routes, failures in routed:
            self._accept_one(conn, alert, routes, failures, accepted, now)
        return accepted

    def _commit(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` inside the next group commit and wait until that commit is on disk.

        Concurrent webhooks share one transaction and one fsync instead of queueing for one
        each: the answer still waits for durability, but a storm no longer serializes on it.
        Each piece of work runs under its own savepoint, so one failing undoes only itself.
        """
        future: Future[T] = Future()
        with self._committer_lock:
            if self._committer is None:
                self._committer = threading.Thread(
                    target=self._commit_loop, name="runbook-intake-commit", daemon=True
                )
                self._committer.start()
        self._pending.put((work, future))
        return future.result()

    def _commit_loop(self) -> None:
        conn = open_durable(self.path)
        while True:
            batch = [self._pending.get()]
            while len(batch) < GROUP_COMMIT_MAX:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for work, future in batch:
                    conn.execute("SAVEPOINT item")
                    try:
                        result = work(conn)
                    except Exception as error:  # handed to its own caller below
                        conn.execute("ROLLBACK TO item")
                        outcomes.append((future, None, error))
                    else:
                        outcomes.append((future, result, None))
                    conn.execute("RELEASE item")
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                for _, future in batch:
                    future.set_exception(error)
                continue
            for future, result, failure in outcomes:
                if failure is not None:
                    future.set_exception(failure)
                else:
                    future.set_result(result)

    def _accept_one(
        self,
        conn: sqlite3.Connection,
        alert: Alert,
        routes: list[Route],
        failures: list[Unroutable],
        accepted: Accepted,
        now: str,
    ) -> None:
        def log(
            outcome: Outcome, incident: str | None, runbook: str | None, reason: str = ""
        ) -> None:
            _log_delivery(conn, now, alert, outcome, incident, runbook, reason)

        for failure in failures:
            accepted.unroutable.append(f"{failure.runbook.id}: {failure.reason}")
            log(Outcome.UNROUTABLE, None, failure.runbook.id, failure.reason)
        if not routes and not failures:
            accepted.unmatched += 1
            log(Outcome.UNMATCHED, None, None)
        for found in routes:
            key = f"{alert.source}|{alert.identity}|{found.runbook.id}"
            row = conn.execute("SELECT incident FROM incidents WHERE key = ?", (key,)).fetchone()
            if alert.status == "resolved":
                if row is None:
                    accepted.unmatched += 1
                    log(Outcome.UNMATCHED, None, found.runbook.id, "resolved before it fired here")
                    continue
                first = conn.execute(
                    "UPDATE incidents SET resolved_at = ? WHERE key = ? AND resolved_at IS NULL",
                    (now, key),
                )
                accepted.resolved.append(row[0])
                if first.rowcount == 0:
                    # Senders repeat resolutions (and anyone can replay one): record it once.
                    log(Outcome.RESOLVED, row[0], found.runbook.id, "already resolved")
                    continue
                self._queue(conn, JobKind.RESOLVED, row[0], found, {"alert": self._stored(alert)})
                log(Outcome.RESOLVED, row[0], found.runbook.id)
            elif row is not None:
                accepted.joined.append(row[0])
                log(Outcome.JOINED, row[0], found.runbook.id)
            else:
                incident = new_incident_id(found.runbook.id)
                conn.execute(
                    "INSERT INTO incidents (key, incident, runbook, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (key, incident, found.runbook.id, now),
                )
                payload = {"inputs": found.inputs, "alert": self._stored(alert)}
                self._queue(conn, JobKind.START, incident, found, payload)
                accepted.started.append(incident)
                log(Outcome.STARTED, incident, found.runbook.id)

    def _stored(self, alert: Alert) -> dict[str, Any]:
        """The alert as jobs keep it: its template context, secrets and personal data redacted."""
        context, _ = self.redactor.redact(alert.template_context(), personal=True)
        return dict(context)

    @staticmethod
    def _queue(
        conn: sqlite3.Connection,
        kind: JobKind,
        incident: str,
        route: Route,
        payload: dict[str, Any],
    ) -> None:
        conn.execute(
            "INSERT INTO jobs (kind, incident, runbook_path, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (kind, incident, str(route.runbook.path), json.dumps(payload), _now()),
        )

    def first_sighting(self, keys: list[str], until: float, now: float | None = None) -> bool:
        """Remember these request keys until `until` (Unix time); False when one was seen before.

        A signed request stays valid for the signature's window, so whoever captured one could
        send it again until then: its signature (and Slack's trigger_id) is kept that long, on
        disk, so another worker thread, process or a restarted server refuses the copy too.
        """
        current = time.time() if now is None else now

        def remember(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM seen_requests WHERE expires_at < ?", (current,))
            fresh = True
            for key in keys:
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO seen_requests (key, expires_at) VALUES (?, ?)",
                    (key, until),
                )
                fresh = fresh and inserted.rowcount == 1
            return fresh

        return self._commit(remember)

    def enqueue(
        self, kind: JobKind, incident: str, runbook_path: str, payload: dict[str, Any]
    ) -> int:
        """Queue a job that did not come from an alert (a Slack command, a gate button)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO jobs (kind, incident, runbook_path, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (kind, incident, runbook_path, json.dumps(payload), _now()),
            )
        self.new_work()
        return int(cursor.lastrowid or 0)

    def new_work(self) -> None:
        """Wake the workers: in this process, and wherever `on_new_work` reaches."""
        self.wakeup.set()
        for notify in self.on_new_work:
            notify()

    def claim(self) -> Job | None:
        """Take the oldest pending job whose incident has no job running, or None."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id, kind, incident, runbook_path, payload FROM jobs"
                " WHERE state = ? AND incident NOT IN"
                " (SELECT incident FROM jobs WHERE state = ?)"
                " ORDER BY id LIMIT 1",
                (JobState.PENDING, JobState.RUNNING),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = ?, attempts = attempts + 1 WHERE id = ?",
                (JobState.RUNNING, row[0]),
            )
        return Job(row[0], JobKind(row[1]), row[2], row[3], json.loads(row[4]))

    def finish(self, job_id: int, error: str | None = None) -> None:
        """Mark a job done (or failed, with the reason)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                (JobState.FAILED if error else JobState.DONE, error, _now(), job_id),
            )

    def recover(self) -> int:
        """Put jobs a stopped server left running back in the queue; return how many are queued."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ? WHERE state = ?", (JobState.PENDING, JobState.RUNNING)
            )
        pending = self.count_jobs(JobState.PENDING)
        if pending:
            self.wakeup.set()
        return pending

    def count_jobs(self, state: JobState) -> int:
        """How many jobs are in this state."""
        with self._connect() as conn:
            return int(
                conn.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0]
            )

    def incidents(self) -> list[tuple[str, str, str]]:
        """(key, incident, runbook) of every incident opened from alerts."""
        with self._connect() as conn:
            return [tuple(r) for r in conn.execute("SELECT key, incident, runbook FROM incidents")]
