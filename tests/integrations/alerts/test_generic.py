"""Our generic JSON shape: one alert or a list of them, identified by the sender's id."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.alerts import PayloadError
from integrations.alerts.generic import parse

PAYLOADS = Path(__file__).parent / "payloads" / "generic"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def test_single_alert_with_every_field() -> None:
    """id, status, labels, annotations, title, starts_at and fields all land on the Alert."""
    (alert,) = parse(payload("single.json"), {})
    assert alert.source == "generic"
    assert alert.identity == "ci-secret-scan-7781"
    assert alert.status == "firing"
    assert alert.labels["service"] == "payments-api"
    assert alert.annotations == {"summary": "GitHub token in config/prod.env", "commit": "3f9c2e1"}
    assert alert.starts_at == "2026-03-02T15:00:00Z"
    assert alert.fields == {
        "pipeline": "https://ci.example.com/pipelines/7781",
        "attempt": 1,
        "title": "Secret scanner found a live token in repo payments-api",
    }


def test_batch_of_alerts() -> None:
    """`{"alerts": [...]}` gives one Alert per entry, each with its own status."""
    firing, resolved = parse(payload("batch.json"), {})
    assert (firing.identity, firing.status) == ("backup-verify-db-1-2026-03-02", "firing")
    assert (resolved.identity, resolved.status) == ("backup-verify-db-2-2026-03-01", "resolved")


def test_only_an_id_is_required() -> None:
    """A bare id is a firing alert with no labels, annotations or fields."""
    (alert,) = parse(payload("minimal.json"), {})
    assert (alert.identity, alert.status, alert.labels, alert.fields) == (
        "manual-7",
        "firing",
        {},
        {},
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"status": "firing"}', "id is required"),
        (b'{"id": ""}', "id is required"),
        (b'{"id": {"a": 1}}', "id must be a string"),
        (b'{"id": "a", "status": "ok"}', 'status must be "firing" or "resolved"'),
        (b'{"id": "a", "fields": {"status": "x"}}', "fields.status is reserved"),
        (b'{"id": "a", "fields": []}', "fields must be an object"),
        (b'{"alerts": [{"id": "a"}, {}]}', r"alerts\[1\]\.id is required"),
        (b'{"alerts": "a"}', "alerts must be a list"),
    ],
)
def test_wrong_shape_is_422_naming_the_field(body: bytes, reason: str) -> None:
    """A malformed generic alert is refused with 422 naming the field."""
    with pytest.raises(PayloadError, match=reason) as refused:
        parse(body, {})
    assert refused.value.status == 422
