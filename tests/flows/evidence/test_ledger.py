"""The evidence ledger: chained, fsynced records, tamper detection, crashes and several writers."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.errors import RunbookError
from flows.evidence.ledger import (
    GENESIS,
    HEAD_FILE,
    LEDGER_FILE,
    NOTE,
    RUN_STARTED,
    STEP_STARTED,
    STEP_SUCCEEDED,
    ChainRecords,
    Ledger,
    RedactData,
    RunbookRef,
    Verification,
    add_timestamp,
    read_records,
    verify_ledger,
)
from flows.evidence.redact import REDACTED, Redactor

RUNBOOK = RunbookRef(id="credential-leak", version=3, sha256="ab" * 32)


def write_ledger(folder: Path, records: int = 5) -> Path:
    """A closed ledger holding `records` records: run.started, then step records."""
    with Ledger(folder, "INC-1", RUNBOOK) as ledger:
        ledger.record(RUN_STARTED, data={"inputs": {"service": "api"}})
        for n in range(2, records + 1):
            ledger.record(STEP_STARTED, step=f"step{n}", data={"n": n})
    return folder


def lines(folder: Path) -> list[bytes]:
    return (folder / LEDGER_FILE).read_bytes().splitlines(keepends=True)


def rewrite(folder: Path, new_lines: list[bytes]) -> None:
    (folder / LEDGER_FILE).write_bytes(b"".join(new_lines))


def rehashed(line: bytes, **changes: object) -> bytes:
    """The record on `line` with `changes` applied and a correct hash of its own."""
    record = json.loads(line) | changes
    body = {key: value for key, value in record.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    record["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    return json.dumps(record).encode() + b"\n"


# -- writing and reading ---------------------------------------------------------------------


def test_records_read_back_in_order_with_every_key(tmp_path: Path) -> None:
    """Appended records read back in order, 1-based, with exactly the documented keys."""
    records = read_records(write_ledger(tmp_path, 3))
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {
        "seq", "ts", "incident", "runbook", "step", "event", "actor", "data", "prev", "hash",
    }  # fmt: skip
    assert records[0]["runbook"] == {"id": "credential-leak", "version": 3, "sha256": "ab" * 32}
    assert (records[0]["step"], records[1]["step"]) == (None, "step2")
    assert (records[0]["incident"], records[0]["actor"]) == ("INC-1", "engine")


def test_each_record_points_at_the_previous_hash(tmp_path: Path) -> None:
    """Record 1's prev is the genesis value; every later prev is its predecessor's hash."""
    records = read_records(write_ledger(tmp_path, 4))
    assert records[0]["prev"] == GENESIS
    assert [r["prev"] for r in records[1:]] == [r["hash"] for r in records[:-1]]


def test_hash_is_sha256_of_the_canonical_json_without_hash(tmp_path: Path) -> None:
    """The hash is sha256 over sorted, compact, non-ASCII-escaped JSON of the other keys."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        record = ledger.record(NOTE, actor="alice", data={"note": "Kontrolle prüfen ✓"})
    body = {key: value for key, value in record.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert record["hash"] == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@pytest.mark.parametrize(
    "data",
    [
        {"note": 'tabs\t, quotes ", back\\slash, \x00\x1f\x7f, \u2028, 😀 \uffff'},
        {"ratio": 1e-07, "small": 5e-05, "big": 1e16, "plain": 0.25},
        {"nan": float("nan"), "inf": float("-inf")},
        {"huge": 2**70, "negative": -(2**63)},
        {"nested": [{"b": [1, None, True], "a": {"é": "中"}}]},
    ],
    ids=["escapes", "floats", "non-finite", "big-integers", "nested"],
)
def test_records_hash_and_verify_whatever_values_they_hold(tmp_path: Path, data: dict) -> None:
    """Every value JSON can hold hashes as the reference encoder spells it and verifies."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        record = ledger.record(NOTE, data=data)
    body = {key: value for key, value in record.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert record["hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    # Compared as text: NaN is not equal to itself.
    assert json.dumps(read_records(tmp_path)) == json.dumps([record])
    assert verify_ledger(tmp_path).ok


def test_record_returns_the_record_as_written(tmp_path: Path) -> None:
    """The returned record equals the one stored, data already redacted and JSON-typed."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        returned = ledger.record(
            STEP_SUCCEEDED,
            step="ticket",
            data={"at": datetime(2024, 5, 1, tzinfo=UTC), "path": Path("/x"), "tags": ("a", "b")},
        )
    assert read_records(tmp_path) == [returned]
    assert returned["data"] == {"at": "2024-05-01T00:00:00+00:00", "path": "/x", "tags": ["a", "b"]}


