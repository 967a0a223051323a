"""The ledger writer: chained, fsynced, redacted records; crashes, damage and several writers."""

from __future__ import annotations

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
from flows.evidence.ledger import Ledger, plain_json
from flows.evidence.records import HEAD_FILE, LEDGER_FILE, Event, record_hash
from flows.evidence.redact import REDACTED, Redactor
from flows.evidence.verify import read_records, verify_ledger
from tests.flows.evidence.ledgers import RUNBOOK, lines, rewrite, write_ledger


def head_count(folder: Path) -> int:
    return json.loads((folder / HEAD_FILE).read_text())["count"]


# -- writing ---------------------------------------------------------------------------------


def test_record_returns_the_record_as_stored(tmp_path: Path) -> None:
    """The returned record equals the one read back, data already redacted and JSON-typed."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        returned = ledger.record(
            Event.STEP_SUCCEEDED,
            step="ticket",
            data={"at": datetime(2024, 5, 1, tzinfo=UTC), "path": Path("/x"), "tags": ("a", "b")},
        )
    assert read_records(tmp_path) == [returned]
    assert returned.data == {"at": "2024-05-01T00:00:00+00:00", "path": "/x", "tags": ["a", "b"]}
    assert (returned.seq, returned.event, returned.runbook) == (1, Event.STEP_SUCCEEDED, RUNBOOK)


def test_the_stored_hash_is_the_hash_of_the_stored_line(tmp_path: Path) -> None:
    """The hash on each line is record_hash of that line's other fields, as read back."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(Event.NOTE, actor="alice", data={"note": "Kontrolle prüfen ✓", "t": 60.0})
    [line] = lines(tmp_path)
    assert json.loads(line)["hash"] == record_hash(json.loads(line))
    assert "prüfen ✓".encode() in line and b"60.0" in line


def test_lines_keep_the_documented_field_order(tmp_path: Path) -> None:
    """Each line lists seq, ts, incident, runbook, step, event, actor, data, prev, hash."""
    write_ledger(tmp_path, 1)
    assert list(json.loads(lines(tmp_path)[0])) == [
        "seq", "ts", "incident", "runbook", "step", "event", "actor", "data", "prev", "hash",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        {"note": 'tabs\t, quotes ", back\\slash, \x00\x1f\x7f, \u2028, 😀 \uffff'},
        {"ratio": 1e-07, "small": 5e-05, "big": 1e16, "plain": 0.25, "whole": 60.0},
        {"nan": float("nan"), "inf": float("-inf")},
        {"huge": 2**70, "negative": -(2**63)},
        {"nested": [{"b": [1, None, True], "a": {"é": "中"}}]},
    ],
    ids=["escapes", "floats", "non-finite", "big-integers", "nested"],
)
def test_records_hash_and_verify_whatever_values_they_hold(tmp_path: Path, data: dict) -> None:
    """Every value JSON can hold is stored, read back unchanged and verifies."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        record = ledger.record(Event.NOTE, data=data)
    # Compared as text: NaN is not equal to itself.
    assert json.dumps(read_records(tmp_path)[0].data) == json.dumps(record.data)
    assert json.dumps(record.data) == json.dumps(data)
    assert verify_ledger(tmp_path).ok


def test_timestamps_are_utc_with_microseconds(tmp_path: Path) -> None:
    """Every `ts` is ISO-8601 UTC with six fractional digits, near the time of the append."""
    before = datetime.now(UTC)
    for record in read_records(write_ledger(tmp_path, 3)):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record.ts)
        assert record.at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= record.at <= datetime.now(UTC)


def test_the_head_follows_every_durable_append(tmp_path: Path) -> None:
    """head.json holds the count and last hash after each append, before the ledger is closed."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(Event.RUN_STARTED)
        last = ledger.record(Event.NOTE, data={"note": "second"})
        head = json.loads((tmp_path / HEAD_FILE).read_text())
        assert (head["count"], head["hash"], head["size"]) == (
            2,
            last.hash,
            len(b"".join(lines(tmp_path))),
        )


def test_only_ledger_events_are_accepted(tmp_path: Path) -> None:
    """An event that is not an Event member is refused before anything is written."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record("drill.scored")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not a ledger event"):
            ledger.record("Step Started")  # type: ignore[arg-type]
    assert [r.event for r in read_records(tmp_path)] == [Event.DRILL_SCORED]


def test_a_closed_ledger_refuses_records(tmp_path: Path) -> None:
    """Appending after close raises instead of writing without the lock or files."""
    ledger = Ledger(tmp_path, "INC-1", RUNBOOK)
    ledger.close()
    with pytest.raises(ValueError, match="closed"):
        ledger.record(Event.NOTE)


def test_recording_leaves_the_callers_data_as_it_was(tmp_path: Path) -> None:
    """Redaction and chaining work on a copy: the dict a step handed over is not changed."""
    data = {"headers": {"Authorization": "Bearer abcdef0123456789"}, "codes": [200, 1.5]}
    before = json.loads(json.dumps(data))
    with Ledger(tmp_path, "INC-1", RUNBOOK, Redactor()) as ledger:
        written = ledger.record(Event.NOTE, data=data)
    assert data == before
    assert written.data["headers"]["Authorization"] == REDACTED
    assert written.data["redactions"] == 1


def test_values_json_cannot_hold_are_recorded_as_json() -> None:
    """Tuples, sets, datetimes and non-text keys become plain JSON values, in a copy."""
    moment = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    data = {"at": moment, "ids": (1, 2), "tags": {"b", "a"}, 7: 1}
    assert plain_json(data) == {"at": moment.isoformat(), "ids": [1, 2], "tags": ["a", "b"], "7": 1}


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
            Event.STEP_SUCCEEDED,
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
        dirty = ledger.record(Event.NOTE, data={"token": "t-123", "text": "password=hunter22"})
        clean = ledger.record(Event.NOTE, data={"text": "nothing to hide"})
    assert dirty.data == {"token": REDACTED, "text": f"password={REDACTED}", "redactions": 2}
    assert "redactions" not in clean.data


# -- writers after damage, crashes and several writers ---------------------------------------


def test_appending_continues_after_a_lagging_head(tmp_path: Path) -> None:
    """A writer finding records past the head adopts them and continues the chain."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(Event.NOTE)
        stale = (tmp_path / HEAD_FILE).read_bytes()
        ledger.record(Event.NOTE)
    (tmp_path / HEAD_FILE).write_bytes(stale)
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        assert ledger.record(Event.NOTE).seq == 3
    assert verify_ledger(tmp_path).ok


