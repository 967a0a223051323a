"""The durable intake: what triggers handed us, committed to disk before we answer them.

A webhook is acknowledged only after its alerts, their incidents and the jobs they start are
committed in one SQLite transaction (WAL, synchronous=FULL). Workers then run the jobs. A server
killed right after answering loses nothing: on restart, jobs that were pending or running are
run again, and running a start job twice is a resume (finished steps never repeat).
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from flows.engine.routing import Route, Unroutable
from flows.errors import RunbookError
from flows.evidence.incident import new_incident_id
from flows.evidence.redact import Redactor
from flows.sqlite import connection, open_durable, transaction
from flows.times import parse_utc, utc_stamp
from flows.triggers.jobs import Job, JobKind, JobState
from integrations.alerts import Alert, Lifecycle

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
CREATE INDEX IF NOT EXISTS jobs_of_incident ON jobs (incident, state, id);
CREATE TABLE IF NOT EXISTS seen_requests (
  key TEXT PRIMARY KEY,
  expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_requests_expiry ON seen_requests (expires_at);
CREATE TABLE IF NOT EXISTS incident_ids (
  incident TEXT PRIMARY KEY,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
  name TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  beat_at REAL NOT NULL,
  alive INTEGER NOT NULL,
  threads INTEGER NOT NULL,
  error TEXT
);
"""

_JOB_COLUMNS = {
    # Added after the first release: homes made before have a jobs table without them.
    "lease_until": "REAL",
    "owner": "TEXT",
    "not_before": "REAL",
    "outcome": "TEXT",
}

LEASE_S = 60.0
"""How long a claimed job stays its worker's without a renewal: a worker renews its jobs'
leases every few seconds, so a job whose lease ran out lost its worker (a killed process) and
is run again (resume semantics: nothing acts twice)."""
COMMIT_WAIT_S = 10.0
"""How long an answer waits for its commit before it gives up (and answers 503)."""
BUSY_TIMEOUT_S = 5.0
"""How long the intake waits for another process's write lock before the statement fails:
short, so a lock held for a minute is a quick refusal (503, a worker's retry), not a hang."""

REPLAY_WINDOW_S = 300
"""How far from now a signed request's timestamp may be (Slack's rule), so how long its
signature and trigger_id are remembered to refuse a replay."""
RouteFn = Callable[[Alert], tuple[list[Route], list[Unroutable]]]
T = TypeVar("T")
GROUP_COMMIT_MAX = 256


class IntakeUnavailable(Exception):
    """The intake could not commit (disk full, read-only, locked): nothing was recorded.

    The caller answers 503 with Retry-After; the sender's retry finds the intake again once the
    cause is gone (the committer reopens its connection after every failure).
    """


