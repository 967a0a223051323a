"""Reading a ledger back and verifying it: every kind of tampering is named at its record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.errors import RunbookError
from flows.evidence.ledger import Ledger
from flows.evidence.records import GENESIS, HEAD_FILE, LEDGER_FILE, Event, Record
from flows.evidence.verify import Verification, read_records, verify_ledger
from tests.flows.evidence.ledgers import RUNBOOK, lines, rehashed, rewrite, write_ledger

# -- reading ---------------------------------------------------------------------------------


def test_records_read_back_in_order_as_records(tmp_path: Path) -> None:
    """Appended records read back in order, 1-based, as typed records with every field."""
    records = read_records(write_ledger(tmp_path, 3))
    assert all(isinstance(r, Record) for r in records)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].runbook == RUNBOOK
    assert (records[0].step, records[1].step) == (None, "step2")
    assert (records[0].incident, records[0].actor) == ("INC-1", "engine")
    assert (records[0].event, records[1].event) == (Event.RUN_STARTED, Event.STEP_STARTED)


def test_each_record_points_at_the_previous_hash(tmp_path: Path) -> None:
    """Record 1's prev is the genesis value; every later prev is its predecessor's hash."""
    records = read_records(write_ledger(tmp_path, 4))
    assert records[0].prev == GENESIS
    assert [r.prev for r in records[1:]] == [r.hash for r in records[:-1]]


def test_a_folder_without_a_ledger_reads_as_no_records(tmp_path: Path) -> None:
    """No ledger file means no records yet, not an error."""
    assert read_records(tmp_path) == []


def test_reading_a_line_that_is_not_a_record_names_it(tmp_path: Path) -> None:
    """A line that does not fit the record format stops reading at that line."""
    folder = write_ledger(tmp_path, 3)
    broken = lines(folder)
    broken[1] = rehashed(broken[1], event="step.exploded")
    rewrite(folder, broken)
    with pytest.raises(RunbookError, match=r"ledger\.jsonl:2: not a ledger record"):
        read_records(folder)


def test_a_view_of_a_damaged_ledger_skips_lines_that_are_not_records(tmp_path: Path) -> None:
    """With skip_unreadable, reading leaves out what is not a record and keeps the rest."""
    folder = write_ledger(tmp_path, 3)
    broken = lines(folder)
    broken[1] = b'{"seq": 2, "ts": "yesterday"}\n'
    rewrite(folder, [*broken, b"{not json\n"])
    assert [r.seq for r in read_records(folder, skip_unreadable=True)] == [1, 3]


# -- verifying -------------------------------------------------------------------------------


def test_a_new_ledger_verifies_with_no_records(tmp_path: Path) -> None:
    """Opening a ledger creates it; an empty ledger is intact."""
    Ledger(tmp_path, "INC-1", RUNBOOK).close()
    assert verify_ledger(tmp_path) == Verification(True, 0, None, None, None)


def test_an_intact_ledger_verifies(tmp_path: Path) -> None:
    """An untouched ledger verifies, reporting its count, last hash and the records."""
    folder = write_ledger(tmp_path, 5)
    result = verify_ledger(folder)
    assert (result.ok, result.count, result.problem) == (True, 5, None)
    assert result.head_hash == read_records(folder)[-1].hash
    assert list(result.hashes) == [record.hash for record in read_records(folder)]


def test_a_planted_giant_line_is_refused_without_being_read_whole(tmp_path: Path) -> None:
    """A 64 MiB line after the records: named, and memory stays far below its size."""
    import tracemalloc

    folder = write_ledger(tmp_path, 3)
    with open(folder / "ledger.jsonl", "ab") as ledger:
        ledger.write(b" " * (64 * 1024 * 1024) + b"\n")
    tracemalloc.start()
    try:
        result = verify_ledger(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not result.ok and result.count == 3
    assert result.problem == "record 4: longer than 16777216 bytes (not a record)"
    assert peak < 40 * 1024 * 1024, peak


def test_an_edited_record_is_named(tmp_path: Path) -> None:
    """Changing a record's content breaks its hash and names that record."""
    folder = write_ledger(tmp_path)
    edited = lines(folder)
    edited[2] = edited[2].replace(b'"step3"', b'"step9"')
    rewrite(folder, edited)
    result = verify_ledger(folder)
    assert not result.ok
    assert result.problem == "record 3: hash does not match its contents (edited?)"
    assert (result.bad_seq, result.count) == (3, 2)


def test_an_edited_float_is_named(tmp_path: Path) -> None:
    """60.0 rewritten as 60 is another value to the hash: the record counts as edited."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(Event.STEP_SUCCEEDED, step="s", data={"outputs": {"timeout_s": 60.0}})
    edited = lines(tmp_path)
    edited[0] = edited[0].replace(b"60.0", b"60")
    rewrite(tmp_path, edited)
    assert verify_ledger(tmp_path).problem == "record 1: hash does not match its contents (edited?)"


def test_an_edited_and_rehashed_record_breaks_the_next_link(tmp_path: Path) -> None:
    """A rewritten record with a fresh hash no longer matches its successor's prev."""
    folder = write_ledger(tmp_path)
    edited = lines(folder)
    edited[1] = rehashed(edited[1], actor="mallory")
    rewrite(folder, edited)
    result = verify_ledger(folder)
    assert result.problem is not None and result.problem.startswith("record 3: prev does not")
    assert result.bad_seq == 3