def test_timestamps_are_utc_with_microseconds(tmp_path: Path) -> None:
    """Every `ts` is ISO-8601 UTC with six fractional digits, near the time of the append."""
    before = datetime.now(UTC)
    records = read_records(write_ledger(tmp_path, 3))
    for record in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["ts"])
        stamp = datetime.fromisoformat(record["ts"])
        assert stamp.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)


def test_the_timestamp_keeps_microseconds_when_they_are_zero() -> None:
    """The timestamp processor writes six fractional digits even on a whole second."""
    whole = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)

    class Clock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return whole

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("flows.evidence.ledger.datetime", Clock)
        assert add_timestamp(None, "msg", {})["ts"] == "2024-01-01T12:00:00.000000Z"


def test_the_head_follows_every_append(tmp_path: Path) -> None:
    """head.json holds the count and last hash after each append, before the ledger is closed."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(RUN_STARTED)
        last = ledger.record(NOTE, data={"note": "second"})
        head = json.loads((tmp_path / HEAD_FILE).read_text())
        assert (head["count"], head["hash"]) == (2, last["hash"])


def test_a_new_ledger_verifies_with_no_records(tmp_path: Path) -> None:
    """Opening a ledger creates it; an empty ledger is intact."""
    Ledger(tmp_path, "INC-1", RUNBOOK).close()
    assert verify_ledger(tmp_path) == Verification(True, 0, None, None, None)


def test_an_intact_ledger_verifies(tmp_path: Path) -> None:
    """An untouched ledger verifies, reporting its count and the last record's hash."""
    folder = write_ledger(tmp_path, 5)
    result = verify_ledger(folder)
    assert (result.ok, result.count, result.problem) == (True, 5, None)
    assert result.head_hash == read_records(folder)[-1]["hash"]


def test_event_names_must_be_dotted_lowercase(tmp_path: Path) -> None:
    """An event name that is not a dotted lowercase word is refused."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record("drill.scored")
        with pytest.raises(ValueError, match="event"):
            ledger.record("Step Started")


def test_a_closed_ledger_refuses_records(tmp_path: Path) -> None:
    """Appending after close raises instead of writing without the lock or files."""
    ledger = Ledger(tmp_path, "INC-1", RUNBOOK)
    ledger.close()
    with pytest.raises(ValueError, match="closed"):
        ledger.record(NOTE)


# -- redaction -------------------------------------------------------------------------------

CANARIES = {
    "nested": "canary-nested-5f1e",
    "header": "canary-header-9d2c7b",
    "known": "canary-known-value-77",
    "slack": "xoxb-1111-2222-canaryslack",
    "aws": "AKIACANARY0123456789",
}


def test_canary_secrets_never_reach_the_file(tmp_path: Path) -> None:
    """Secrets in nested data, headers, free text and known values are absent from the bytes."""
    redactor = Redactor(secrets=[CANARIES["known"]])
    with Ledger(tmp_path, "INC-1", RUNBOOK, redactor) as ledger:
        ledger.record(
            STEP_SUCCEEDED,
            step="call",
            data={
                "request": {"auth": {"password": CANARIES["nested"]}},
                "headers": {"Authorization": f"Bearer {CANARIES['header']}"},
                "log": f"posted with {CANARIES['slack']} using key {CANARIES['aws']}",
                "note": f"the input was {CANARIES['known']}",
            },
        )
    content = (tmp_path / LEDGER_FILE).read_bytes()
    for canary in CANARIES.values():
        assert canary.encode() not in content
    assert verify_ledger(tmp_path).ok


def test_the_number_of_redactions_is_recorded(tmp_path: Path) -> None:
    """data["redactions"] counts the replacements, and is absent when nothing was redacted."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        dirty = ledger.record(NOTE, data={"token": "t-123", "text": "password=hunter22"})
        clean = ledger.record(NOTE, data={"text": "nothing to hide"})
    assert dirty["data"] == {"token": REDACTED, "text": f"password={REDACTED}", "redactions": 2}
    assert "redactions" not in clean["data"]


