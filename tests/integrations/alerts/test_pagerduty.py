"""PagerDuty V3 webhook events become one Alert per incident event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from integrations.alerts import PayloadError
from integrations.alerts.pagerduty import parse

PAYLOADS = Path(__file__).parent / "payloads" / "pagerduty"
DELIVERY = {"x-webhook-id": "c9f8e3e4-6d2f-4bf6-9d1b-7f6c2b1e0a11"}


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def test_triggered_incident_is_a_firing_alert() -> None:
    """The incident id is the identity; service, urgency, priority and event type are labels."""
    (alert,) = parse(payload("incident_triggered.json"), DELIVERY)
    assert alert.source == "pagerduty"
    assert alert.identity == "Q2KX1ABCDEFG12"
    assert alert.status == "firing"
    assert alert.delivery == DELIVERY["x-webhook-id"]
    assert alert.labels == {
        "service": "API Service",
        "urgency": "high",
        "priority": "P1",
        "event_type": "incident.triggered",
    }
    assert alert.fields["title"] == "Checkout latency p99 above 2 s"
    assert alert.fields["html_url"] == "https://acme.pagerduty.com/incidents/Q2KX1ABCDEFG12"
    assert alert.fields["incident_key"] == "baf7cf21b1da41b4b0221008339ff357"
    assert alert.fields["number"] == "4821"
    assert alert.fields["event_type"] == "incident.triggered"
    assert alert.starts_at == "2026-03-02T13:00:01Z"


def test_resolved_incident_resolves_the_same_identity() -> None:
    """incident.resolved is resolved, for the incident that triggered."""
    (alert,) = parse(payload("incident_resolved.json"), DELIVERY)
    assert alert.status == "resolved"
    assert alert.identity == "Q2KX1ABCDEFG12"


def test_other_incident_events_are_firing_with_their_event_type() -> None:
    """incident.acknowledged stays firing; routing can match its event_type label."""
    (alert,) = parse(payload("incident_acknowledged.json"), DELIVERY)
    assert alert.status == "firing"
    assert alert.matches({"event_type": "incident.acknowledged"})
    assert alert.identity == "Q2KX1ABCDEFG12"


def test_note_events_belong_to_the_incident_they_reference() -> None:
    """An incident_note's identity is the referenced incident, not the note's own id."""
    (alert,) = parse(payload("incident_annotated.json"), DELIVERY)
    assert alert.identity == "Q2KX1ABCDEFG12"
    assert alert.fields["title"] == "Checkout latency p99 above 2 s"


def test_ping_carries_no_alert() -> None:
    """The pagey.ping PagerDuty sends to test a subscription is accepted with no alert."""
    assert parse(payload("ping.json"), DELIVERY) == []


def test_minimal_incident_without_optional_fields() -> None:
    """Missing priority, urgency, service name and delivery header are simply absent."""
    (alert,) = parse(payload("minimal.json"), {})
    assert alert.labels == {"event_type": "incident.triggered"}
    assert alert.delivery is None
    assert alert.starts_at == "2026-03-02T14:00:00Z"


def test_the_same_delivery_twice_is_identical() -> None:
    """A retried delivery carries the same identity and delivery id."""
    first = parse(payload("incident_triggered.json"), DELIVERY)
    assert first == parse(payload("incident_triggered.json"), DELIVERY)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({}, "event must be an object"),
        ({"event": {"data": {}}}, "event.event_type is required"),
        ({"event": {"event_type": "incident.triggered"}}, "event.data must be an object"),
        ({"event": {"event_type": "incident.triggered", "data": {}}}, "event.data.id is required"),
        (
            {"event": {"event_type": "incident.annotated", "data": {"type": "incident_note"}}},
            "event.data.incident.id is required",
        ),
        (
            {"event": {"event_type": "incident.triggered", "data": {"id": "Q1", "service": 3}}},
            "event.data.service must be an object",
        ),
    ],
)
def test_wrong_shape_is_422_naming_the_field(document: object, reason: str) -> None:
    """A malformed event is refused with 422 naming the field."""
    with pytest.raises(PayloadError, match=reason) as refused:
        parse(json.dumps(document).encode(), {})
    assert refused.value.status == 422
