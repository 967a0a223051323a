"""Alert sources: each turns a webhook body into `Alert`s, and checks who sent it.

An alert payload is untrusted data. Parsers validate its shape (a bad payload is a
`PayloadError`, answered 400/422, changing nothing) and never evaluate anything in it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.runbook.model import AlertSource


class PayloadError(ValueError):
    """The body is not a valid payload of this source; `status` is the HTTP answer (400 or 422)."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class AuthError(PermissionError):
    """The request is not from whom it claims to be; answered 401 without a trace but a count."""


class Lifecycle(StrEnum):
    """What an event says happened to its alert, in the words of the sources' lifecycles.

    Only `firing` may open an incident; every other event of an alert an incident is open for
    joins that incident, whatever the runbook's `match` says (a trigger that matches PagerDuty's
    `incident.triggered` still hears that incident's acknowledgement and resolution).
    """

    FIRING = "firing"
    """The alert fires (first, again, or re-notified)."""
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    """Someone at the source took it (PagerDuty `incident.acknowledged`, `unacknowledged`)."""
    ESCALATED = "escalated"
    """The source moved it to other people (PagerDuty `escalated`, `reassigned`, `delegated`)."""
    UPDATED = "updated"
    """Anything else the source says about it: a note, a priority, a status update."""


class Alert(BaseModel):
    """One alert, whatever its source, as routing and templates see it."""

    model_config = ConfigDict(frozen=True)

    source: AlertSource
    identity: str = Field(description="Same alert, same identity: repeats join one incident.")
    status: Literal["firing", "resolved"]
    event: Lifecycle | None = Field(
        default=None,
        description="What this event says happened; None: firing or resolved, by `status`.",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(
        default_factory=dict, description="Source-specific fields (title, state, alert_id, ...)."
    )
    starts_at: str | None = None
    delivery: str | None = Field(
        default=None, description="The sender's id of this delivery (PagerDuty X-Webhook-Id)."
    )

    @property
    def lifecycle(self) -> Lifecycle:
        """What happened to the alert: the source's event, or firing/resolved by its status."""
        if self.event is not None:
            return self.event
        return Lifecycle.RESOLVED if self.status == "resolved" else Lifecycle.FIRING

    def template_context(self) -> dict[str, Any]:
        """The `alert` object of trigger input templates and steps."""
        return {
            "source": self.source,
            "identity": self.identity,
            "status": self.status,
            "event": str(self.lifecycle),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at,
            **{k: v for k, v in self.fields.items() if k not in ("labels", "annotations")},
        }

    def matches(self, match: dict[str, str]) -> bool:
        """True when every matcher equals a label (or, failing that, a top-level field)."""
        for key, wanted in match.items():
            value = self.labels.get(key, self.fields.get(key))
            if value is None or str(value) != wanted:
                return False
        return True