def test_the_redaction_processor_works_alone() -> None:
    """RedactData replaces secrets in `data` of any event dict it is given."""
    processor = RedactData(Redactor(secrets=["known-secret-1"]))
    event = processor(None, "msg", {"event": NOTE, "data": {"x": "known-secret-1"}})
    assert event["data"] == {"x": REDACTED, "redactions": 1}


def test_the_chain_processor_works_alone() -> None:
    """ChainRecords numbers the record from its state and hashes it."""
    chain = ChainRecords()
    chain.seq, chain.prev = 7, "f" * 64
    event = {"ts": "t", "incident": "I", "runbook": {}, "step": None, "event": NOTE}
    record = chain(None, "msg", event | {"actor": "engine", "data": {}})
    assert (record["seq"], record["prev"]) == (7, "f" * 64)
    assert len(record["hash"]) == 64
    assert chain.last is record


# -- tampering -------------------------------------------------------------------------------


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
            ledger.record(NOTE, data={"n": n})
        stale = (tmp_path / HEAD_FILE).read_bytes()
        ledger.record(NOTE, data={"n": 3})
    (tmp_path / HEAD_FILE).write_bytes(stale)
    result = verify_ledger(tmp_path)
    assert (result.ok, result.count) == (True, 4)


# -- writers after damage, crashes and several writers ---------------------------------------


def test_appending_continues_after_a_lagging_head(tmp_path: Path) -> None:
    """A writer finding records past the head adopts them and continues the chain."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(NOTE)
        stale = (tmp_path / HEAD_FILE).read_bytes()
        ledger.record(NOTE)
    (tmp_path / HEAD_FILE).write_bytes(stale)
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        assert ledger.record(NOTE)["seq"] == 3
    assert verify_ledger(tmp_path).ok


def test_appending_to_a_truncated_ledger_is_refused(tmp_path: Path) -> None:
    """A writer never continues a chain whose tail was cut off: that would hide the damage."""
    folder = write_ledger(tmp_path)
    rewrite(folder, lines(folder)[:3])
    with Ledger(folder, "INC-1", RUNBOOK) as ledger, pytest.raises(RunbookError, match="trunc"):
        ledger.record(NOTE)


def test_a_torn_line_past_the_head_is_cut_before_appending(tmp_path: Path) -> None:
    """A partial record no head counts (its write never returned) is cut, then the chain goes on."""
    folder = write_ledger(tmp_path)
    with (folder / LEDGER_FILE).open("ab") as ledger_file:
        ledger_file.write(b'{"seq":6,"ts":')
    assert not verify_ledger(folder).ok
    with Ledger(folder, "INC-1", RUNBOOK) as ledger:
        assert ledger.record(NOTE)["seq"] == 6
    assert verify_ledger(folder).ok
    assert verify_ledger(folder).count == 6


def test_a_torn_line_inside_the_counted_records_is_refused(tmp_path: Path) -> None:
    """Cutting into a record the head counts is truncation, and the writer refuses to go on."""
    folder = write_ledger(tmp_path)
    data = (folder / LEDGER_FILE).read_bytes()
    (folder / LEDGER_FILE).write_bytes(data[:-20])
    with Ledger(folder, "INC-1", RUNBOOK) as ledger, pytest.raises(RunbookError, match="trunc"):
        ledger.record(NOTE)


def test_non_durable_records_are_not_counted_by_the_head_until_a_durable_one(
    tmp_path: Path,
) -> None:
    """A record written with durable=False is chained but only headed by the next durable one."""
    folder = tmp_path / "ledger"
    with Ledger(folder, "INC-1", RUNBOOK) as ledger:
        ledger.record(RUN_STARTED)
        ledger.record(STEP_STARTED, step="a", durable=False)
        assert json.loads((folder / HEAD_FILE).read_text())["count"] == 1
        ledger.record(NOTE, step="a")
        assert json.loads((folder / HEAD_FILE).read_text())["count"] == 3
    assert verify_ledger(folder).ok


def test_non_durable_records_interleaved_with_another_writer_keep_one_chain(
    tmp_path: Path,
) -> None:
    """A writer's own unheaded records are trusted only while nobody else appended after them."""
    with (
        Ledger(tmp_path, "INC-1", RUNBOOK) as engine,
        Ledger(tmp_path, "INC-1", RUNBOOK) as cli,
    ):
        for n in range(3):
            engine.record(STEP_STARTED, step=f"s{n}", durable=False)
            engine.record(STEP_STARTED, step=f"t{n}", durable=False)
            cli.record(NOTE, step=f"s{n}", actor="alice", durable=n % 2 == 0)
            engine.record(STEP_SUCCEEDED, step=f"s{n}", durable=False)
        engine.record(STEP_SUCCEEDED, step="last")
    result = verify_ledger(tmp_path)
    assert result.ok, result.problem
    assert [r["seq"] for r in read_records(tmp_path)] == list(range(1, 14))


