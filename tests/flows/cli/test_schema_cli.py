"""`runbook schema`: the runbook schema for editors, and with --ledger the record format."""

from __future__ import annotations

import json

import jsonschema
import pytest

from flows.cli.app import main
from tests.support import FIXTURES


def test_schema_ledger_prints_a_schema_every_written_record_satisfies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The printed schema accepts each line of a real ledger and rejects an unknown event."""
    assert main(["schema", "--ledger"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    lines = (FIXTURES / "ledgers" / "before-typed-records" / "ledger.jsonl").read_text()
    records = [json.loads(line) for line in lines.splitlines()]
    for record in records:
        validator.validate(record)
    assert not validator.is_valid({**records[0], "event": "step.forged"})


def test_schema_without_ledger_is_the_runbook_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """Plain `runbook schema` still prints the runbook front matter schema."""
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Runbook front matter"
