"""Grafana alerting webhooks: Alertmanager's shape plus `title`, `state`, `message`, `orgId`.

Identity is `fingerprint|startsAt`: Grafana's fingerprint already covers the rule and the alert
instance's labels, and a new firing after a resolve has a new `startsAt`.
"""

from __future__ import annotations

from collections.abc import Mapping

from integrations.alerts import Alert
from integrations.alerts.alertmanager import read_entry
from integrations.alerts.payload import alert_entries, load_object, mapping, present, text


def parse(body: bytes, headers: Mapping[str, str]) -> list[Alert]:
    """The alerts of one Grafana webhook delivery; PayloadError when it is not one."""
    payload = load_object(body)
    group = present(
        title=text(payload, "title", ""),
        state=text(payload, "state", ""),
        message=text(payload, "message", ""),
        orgId=text(payload, "orgId", ""),
        groupKey=text(payload, "groupKey", ""),
        receiver=text(payload, "receiver", ""),
        externalURL=text(payload, "externalURL", ""),
    )
    alerts = []
    for index, raw in enumerate(alert_entries(payload)):
        where = f"alerts[{index}]"
        entry = read_entry(raw, where)
        values = mapping(raw, "values", where)
        alerts.append(
            Alert(
                source="grafana",
                identity=f"{entry.fingerprint}|{entry.starts_at}",
                status=entry.status,
                labels=entry.labels,
                annotations=entry.annotations,
                starts_at=entry.starts_at,
                fields={
                    **group,
                    **present(
                        generatorURL=entry.generator_url,
                        endsAt=entry.ends_at,
                        silenceURL=text(raw, "silenceURL", where),
                        dashboardURL=text(raw, "dashboardURL", where),
                        panelURL=text(raw, "panelURL", where),
                        imageURL=text(raw, "imageURL", where),
                        valueString=text(raw, "valueString", where),
                        values=values or None,
                    ),
                    "fingerprint": entry.fingerprint,
                },
            )
        )
    return alerts
