"""Jira's refusals in words a responder can act on: credentials, permissions, missing issues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jira import JIRAError

from integrations.config import JiraConfig
from integrations.jira import TicketNotFound, TicketSystemError
from integrations.jira.dedupe import NothingMade

CREDENTIALS_HINT = (
    "check RUNBOOK_JIRA_USER and RUNBOOK_JIRA_TOKEN (Jira Cloud: the account's email and an API"
    " token) or RUNBOOK_JIRA_PAT (Server/Data Center: a personal access token)"
)


@dataclass(frozen=True)
class Op:
    """What a request is for, in the words of the error messages."""

    what: str
    permission: str
    where: str
    issue: str | None = None


def refusal(
    err: JIRAError, op: Op, base: str, config: JiraConfig, fields: list[dict[str, Any]]
) -> TicketSystemError:
    """A refused request as a step failure that says what to fix: credentials, permission, key.

    A 4xx answer means Jira did nothing, so it is a `NothingMade` (or a `TicketNotFound`).
    """
    status, detail = err.status_code, error_detail(err, config, fields)
    if status == 401:
        return NothingMade(
            f"Jira at {base} rejected the credentials (HTTP 401) when trying to"
            f" {op.what}: {CREDENTIALS_HINT}"
        )
    if status == 403:
        who = config.user or "of RUNBOOK_JIRA_PAT"
        return NothingMade(
            f"the Jira account {who} lacks the {op.permission!r} permission in {op.where}"
            f" (HTTP 403 when trying to {op.what}: {detail}); ask a Jira admin to grant it"
            " in the project's permission scheme"
        )
    if status == 404 and op.issue is not None:
        return TicketNotFound(
            f"no issue {op.issue} in Jira at {base}, or the account may not browse it"
            f" (HTTP 404: {detail})"
        )
    if status == 400:
        return NothingMade(f"Jira rejected the request to {op.what}: {detail}")
    refused = status is not None and 400 <= status < 500
    kind = NothingMade if refused else TicketSystemError
    return kind(f"could not {op.what}: Jira answered HTTP {status}: {detail}")


def error_detail(err: JIRAError, config: JiraConfig, fields: list[dict[str, Any]]) -> str:
    """Jira's own error messages, field errors named by field, with secrets masked."""
    try:
        body = err.response.json() if err.response is not None else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    field_errors = body.get("errors")
    errors = field_errors if isinstance(field_errors, dict) else {}
    names = {f["id"]: f["name"] for f in fields if f.get("custom")}
    parts = [str(m) for m in body.get("errorMessages") or []]
    parts += [f"{names.get(k, k)}: {v}" for k, v in errors.items()]
    text = "; ".join(parts) or str(err.text or "no details")[:300]
    for secret in (config.token, config.pat):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "***")
    return text
