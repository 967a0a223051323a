"""Incident ids: readable, time-ordered, and distinct however many start in one second."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flows.evidence.incident import check_incident_id, new_incident_id


def test_ten_thousand_incidents_in_one_second_get_ten_thousand_ids() -> None:
    """A burst of alerts in the same second must never share an incident."""
    second = datetime(2026, 12, 2, 2, 40, 5, tzinfo=UTC)
    ids = {new_incident_id("service-outage", second) for _ in range(10_000)}
    assert len(ids) == 10_000


def test_an_id_names_its_runbook_and_time_and_is_valid() -> None:
    moment = datetime(2026, 12, 2, 2, 40, 5, tzinfo=UTC)
    incident = new_incident_id("credential-leak", moment)
    assert re.fullmatch(r"credential-leak-20261202-024005-[0-9a-f]{12}", incident)
    assert check_incident_id(incident) == incident
