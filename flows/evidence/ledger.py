"""The evidence ledger writer: one append-only, hash-chained JSON-lines file per incident.

`Ledger.record` runs one structlog pipeline, under the ledger lock, whose processors are plain
functions, each testable alone, applied in this order:

1. `to_plain_json`: `data` becomes plain JSON values, in a copy (tuples to lists, datetimes to
   text), so the redactor sees every string in it;
2. `Ledger.redact_data`: the redactor replaces secrets in that copy and counts them in
   `data["redactions"]`;
3. `add_timestamp`: the time, UTC with microseconds;
4. `chain_record`: the record's fields in their order, `seq` and `prev` from the head the
   ledger read under the lock, and its own `hash`;
5. `render_line`: the one line it is stored as.

The sink, `FsyncSink`, appends the line and fsyncs it; then head.json is moved over it.
records.py defines the format and the hash; verify.py reads a ledger back and checks it.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import structlog
from structlog.typing import EventDict

from flows.errors import Problem, RunbookError
from flows.evidence.records import (
    EMPTY_HEAD,
    HEAD_FILE,
    HEAD_WIDTH,
    LEDGER_FILE,
    RECORD_FIELDS,
    Event,
    Head,
    Record,
    RunbookRef,
    parse_head,
    record_hash,
    record_line,
)
from flows.evidence.redact import Redactor
from flows.evidence.verify import check_chain
from flows.files import write_atomically
from flows.times import utc_stamp

LOCK_FILE = "ledger.lock"
_NO_DATA: Mapping[str, Any] = MappingProxyType({})


def plain_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `data` made of plain JSON values, so the redactor sees every string in it."""
    return json.loads(json.dumps(dict(data), default=_jsonable, ensure_ascii=False))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if callable(getattr(value, "model_dump", None)):
        return value.model_dump(mode="json")
    return str(value)


# -- the pipeline ------------------------------------------------------------------------------


