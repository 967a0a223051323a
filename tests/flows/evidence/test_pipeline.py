"""The ledger's structlog processors, each on its own."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from flows.evidence.ledger import (
    FsyncSink,
    add_timestamp,
    chain_record,
    render_line,
    to_plain_json,
)
from flows.evidence.records import GENESIS, RECORD_FIELDS, record_hash, record_line


def event_dict(**fields: object) -> dict[str, object]:
    """An event dict as the ledger hands it to the pipeline."""
    base: dict[str, object] = {
        "seq": 1,
        "prev": GENESIS,
        "ts": "2026-12-01T21:14:03.000120Z",
        "incident": "inc-1",
        "runbook": {"id": "r", "version": 1, "sha256": "a" * 64},
        "step": "s",
        "event": "note",
        "actor": "engine",
        "data": {},
        "durable": True,
    }
    return {**base, **fields}


def test_plain_json_copies_data_into_json_values() -> None:
    """Tuples become lists and datetimes text, in a copy; the caller's data is untouched."""
    data = {"when": datetime(2026, 12, 1, tzinfo=UTC), "ids": (1, 2)}
    out = to_plain_json(None, "msg", {"data": data})
    assert out["data"] == {"when": "2026-12-01T00:00:00+00:00", "ids": [1, 2]}
    assert data["ids"] == (1, 2)


def test_the_timestamp_is_utc_with_microseconds() -> None:
    """Every record's time has six fractional digits and a Z, even on a whole second."""
    stamped = add_timestamp(None, "msg", {})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(stamped["ts"]))


def test_chain_record_orders_the_fields_and_hashes_them() -> None:
    """The record holds exactly the record fields, in order, and its hash is of the rest."""
    out = chain_record(None, "msg", event_dict(extra="never written"))
    record = out["record"]
    assert tuple(record) == RECORD_FIELDS
    assert record["hash"] == record_hash(record)
    assert out["durable"] is True


def test_render_line_gives_the_sink_the_stored_line() -> None:
    """The sink gets one newline-ended line, the record, and whether to fsync."""
    chained = chain_record(None, "msg", event_dict())
    args, kwargs = render_line(None, "msg", chained)
    assert args == (record_line(chained["record"]),)
    assert kwargs == chained


def test_the_sink_appends_the_line_and_returns_the_record(tmp_path: Path) -> None:
    """FsyncSink writes the line whole and returns the record with the bytes written."""
    fd = os.open(tmp_path / "ledger.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        record, written = FsyncSink(fd).msg(b'{"seq":1}\n', record={"seq": 1}, durable=True)
    finally:
        os.close(fd)
    assert (record, written) == ({"seq": 1}, 10)
    assert (tmp_path / "ledger.jsonl").read_bytes() == b'{"seq":1}\n'