def test_a_writer_does_not_reread_its_own_unheaded_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appending after a run of one's own non-durable records does not re-check them each time."""
    import flows.evidence.ledger

    checked: list[int] = []
    check_records = flows.evidence.ledger._check_records

    def counting(tail: bytes, *args: object) -> object:
        checked.append(tail.count(b"\n"))
        return check_records(tail, *args)

    monkeypatch.setattr(flows.evidence.ledger, "_check_records", counting)
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        for n in range(50):
            ledger.record(STEP_STARTED, step=f"s{n}", durable=False)
        ledger.record(NOTE)
    assert checked == []
    assert verify_ledger(tmp_path).count == 51


def test_opening_a_ledger_without_its_head_is_refused(tmp_path: Path) -> None:
    """A ledger with records but no head.json is not silently given a fresh head."""
    folder = write_ledger(tmp_path)
    (folder / HEAD_FILE).unlink()
    with pytest.raises(RunbookError, match=r"head\.json is missing"):
        Ledger(folder, "INC-1", RUNBOOK)


def test_opening_a_folder_whose_ledger_was_deleted_is_refused(tmp_path: Path) -> None:
    """A head without its ledger is not silently given a fresh, empty ledger."""
    folder = write_ledger(tmp_path)
    (folder / LEDGER_FILE).unlink()
    with pytest.raises(RunbookError, match="is missing"):
        Ledger(folder, "INC-1", RUNBOOK)
    assert not (folder / LEDGER_FILE).exists()


def test_two_ledger_objects_on_one_folder_keep_one_chain(tmp_path: Path) -> None:
    """Two writers appending alternately re-read the head and produce one valid chain."""
    with (
        Ledger(tmp_path, "INC-1", RUNBOOK) as engine,
        Ledger(tmp_path, "INC-1", RUNBOOK) as cli,
    ):
        for n in range(5):
            engine.record(STEP_STARTED, step=f"s{n}")
            cli.record("gate.acknowledged", step=f"g{n}", actor="alice")
    records = read_records(tmp_path)
    assert [r["seq"] for r in records] == list(range(1, 11))
    assert [r["actor"] for r in records[:2]] == ["engine", "alice"]
    assert verify_ledger(tmp_path).ok


def test_threads_sharing_one_ledger_keep_one_chain(tmp_path: Path) -> None:
    """Concurrent appends from threads through one Ledger never fork the chain."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:

        def append(worker: int) -> None:
            for n in range(25):
                ledger.record(NOTE, data={"worker": worker, "n": n})

        threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert verify_ledger(tmp_path).count == 100
    assert verify_ledger(tmp_path).ok


APPEND_SCRIPT = """
import os, signal, sys
from pathlib import Path
from flows.evidence.ledger import Ledger, RunbookRef

folder, count, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ledger = Ledger(folder, "INC-1", RunbookRef("credential-leak", 3, "ab" * 32))
for n in range(count):
    ledger.record("note", actor=f"pid-{os.getpid()}", data={"n": n})
if mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
ledger.close()
"""


def append_in_process(folder: Path, count: int, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", APPEND_SCRIPT, str(folder), str(count), mode])


def test_records_survive_a_process_killed_right_after_record_returns(tmp_path: Path) -> None:
    """A writer SIGKILLed after record() returned, never closing, leaves every record intact."""
    process = append_in_process(tmp_path, 3, "kill")
    assert process.wait(timeout=60) == -signal.SIGKILL
    result = verify_ledger(tmp_path)
    assert (result.ok, result.count) == (True, 3)


def test_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    """Writers in separate processes serialise on the lock and produce one valid chain."""
    Ledger(tmp_path, "INC-1", RUNBOOK).close()
    processes = [append_in_process(tmp_path, 100, "close") for _ in range(2)]
    assert [p.wait(timeout=60) for p in processes] == [0, 0]
    result = verify_ledger(tmp_path)
    assert (result.ok, result.count) == (True, 200)
    assert len({r["actor"] for r in read_records(tmp_path)}) == 2


def test_recording_leaves_the_callers_data_as_it_was(tmp_path: Path) -> None:
    """Redaction and chaining work on a copy: the dict a step handed over is not changed."""
    data = {"headers": {"Authorization": "Bearer abcdef0123456789"}, "codes": [200, 1.5]}
    before = json.loads(json.dumps(data))
    with Ledger(tmp_path, "INC-1", RUNBOOK, Redactor()) as ledger:
        written = ledger.record(NOTE, data=data)
    assert data == before
    assert written["data"]["headers"]["Authorization"] == REDACTED
    assert written["data"]["redactions"] == 1


def test_values_json_cannot_hold_are_recorded_as_json(tmp_path: Path) -> None:
    """Tuples, sets, datetimes and non-text keys reach the ledger as plain JSON values."""
    moment = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        written = ledger.record(NOTE, data={"at": moment, "ids": (1, 2), "tags": {"b", "a"}, 7: 1})
    assert written["data"] == {"at": moment.isoformat(), "ids": [1, 2], "tags": ["a", "b"], "7": 1}
    assert read_records(tmp_path)[0]["data"] == written["data"]
    assert verify_ledger(tmp_path).ok


def head_count(folder: Path) -> int:
    return json.loads((folder / HEAD_FILE).read_text())["count"]


def test_a_record_begun_soon_is_counted_after_it_is_on_disk(tmp_path: Path) -> None:
    """record_soon writes the line at once; once flushed, the next append moves the head."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(RUN_STARTED)
        pending = ledger.record_soon(STEP_SUCCEEDED, step="s", data={"outputs": {"k": 1}})
        assert [r["event"] for r in read_records(tmp_path)] == [RUN_STARTED, STEP_SUCCEEDED]
        assert pending.wait() == read_records(tmp_path)[-1]
        assert head_count(tmp_path) == 1  # counted by the next append, not by the wait
        ledger.record(STEP_STARTED, step="t", durable=False)
        assert head_count(tmp_path) == 2
    assert verify_ledger(tmp_path).ok
    assert head_count(tmp_path) == 2


def test_a_record_not_yet_flushed_is_never_counted(tmp_path: Path) -> None:
    """Appends before the wait leave the pending record out of the head."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        pending = ledger.record_soon(NOTE, data={"n": 1})
        ledger.record(STEP_STARTED, step="s", durable=False)
        assert head_count(tmp_path) == 0
        pending.wait()
        ledger.record(STEP_STARTED, step="t", durable=False)
        assert head_count(tmp_path) == 1


def test_a_later_record_before_the_wait_keeps_one_chain(tmp_path: Path) -> None:
    """Records appended while an fsync is under way, by this writer or another, chain on."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger, Ledger(tmp_path, "INC-1", RUNBOOK) as other:
        first = ledger.record_soon(NOTE, data={"n": 1})
        ledger.record(STEP_STARTED, step="s", durable=False)
        first.wait()
        second = ledger.record_soon(NOTE, data={"n": 2})
        assert head_count(tmp_path) == 1
        other.record(NOTE, data={"n": 3})  # durable: the head moves past the pending record
        second.wait()
        ledger.record(NOTE, data={"n": 4}, durable=False)  # must not move the head back
        assert head_count(tmp_path) == 4
    assert [r["seq"] for r in read_records(tmp_path)] == [1, 2, 3, 4, 5]
    assert verify_ledger(tmp_path).ok


def test_closing_waits_for_a_pending_record(tmp_path: Path) -> None:
    """A ledger closed before wait() still ends with the record counted by the head."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record_soon(NOTE, data={"n": 1})
    assert head_count(tmp_path) == 1
    assert verify_ledger(tmp_path).ok
