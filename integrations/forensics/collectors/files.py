"""The `file` and `log_tail` collectors: copies of files, and the recent end of a log."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel, Field

from flows.errors import StepFailed
from integrations.forensics.collectors.base import (
    SPEC_CONFIG,
    Collected,
    Kit,
    MiB,
    Missed,
    Pieces,
)

BLOCK = 64 * 1024
"""Bytes read per step when walking a log backwards from its end."""

MAX_LINE = MiB
"""A longer log line keeps only its last MiB: a log with no newlines must not be read whole."""

_LEADING_TIME = re.compile(
    r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
)


class FileSpec(BaseModel):
    """Copy files, each hashed as it streams into the store."""

    model_config = SPEC_CONFIG

    type: Literal["file"] = Field(description="Collector kind: `file`.")
    paths: list[str] = Field(
        min_length=1,
        description="Paths or glob patterns (`**` recurses), e.g. `/etc/nginx/*.conf`.",
    )
    max_bytes: int = Field(
        default=100 * MiB, gt=0, description="Bytes copied per file; a longer file is cut there."
    )
    max_files: int = Field(
        default=1000, gt=0, description="Files copied in all; further matches are reported."
    )


class LogTailSpec(BaseModel):
    """Keep the last lines of a log, read backwards from its end."""

    model_config = SPEC_CONFIG

    type: Literal["log_tail"] = Field(description="Collector kind: `log_tail`.")
    path: str = Field(description="The log file, e.g. `/var/log/nginx/error.log`.")
    lines: int = Field(default=1000, gt=0, le=1_000_000, description="Lines kept, the latest.")
    since: datetime | None = Field(
        default=None,
        description="ISO time; lines whose leading timestamp is older are dropped "
        "(lines without one are kept). A time without zone is UTC.",
    )
    grep: str | None = Field(default=None, description="Regular expression a kept line must match.")


def collect_files(spec: FileSpec, kit: Kit) -> Pieces:
    """Copy each matching regular file, up to `max_files`; report patterns that match nothing."""
    left = spec.max_files
    for pattern in spec.paths:
        matches = [p for p in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(p)]
        if not matches:
            yield Missed(pattern, "no file matches")
            continue
        for path in matches[:left]:
            yield _copy(Path(path), spec.max_bytes, kit)
        if len(matches) > left:
            yield Missed(pattern, f"{len(matches) - left} more files than max_files; not copied")
        left = max(0, left - len(matches))


def _copy(path: Path, max_bytes: int, kit: Kit) -> Collected | Missed:
    try:
        stat = path.stat()
        stored = kit.put_file(path, max_bytes)
    except OSError as err:
        return Missed(str(path), err.strerror or str(err))
    facts = {
        "source": str(path.resolve()),
        "source_size": stat.st_size,
        "mtime": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
        "mode": oct(stat.st_mode & 0o7777),
        "uid": stat.st_uid,
        "truncated": stat.st_size > max_bytes,
    }
    return Collected(str(path), stored, facts)


def collect_log_tail(spec: LogTailSpec, kit: Kit) -> Pieces:
    """Store the latest `lines` lines that pass `since` and `grep`, oldest first."""
    try:
        pattern = re.compile(spec.grep) if spec.grep else None
    except re.error as err:
        raise StepFailed(f"grep {spec.grep!r} is not a regular expression: {err}") from err
    since = _as_utc(spec.since) if spec.since else None
    kept: list[bytes] = []
    with open(spec.path, "rb") as log:
        for line in lines_backwards(log):
            text = line.decode("utf-8", errors="replace")
            if since is not None:
                stamp = _leading_time(text)
                # Logs are written in time order: the first older line ends the walk.
                if stamp is not None and stamp < since:
                    break
            if pattern is None or pattern.search(text):
                kept.append(line)
                if len(kept) == spec.lines:
                    break
    kept.reverse()
    data = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in kept)
    facts = {"source": str(Path(spec.path).resolve()), "lines": len(kept)}
    yield Collected(spec.path, kit.put_text(data), facts)


def lines_backwards(log: BinaryIO) -> Iterator[bytes]:
    """The lines of a binary file, last first, read in blocks from the end."""
    position = log.seek(0, os.SEEK_END)
    partial = b""
    at_end = True
    while position > 0:
        step = min(BLOCK, position)
        position -= step
        log.seek(position)
        parts = (log.read(step) + partial).split(b"\n")
        partial = parts[0][-MAX_LINE:]
        whole = parts[1:]
        # At the end of the file, what follows the last newline is empty for a log ending in one.
        if at_end and whole and not whole[-1]:
            whole.pop()
        at_end = False
        yield from reversed(whole)
    if partial:
        yield partial


def _leading_time(text: str) -> datetime | None:
    match = _LEADING_TIME.match(text)
    if match is None:
        return None
    try:
        return _as_utc(datetime.fromisoformat(match.group(1).replace(",", ".")))
    except ValueError:
        return None


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
