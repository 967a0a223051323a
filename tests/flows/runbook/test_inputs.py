"""Runbook inputs from `--input key=value`: usage errors and typed values at their lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.errors import Problem, RunbookError
from flows.runbook.inputs import parse_assignments, resolve_inputs
from flows.runbook.parse import parse_runbook

DOCUMENT = """---
id: demo
title: Demo
kind: outage
severity: sev2
version: 1
owner: "#ops"
inputs:
  retries: {type: integer}
---
"""


def test_a_pair_without_equals_is_an_error_with_no_file_location() -> None:
    """A bad `--input` is not in any file: it prints as its message alone, with no path or line."""
    with pytest.raises(RunbookError) as caught:
        parse_assignments(["service"])
    assert caught.value.problems == [Problem(None, None, "--input 'service' is not key=value")]
    assert str(caught.value) == "--input 'service' is not key=value"


def test_a_bad_input_value_is_reported_at_the_input_declaration() -> None:
    """A value that is not of the input's type points at the input's line in the runbook."""
    runbook = parse_runbook(Path("demo.md"), DOCUMENT)
    with pytest.raises(RunbookError) as caught:
        resolve_inputs(runbook, {"retries": "many"})
    assert str(caught.value).startswith("demo.md:9: input 'retries' must be")
