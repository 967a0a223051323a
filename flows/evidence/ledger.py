"""The evidence ledger: one append-only, hash-chained JSON-lines file per incident.

Records pass through a structlog pipeline (timestamp, JSON types, redaction, chaining, render)
into a sink that fsyncs each line before `record()` returns. `head.json` beside the ledger holds
the record count and last hash, so a cut-off tail is caught. The chain proves the order and
content of what is there; it has no secret key, so a full rewrite of ledger and head together is
caught only against an exported copy of the head hash (the evidence bundle's manifest).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import structlog

from flows.errors import Problem, RunbookError
from flows.evidence.fsync import PendingFsync, begin_fsync
from flows.evidence.redact import Redactor
from flows.files import write_atomically

LEDGER_FILE = "ledger.jsonl"
HEAD_FILE = "head.json"
LOCK_FILE = "ledger.lock"
GENESIS = "0" * 64
"""The `prev` of record 1."""

RUN_STARTED = "run.started"
RUN_FINISHED = "run.finished"
RUN_RESUMED = "run.resumed"
STEP_STARTED = "step.started"
STEP_SUCCEEDED = "step.succeeded"
STEP_FAILED = "step.failed"
STEP_SKIPPED = "step.skipped"
STEP_RETRIED = "step.retried"
GATE_WAITING = "gate.waiting"
GATE_ACKNOWLEDGED = "gate.acknowledged"
NOTE = "note"

RECORD_KEYS = ("seq", "ts", "incident", "runbook", "step", "event", "actor", "data", "prev")
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$")
_NO_DATA: Mapping[str, Any] = MappingProxyType({})
# The head is rewritten in place at a fixed width: its size never changes after creation, so an
# update is one pwrite inside one disk block and never leaves a half-old, half-new file.
_HEAD_WIDTH = 256


@dataclass(frozen=True)
class RunbookRef:
    """Which runbook, at which version and content hash, produced the records."""

    id: str
    version: int
    sha256: str


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify_ledger`: intact or not, and the first bad record when not."""

    ok: bool
    count: int
    head_hash: str | None
    problem: str | None
    bad_seq: int | None


def canonical_json(record: Mapping[str, Any]) -> str:
    """The exact text a record's hash is computed over: sorted, compact, non-ASCII kept."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(record: Mapping[str, Any], *, floats: bool | None = None) -> bytes:
    """`canonical_json` as UTF-8, by orjson wherever the two give the same bytes.

    `floats` says whether the record holds a float, when the caller already knows."""
    # orjson writes the same sorted, compact UTF-8 for strings, integers, booleans and null, at
    # a tenth of the cost; floats it spells differently (1e-7 for 1e-07, null for NaN), and it
    # refuses integers past 64 bits, so those records take the reference encoder.
    if not (_holds_float(record) if floats is None else floats):
        try:
            return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    return canonical_json(record).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of the record without its `hash` key."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def _holds_float(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return any(_holds_float(item) for item in value.values())
    if kind is list:
        return any(_holds_float(item) for item in value)
    return kind is float


# -- the structlog pipeline ------------------------------------------------------------------


def add_timestamp(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Stamp the record with the current UTC time, always with microseconds."""
    # isoformat() alone drops the fraction when it is zero; timespec keeps the width fixed.
    event_dict["ts"] = datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    return event_dict


