"""The embedded ticket store: a SQLite file standing in for Jira on a machine with no accounts.

Each call opens its own connection, so Prefect's worker threads and other processes can share
the file; WAL keeps readers off writers' backs. Writes run in `BEGIN IMMEDIATE` transactions:
the dedupe lookup, the per-project counter and the insert happen under one lock, so neither a
crash nor a concurrent retry can leave two tickets for one step or a ticket without its key.
Attachments are copied beside the database, under `attachments/<ticket key>/`.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from flows.contract.ports import NewTicket, Ticket
from flows.sqlite import transaction
from integrations.jira import TicketNotFound, TicketSystemError

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
CREATE TABLE IF NOT EXISTS attachments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issue TEXT NOT NULL REFERENCES tickets (key),
    filename TEXT NOT NULL,
    stored TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issue TEXT NOT NULL REFERENCES tickets (key),
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
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


class StoredAttachment(BaseModel):
    """A file attached to a ticket in the local store, and where its copy is."""

    model_config = ConfigDict(frozen=True)

    id: str
    issue: str
    filename: str
    path: Path


class StoredLink(BaseModel):
    """A web link on a ticket in the local store."""

    model_config = ConfigDict(frozen=True)

    id: str
    issue: str
    url: str
    title: str


class LocalTicketStore:
    """A `TicketSystem` on a local SQLite file: keys like SEC-1 numbered per project."""

    name = "local"

    def __init__(self, path: Path, base_url: str = "local://tickets") -> None:
        self._path = path
        self._folder = path.parent
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

    def attach(self, issue: str, path: Path, dedupe_key: str, filename: str | None = None) -> str:
        """Copy a file to `attachments/<issue>/<id>-<name>` once per `dedupe_key`; return its id."""
        name = filename or path.name
        if Path(name).name != name or name in (".", ".."):
            raise TicketSystemError(f"attachment name {name!r} must be a plain file name")
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id FROM attachments WHERE dedupe_key = ?", (dedupe_key,)
            ).fetchone()
            if row is not None:
                return str(row["id"])
            _get(conn, issue)
            cursor = conn.execute(
                "INSERT INTO attachments (issue, filename, stored, dedupe_key, created_at)"
                " VALUES (?, ?, '', ?, ?)",
                (issue, name, dedupe_key, _now()),
            )
            attachment_id = str(cursor.lastrowid)
            # Named by id: a rolled-back attempt reuses the id and overwrites its own copy.
            stored = Path("attachments") / issue / f"{attachment_id}-{name}"
            (self._folder / stored).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self._folder / stored)
            conn.execute(
                "UPDATE attachments SET stored = ? WHERE id = ?", (stored.as_posix(), attachment_id)
            )
            return attachment_id

    def link(self, issue: str, url: str, title: str, dedupe_key: str) -> str:
        """Add a web link to a ticket (once per `dedupe_key`); return its id."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id FROM links WHERE dedupe_key = ?", (dedupe_key,)
            ).fetchone()
            if row is not None:
                return str(row["id"])
            _get(conn, issue)
            cursor = conn.execute(
                "INSERT INTO links (issue, url, title, dedupe_key, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (issue, url, title, dedupe_key, _now()),
            )
            return str(cursor.lastrowid)

    def check(self) -> str:
        """Say where the store is (it needs no connection or credentials)."""
        return f"local ticket store at {self._path}"

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

    def attachments(self, issue: str) -> list[StoredAttachment]:
        """The files attached to one ticket, oldest first."""
        with self._connect() as conn:
            _get(conn, issue)
            rows = conn.execute(
                "SELECT * FROM attachments WHERE issue = ? ORDER BY id", (issue,)
            ).fetchall()
        return [
            StoredAttachment(
                id=str(row["id"]),
                issue=issue,
                filename=row["filename"],
                path=self._folder / row["stored"],
            )
            for row in rows
        ]

    def links(self, issue: str) -> list[StoredLink]:
        """The web links on one ticket, oldest first."""
        with self._connect() as conn:
            _get(conn, issue)
            rows = conn.execute(
                "SELECT * FROM links WHERE issue = ? ORDER BY id", (issue,)
            ).fetchall()
        return [
            StoredLink(id=str(row["id"]), issue=issue, url=row["url"], title=row["title"])
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
        with self._connect() as conn, transaction(conn):
            yield conn


def _get(conn: sqlite3.Connection, key: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM tickets WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise TicketNotFound(f"no ticket {key} in the local ticket store")
    return row


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
