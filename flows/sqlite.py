"""SQLite as the engine uses it: one short-lived connection per call, explicit transactions.

A connection per call lets threads and processes share a database file; WAL keeps readers off
writers' backs; `synchronous=FULL` makes a committed transaction one that survives a power loss.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_durable(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, fully synchronous.

    `timeout` is how long a statement waits for another connection's lock before it fails.
    """
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextmanager
def connection(path: Path, timeout: float = 30.0) -> Iterator[sqlite3.Connection]:
    """A durable connection for the length of a `with` block."""
    conn = open_durable(path, timeout)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` ... `COMMIT`, rolled back on any exception: the write lock up front."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