def to_plain_json(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Replace `data` with a copy made of plain JSON values."""
    event_dict["data"] = plain_json(event_dict["data"])
    return event_dict


def add_timestamp(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Stamp the record with the current UTC time, always with microseconds and a Z."""
    event_dict["ts"] = utc_stamp()
    return event_dict


def chain_record(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """The record as it is written: its fields in order, ending with its own `hash`.

    `seq` and `prev` arrive from the ledger, which read them from the head under the lock;
    anything else in the event dict (the `durable` flag) stays out of the record.
    """
    record = {name: event_dict[name] for name in RECORD_FIELDS if name != "hash"}
    record["hash"] = record_hash(record)
    return {"record": record, "durable": event_dict["durable"]}


def render_line(logger: Any, method_name: str, event_dict: EventDict) -> tuple[Any, ...]:
    """The sink's arguments: the record's line, and the record and its durability."""
    return (record_line(event_dict["record"]),), event_dict


class FsyncSink:
    """The pipeline's logger: appends each line and, when durable, fsyncs it before returning."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def msg(
        self, line: bytes, *, record: dict[str, Any], durable: bool
    ) -> tuple[dict[str, Any], int]:
        """Append one newline-ended line; return the record and the bytes written."""
        written = os.write(self.fd, line)
        if written != len(line):
            raise OSError(f"short write to the ledger: {written} of {len(line)} bytes")
        if durable:
            os.fsync(self.fd)
        return record, written


# -- the ledger --------------------------------------------------------------------------------


class Ledger:
    """An incident's evidence ledger, open for appending; safe across threads and processes."""

    def __init__(
        self,
        folder: Path,
        incident: str,
        runbook: RunbookRef,
        redactor: Redactor | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.incident = incident
        self.runbook = runbook
        self.redactor = redactor or Redactor()
        self._closed = False
        self._threads = threading.Lock()
        self._fds: list[int] = []
        try:
            self._lock_fd = self._open(LOCK_FILE, os.O_RDWR | os.O_CREAT)
            with self._locked():
                self._create_if_new()
                self._ledger_fd = self._open(LEDGER_FILE, os.O_RDWR | os.O_APPEND)
                self._head_fd = self._open(HEAD_FILE, os.O_RDWR)
        except BaseException:
            self._close_fds()
            raise
        self._log = structlog.wrap_logger(
            FsyncSink(self._ledger_fd),
            processors=[to_plain_json, self.redact_data, add_timestamp, chain_record, render_line],
            wrapper_class=structlog.BoundLogger,
            incident=incident,
            runbook=runbook.model_dump(),
        )

    def redact_data(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        """Replace secrets in `data` with the ledger's current redactor; count them."""
        # A method, not a processor of its own: the engine widens `self.redactor` during a run
        # (secret outputs), and every later record must be redacted with the widened one.
        data, redactions = self.redactor.redact(event_dict["data"])
        if redactions:
            data["redactions"] = redactions
        event_dict["data"] = data
        return event_dict

    def record(
        self,
        event: Event,
        *,
        step: str | None = None,
        actor: str = "engine",
        data: Mapping[str, Any] = _NO_DATA,
        durable: bool = True,
    ) -> Record:
        """Append one record, fsynced before returning; return it as written (redacted).

        `durable=False` skips the fsync for records that announce rather than conclude (a step
        starting): the next durable record's fsync carries them to disk too, and until then
        the head does not count them, so a power loss can only drop them, never fake a cut.
        """
        if self._closed:
            raise ValueError(f"the ledger in {self.folder} is closed")
        try:
            event = Event(event)  # a caller passing plain text must still name a ledger event
        except ValueError:
            raise ValueError(f"{event!r} is not a ledger event (see Event)") from None
        with self._locked():
            head = self._current_head()
            record, written = self._log.msg(
                event.value,
                seq=head.count + 1,
                prev=head.hash,
                step=step,
                actor=actor,
                data=data,
                durable=durable,
            )
            if durable:
                # The head goes to the page cache only: it may lag the ledger after a power loss,
                # and records past it are accepted when they chain (verify_ledger and
                # _current_head do so). A head AHEAD of the ledger, or naming another hash,
                # means records were cut off or rewritten. close() fsyncs it.
                after = Head(record["seq"], record["hash"], head.size + written)
                os.pwrite(self._head_fd, after.encode(), 0)
        return Record.model_validate(record)

    def close(self) -> None:
        """Flush the head to disk and release the files; further records are refused."""
        if self._closed:
            return
        try:
            os.fsync(self._head_fd)
        finally:
            self._closed = True
            self._close_fds()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _current_head(self) -> Head:
        """Under the lock: where the chain stands, from the head and any whole records past it.

        Records past the head are this writer's or another's non-durable ones, or ones whose
        head a crash kept from disk: they are continued from once they chain on from the head.
        """
        head = parse_head(os.pread(self._head_fd, 2 * HEAD_WIDTH, 0))
        if head is None:
            raise self._refusal(f"{HEAD_FILE}: not a valid head (expected count, hash and size)")
        size = os.fstat(self._ledger_fd).st_size
        if size == head.size:
            return head
        if size < head.size:
            raise self._refusal(
                f"{LEDGER_FILE} is {size} bytes but {HEAD_FILE} says {head.size} (tail truncated?)"
            )
        tail = os.pread(self._ledger_fd, size - head.size, head.size)
        if not tail.endswith(b"\n"):
            # A torn line past the head is a record whose write a crash interrupted: record()
            # never returned for it, so nobody was told it exists. Cut it, then go on.
            whole = tail.rfind(b"\n") + 1
            os.ftruncate(self._ledger_fd, head.size + whole)
            tail = tail[:whole]
        records, problem = check_chain(tail, head.count + 1, head.hash)
        if problem is not None:
            raise self._refusal(problem)
        if not records:
            return head
        return Head(records[-1].seq, records[-1].hash, head.size + len(tail))

    def _open(self, name: str, flags: int) -> int:
        fd = os.open(self.folder / name, flags | os.O_CLOEXEC, 0o644)
        self._fds.append(fd)
        return fd

    def _close_fds(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # flock excludes other open files (processes, other Ledger objects); threads sharing
        # this object share its lock file, so they need the thread lock too.
        with self._threads:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _create_if_new(self) -> None:
        ledger, head = self.folder / LEDGER_FILE, self.folder / HEAD_FILE
        if head.exists() and not ledger.exists():
            raise self._refusal(f"{LEDGER_FILE} is missing but {HEAD_FILE} exists")
        if head.exists():
            return
        if ledger.exists() and ledger.stat().st_size > 0:
            raise RunbookError(
                Problem(
                    head,
                    None,
                    f"{LEDGER_FILE} has records but {HEAD_FILE} is missing",
                    hint="run `runbook evidence verify`; refusing to append to a ledger whose "
                    "length cannot be checked",
                )
            )
        # Created once, durably: the files and their directory entries must survive a power loss.
        fd = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        write_atomically(head, EMPTY_HEAD.encode())
        directory = os.open(self.folder, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _refusal(self, message: str) -> RunbookError:
        return RunbookError(
            Problem(
                self.folder / LEDGER_FILE,
                None,
                f"refusing to append: {message}",
                hint="run `runbook evidence verify` on this incident and preserve the folder",
            )
        )
