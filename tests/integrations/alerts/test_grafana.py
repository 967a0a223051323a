"""Grafana alerting webhooks become Alerts identified by fingerprint and start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from integrations.alerts import PayloadError
from integrations.alerts.grafana import parse
from integrations.alerts.payload import labels_digest

PAYLOADS = Path(__file__).parent / "payloads" / "grafana"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def test_firing_alert_carries_grafana_fields() -> None:
    """Title, state, message, orgId and the per-alert URLs and values land in fields."""
    (alert,) = parse(payload("firing.json"), {})
    assert alert.source == "grafana"
    assert alert.identity == "c6eadffa33fcdf37|2026-03-02T11:20:10+01:00"
    assert alert.status == "firing"
    assert alert.labels["service"] == "checkout"
    assert alert.annotations["summary"] == "5xx ratio above 5% on checkout"
    fields = alert.fields
    assert fields["title"] == "[FIRING:1] High error rate Payments (checkout payments)"
    assert fields["state"] == "alerting"
    assert fields["message"].startswith("**Firing**")
    assert fields["orgId"] == "1"
    assert fields["dashboardURL"] == "https://grafana.example.com/d/checkout-red?orgId=1"
    assert fields["panelURL"].endswith("viewPanel=4")
    assert fields["valueString"].startswith("[ var='A'")
    assert fields["values"] == {"A": 0.0731, "C": 1}
    assert fields["fingerprint"] == "c6eadffa33fcdf37"


def test_resolved_alert_keeps_identity_and_drops_empty_fields() -> None:
    """The resolve of a firing shares its identity; empty URLs and null values are left out."""
    (resolved,) = parse(payload("resolved.json"), {})
    assert resolved.status == "resolved"
    assert resolved.identity == parse(payload("firing.json"), {})[0].identity
    assert resolved.fields["state"] == "ok"
    assert not {"dashboardURL", "panelURL", "values", "valueString"} & resolved.fields.keys()


def test_duplicate_delivery_has_the_same_identity() -> None:
    """Two deliveries of the same notification give the same identities."""
    assert parse(payload("firing.json"), {}) == parse(payload("firing.json"), {})


def test_minimal_payload_uses_a_label_digest() -> None:
    """Without fingerprint and the group fields, identity uses a digest of the labels."""
    (alert,) = parse(payload("minimal.json"), {})
    digest = labels_digest({"alertname": "Disk almost full", "instance": "db-1"})
    assert alert.identity == f"{digest}|2026-03-02T12:00:00Z"
    assert alert.fields == {"fingerprint": digest}


def test_values_of_the_wrong_type_are_422() -> None:
    """`values` must be an object when present."""
    document = json.loads(payload("firing.json"))
    document["alerts"][0]["values"] = [1, 2]
    with pytest.raises(PayloadError, match=r"alerts\[0\]\.values must be an object"):
        parse(json.dumps(document).encode(), {})