def test_a_deleted_record_is_named(tmp_path: Path) -> None:
    """Removing a record from the middle is reported at its position."""
    folder = write_ledger(tmp_path)
    rewrite(folder, [line for n, line in enumerate(lines(folder)) if n != 2])
    result = verify_ledger(folder)
    assert not result.ok
    assert result.problem == "record 3: found seq 4 in its place (record deleted or reordered?)"
    assert result.bad_seq == 3


def test_reordered_records_are_named(tmp_path: Path) -> None:
    """Swapping two records is reported at the first position out of order."""
    folder = write_ledger(tmp_path)
    swapped = lines(folder)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    rewrite(folder, swapped)
    result = verify_ledger(folder)
    assert result.problem is not None and result.problem.startswith("record 2: found seq 3")
    assert result.bad_seq == 2


def test_a_truncated_tail_is_caught_by_the_head(tmp_path: Path) -> None:
    """Cutting off whole records at the end leaves fewer records than the head counts."""
    folder = write_ledger(tmp_path)
    rewrite(folder, lines(folder)[:3])
    result = verify_ledger(folder)
    assert not result.ok
    assert result.problem is not None and result.problem.startswith("record 4: missing")
    assert (result.bad_seq, result.count) == (4, 3)


def test_a_replaced_last_record_is_caught_by_the_head(tmp_path: Path) -> None:
    """A last record rewritten with a valid hash no longer matches the hash in the head."""
    folder = write_ledger(tmp_path)
    edited = lines(folder)
    edited[-1] = rehashed(edited[-1], data={"n": 99})
    rewrite(folder, edited)
    result = verify_ledger(folder)
    assert result.problem == f"record 5: hash differs from the one in {HEAD_FILE} (rewritten?)"
    assert result.bad_seq == 5


def test_a_partial_last_line_is_named(tmp_path: Path) -> None:
    """A last line without its newline (a torn write) is reported, and readers skip it."""
    folder = write_ledger(tmp_path)
    path = folder / LEDGER_FILE
    path.write_bytes(path.read_bytes()[:-20])
    result = verify_ledger(folder)
    assert result.problem == "record 5: last line is incomplete (torn write or truncated file)"
    assert result.bad_seq == 5
    assert len(read_records(folder)) == 4


def test_invalid_json_is_named(tmp_path: Path) -> None:
    """A line that is not JSON is reported at its position."""
    folder = write_ledger(tmp_path)
    broken = lines(folder)
    broken[1] = b"{not json\n"
    rewrite(folder, broken)
    result = verify_ledger(folder)
    assert result.problem == "record 2: not valid JSON"
    assert result.bad_seq == 2


def test_a_line_missing_fields_is_named(tmp_path: Path) -> None:
    """A JSON object without the record fields is named with the fields it lacks."""
    folder = write_ledger(tmp_path, 2)
    broken = lines(folder)
    broken[1] = json.dumps({"seq": 2, "event": "note"}).encode() + b"\n"
    rewrite(folder, broken)
    missing = "ts, incident, runbook, step, actor, data, prev, hash"
    assert verify_ledger(folder).problem == f"record 2: not a ledger record (missing {missing})"


def test_a_chained_line_that_is_not_a_record_is_named(tmp_path: Path) -> None:
    """A line that hashes and chains but does not fit the format (an unknown event) fails."""
    folder = write_ledger(tmp_path, 2)
    broken = lines(folder)
    broken[1] = rehashed(broken[1], event="step.exploded")
    rewrite(folder, broken)
    result = verify_ledger(folder)
    assert result.problem is not None
    assert result.problem.startswith("record 2: not a ledger record (event: Input should be")
    assert result.bad_seq == 2


def test_a_missing_ledger_with_a_head_fails(tmp_path: Path) -> None:
    """Deleting the ledger but not the head is reported, with record 1 as the first missing."""
    folder = write_ledger(tmp_path)
    (folder / LEDGER_FILE).unlink()
    result = verify_ledger(folder)
    assert not result.ok
    assert result.problem == f"{LEDGER_FILE} is missing but {HEAD_FILE} records 5 records"
    assert result.bad_seq == 1


def test_a_missing_head_fails(tmp_path: Path) -> None:
    """Without head.json a cut-off tail would go unnoticed, so verification fails."""
    folder = write_ledger(tmp_path)
    (folder / HEAD_FILE).unlink()
    result = verify_ledger(folder)
    assert (result.ok, result.count, result.bad_seq) == (False, 5, None)
    assert result.problem is not None and HEAD_FILE in result.problem


def test_a_folder_without_a_ledger_fails(tmp_path: Path) -> None:
    """A folder with no evidence at all is not reported as intact."""
    assert not verify_ledger(tmp_path).ok


def test_records_past_a_lagging_head_are_accepted_when_they_chain(tmp_path: Path) -> None:
    """A head left behind by a power loss still verifies: the chain vouches for the rest."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        for n in range(3):
            ledger.record(Event.NOTE, data={"n": n})
        stale = (tmp_path / HEAD_FILE).read_bytes()
        ledger.record(Event.NOTE, data={"n": 3})
    (tmp_path / HEAD_FILE).write_bytes(stale)
    result = verify_ledger(tmp_path)
    assert (result.ok, result.count) == (True, 4)