def to_json_types(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Turn `data` into plain JSON values, before redaction, so every string in it is checked."""
    data = event_dict["data"]
    if type(data) is dict and _plain(data):
        return event_dict  # already plain; redaction copies it, so the caller's dict is safe
    text = json.dumps(dict(data), default=_jsonable, ensure_ascii=False)
    event_dict["data"] = json.loads(text)
    return event_dict


def _plain(value: Any) -> bool:
    """True when `value` is already what a JSON round trip would give back."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return False


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


class RedactData:
    """Replace secrets in `data`; the count goes into data["redactions"] when there were any."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        data, count = self.redactor.redact(event_dict["data"])
        if count:
            data["redactions"] = count
        event_dict["data"] = data
        return event_dict


class ChainRecords:
    """Give the record its place in the chain: `seq`, `prev` and its own `hash`.

    The ledger sets `seq` and `prev` from the head it read under the lock; `last` is the record
    as it will be written, and `render` (the pipeline's last step) writes it as one line.
    """

    def __init__(self) -> None:
        self.seq = 1
        self.prev = GENESIS
        self.last: dict[str, Any] = {}
        self._floats = False  # whether `last` holds a float: hashing and rendering both ask

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        record = {
            "seq": self.seq,
            **{key: event_dict[key] for key in RECORD_KEYS[1:-1]},
            "prev": self.prev,
        }
        self._floats = _holds_float(record)
        # The record has no hash yet, so its canonical form is the one `record_hash` checks.
        record["hash"] = hashlib.sha256(canonical_bytes(record, floats=self._floats)).hexdigest()
        self.last = record
        return record

    def render(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> bytes:
        """One compact JSON line; JSON escapes newlines, so a record can never span two lines."""
        # The line is read back with json.loads and hashed canonically again, so it only has to
        # parse to the same values: orjson's spelling of a float would too, but NaN would not.
        if not self._floats:
            try:
                return orjson.dumps(event_dict, option=orjson.OPT_APPEND_NEWLINE)
            except orjson.JSONEncodeError:
                pass
        line = json.dumps(event_dict, separators=(",", ":"), ensure_ascii=False)
        return (line + "\n").encode()


class FsyncSink:
    """The pipeline's logger: appends each line and fsyncs it before returning."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = 0
        self.durable = True

    def msg(self, payload: bytes) -> None:
        """Append one newline-ended line and, when durable, wait until it is on disk."""
        self.written = os.write(self.fd, payload)
        if self.written != len(payload):
            raise OSError(f"short write to the ledger: {self.written} of {len(payload)} bytes")
        if self.durable:
            os.fsync(self.fd)


# -- the ledger ------------------------------------------------------------------------------


class PendingRecord:
    """A record already in the ledger file whose fsync is under way (`Ledger.record_soon`)."""

    def __init__(
        self, record: dict[str, Any], ledger: Ledger, fsync: PendingFsync, base: _Head, after: _Head
    ) -> None:
        self.record = record
        self._ledger = ledger
        self._fsync = fsync
        self._span = (base, after)
        self._done = False

    def wait(self) -> dict[str, Any]:
        """Block until the record is on disk; return it. The next append moves the head."""
        if not self._done:
            self._fsync.wait()
            self._done = True
            self._ledger._flushed(*self._span)
        return self.record


@dataclass(frozen=True)
class _Head:
    count: int
    hash: str
    size: int

    def encode(self) -> bytes:
        text = f'{{"count": {self.count}, "hash": "{self.hash}", "size": {self.size}}}'
        return (text.ljust(_HEAD_WIDTH - 1) + "\n").encode()


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
        self._closed = False
        self._threads = threading.Lock()
        # What this object last wrote to the head: when the head still holds exactly these bytes,
        # nobody appended in between and parsing it again can be skipped.
        self._head_bytes = b""
        self._head = _Head(0, GENESIS, 0)
        # Where the chain stands after this object's own non-durable records, which the head
        # does not count yet: used while nobody else has appended, so they are not re-read.
        self._unheaded: tuple[_Head, _Head] | None = None  # (head on disk, head after them)
        self._fds: list[int] = []
        self._pending: PendingRecord | None = None
        self._durable: tuple[_Head, _Head] | None = None  # flushed, not yet counted by the head
        try:
            self._lock_fd = self._open(LOCK_FILE, os.O_RDWR | os.O_CREAT)
            with self._locked():
                self._create_if_new()
                self._ledger_fd = self._open(LEDGER_FILE, os.O_RDWR | os.O_APPEND)
                self._head_fd = self._open(HEAD_FILE, os.O_RDWR)
        except BaseException:
            self._close_fds()
            raise
        self._chain = ChainRecords()
        self._sink = FsyncSink(self._ledger_fd)
        processors = [
            add_timestamp,
            to_json_types,
            RedactData(redactor or Redactor()),
            self._chain,
            self._chain.render,
        ]
        self._log = structlog.wrap_logger(
            self._sink,
            processors=processors,
            wrapper_class=structlog.BoundLogger,
            incident=incident,
            runbook=asdict(runbook),
        ).bind()

    def record(
        self,
        event: str,
        *,
        step: str | None = None,
        actor: str = "engine",
        data: Mapping[str, Any] = _NO_DATA,
        durable: bool = True,
    ) -> dict[str, Any]:
        """Append one record, fsynced before returning; return it as written (redacted).

        `durable=False` skips the fsync for records that announce rather than conclude (a step
        starting): the next durable record's fsync carries them to disk too, and until then
        the head does not count them, so a power loss can only drop them, never fake a cut.
        """
        self._check_open(event)
        with self._locked():
            return self._append(event, step, actor, data, durable)[0]

    def record_soon(
        self,
        event: str,
        *,
        step: str | None = None,
        actor: str = "engine",
        data: Mapping[str, Any] = _NO_DATA,
    ) -> PendingRecord:
        """Append one record and start its fsync; `wait()` on the result returns once it is on disk.

        The caller does other work in between and must not act on the record before `wait()`
        returns. Until then the record stands as a non-durable one: the head does not count it.
        """
        self._check_open(event)
        with self._locked():
            record, base, after = self._append(event, step, actor, data, durable=False)
            self._pending = PendingRecord(record, self, begin_fsync(self._ledger_fd), base, after)
        return self._pending

    def _append(
        self, event: str, step: str | None, actor: str, data: Mapping[str, Any], durable: bool
    ) -> tuple[dict[str, Any], _Head, _Head]:
        """Write one record, under the lock: the record, the head before it and after it."""
        # Another process may have appended since our last record: the head on disk, read
        # under the lock, is the only truth about where the chain continues. Nobody appends
        # without growing the ledger, so while it is the size this object left it, the head
        # on disk is the one this object last saw or wrote, and reading it again is skipped.
        size = os.fstat(self._ledger_fd).st_size
        on_disk = self._count_durable(self._head_as_left(size) or self._read_head())
        head = self._settle(on_disk, size)
        self._chain.seq, self._chain.prev = head.count + 1, head.hash
        self._sink.durable = durable
        self._log.msg(event, step=step, actor=actor, data=data)
        record = self._chain.last
        after = _Head(record["seq"], record["hash"], head.size + self._sink.written)
        if not durable:
            self._unheaded = (on_disk, after)
            return record, on_disk, after
        self._unheaded = None
        # The line is fsynced, the head only written to the page cache: a second fsync would
        # halve throughput, and the head may safely lag. After a power loss a lagging head
        # means the records past it are accepted when they chain (verify_ledger and `_settle`
        # do so); only a head AHEAD of the ledger, or not matching the record at its count,
        # means records were cut off or rewritten. The head is fsynced on close.
        self._write_head(after)
        return record, on_disk, after

    def _head_as_left(self, size: int) -> _Head | None:
        """The head on disk as this object last left it, if the ledger is still `size` bytes then.

        After its own non-durable records that is the head they did not move; otherwise the
        head it wrote last. None when the ledger has grown since, or nothing was written yet.
        """
        if self._unheaded is not None:
            seen, after = self._unheaded
            return seen if after.size == size else None
        return self._head if self._head_bytes and self._head.size == size else None

    def _check_open(self, event: str) -> None:
        if self._closed:
            raise ValueError(f"the ledger in {self.folder} is closed")
        if not _EVENT_NAME.match(event):
            raise ValueError(f"event {event!r} is not a dotted lowercase name like 'step.started'")

    def _flushed(self, base: _Head, after: _Head) -> None:
        """Records up to `after` are on disk: the next append or close lets the head count them."""
        # Moving the head here would take the file lock and three more system calls; the
        # append that follows holds the lock anyway. Until then the head lags behind these
        # records as it does behind a non-durable one.
        with self._threads:
            if self._durable is None or after.count > self._durable[1].count:
                self._durable = (base, after)

    def _count_durable(self, on_disk: _Head) -> _Head:
        """Under the lock: move the head over records flushed since; return the head on disk."""
        if self._durable is None:
            return on_disk
        base, after = self._durable
        self._durable = None
        if on_disk != base:
            return on_disk  # a later durable record, ours or another writer's, counts them
        self._write_head(after)
        if self._unheaded is not None and self._unheaded[0] == base:
            newest = self._unheaded[1]
            self._unheaded = None if newest == after else (after, newest)
        return after

    def close(self) -> None:
        """Flush the head to disk and release the files; further records are refused."""
        if self._closed:
            return
        try:
            if self._pending is not None:
                self._pending.wait()  # its fsync still names our file descriptor
            if self._durable is not None:
                with self._locked():
                    self._count_durable(self._read_head())
            os.fsync(self._head_fd)
        finally:
            self._closed = True
            self._close_fds()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
                    0,
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
        write_atomically(head, _Head(0, GENESIS, 0).encode())
        directory = os.open(self.folder, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _read_head(self) -> _Head:
        raw = os.pread(self._head_fd, 2 * _HEAD_WIDTH, 0)
        if raw == self._head_bytes:
            return self._head
        head, problem = _parse_head(raw)
        if head is None:
            raise self._refusal(f"{HEAD_FILE}: {problem}")
        return head

    def _write_head(self, head: _Head) -> None:
        self._head_bytes = head.encode()
        self._head = head
        os.pwrite(self._head_fd, self._head_bytes, 0)

    def _settle(self, head: _Head, size: int) -> _Head:
        """The head to continue from: as read, or advanced over records a crash left unheaded.

        `size` is the ledger's size now, read under the lock."""
        if size == head.size:
            return head
        if self._unheaded is not None:
            base, after = self._unheaded
            if head == base and size == after.size:
                return after
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
            tail, size = tail[:whole], head.size + whole
            if not tail:
                return head
        records, problem = _check_records(tail, head.count + 1, head.hash)
        if problem is not None:
            raise self._refusal(problem)
        # Not written back here: only a durable append moves the head, so the head never counts
        # a record that might not be on disk yet.
        return _Head(records[-1]["seq"], records[-1]["hash"], size)

    def _refusal(self, message: str) -> RunbookError:
        return RunbookError(
            Problem(
                self.folder / LEDGER_FILE,
                0,
                f"refusing to append: {message}",
                hint="run `runbook evidence verify` on this incident and preserve the folder",
            )
        )


# -- reading and verifying -------------------------------------------------------------------


def read_records(folder: Path) -> list[dict[str, Any]]:
    """All complete records of a folder's ledger, in file order; none when there is no ledger.

    A torn last line (a write a crash interrupted) is left out; `verify_ledger` reports it.
    """
    path = Path(folder) / LEDGER_FILE
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")[:-1]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except ValueError:
            raise RunbookError(
                Problem(path, number, "not a valid JSON record", "run `runbook evidence verify`")
            ) from None
    return records


def verify_ledger(folder: Path) -> Verification:
    """Check the chain and the head of a folder's ledger; name the first bad record if any.

    A missing head.json fails verification: without it a cut-off tail would go unnoticed.
    """
    folder = Path(folder)
    ledger_path, head_path = folder / LEDGER_FILE, folder / HEAD_FILE
    if not ledger_path.exists() and not head_path.exists():
        return Verification(False, 0, None, f"no {LEDGER_FILE} in {folder}", None)
    head, head_problem = None, f"{HEAD_FILE} is missing (a cut-off tail would go unnoticed)"
    if head_path.exists():
        head, problem = _parse_head(head_path.read_bytes())
        head_problem = f"{HEAD_FILE}: {problem}"
    if not ledger_path.exists():
        claimed = head.count if head else 0
        problem = f"{LEDGER_FILE} is missing but {HEAD_FILE} records {claimed} records"
        return Verification(False, 0, None, problem, 1 if claimed else None)

    records, problem = _check_records(ledger_path.read_bytes(), 1, GENESIS)
    count = len(records)
    last_hash = records[-1]["hash"] if records else None
    if problem is not None:
        return Verification(False, count, last_hash, problem, count + 1)
    if head is None:
        return Verification(False, count, last_hash, head_problem, None)
    problem, bad_seq = _compare_head(head, records)
    return Verification(problem is None, count, last_hash, problem, bad_seq)


def _compare_head(head: _Head, records: list[dict[str, Any]]) -> tuple[str | None, int | None]:
    # A head behind the ledger is a head a power loss kept from disk: the chain vouches for the
    # records past it. A head ahead of the ledger, or naming another hash, is tampering.
    count = len(records)
    if head.count > count:
        return (
            f"record {count + 1}: missing; {HEAD_FILE} records {head.count} records but the "
            f"ledger holds {count} (tail truncated?)"
        ), count + 1
    if head.count == 0:
        problem = f"{HEAD_FILE} counts no records but names a hash (rewritten?)"
        return (problem, None) if head.hash != GENESIS else (None, None)
    if head.hash != records[head.count - 1]["hash"]:
        return f"record {head.count}: hash differs from the one in {HEAD_FILE} (rewritten?)", (
            head.count
        )
    return None, None


def _check_records(data: bytes, seq: int, prev: str) -> tuple[list[dict[str, Any]], str | None]:
    """Check that the lines in `data` chain on from (seq, prev): the good records and a problem."""
    lines = data.split(b"\n")
    torn = lines.pop()  # empty when the data ends with a newline, as a whole record does
    records: list[dict[str, Any]] = []
    for line in lines:
        record, problem = _check_record(line, seq, prev)
        if problem is not None:
            return records, f"record {seq}: {problem}"
        records.append(record)
        seq, prev = seq + 1, record["hash"]
    if torn:
        return records, f"record {seq}: last line is incomplete (torn write or truncated file)"
    return records, None


def _check_record(line: bytes, seq: int, prev: str) -> tuple[dict[str, Any], str | None]:
    try:
        record = json.loads(line)
    except ValueError:
        return {}, "not valid JSON"
    if not isinstance(record, dict):
        return {}, "not a JSON object"
    missing = [key for key in (*RECORD_KEYS, "hash") if key not in record]
    if missing:
        return record, f"not a ledger record (missing {', '.join(missing)})"
    if record["hash"] != record_hash(record):
        return record, "hash does not match its contents (edited?)"
    if record["seq"] != seq:
        return record, f"found seq {record['seq']} in its place (record deleted or reordered?)"
    if record["prev"] != prev:
        return record, f"prev does not match the hash of record {seq - 1} (deleted or reordered?)"
    return record, None


def _parse_head(raw: bytes) -> tuple[_Head | None, str | None]:
    try:
        fields = json.loads(raw)
        head = _Head(int(fields["count"]), str(fields["hash"]), int(fields["size"]))
    except (ValueError, TypeError, KeyError):
        head = None
    if head is None or head.count < 0 or head.size < 0:
        return None, "not a valid head (expected count, hash and size)"
    return head, None
