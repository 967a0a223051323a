"""Opening exactly one ticket per step, also when Jira answers late or never, or its search lags.

Jira has no idempotency key: the step's dedupe label is what finds its ticket again, and the
intent kept in the idempotency map is what says a create may have happened unseen.

1. A ticket the map remembers is returned while Jira still has it (by key, else by label).
2. An intent without a result means a create was sent and its answer never recorded (none
   came, it came too late, or the process died first). Jira may hold that ticket while its
   search does not show it yet (Jira Cloud's search is eventually consistent), so it is
   searched for by label until `reconcile_s` after the request gave up, and never created
   again: not found, the step fails naming the label to look for.
3. Otherwise the label is searched for once; nothing found, the intent is written (on disk)
   and then the create is sent. Its answer records the ticket. No answer is case 2 at once. A
   refusal (a 4xx: Jira made nothing) withdraws the intent, so a corrected retry creates.

Values longer than Jira keeps are cut to fit, ending in a marker (integrations.limits); a cut
summary is kept whole at the top of the description.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from flows.contract.ports import NewTicket, Ticket
from integrations.idempotency import IdempotencyMap
from integrations.jira import TicketNotFound, TicketSystemError
from integrations.jira.client import JiraClient
from integrations.jira.dedupe import SYSTEM, NothingMade, dedupe_tag
from integrations.jira.refusals import Op
from integrations.jira.retry import NoAnswer
from integrations.jira.wiki import escape
from integrations.limits import MARKER, fit

SUMMARY_LIMIT = 255
"""Characters Jira keeps in a summary."""
LABEL_LIMIT = 255
"""Characters Jira keeps in one label."""
TEXT_LIMIT = 32_767
"""Characters Jira keeps in a text field: a description, a comment."""
LABEL_MARKER = MARKER.replace(" ", "")
"""The marker of a cut label: a label holds no spaces."""

_LABEL = re.compile(r"^\S{1,255}$")


def create_issue(
    jira: JiraClient, made: IdempotencyMap, ticket: NewTicket, dedupe_key: str
) -> Ticket:
    """Open a ticket labelled with the step's dedupe tag, or return the one already opened."""
    name, tag = f"issue:{dedupe_key}", dedupe_tag(dedupe_key)
    remembered = made.get(SYSTEM, name)
    if remembered is not None:
        found = _existing(jira, remembered["key"]) or _tagged(jira, tag)
        if found is not None:
            return found
        made.forget(SYSTEM, name)  # deleted from Jira since, label and all: open it anew
    intent = made.intent(SYSTEM, name)
    if intent is not None:
        found = _reconciled(jira, tag, intent)
    else:
        found = _tagged(jira, tag) or _create(jira, made, ticket, name, tag)
    made.put(SYSTEM, name, {"key": found.key})
    return found


def _create(
    jira: JiraClient, made: IdempotencyMap, ticket: NewTicket, name: str, tag: str
) -> Ticket:
    """Send the create once, its intent on disk first; what Jira made, or what a search finds."""
    op = Op(f"create an issue in {ticket.project}", "Create issues", ticket.project)
    fields = _issue_fields(jira, ticket, tag)
    sent_at = time.time()
    # Should this process die during the request, the request would have given up by its
    # timeout: Jira's search lag is counted from then.
    intent = {"label": tag, "sent_at": sent_at, "given_up_at": sent_at + jira.config.timeout_s}
    made.intend(SYSTEM, name, intent)
    try:
        created = jira.run(
            lambda client: client.create_issue(fields=fields, prefetch=False), op, False
        )
    except NothingMade:
        made.withdraw(SYSTEM, name)
        raise
    except NoAnswer as err:
        intent = {**intent, "given_up_at": time.time(), "failure": str(err)}
        made.intend(SYSTEM, name, intent)
        return _reconciled(jira, tag, intent)
    made.put(SYSTEM, name, {"key": created.key})
    return jira.issue(created.key)


def _reconciled(jira: JiraClient, tag: str, intent: dict[str, Any]) -> Ticket:
    """The ticket an unanswered create made, found by its label; `OutcomeUnknown` if not."""
    sent = datetime.fromtimestamp(intent["sent_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    why = intent.get("failure") or "the run stopped before its answer was recorded"
    unknown = (
        f"Jira did not confirm the create of this step's ticket sent at {sent} ({why}), and"
        f" its search showed no ticket labelled {tag} within {jira.config.reconcile_s:g} s"
        " (RUNBOOK_JIRA_RECONCILE_S): the ticket may exist all the same, so it is not"
        f' created again. Search Jira for labels = "{tag}": if the ticket is there, run the'
        " step again and it is taken; if there is none, open the ticket by hand with the label"
        f" {tag}, then run the step again"
    )
    return jira.look_again(lambda: _tagged(jira, tag), intent["given_up_at"], unknown)


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
    labels = [fit(label, LABEL_LIMIT, LABEL_MARKER) for label in ticket.labels]
    labels.append(tag)
    if _LABEL.match(ticket.incident) and ticket.incident not in labels:
        labels.append(ticket.incident)
    summary, description = fit(ticket.summary, SUMMARY_LIMIT), ticket.description
    if summary != ticket.summary:
        description = f"Summary in full: {escape(ticket.summary)}\n\n{description}".rstrip()
    fields: dict[str, Any] = {
        "project": {"key": ticket.project},
        "issuetype": {"name": ticket.issue_type},
        "summary": summary,
        "labels": labels,
    }
    if description:
        fields["description"] = fit(description, TEXT_LIMIT)
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
