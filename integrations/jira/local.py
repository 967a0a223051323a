"""The embedded ticket store: a SQLite file standing in for Jira on a machine with no accounts.

Each call opens its own connection, so Prefect's worker threads and other processes can share
the file; WAL keeps readers off writers' backs. Writes run in `BEGIN IMMEDIATE` transactions:
the dedupe lookup, the per-project counter and the insert happen under one lock, so neither a
crash nor a concurrent retry can leave two tickets for one step or a ticket without its key.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from integrations.jira import TicketNotFound
from integrations.protocols import NewTicket, Ticket

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    key TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    number INTEGER NOT NULL,
    summary TEXT NOT NULL,
    description TEXT NOT NULL,
    issue_type TEXT NOT NULL,
    priority TEXT,
    labels TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'Open',
    incident TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project, number)
);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issue TEXT NOT NULL REFERENCES tickets (key),
    body TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issue TEXT NOT NULL REFERENCES tickets (key),
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


class StoredTicket(Ticket):
    """A ticket in the local store, with the project and incident it belongs to."""

    project: str
    incident: str


class StoredComment(BaseModel):
    """A comment on a ticket in the local store."""

    model_config = ConfigDict(frozen=True)

    id: str
    issue: str
    body: str
    created_at: str


class LocalTicketStore:
    """A `TicketSystem` on a local SQLite file: keys like SEC-1 numbered per project."""

    name = "local"

    def __init__(self, path: Path, base_url: str = "local://tickets") -> None:
        self._path = path
        self._base_url = base_url.rstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)

    def create_issue(self, ticket: NewTicket, dedupe_key: str) -> StoredTicket:
        """Open a ticket, or return the one already opened under `dedupe_key`."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT * FROM tickets WHERE dedupe_key = ?", (dedupe_key,)
            ).fetchone()
            if row is not None:
                return self._ticket(row)
            number = conn.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM tickets WHERE project = ?",
                (ticket.project,),
            ).fetchone()[0]
            now = _now()
            conn.execute(
                "INSERT INTO tickets (key, project, number, summary, description, issue_type,"
                " priority, labels, incident, dedupe_key, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    f"{ticket.project}-{number}",
                    ticket.project,
                    number,
                    ticket.summary,
                    ticket.description,
                    ticket.issue_type,
                    ticket.priority,
                    json.dumps(list(ticket.labels)),
                    ticket.incident,
                    dedupe_key,
                    now,
                    now,
                ),
            )
            return self._ticket(_get(conn, f"{ticket.project}-{number}"))

    def comment(self, issue: str, body: str, dedupe_key: str) -> str:
        """Add a comment (once per `dedupe_key`) and return its id."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id FROM comments WHERE dedupe_key = ?", (dedupe_key,)
            ).fetchone()
            if row is not None:
                return str(row["id"])
            _get(conn, issue)
            now = _now()
            cursor = conn.execute(
                "INSERT INTO comments (issue, body, dedupe_key, created_at) VALUES (?, ?, ?, ?)",
                (issue, body, dedupe_key, now),
            )
            conn.execute("UPDATE tickets SET updated_at = ? WHERE key = ?", (now, issue))
            return str(cursor.lastrowid)

    def transition(self, issue: str, status: str) -> StoredTicket:
        """Move a ticket to `status` and record the move; the status it has is a no-op."""
        with self._transaction() as conn:
            row = _get(conn, issue)
            if row["status"] != status:
                now = _now()
                conn.execute(
                    "INSERT INTO transitions (issue, from_status, to_status, at)"
                    " VALUES (?, ?, ?, ?)",
                    (issue, row["status"], status, now),
                )
                conn.execute(
                    "UPDATE tickets SET status = ?, updated_at = ? WHERE key = ?",
                    (status, now, issue),
                )
                row = _get(conn, issue)
            return self._ticket(row)

    def list_tickets(self) -> list[StoredTicket]:
        """Every ticket in the store, oldest first (for `runbook tickets`)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM tickets ORDER BY created_at, rowid").fetchall()
        return [self._ticket(row) for row in rows]

    def comments(self, issue: str) -> list[StoredComment]:
        """The comments on one ticket, oldest first."""
        with self._connect() as conn:
            _get(conn, issue)
            rows = conn.execute(
                "SELECT * FROM comments WHERE issue = ? ORDER BY id", (issue,)
            ).fetchall()
        return [
            StoredComment(
                id=str(row["id"]), issue=issue, body=row["body"], created_at=row["created_at"]
            )
            for row in rows
        ]

    def _ticket(self, row: sqlite3.Row) -> StoredTicket:
        return StoredTicket(
            key=row["key"],
            url=f"{self._base_url}/{row['key']}",
            summary=row["summary"],
            status=row["status"],
            project=row["project"],
            incident=row["incident"],
        )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # Autocommit mode: transactions are explicit, so BEGIN IMMEDIATE means what it says.
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def _get(conn: sqlite3.Connection, key: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM tickets WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise TicketNotFound(f"no ticket {key} in the local ticket store")
    return row


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
