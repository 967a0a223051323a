"""Alert sources: each turns a webhook body into `Alert`s, and checks who sent it.

An alert payload is untrusted data. Parsers validate its shape (a bad payload is a
`PayloadError`, answered 400/422, changing nothing) and never evaluate anything in it.
"""

from __future__ import annotations

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


class Alert(BaseModel):
    """One alert, whatever its source, as routing and templates see it."""

    model_config = ConfigDict(frozen=True)

    source: AlertSource
    identity: str = Field(description="Same alert, same identity: repeats join one incident.")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(
        default_factory=dict, description="Source-specific fields (title, state, alert_id, ...)."
    )
    starts_at: str | None = None
    delivery: str | None = Field(
        default=None, description="The sender's id of this delivery (PagerDuty X-Webhook-Id)."
    )

    def template_context(self) -> dict[str, Any]:
        """The `alert` object of trigger input templates and steps."""
        return {
            "source": self.source,
            "identity": self.identity,
            "status": self.status,
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
