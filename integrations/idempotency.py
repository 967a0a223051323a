"""A local map from idempotency keys (incident:step) to what a remote system made for them.

Remote systems without idempotency keys (Jira, Slack) are checked twice before acting: here
first, then in the system itself (a dedupe label, message metadata). This map makes the common
case (a resumed run) one local lookup instead of a remote search.

It also keeps intents: a write about to be sent whose result is not known yet. An intent is
written (and on disk) before the request goes out and cleared when its result is `put`, or
`withdraw`n when the system refused the request. An intent still there on a later attempt
means an earlier one may have made the thing without anyone hearing back: that attempt must
find it rather than make it again.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from flows.sqlite import connection, transaction


class IdempotencyMap:
    """SQLite-backed `(system, key) -> JSON value`; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS made ("
                " system TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                " PRIMARY KEY (system, key))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS intents ("
                " system TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                " PRIMARY KEY (system, key))"
            )

    def get(self, system: str, key: str) -> dict[str, Any] | None:
        """What was made under this key, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT value FROM made WHERE system = ? AND key = ?", (system, key)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, system: str, key: str, value: dict[str, Any]) -> None:
        """Remember what was made under this key (the first value wins); its intent is settled."""
        with self._connect() as conn, transaction(conn):
            conn.execute(
                "INSERT OR IGNORE INTO made (system, key, value) VALUES (?, ?, ?)",
                (system, key, json.dumps(value, sort_keys=True)),
            )
            conn.execute("DELETE FROM intents WHERE system = ? AND key = ?", (system, key))

    def forget(self, system: str, key: str) -> None:
        """Drop what was made under this key (it is gone from the system: it may be made anew)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM made WHERE system = ? AND key = ?", (system, key))

    def intend(self, system: str, key: str, value: dict[str, Any]) -> None:
        """Record (or update) the intent to make something under this key, before sending it."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO intents (system, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (system, key) DO UPDATE SET value = excluded.value",
                (system, key, json.dumps(value, sort_keys=True)),
            )

    def intent(self, system: str, key: str) -> dict[str, Any] | None:
        """The intent recorded under this key and not settled yet, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT value FROM intents WHERE system = ? AND key = ?", (system, key)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def withdraw(self, system: str, key: str) -> None:
        """Drop the intent under this key: the system refused the request and made nothing."""
        with self._connect() as conn:
            conn.execute("DELETE FROM intents WHERE system = ? AND key = ?", (system, key))

    def under(self, system: str, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """(key, value) pairs of `system` whose key starts with `prefix`, oldest first."""
        # substr, not LIKE: `_` in incident ids is a LIKE wildcard.
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT key, value FROM made WHERE system = ? AND substr(key, 1, ?) = ?"
                " ORDER BY rowid",
                (system, len(prefix), prefix),
            ).fetchall()
        return [(key, json.loads(value)) for key, value in rows]

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connection(self.path)
