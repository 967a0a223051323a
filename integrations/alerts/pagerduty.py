"""PagerDuty V3 webhooks: one event per delivery, about one incident.

Identity is the incident id, so every event of an incident (triggered, acknowledged, annotated,
resolved) belongs to one alert; `incident.resolved` resolves it, every other incident event is
firing and keeps its `event_type` as a label to route on. Only `incident.triggered` and
`incident.reopened` may open an incident; the other events say what happened to one (its
`Lifecycle`), and join the incident open for it. Events about anything but an incident,
such as the `pagey.ping` PagerDuty sends to test a subscription, carry no alert.
"""

from __future__ import annotations

from collections.abc import Mapping

from integrations.alerts import Alert, Lifecycle, PayloadError
from integrations.alerts.payload import kind, load_object, mapping, present, required_text, text

LIFECYCLE = {
    "incident.triggered": Lifecycle.FIRING,
    "incident.reopened": Lifecycle.FIRING,
    "incident.resolved": Lifecycle.RESOLVED,
    "incident.acknowledged": Lifecycle.ACKNOWLEDGED,
    "incident.unacknowledged": Lifecycle.ACKNOWLEDGED,
    "incident.escalated": Lifecycle.ESCALATED,
    "incident.reassigned": Lifecycle.ESCALATED,
    "incident.delegated": Lifecycle.ESCALATED,
}
"""PagerDuty's incident event types by what they say; any other is `updated`."""


def parse(body: bytes, headers: Mapping[str, str]) -> list[Alert]:
    """The alert of one PagerDuty V3 webhook delivery (none for non-incident events)."""
    payload = load_object(body)
    event = payload.get("event")
    if not isinstance(event, dict):
        raise PayloadError(f"event must be an object, not {kind(event)}")
    event_type = required_text(event, "event_type", "event")
    resource = text(event, "resource_type", "event")
    if resource not in (None, "incident") or not event_type.startswith("incident."):
        return []
    data = event.get("data")
    if not isinstance(data, dict):
        raise PayloadError(f"event.data must be an object, not {kind(data)}")
    # Notes, responders and status updates are about an incident they reference, not one they are.
    reference = mapping(data, "incident", "event.data")
    if text(data, "type", "event.data") in (None, "incident"):
        incident = required_text(data, "id", "event.data")
    else:
        incident = required_text(reference, "id", "event.data.incident")
    service = mapping(data, "service", "event.data")
    priority = mapping(data, "priority", "event.data")
    return [
        Alert(
            source="pagerduty",
            identity=incident,
            status="resolved" if event_type == "incident.resolved" else "firing",
            event=LIFECYCLE.get(event_type, Lifecycle.UPDATED),
            labels=present(
                service=text(service, "summary", "event.data.service"),
                urgency=text(data, "urgency", "event.data"),
                priority=text(priority, "summary", "event.data.priority"),
                event_type=event_type,
            ),
            fields=present(
                incident_id=incident,
                title=text(data, "title", "event.data")
                or text(reference, "summary", "event.data.incident"),
                html_url=text(data, "html_url", "event.data")
                or text(reference, "html_url", "event.data.incident"),
                incident_key=text(data, "incident_key", "event.data"),
                number=text(data, "number", "event.data"),
                incident_status=text(data, "status", "event.data"),
                service_id=text(service, "id", "event.data.service"),
                event_type=event_type,
                event_id=text(event, "id", "event"),
                occurred_at=text(event, "occurred_at", "event"),
            ),
            starts_at=text(data, "created_at", "event.data") or text(event, "occurred_at", "event"),
            delivery=headers.get("x-webhook-id") or None,
        )
    ]
