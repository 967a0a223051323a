"""Reading a ledger back and checking it: the chain of hashes, then the head.

`verify_ledger` names the first record that breaks the chain (edited, deleted, reordered, not
a record at all) or the head (a cut-off tail, a rewritten last record). The writer uses
`check_chain` too, on records past the head, before it continues a chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flows.errors import Problem, RunbookError
from flows.evidence.records import (
    GENESIS,
    HEAD_FILE,
    LEDGER_FILE,
    RECORD_FIELDS,
    Head,
    Record,
    parse_head,
    record_hash,
)


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify_ledger`: intact or not, and the first bad record when not."""

    ok: bool
    count: int
    head_hash: str | None
    problem: str | None
    bad_seq: int | None
    records: tuple[Record, ...] = field(default=(), compare=False, repr=False)
    """The `count` records that chain, as read: what seal and export work on."""


def read_records(folder: Path, *, skip_unreadable: bool = False) -> list[Record]:
    """All complete records of a folder's ledger, in file order; none when there is no ledger.

    A line that is not a record raises, naming it; with `skip_unreadable` it is left out
    instead, for views of a damaged ledger (a report, `evidence show`), never for deciding
    what the engine does. A torn last line (a write a crash interrupted) is always left out.
    `verify_ledger` reports both.
    """
    path = Path(folder) / LEDGER_FILE
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")[:-1]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(Record.model_validate(json.loads(line)))
        except ValueError:  # not JSON, or JSON that is not a record (ValidationError)
            if skip_unreadable:
                continue
            raise RunbookError(
                Problem(path, number, "not a ledger record", "run `runbook evidence verify`")
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
    head = parse_head(head_path.read_bytes()) if head_path.exists() else None
    if not ledger_path.exists():
        claimed = head.count if head else 0
        missing = f"{LEDGER_FILE} is missing but {HEAD_FILE} records {claimed} records"
        return Verification(False, 0, None, missing, 1 if claimed else None)

    records, broken = check_chain(ledger_path.read_bytes(), 1, GENESIS)
    count = len(records)
    last_hash = records[-1].hash if records else None
    if broken is not None:
        return Verification(False, count, last_hash, broken, count + 1, tuple(records))
    if head is None:
        no_head = (
            f"{HEAD_FILE}: not a valid head (expected count, hash and size)"
            if head_path.exists()
            else f"{HEAD_FILE} is missing (a cut-off tail would go unnoticed)"
        )
        return Verification(False, count, last_hash, no_head, None, tuple(records))
    problem, bad_seq = _compare_head(head, records)
    return Verification(problem is None, count, last_hash, problem, bad_seq, tuple(records))


def _compare_head(head: Head, records: list[Record]) -> tuple[str | None, int | None]:
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
    if head.hash != records[head.count - 1].hash:
        problem = f"record {head.count}: hash differs from the one in {HEAD_FILE} (rewritten?)"
        return problem, head.count
    return None, None


def check_chain(data: bytes, seq: int, prev: str) -> tuple[list[Record], str | None]:
    """Check that the lines in `data` chain on from (`seq`, `prev`): the good records, a problem."""
    lines = data.split(b"\n")
    torn = lines.pop()  # empty when the data ends with a newline, as a whole record does
    records: list[Record] = []
    for line in lines:
        record, problem = _check_record(line, seq, prev)
        if record is None:
            return records, f"record {seq}: {problem}"
        records.append(record)
        seq, prev = seq + 1, record.hash
    if torn:
        return records, f"record {seq}: last line is incomplete (torn write or truncated file)"
    return records, None


def _check_record(line: bytes, seq: int, prev: str) -> tuple[Record | None, str]:
    """The record on `line` if it is record `seq` following `prev`; otherwise what is wrong."""
    try:
        raw: Any = json.loads(line)
    except ValueError:
        return None, "not valid JSON"
    if not isinstance(raw, dict):
        return None, "not a JSON object"
    missing = [field for field in RECORD_FIELDS if field not in raw]
    if missing:
        return None, f"not a ledger record (missing {', '.join(missing)})"
    # The hash is checked on the values exactly as they were read, before anything else.
    if raw["hash"] != record_hash(raw):
        return None, "hash does not match its contents (edited?)"
    if raw["seq"] != seq:
        return None, f"found seq {raw['seq']} in its place (record deleted or reordered?)"
    if raw["prev"] != prev:
        return None, f"prev does not match the hash of record {seq - 1} (deleted or reordered?)"
    try:
        return Record.model_validate(raw), ""
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return None, f"not a ledger record ({where}: {first['msg']})"