def test_appending_to_a_truncated_ledger_is_refused(tmp_path: Path) -> None:
    """A writer never continues a chain whose tail was cut off: that would hide the damage."""
    folder = write_ledger(tmp_path)
    rewrite(folder, lines(folder)[:3])
    with Ledger(folder, "INC-1", RUNBOOK) as ledger, pytest.raises(RunbookError, match="trunc"):
        ledger.record(Event.NOTE)


def test_appending_after_an_edited_record_past_the_head_is_refused(tmp_path: Path) -> None:
    """A record past the head that does not chain is damage: the writer refuses to go on."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(Event.RUN_STARTED)
        ledger.record(Event.STEP_STARTED, step="a", durable=False)
    edited = lines(tmp_path)
    edited[1] = edited[1].replace(b'"a"', b'"b"')
    rewrite(tmp_path, edited)
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger, pytest.raises(RunbookError, match="edited"):
        ledger.record(Event.NOTE)


def test_a_torn_line_past_the_head_is_cut_before_appending(tmp_path: Path) -> None:
    """A partial record no head counts (its write never returned) is cut, then the chain goes on."""
    folder = write_ledger(tmp_path)
    with (folder / LEDGER_FILE).open("ab") as ledger_file:
        ledger_file.write(b'{"seq":6,"ts":')
    assert not verify_ledger(folder).ok
    with Ledger(folder, "INC-1", RUNBOOK) as ledger:
        assert ledger.record(Event.NOTE).seq == 6
    assert verify_ledger(folder).ok
    assert verify_ledger(folder).count == 6


def test_a_torn_line_inside_the_counted_records_is_refused(tmp_path: Path) -> None:
    """Cutting into a record the head counts is truncation, and the writer refuses to go on."""
    folder = write_ledger(tmp_path)
    data = (folder / LEDGER_FILE).read_bytes()
    (folder / LEDGER_FILE).write_bytes(data[:-20])
    with Ledger(folder, "INC-1", RUNBOOK) as ledger, pytest.raises(RunbookError, match="trunc"):
        ledger.record(Event.NOTE)


def test_non_durable_records_are_not_counted_by_the_head_until_a_durable_one(
    tmp_path: Path,
) -> None:
    """A record written with durable=False is chained but only headed by the next durable one."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(Event.RUN_STARTED)
        ledger.record(Event.STEP_STARTED, step="a", durable=False)
        assert head_count(tmp_path) == 1
        ledger.record(Event.NOTE, step="a")
        assert head_count(tmp_path) == 3
    assert verify_ledger(tmp_path).ok


def test_non_durable_records_interleaved_with_another_writer_keep_one_chain(
    tmp_path: Path,
) -> None:
    """Writers continue from each other's unheaded records as from their own."""
    with (
        Ledger(tmp_path, "INC-1", RUNBOOK) as engine,
        Ledger(tmp_path, "INC-1", RUNBOOK) as cli,
    ):
        for n in range(3):
            engine.record(Event.STEP_STARTED, step=f"s{n}", durable=False)
            engine.record(Event.STEP_STARTED, step=f"t{n}", durable=False)
            cli.record(Event.NOTE, step=f"s{n}", actor="alice", durable=n % 2 == 0)
            engine.record(Event.STEP_SUCCEEDED, step=f"s{n}", durable=False)
        engine.record(Event.STEP_SUCCEEDED, step="last")
    result = verify_ledger(tmp_path)
    assert result.ok, result.problem
    assert [r.seq for r in read_records(tmp_path)] == list(range(1, 14))


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
            engine.record(Event.STEP_STARTED, step=f"s{n}")
            cli.record(Event.GATE_ACKNOWLEDGED, step=f"g{n}", actor="alice")
    records = read_records(tmp_path)
    assert [r.seq for r in records] == list(range(1, 11))
    assert [r.actor for r in records[:2]] == ["engine", "alice"]
    assert verify_ledger(tmp_path).ok


def test_threads_sharing_one_ledger_keep_one_chain(tmp_path: Path) -> None:
    """Concurrent appends from threads through one Ledger never fork the chain."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:

        def append(worker: int) -> None:
            for n in range(25):
                ledger.record(Event.NOTE, data={"worker": worker, "n": n})

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
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, RunbookRef

folder, count, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ledger = Ledger(folder, "INC-1", RunbookRef(id="credential-leak", version=3, sha256="ab" * 32))
for n in range(count):
    ledger.record(Event.NOTE, actor=f"pid-{os.getpid()}", data={"n": n})
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
    assert len({r.actor for r in read_records(tmp_path)}) == 2
