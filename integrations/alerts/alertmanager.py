"""Prometheus Alertmanager webhooks (payload version 4): one `Alert` per entry of `alerts[]`.

Identity is `groupKey|fingerprint|startsAt`. Both members of an HA pair send the same alert with
the same three values, so their deliveries join one incident; a firing after a resolve carries a
new `startsAt`, so it opens a new one, while its own resolve keeps the identity it fired with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from integrations.alerts import Alert
from integrations.alerts.payload import (
    alert_entries,
    labels_digest,
    load_object,
    present,
    required_text,
    status,
    string_map,
    text,
)


@dataclass(frozen=True)
class Entry:
    """The fields every Alertmanager-shaped alert entry has (Grafana's too)."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str | None
    generator_url: str | None
    fingerprint: str


def read_entry(entry: dict[str, Any], where: str) -> Entry:
    """One `alerts[]` entry; a missing fingerprint becomes a digest of the labels."""
    labels = string_map(entry, "labels", where)
    return Entry(
        status=status(entry.get("status"), f"{where}.status"),
        labels=labels,
        annotations=string_map(entry, "annotations", where),
        starts_at=required_text(entry, "startsAt", where),
        ends_at=text(entry, "endsAt", where),
        generator_url=text(entry, "generatorURL", where),
        fingerprint=text(entry, "fingerprint", where) or labels_digest(labels),
    )


def parse(body: bytes, headers: Mapping[str, str]) -> list[Alert]:
    """The alerts of one Alertmanager webhook delivery; PayloadError when it is not one."""
    payload = load_object(body)
    group_key = required_text(payload, "groupKey", "")
    group = present(
        groupKey=group_key,
        receiver=text(payload, "receiver", ""),
        externalURL=text(payload, "externalURL", ""),
    )
    alerts = []
    for index, raw in enumerate(alert_entries(payload)):
        entry = read_entry(raw, f"alerts[{index}]")
        alerts.append(
            Alert(
                source="alertmanager",
                identity=f"{group_key}|{entry.fingerprint}|{entry.starts_at}",
                status=entry.status,
                labels=entry.labels,
                annotations=entry.annotations,
                starts_at=entry.starts_at,
                fields={
                    **group,
                    **present(generatorURL=entry.generator_url, endsAt=entry.ends_at),
                    "fingerprint": entry.fingerprint,
                },
            )
        )
    return alerts
