"""Ledgers for tests: write a small one, read its lines, rewrite it as someone tampering would."""

from __future__ import annotations

import json
from pathlib import Path

from flows.evidence.ledger import Ledger
from flows.evidence.records import LEDGER_FILE, Event, RunbookRef, record_hash, record_line

RUNBOOK = RunbookRef(id="credential-leak", version=3, sha256="ab" * 32)


def write_ledger(folder: Path, records: int = 5) -> Path:
    """A closed ledger holding `records` records: run.started, then step records."""
    with Ledger(folder, "INC-1", RUNBOOK) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {"service": "api"}})
        for n in range(2, records + 1):
            ledger.record(Event.STEP_STARTED, step=f"step{n}", data={"n": n})
    return folder


def lines(folder: Path) -> list[bytes]:
    """The ledger's lines, newlines kept."""
    return (folder / LEDGER_FILE).read_bytes().splitlines(keepends=True)


def rewrite(folder: Path, new_lines: list[bytes]) -> None:
    """Replace the ledger's content with `new_lines`."""
    (folder / LEDGER_FILE).write_bytes(b"".join(new_lines))


def rehashed(line: bytes, **changes: object) -> bytes:
    """The record on `line` with `changes` applied and a correct hash of its own."""
    record = json.loads(line) | changes
    record["hash"] = record_hash(record)
    return record_line(record)
