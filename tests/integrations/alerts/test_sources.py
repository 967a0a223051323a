"""The trigger server answers exactly the alert sources a runbook may declare."""

from __future__ import annotations

from typing import get_args

from flows.runbook.model import AlertSource
from integrations.alerts.sources import PARSERS


def test_every_declarable_source_has_a_parser_and_no_other() -> None:
    """`triggers.alerts[].source` names and the server's parsers are the same set."""
    assert set(PARSERS) == set(get_args(AlertSource))
