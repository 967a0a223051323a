"""Opening a ticket once per step: the step's label is searched for before an issue is created."""

from __future__ import annotations

import re
from typing import Any

from flows.contract.ports import NewTicket, Ticket
from integrations.idempotency import IdempotencyMap
from integrations.jira import TicketNotFound, TicketSystemError
from integrations.jira.client import JiraClient
from integrations.jira.dedupe import SYSTEM, dedupe_tag
from integrations.jira.refusals import Op
from integrations.jira.retry import NoAnswer

_LABEL = re.compile(r"^\S{1,255}$")


def create_issue(
    jira: JiraClient, made: IdempotencyMap, ticket: NewTicket, dedupe_key: str
) -> Ticket:
    """Open a ticket labelled with the step's dedupe tag, or return the one already opened."""
    tag = dedupe_tag(dedupe_key)
    remembered = made.get(SYSTEM, f"issue:{dedupe_key}")
    found = _existing(jira, remembered["key"]) if remembered else None
    found = found or _tagged(jira, tag)
    if found is None:
        op = Op(f"create an issue in {ticket.project}", "Create issues", ticket.project)
        fields = _issue_fields(jira, ticket, tag)
        try:
            created = jira.run(
                lambda client: client.create_issue(fields=fields, prefetch=False), op, False
            )
        except NoAnswer as err:
            found = jira.look_again(lambda: _tagged(jira, tag), op, str(err))
        else:
            made.put(SYSTEM, f"issue:{dedupe_key}", {"key": created.key})
            return jira.issue(created.key)
    made.put(SYSTEM, f"issue:{dedupe_key}", {"key": found.key})
    return found


def _existing(jira: JiraClient, key: str) -> Ticket | None:
    try:
        return jira.issue(key)
    except TicketNotFound:
        return None  # deleted since: fall back to the label search


def _tagged(jira: JiraClient, tag: str) -> Ticket | None:
    op = Op(f"search for label {tag}", "Browse projects", "the projects it can see")
    found = jira.run(
        lambda client: client.search_issues(
            f'labels = "{tag}"', maxResults=10, fields=["summary", "status"], json_result=True
        ),
        op,
        True,
    )
    issues = sorted(found.get("issues", []), key=lambda raw: int(raw["id"]))
    return jira.ticket(issues[0]) if issues else None


def _issue_fields(jira: JiraClient, ticket: NewTicket, tag: str) -> dict[str, Any]:
    labels = [*ticket.labels, tag]
    if _LABEL.match(ticket.incident) and ticket.incident not in labels:
        labels.append(ticket.incident)
    fields: dict[str, Any] = {
        "project": {"key": ticket.project},
        "issuetype": {"name": ticket.issue_type},
        "summary": ticket.summary,
        "labels": labels,
    }
    if ticket.description:
        fields["description"] = ticket.description
    if ticket.priority:
        fields["priority"] = {"name": ticket.priority}
    if ticket.components:
        fields["components"] = [{"name": name} for name in ticket.components]
    for name, value in ticket.custom_fields.items():
        field = _field(jira, name)
        fields[field["id"]] = _field_value(field.get("schema") or {}, value)
    return fields


def _field(jira: JiraClient, name: str) -> dict[str, Any]:
    """A field by display name (case-insensitive) or id, from GET /field (read once)."""
    known = jira.fields()
    matches = [f for f in known if name.casefold() in (f["name"].casefold(), f["id"])]
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(f["id"] for f in matches)
        raise TicketSystemError(f"several Jira fields are named {name!r} ({ids}): use the id")
    custom = ", ".join(sorted(f["name"] for f in known if f.get("custom")))
    raise TicketSystemError(f"Jira has no field named {name!r}; custom fields: {custom}")


def _field_value(schema: dict[str, Any], value: Any) -> Any:
    """Shape a plain value the way Jira wants it for this field type (options as {"value": x})."""
    kind, items = schema.get("type"), schema.get("items")
    if kind == "option" and isinstance(value, str):
        return {"value": value}
    if kind == "array" and isinstance(value, list | tuple):
        key = {"option": "value", "component": "name", "version": "name"}.get(items or "")
        return [{key: v} if key and isinstance(v, str) else v for v in value]
    return value