class Outcome(StrEnum):
    """What became of one alert of a delivery, as the deliveries table keeps it."""

    STARTED = "started"
    JOINED = "joined"
    """A repeat of a firing alert, or another event (acknowledged, escalated, updated, fired
    again after it resolved) of an alert an incident is open for."""
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

    def __init__(
        self,
        path: Path,
        redactor: Redactor | None = None,
        *,
        new_id: Callable[[str], str] = new_incident_id,
        commit_wait_s: float = COMMIT_WAIT_S,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.redactor = redactor or Redactor()
        """Alert payloads are untrusted and may carry secrets and personal data: both are
        redacted before they are stored (the runbook's own inputs keep what it maps from them)."""
        self.new_id = new_id
        """Draws a candidate incident id for a runbook; the intake keeps only unused ones."""
        self.commit_wait_s, self.busy_timeout_s = commit_wait_s, busy_timeout_s
        self.wakeup = threading.Event()
        self.on_new_work: list[Callable[[], None]] = []
        """Called after work is committed: a worker in another process may be told here."""
        self._pending: queue.SimpleQueue[
            tuple[Callable[[sqlite3.Connection], Any], Future[Any]]
        ] = queue.SimpleQueue()
        self._committer: threading.Thread | None = None
        self._committer_lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.executescript(_SCHEMA)
                _add_missing_columns(conn)
        except (sqlite3.Error, OSError) as error:
            raise RunbookError(
                f"cannot open the intake database {path}: {error}; check that the engine home"
                " is writable and has free space"
            ) from None

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        # synchronous=FULL: committed means on disk, and we answer only after the commit.
        return connection(self.path, self.busy_timeout_s)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with connection(self.path, self.busy_timeout_s) as conn, transaction(conn):
            yield conn

    def accept_alerts(
        self, source: str, alerts: list[Alert], route: RouteFn, delivery: str | None = None
    ) -> Accepted:
        """Record a delivery's alerts, join or open incidents, queue their jobs; all or nothing.

        Returns once the transaction is committed and on disk; IntakeUnavailable when it could
        not be (nothing of the delivery is recorded then).
        """
        routed = [(alert, *route(alert)) for alert in alerts]  # pure work, outside the lock
        accepted = self._commit(lambda conn: self._record(conn, source, routed, delivery))
        if accepted.started or accepted.resolved or accepted.joined:
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
        A commit that fails, or does not start within `commit_wait_s`, is IntakeUnavailable
        and records nothing.
        """
        future: Future[T] = Future()
        with self._committer_lock:
            if self._committer is None or not self._committer.is_alive():
                self._committer = threading.Thread(
                    target=self._commit_loop, name="runbook-intake-commit", daemon=True
                )
                self._committer.start()
        self._pending.put((work, future))
        try:
            return future.result(timeout=self.commit_wait_s)
        except TimeoutError:
            # Not started yet: cancelled, it never will be. Started: it ends within the busy
            # timeout, committed or not, and its own outcome is the answer.
            if future.cancel():
                raise IntakeUnavailable(
                    f"the intake did not get to this within {self.commit_wait_s:g} s"
                ) from None
            return self._outcome(future)
        except (sqlite3.Error, OSError) as error:
            raise IntakeUnavailable(_cause(error)) from error

    @staticmethod
    def _outcome(future: Future[T]) -> T:
        try:
            return future.result()
        except (sqlite3.Error, OSError) as error:
            raise IntakeUnavailable(_cause(error)) from error

    def _commit_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            batch = [self._pending.get()]
            while len(batch) < GROUP_COMMIT_MAX:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            # A caller that gave up waiting cancelled its work: it must not be recorded.
            batch = [
                (work, future) for work, future in batch if future.set_running_or_notify_cancel()
            ]
            if not batch:
                continue
            outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
            try:
                if conn is None:
                    conn = open_durable(self.path, self.busy_timeout_s)
                conn.execute("BEGIN IMMEDIATE")
                for work, future in batch:
                    conn.execute("SAVEPOINT item")
                    try:
                        result = work(conn)
                    except (sqlite3.Error, OSError):
                        raise  # the storage failed: the whole batch fails below
                    except Exception as error:  # handed to its own caller below
                        conn.execute("ROLLBACK TO item")
                        outcomes.append((future, None, error))
                    else:
                        outcomes.append((future, result, None))
                    conn.execute("RELEASE item")
                conn.execute("COMMIT")
            except (sqlite3.Error, OSError) as error:
                # Disk full, read-only, locked: fail this batch, and open a fresh connection for
                # the next one, so the intake recovers by itself when the cause goes away.
                _close(conn)
                conn = None
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
        """Join what is open for this alert, whatever the routes say; open what it fires for.

        An event of an alert an incident is open for joins that incident even when the runbook's
        `match` names only the firing event (PagerDuty's `incident.triggered`, Datadog's
        `Triggered`): its resolution, acknowledgement or escalation belongs in that incident's
        evidence. Only a firing event opens an incident, one per matching runbook.
        """

        def log(
            outcome: Outcome, incident: str | None, runbook: str | None, reason: str = ""
        ) -> None:
            _log_delivery(conn, now, alert, outcome, incident, runbook, reason)

        for failure in failures:
            accepted.unroutable.append(f"{failure.runbook.id}: {failure.reason}")
            log(Outcome.UNROUTABLE, None, failure.runbook.id, failure.reason)
        lifecycle = alert.lifecycle
        known = {
            row[2]: (row[0], row[1], row[3])
            for row in conn.execute(
                "SELECT key, incident, runbook, resolved_at FROM incidents"
                " WHERE key = ? || '|' || runbook ORDER BY created_at",
                (f"{alert.source}|{alert.identity}",),
            )
        }
        by_runbook = {found.runbook.id: found for found in routes}
        for runbook, (key, incident, resolved_at) in known.items():
            path = str(by_runbook[runbook].runbook.path) if runbook in by_runbook else None
            self._event_of_known(
                conn, alert, key, incident, runbook, path, resolved_at, accepted, now
            )
        opened = 0
        for found in routes:
            if found.runbook.id in known:
                continue
            if lifecycle is not Lifecycle.FIRING:
                continue  # said below, once: only a firing event opens an incident
            key = f"{alert.source}|{alert.identity}|{found.runbook.id}"
            incident = self._new_incident(conn, found.runbook.id, now)
            conn.execute(
                "INSERT INTO incidents (key, incident, runbook, created_at) VALUES (?, ?, ?, ?)",
                (key, incident, found.runbook.id, now),
            )
            payload = {"inputs": found.inputs, "alert": self._stored(alert)}
            self._queue(conn, JobKind.START, incident, str(found.runbook.path), payload)
            accepted.started.append(incident)
            log(Outcome.STARTED, incident, found.runbook.id)
            opened += 1
        if known or opened or failures:
            return
        accepted.unmatched += 1
        if lifecycle is Lifecycle.RESOLVED:
            log(Outcome.UNMATCHED, None, None, "resolved, and no incident is open for it")
        elif lifecycle is not Lifecycle.FIRING:
            log(Outcome.UNMATCHED, None, None, f"{lifecycle}, and no incident is open for it")
        else:
            log(Outcome.UNMATCHED, None, None)

    def _event_of_known(
        self,
        conn: sqlite3.Connection,
        alert: Alert,
        key: str,
        incident: str,
        runbook: str,
        runbook_path: str | None,
        resolved_at: str | None,
        accepted: Accepted,
        now: str,
    ) -> None:
        """One event of an alert incident `incident` is open for: resolve, record, or join."""
        lifecycle = alert.lifecycle
        path = runbook_path or self._runbook_path(conn, incident)
        stored = {"alert": self._stored(alert), "event": str(lifecycle)}
        if lifecycle is Lifecycle.RESOLVED:
            first = conn.execute(
                "UPDATE incidents SET resolved_at = ? WHERE key = ? AND resolved_at IS NULL",
                (now, key),
            )
            accepted.resolved.append(incident)
            if first.rowcount == 0:
                # Senders repeat resolutions (and anyone can replay one): record it once.
                _log_delivery(
                    conn, now, alert, Outcome.RESOLVED, incident, runbook, "already resolved"
                )
                return
            self._queue(conn, JobKind.RESOLVED, incident, path, stored)
            _log_delivery(conn, now, alert, Outcome.RESOLVED, incident, runbook, "")
            return
        accepted.joined.append(incident)
        if lifecycle is Lifecycle.FIRING and resolved_at is None:
            # A repeat notification of a firing alert: nothing new to record.
            _log_delivery(conn, now, alert, Outcome.JOINED, incident, runbook, "")
            return
        if lifecycle is Lifecycle.FIRING:
            conn.execute("UPDATE incidents SET resolved_at = NULL WHERE key = ?", (key,))
            stored["event"] = "fired again"
        self._queue(conn, JobKind.ALERT_EVENT, incident, path, stored)
        _log_delivery(conn, now, alert, Outcome.JOINED, incident, runbook, str(stored["event"]))

    @staticmethod
    def _runbook_path(conn: sqlite3.Connection, incident: str) -> str:
        """The runbook path an incident's first job ran (its runbook matches no longer)."""
        row = conn.execute(
            "SELECT runbook_path FROM jobs WHERE incident = ? ORDER BY id LIMIT 1", (incident,)
        ).fetchone()
        return str(row[0]) if row else ""

    def _new_incident(self, conn: sqlite3.Connection, runbook_id: str, now: str) -> str:
        """A fresh incident id, checked unused against every id this intake ever handed out."""
        for _ in range(100):
            candidate = self.new_id(runbook_id)
            taken = conn.execute(
                "INSERT OR IGNORE INTO incident_ids (incident, created_at) VALUES (?, ?)",
                (candidate, now),
            )
            if taken.rowcount == 1:
                return candidate
        raise RuntimeError(f"no unused incident id for {runbook_id!r} after 100 draws")

    def _stored(self, alert: Alert) -> dict[str, Any]:
        """The alert as jobs keep it: its template context, secrets and personal data redacted."""
        context, _ = self.redactor.redact(alert.template_context(), personal=True)
        return dict(context)

    @staticmethod
    def _queue(
        conn: sqlite3.Connection,
        kind: JobKind,
        incident: str,
        runbook_path: str,
        payload: dict[str, Any],
    ) -> int:
        cursor = conn.execute(
            "INSERT INTO jobs (kind, incident, runbook_path, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (kind, incident, runbook_path, json.dumps(payload), _now()),
        )
        return int(cursor.lastrowid or 0)

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

    def start(
        self, kind: JobKind, runbook_id: str, runbook_path: str, payload: dict[str, Any]
    ) -> str:
        """Open a new incident of `runbook_id` (a Slack command, a drill) and queue its job.

        Returns the incident id, drawn unused in the same transaction that queues the job.
        """

        def work(conn: sqlite3.Connection) -> str:
            incident = self._new_incident(conn, runbook_id, _now())
            self._queue(conn, kind, incident, runbook_path, payload)
            return incident

        incident = self._commit(work)
        self.new_work()
        return incident

    def enqueue(
        self, kind: JobKind, incident: str, runbook_path: str, payload: dict[str, Any]
    ) -> int:
        """Queue a job for a known incident (a resume after a button, a gate's timer)."""
        job = self._commit(lambda conn: self._queue(conn, kind, incident, runbook_path, payload))
        self.new_work()
        return job

    def new_work(self) -> None:
        """Wake the workers: in this process, and wherever `on_new_work` reaches."""
        self.wakeup.set()
        for notify in self.on_new_work:
            notify()

    def claim(self, owner: str = "") -> Job | None:
        """Take the oldest pending job whose incident has no job running or waiting before it.

        The job is leased to `owner` for LEASE_S; `renew` keeps it. A running job whose lease
        ran out lost its worker (the process was killed): it is pending again, and claimed here.
        """
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, owner = NULL, lease_until = NULL"
                " WHERE state = ? AND lease_until IS NOT NULL AND lease_until < ?",
                (JobState.PENDING, JobState.RUNNING, now),
            )
            # An incident's jobs run one at a time and in the order they came: a resolution
            # never runs before the start it follows, even while that start waits (not_before).
            row = conn.execute(
                "SELECT id, kind, incident, runbook_path, payload FROM jobs AS job"
                " WHERE state = ? AND (not_before IS NULL OR not_before <= ?)"
                " AND NOT EXISTS (SELECT 1 FROM jobs AS other WHERE other.incident = job.incident"
                " AND (other.state = ? OR (other.state = ? AND other.id < job.id)))"
                " ORDER BY id LIMIT 1",
                (JobState.PENDING, now, JobState.RUNNING, JobState.PENDING),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = ?, attempts = attempts + 1, owner = ?, lease_until = ?"
                " WHERE id = ?",
                (JobState.RUNNING, owner or _owner(), now + LEASE_S, row[0]),
            )
        return Job(row[0], JobKind(row[1]), row[2], row[3], json.loads(row[4]))

    def renew(self, owner: str, job_ids: list[int]) -> None:
        """Extend the leases of the jobs `owner` is running."""
        if not job_ids:
            return
        marks = ", ".join("?" for _ in job_ids)
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET lease_until = ? WHERE owner = ? AND state = ?"
                f" AND id IN ({marks})",
                (time.time() + LEASE_S, owner, JobState.RUNNING, *job_ids),
            )

    def finish(self, job_id: int, error: str | None = None) -> None:
        """Mark a job done (or failed, with the reason)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, error = ?, finished_at = ?, owner = NULL,"
                " lease_until = NULL WHERE id = ?",
                (JobState.FAILED if error else JobState.DONE, error, _now(), job_id),
            )

    def record_outcome(self, job_id: int, outcome: str) -> None:
        """Note how a job's work ended where it ran (its Prefect flow runs), beside its state."""
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET outcome = ? WHERE id = ?", (outcome, job_id))

    def postpone(self, job_id: int, delay_s: float, reason: str) -> None:
        """Put a job back in the queue, to be claimed no sooner than `delay_s` from now."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, error = ?, owner = NULL, lease_until = NULL,"
                " not_before = ? WHERE id = ?",
                (JobState.PENDING, reason, time.time() + delay_s, job_id),
            )

    def release(self, owner_prefix: str) -> int:
        """Queue again the running jobs of owners named `owner_prefix...` (a dead process)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = ?, owner = NULL, lease_until = NULL"
                " WHERE state = ? AND substr(owner, 1, ?) = ?",
                (JobState.PENDING, JobState.RUNNING, len(owner_prefix), owner_prefix),
            )
        if cursor.rowcount:
            self.new_work()
        return int(cursor.rowcount)

    def recover(self) -> int:
        """Put jobs a stopped server left running back in the queue; return how many are queued."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, owner = NULL, lease_until = NULL WHERE state = ?",
                (JobState.PENDING, JobState.RUNNING),
            )
        pending = self.count_jobs(JobState.PENDING)
        if pending:
            self.wakeup.set()
        return pending

    def queued(self, incident: str) -> bool:
        """Whether any job of this incident is pending or running."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT 1 FROM jobs WHERE incident = ? AND state IN (?, ?) LIMIT 1",
                (incident, JobState.PENDING, JobState.RUNNING),
            ).fetchone()
        return row is not None

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

    def beat(self, name: str, *, alive: int, threads: int, error: str | None = None) -> None:
        """A worker pool's heartbeat: how many of its threads are alive, and its last error."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO workers (name, pid, beat_at, alive, threads, error)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, os.getpid(), time.time(), alive, threads, error),
            )

    def gone(self, name: str) -> None:
        """A worker pool stopped on purpose: it no longer counts as down."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM workers WHERE name = ?", (name,))

    def standing(self) -> Standing:
        """What `/healthz` judges: the workers' heartbeats and where the queue stands."""
        now = time.time()
        with self._connect() as conn:
            beats = [
                Beat(name, pid, now - beat_at, alive, threads, error)
                for name, pid, beat_at, alive, threads, error in conn.execute(
                    "SELECT name, pid, beat_at, alive, threads, error FROM workers ORDER BY name"
                )
            ]
            pending, oldest = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE state = ?"
                " AND (not_before IS NULL OR not_before <= ?)",
                (JobState.PENDING, now),
            ).fetchone()
            lapsed = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = ? AND lease_until < ?",
                (JobState.RUNNING, now),
            ).fetchone()[0]
        waited = _age(oldest, now) if oldest else 0.0
        return Standing(beats, int(pending), waited, int(lapsed))

    def probe(self) -> None:
        """Commit one small write through the group committer; IntakeUnavailable if it cannot."""
        self._commit(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO workers (name, pid, beat_at, alive, threads, error)"
                " VALUES ('probe', ?, ?, 0, 0, NULL)",
                (os.getpid(), time.time()),
            )
        )


@dataclass(frozen=True)
class Beat:
    """One worker pool's last heartbeat."""

    name: str
    pid: int
    age_s: float
    alive: int
    threads: int
    error: str | None


@dataclass(frozen=True)
class Standing:
    """The intake's picture of its workers and queue, for `/healthz`."""

    beats: list[Beat]
    pending: int
    oldest_pending_s: float
    """How long the oldest job that may run now has waited."""
    lapsed: int
    """Running jobs whose lease ran out (their worker died; the next claim takes them)."""


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    have = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    for name, kind in _JOB_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")


def _owner() -> str:
    return f"{os.getpid()}:{threading.current_thread().name}"


def _age(stamp: str, now: float) -> float:
    return max(0.0, now - parse_utc(stamp).timestamp())


def _cause(error: BaseException) -> str:
    return f"the intake could not commit: {error}"


def _close(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        with suppress(sqlite3.Error):
            conn.close()
