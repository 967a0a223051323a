"""Our own JSON alert shape, for senders with a configurable body (scripts, CI, other tools).

One alert `{"id": ..., "status": ..., "labels": {...}, ...}` or several as `{"alerts": [...]}`;
docs/triggers.md documents it. Identity is `id`, chosen by the sender: reuse it for repeats of
one alert, change it for a new occurrence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.alerts import Alert, PayloadError
from integrations.alerts.payload import (
    RESERVED,
    alert_entries,
    load_object,
    mapping,
    path,
    present,
    required_text,
    status,
    string_map,
    text,
)


def _alert(entry: dict[str, Any], where: str) -> Alert:
    extra = mapping(entry, "fields", where)
    shadowing = sorted(RESERVED & extra.keys())
    if shadowing:
        raise PayloadError(f"{path(where, 'fields')}.{shadowing[0]} is reserved; use another name")
    return Alert(
        source="generic",
        identity=required_text(entry, "id", where),
        status=status(entry.get("status"), path(where, "status"), default="firing"),
        labels=string_map(entry, "labels", where),
        annotations=string_map(entry, "annotations", where),
        starts_at=text(entry, "starts_at", where),
        fields={**extra, **present(title=text(entry, "title", where))},
    )


def parse(body: bytes, headers: Mapping[str, str]) -> list[Alert]:
    """The alert (or `alerts`) of one generic webhook delivery; PayloadError when malformed."""
    payload = load_object(body)
    if "alerts" in payload:
        return [_alert(e, f"alerts[{i}]") for i, e in enumerate(alert_entries(payload))]
    return [_alert(payload, "")]
