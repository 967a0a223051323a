"""Datadog webhooks (our recommended template) become one Alert per delivery."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from integrations.alerts import PayloadError
from integrations.alerts.datadog import parse, tag_labels

PAYLOADS = Path(__file__).parent / "payloads" / "datadog"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def with_changes(name: str, **changes: object) -> bytes:
    document = json.loads(payload(name))
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


def test_triggered_alert_has_tags_as_labels_and_the_rest_as_fields() -> None:
    """Identity is the cycle key; tags become labels; every other key stays in fields."""
    (alert,) = parse(payload("triggered.json"), {})
    assert alert.source == "datadog"
    assert alert.identity == "7129374682039485127"
    assert alert.status == "firing"
    assert alert.labels == {
        "env": "prod",
        "service": "orders-db",
        "team": "storage",
        "role": "db,primary",
        "monitor": "",
    }
    assert alert.fields["alert_id"] == "81234567"
    assert alert.fields["transition"] == "Triggered"
    assert alert.fields["hostname"] == "db-3"
    assert "tags" not in alert.fields


def test_recovered_resolves_the_same_cycle() -> None:
    """A Recovered transition is resolved and keeps the cycle key's identity."""
    (alert,) = parse(payload("recovered.json"), {})
    assert alert.status == "resolved"
    assert alert.identity == parse(payload("triggered.json"), {})[0].identity


@pytest.mark.parametrize("transition", ["recovered", " RECOVERED "])
def test_recovered_is_case_insensitive(transition: str) -> None:
    """The transition is compared without case or surrounding spaces."""
    assert parse(with_changes("triggered.json", transition=transition), {})[0].status == "resolved"


@pytest.mark.parametrize("transition", ["Re-Triggered", "Warn", "No Data", "Renotify", None])
def test_other_transitions_are_firing(transition: str | None) -> None:
    """Every transition but Recovered (or none at all) is firing."""
    assert parse(with_changes("triggered.json", transition=transition), {})[0].status == "firing"


def test_minimal_payload_falls_back_to_the_monitor_id() -> None:
    """Without a cycle key, the (numeric) alert id is the identity, as text."""
    (alert,) = parse(payload("minimal.json"), {})
    assert alert.identity == "81234567"
    assert alert.labels == {}


def test_unfilled_cycle_key_placeholder_falls_back() -> None:
    """A literal `$ALERT_CYCLE_KEY` Datadog did not fill is ignored, not shared by every alert."""
    body = with_changes("triggered.json", alert_cycle_key="$ALERT_CYCLE_KEY")
    assert parse(body, {})[0].identity == "81234567"


def test_without_any_identity_it_is_422() -> None:
    """A body with neither alert_cycle_key nor alert_id is refused."""
    with pytest.raises(PayloadError, match="alert_cycle_key") as refused:
        parse(b'{"title": "x", "alert_cycle_key": ""}', {})
    assert refused.value.status == 422


def test_reserved_keys_stay_out_of_fields() -> None:
    """A template key named like the alert's own attributes cannot shadow them."""
    (alert,) = parse(with_changes("triggered.json", status="nope", source="x"), {})
    assert alert.status == "firing"
    assert "status" not in alert.fields
    assert "source" not in alert.fields


def test_tags_may_be_a_list_but_not_an_object() -> None:
    """Tags as a JSON list work like the comma-separated string; an object is refused."""
    assert tag_labels(["env:prod", "url:http://x:8080"]) == {"env": "prod", "url": "http://x:8080"}
    with pytest.raises(PayloadError, match="tags must be a string or a list"):
        tag_labels({"env": "prod"})


def test_documented_template_filled_by_datadog_parses() -> None:
    """The payload template in docs/triggers.md, with its variables filled, is a valid alert."""
    docs = Path(__file__).parents[3] / "docs" / "triggers.md"
    blocks = re.findall(r"```json\n(.*?)```", docs.read_text(), re.DOTALL)
    (template,) = [block for block in blocks if "$ALERT_CYCLE_KEY" in block]
    filled = {"$ALERT_CYCLE_KEY": "cycle-1", "$ALERT_TRANSITION": "Recovered", "$TAGS": "env:prod"}
    body = re.sub(r"\$[A-Z_]+", lambda m: filled.get(m.group(), "x"), template)
    (alert,) = parse(body.encode(), {})
    assert (alert.identity, alert.status, alert.labels) == ("cycle-1", "resolved", {"env": "prod"})
