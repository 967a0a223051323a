"""Bounded samples of JSON lines: the latest rows of a file or a URL, cut to the columns kept.

A prediction log can be far larger than memory. A sample is read from the end of a file (or
kept as a URL streams past) up to its size, and each row is cut to the columns the evidence
keeps as soon as it is parsed, so memory holds the sample and never the log.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flows.errors import StepFailed
from integrations.forensics.collectors.files import lines_backwards

Row = dict[str, Any]
Project = Callable[[Row], Row]
"""Cuts a parsed row to what is kept of it."""

LISTED_COLUMNS = 100
"""Names of dropped columns listed for the record; past this, only that there were more."""


class Columns:
    """Which columns of a row a stored sample keeps as they are, keeps hashed, and drops."""

    def __init__(self, keep: Iterable[str], hashed: Iterable[str], salt: str) -> None:
        self.hash = set(hashed)
        self.keep = set(keep) - self.hash
        self.salt = salt
        self.dropped: set[str] = set()
        self.more_dropped = False

    def project(self, row: Row) -> Row:
        """The row as stored: kept columns as they are, hashed ones hashed, the rest dropped."""
        kept: Row = {}
        for column, value in row.items():
            if column in self.keep:
                kept[column] = value
            elif column in self.hash:
                kept[column] = None if value is None else salted(self.salt, value)
            elif column not in self.dropped:
                # Column names can be unbounded (a key per user): only the first are listed.
                if len(self.dropped) < LISTED_COLUMNS:
                    self.dropped.add(column)
                else:
                    self.more_dropped = True
        return kept

    def described(self) -> dict[str, Any]:
        """The kept, hashed and dropped column names, for the record."""
        return {
            "kept": sorted(self.keep),
            "hashed": sorted(self.hash),
            "dropped": sorted(self.dropped),
            "more_dropped": self.more_dropped,
        }


def salted(salt: str, value: Any) -> str:
    """sha256 of `<salt>:<the value's JSON text>`: with the incident id as salt, the same value
    hashes alike within one incident and differently in another, so samples cannot be joined
    across incidents."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()


def latest_rows(path: Path, sample: int, project: Project) -> tuple[list[Row], int]:
    """The last `sample` JSON objects of a JSON-lines file, oldest first, and lines skipped.

    The file is read backwards from its end and stops at the sample.
    """
    rows: list[Row] = []
    unparsed = 0
    with open(path, "rb") as lines:
        for line in lines_backwards(lines):
            if not line.strip():
                continue
            row = _row(line)
            if row is None:
                unparsed += 1
                continue
            rows.append(project(row))
            if len(rows) == sample:
                break
    rows.reverse()
    return rows, unparsed


def url_rows(url: str, sample: int, project: Project, timeout_s: float) -> tuple[list[Row], int]:
    """The last `sample` JSON objects a URL answers as JSON lines, kept as they stream in, and
    lines skipped; the whole answer may take `timeout_s`."""
    import httpx  # loaded on first use: the catalog must stay cheap to import

    if timeout_s <= 0:  # httpx reads a timeout of 0 as "do not wait at all"
        raise StepFailed("not fetched: the step's timeout_s had run out")
    deadline = time.monotonic() + timeout_s
    kept: deque[Row] = deque(maxlen=sample)
    unparsed = 0
    try:
        with httpx.stream("GET", url, timeout=timeout_s) as response:
            if response.status_code >= 400:
                raise StepFailed(f"GET answered {response.status_code}")
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    raise StepFailed(f"GET took longer than {timeout_s:g} s")
                if not line.strip():
                    continue
                row = _row(line)
                if row is None:
                    unparsed += 1
                else:
                    kept.append(project(row))
    except httpx.HTTPError as err:
        raise StepFailed(f"GET failed: {err}") from err
    return list(kept), unparsed


def shown_url(url: str) -> str:
    """The URL without credentials, query or fragment, which may carry tokens."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _row(line: bytes | str) -> Row | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None
