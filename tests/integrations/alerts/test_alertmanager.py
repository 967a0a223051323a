"""Alertmanager webhook v4 payloads become one Alert per entry, with HA-stable identities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from integrations.alerts import PayloadError
from integrations.alerts.alertmanager import parse
from integrations.alerts.payload import labels_digest

PAYLOADS = Path(__file__).parent / "payloads" / "alertmanager"
GROUP_KEY = '{}/{severity="critical"}:{alertname="LeakedSecretDetected"}'


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def edited(name: str, edit: dict[str, object], index: int = 0) -> bytes:
    document = json.loads(payload(name))
    document["alerts"][index].update(edit)
    return json.dumps(document).encode()


def test_each_entry_becomes_an_alert() -> None:
    """A group of two alerts yields two Alerts carrying their own labels, annotations and URLs."""
    first, second = parse(payload("firing.json"), {})
    assert first.source == "alertmanager"
    assert first.identity == f"{GROUP_KEY}|4f2b1c9e0a7d3e15|2026-03-02T09:14:07.391Z"
    assert first.status == "firing"
    assert first.labels["service"] == "payments-api"
    assert first.annotations["runbook_url"] == "https://runbooks.example.com/credential-leak"
    assert first.starts_at == "2026-03-02T09:14:07.391Z"
    assert first.fields == {
        "groupKey": GROUP_KEY,
        "receiver": "runbook",
        "externalURL": "http://alertmanager.example.com:9093",
        "generatorURL": (
            "http://prometheus.example.com:9090/graph?g0.expr=leaked_secrets_total+%3E+0&g0.tab=1"
        ),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "4f2b1c9e0a7d3e15",
    }
    assert second.labels["service"] == "billing-worker"
    assert second.identity == f"{GROUP_KEY}|9a03e6d2bb41f780|2026-03-02T09:15:37.004Z"


def test_ha_pair_duplicates_share_identities() -> None:
    """The same group from both members of an HA pair, serialized differently, keeps identities."""
    original = payload("firing.json")
    other_member = json.dumps(json.loads(original), sort_keys=True).encode()
    identities = [alert.identity for alert in parse(original, {})]
    assert identities == [alert.identity for alert in parse(other_member, {})]


def test_resolve_keeps_the_identity_it_fired_with() -> None:
    """A resolved entry of the same firing has the firing's identity, status resolved and endsAt."""
    (resolved,) = parse(payload("resolved.json"), {})
    assert resolved.status == "resolved"
    assert resolved.identity == parse(payload("firing.json"), {})[0].identity
    assert resolved.fields["endsAt"] == "2026-03-02T09:41:52.118Z"


def test_new_firing_after_resolve_gets_a_new_identity() -> None:
    """The same labels firing again later (new startsAt) are a new alert."""
    again = edited("firing.json", {"startsAt": "2026-03-02T18:00:00.000Z"})
    assert parse(again, {})[0].identity != parse(payload("firing.json"), {})[0].identity


def test_missing_optional_fields_and_fingerprint_from_labels() -> None:
    """Without fingerprint, annotations, receiver or URLs, the fingerprint is a digest of labels."""
    (alert,) = parse(payload("minimal.json"), {})
    digest = labels_digest({"instance": "db-1", "alertname": "DiskFull"})
    assert alert.identity == f'{{}}:{{alertname="DiskFull"}}|{digest}|2026-03-02T10:00:00Z'
    assert alert.annotations == {}
    assert alert.fields == {"groupKey": '{}:{alertname="DiskFull"}', "fingerprint": digest}


def test_label_values_are_coerced_to_strings() -> None:
    """Numbers, booleans and null label values become their JSON text."""
    body = edited("minimal.json", {"labels": {"code": 503, "canary": True, "zone": None}})
    assert parse(body, {})[0].labels == {"code": "503", "canary": "true", "zone": ""}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"alerts": []}', "groupKey is required"),
        (b'{"groupKey": "g"}', "alerts is required"),
        (b'{"groupKey": "g", "alerts": {}}', "alerts must be a list"),
        (b'{"groupKey": "g", "alerts": [7]}', r"alerts\[0\] must be an object"),
    ],
)
def test_wrong_group_shape_is_422_naming_the_field(body: bytes, reason: str) -> None:
    """A payload missing the group's required parts is refused with 422 and says which."""
    with pytest.raises(PayloadError, match=reason) as refused:
        parse(body, {})
    assert refused.value.status == 422


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"startsAt": None}, r"alerts\[0\]\.startsAt is required"),
        ({"status": "pending"}, r'alerts\[0\]\.status must be "firing" or "resolved"'),
        ({"labels": ["a"]}, r"alerts\[0\]\.labels must be an object"),
        ({"labels": {"team": {"name": "db"}}}, r"alerts\[0\]\.labels\.team must be a string"),
        ({"fingerprint": ["x"]}, r"alerts\[0\]\.fingerprint must be a string"),
    ],
)
def test_wrong_entry_shape_is_422_naming_the_field(edit: dict[str, object], reason: str) -> None:
    """A malformed alert entry is refused with 422 naming the entry and the field."""
    with pytest.raises(PayloadError, match=reason) as refused:
        parse(edited("minimal.json", edit), {})
    assert refused.value.status == 422
