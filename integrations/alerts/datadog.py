"""Datadog webhooks: the body is the JSON template set in Datadog's Webhooks integration tile.

docs/triggers.md gives the template to use. Identity is `alert_cycle_key` (one value from the
moment a monitor triggers until it recovers; a later trigger gets a new one), else `alert_id`
(the monitor id: every cycle of that monitor then joins one incident).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from integrations.alerts import Alert, PayloadError
from integrations.alerts.payload import RESERVED, kind, load_object, scalar_text, text

_PLACEHOLDER = re.compile(r"\$[A-Z_]+")


def _identity_part(payload: dict[str, Any], key: str) -> str | None:
    value = text(payload, key, "")
    # A variable Datadog could not fill must not become one identity shared by every alert.
    if value is None or _PLACEHOLDER.fullmatch(value.strip()):
        return None
    return value.strip() or None


def tag_labels(tags: Any) -> dict[str, str]:
    """`"env:prod,team:db"` (or a list of such tags) as labels; repeated keys join with commas."""
    if tags is None:
        return {}
    if isinstance(tags, list):
        items = [scalar_text(tag, f"tags[{i}]") for i, tag in enumerate(tags)]
    elif isinstance(tags, str):
        items = tags.split(",")
    else:
        raise PayloadError(f"tags must be a string or a list, not {kind(tags)}")
    labels: dict[str, str] = {}
    for item in items:
        name, _, value = item.strip().partition(":")
        if name:
            labels[name] = f"{labels[name]},{value}" if name in labels else value
    return labels


def parse(body: bytes, headers: Mapping[str, str]) -> list[Alert]:
    """The one alert of a Datadog webhook delivery; PayloadError when it has no identity."""
    payload = load_object(body)
    identity = _identity_part(payload, "alert_cycle_key") or _identity_part(payload, "alert_id")
    if identity is None:
        raise PayloadError("alert_cycle_key (or at least alert_id) is required")
    transition = text(payload, "transition", "") or ""
    return [
        Alert(
            source="datadog",
            identity=identity,
            status="resolved" if transition.strip().lower() == "recovered" else "firing",
            labels=tag_labels(payload.get("tags")),
            fields={k: v for k, v in payload.items() if k != "tags" and k not in RESERVED},
        )
    ]
