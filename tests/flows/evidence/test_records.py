"""The evidence format: canonical JSON, the hash, the published schema, ledgers written earlier."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from flows.evidence.ledger import Ledger
from flows.evidence.records import (
    LEDGER_FILE,
    Event,
    canonical_json,
    ledger_schema,
    record_hash,
    record_line,
)
from flows.evidence.seal import verify_seal
from flows.evidence.verify import read_records, verify_ledger
from tests.flows.evidence.ledgers import RUNBOOK
from tests.support import FIXTURES, PROJECT

BEFORE_TYPED_RECORDS = FIXTURES / "ledgers" / "before-typed-records"


def fixture_lines() -> list[bytes]:
    return (BEFORE_TYPED_RECORDS / LEDGER_FILE).read_bytes().splitlines(keepends=True)


def test_canonical_json_is_sorted_compact_utf8_with_python_float_spelling() -> None:
    """Keys sorted, no spaces, non-ASCII as UTF-8, floats as Python spells them (60.0, 1e-07)."""
    body = {"b": 60.0, "a": "Zoë ✓", "c": [1e-07, 2**70, None, True], "d": {"y": 1, "x": "\n"}}
    expected = '{"a":"Zoë ✓","b":60.0,"c":[1e-07,1180591620717411303424,null,true],'
    expected += '"d":{"x":"\\n","y":1}}'
    assert canonical_json(body) == expected.encode("utf-8")


def test_the_hash_is_sha256_of_the_canonical_json_without_the_hash_field() -> None:
    """record_hash leaves `hash` out and hashes the canonical bytes of everything else."""
    record = {"seq": 1, "event": "note", "data": {"ratio": 0.5}, "hash": "ignored"}
    body = b'{"data":{"ratio":0.5},"event":"note","seq":1}'
    assert record_hash(record) == hashlib.sha256(body).hexdigest()


def test_a_ledger_written_before_typed_records_verifies_and_reads_back() -> None:
    """The fixture ledger, written by the earlier orjson and structlog writer, is intact."""
    result = verify_ledger(BEFORE_TYPED_RECORDS)
    assert (result.ok, result.count, result.problem) == (True, 7, None)
    records = read_records(BEFORE_TYPED_RECORDS)
    assert [r.event for r in records] == [
        Event.RUN_STARTED,
        Event.STEP_STARTED,
        Event.STEP_SUCCEEDED,
        Event.GATE_ACKNOWLEDGED,
        Event.NOTE,
        Event.RUN_FINISHED,
        Event.EVIDENCE_SEALED,
    ]
    assert records[1].data["with"]["fields"] == {"nested": {"deep": [1, 2, {"x": None}]}}
    outputs = records[2].outputs
    assert outputs["timeout_s"] == 60.0 and isinstance(outputs["timeout_s"], float)
    assert (outputs["ratio"], outputs["big"]) == (1e-07, 2**70)
    assert records[3].actor == "Zoë Müller" and "日本語" in records[3].data["note"]
    assert records[0].data["inputs"]["token"] == "[REDACTED]"
    assert records[-1].data["count"] == 6
    assert verify_seal(BEFORE_TYPED_RECORDS).ok


def test_the_writer_encodes_the_fixture_records_byte_for_byte_as_stored() -> None:
    """Every stored line and hash is exactly what record_line and record_hash give today."""
    for line in fixture_lines():
        record = json.loads(line)
        assert record_line(record) == line
        assert record_hash(record) == record["hash"]


def test_the_schema_is_valid_json_schema() -> None:
    """ledger_schema() is a well-formed draft 2020-12 schema naming every event."""
    schema = ledger_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["$defs"]["Event"]["enum"]) == {event.value for event in Event}


def test_records_old_and_new_satisfy_the_schema(tmp_path: Path) -> None:
    """Every line of the fixture ledger and of a freshly written one validates against it."""
    with Ledger(tmp_path, "INC-1", RUNBOOK) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {"service": "api"}, "drill": False})
        ledger.record(Event.STEP_STARTED, step="s", data={"with": {"n": 1.5}}, durable=False)
        ledger.record(Event.GATE_ACKNOWLEDGED, step="g", actor="alice", data={"note": "ok ✓"})
    validator = Draft202012Validator(ledger_schema())
    written = (tmp_path / LEDGER_FILE).read_bytes().splitlines()
    for line in fixture_lines() + written:
        validator.validate(json.loads(line))


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"event": "step.exploded"}, ["event"]),
        ({"seq": "1"}, ["seq"]),
        ({"ts": "2026-12-01 21:32:36"}, ["ts"]),
        ({"prev": "not a hash"}, ["prev"]),
        ({"comment": "added"}, []),
    ],
    ids=["unknown-event", "text-seq", "ts-shape", "prev-shape", "extra-field"],
)
def test_the_schema_refuses_what_is_not_a_record(change: dict, path: list[str]) -> None:
    """A line with an unknown event, a mistyped field or an extra field fails the schema."""
    record = json.loads(fixture_lines()[0]) | change
    errors = list(Draft202012Validator(ledger_schema()).iter_errors(record))
    assert errors and list(errors[0].path) == path


def test_every_event_is_documented_in_the_format_reference() -> None:
    """docs/evidence-format.md has a row for every Event, so the reference never drifts."""
    text = (PROJECT / "docs" / "evidence-format.md").read_text()
    missing = [event.value for event in Event if f"| `{event.value}` |" not in text]
    assert missing == []
