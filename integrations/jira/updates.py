"""Changes to an open ticket, each made once per step: comments, transitions, files, links.

A comment ends in the step's marker line and a file keeps its name, so both are looked for
before they are sent; a transition reads the status first; a remote link's globalId makes its
POST an update when it is repeated. A comment longer than Jira keeps is cut to fit, ending in
a marker, and keeps its marker line.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flows.contract.ports import Ticket
from integrations.idempotency import IdempotencyMap
from integrations.jira import TicketSystemError
from integrations.jira.client import JiraClient
from integrations.jira.dedupe import SYSTEM, OutcomeUnknown, dedupe_tag
from integrations.jira.issues import TEXT_LIMIT
from integrations.jira.refusals import Op
from integrations.jira.retry import NoAnswer
from integrations.limits import fit, length


def comment(jira: JiraClient, made: IdempotencyMap, issue: str, body: str, dedupe_key: str) -> str:
    """Add a comment ending in the step's marker line, unless one with it is there already."""
    remembered = made.get(SYSTEM, f"comment:{dedupe_key}")
    if remembered:
        return str(remembered["id"])
    marker = f"(runbook {dedupe_tag(dedupe_key)})"
    op = Op(f"comment on {issue}", "Add comments", f"issue {issue}", issue)
    found = _marked_comment(jira, issue, marker)
    if found is None:
        tail = f"\n\n{marker}"
        text = fit(body.rstrip(), TEXT_LIMIT - length(tail)) + tail
        try:
            found = str(jira.run(lambda client: client.add_comment(issue, text), op, False).id)
        except NoAnswer as err:
            found = jira.look_again(
                lambda: _marked_comment(jira, issue, marker), time.time(), _unknown(op, err)
            )
    made.put(SYSTEM, f"comment:{dedupe_key}", {"id": found, "issue": issue})
    return found


def transition(jira: JiraClient, issue: str, status: str) -> Ticket:
    """Move a ticket to a status (or through a transition) by name; no-op if it is there."""
    op = Op(f"move {issue} to {status!r}", "Transition issues", f"issue {issue}", issue)
    tries = jira.checked_write_tries()
    try:
        # Each try reads the status again: a transition that happened is not repeated.
        return tries(_transition_once, jira, issue, status, op)
    except NoAnswer:
        raise OutcomeUnknown(
            f"could not {op.what}: Jira did not answer; run the step again"
        ) from None


def attach(
    jira: JiraClient,
    made: IdempotencyMap,
    issue: str,
    path: Path,
    dedupe_key: str,
    filename: str | None = None,
) -> str:
    """Upload a file unless the issue already has one by that name; return its id."""
    remembered = made.get(SYSTEM, f"attach:{dedupe_key}")
    if remembered:
        return str(remembered["id"])
    name = filename or path.name
    op = Op(f"attach {name} to {issue}", "Create attachments", f"issue {issue}", issue)
    if path.stat().st_size == 0:
        raise TicketSystemError(f"could not {op.what}: {path} is empty")
    found = _attachment(jira, issue, name)
    if found is None:
        try:
            found = _upload(jira, issue, path, name, op)
        except NoAnswer as err:
            found = jira.look_again(
                lambda: _attachment(jira, issue, name), time.time(), _unknown(op, err)
            )
    made.put(SYSTEM, f"attach:{dedupe_key}", {"id": found, "issue": issue})
    return found


def link(
    jira: JiraClient, made: IdempotencyMap, issue: str, url: str, title: str, dedupe_key: str
) -> str:
    """Add (or update) the remote link with the step's globalId; return its id."""
    remembered = made.get(SYSTEM, f"link:{dedupe_key}")
    if remembered:
        return str(remembered["id"])
    global_id = "rb:" + dedupe_tag(dedupe_key).removeprefix("rb-")
    op = Op(f"link {issue} to {url}", "Link issues", f"issue {issue}", issue)
    target = {"url": url, "title": title}
    # A POST with a globalId updates the link that has it: repeating it is safe.
    added = jira.run(
        lambda client: client.add_remote_link(issue, target, globalId=global_id), op, True
    )
    made.put(SYSTEM, f"link:{dedupe_key}", {"id": str(added.id), "issue": issue})
    return str(added.id)


def _unknown(op: Op, err: NoAnswer) -> str:
    return (
        f"Jira did not answer the request to {op.what} ({err}) and the searches did not find"
        " what it would have made: the outcome is unknown. Running the step again looks for"
        " it again before sending anything"
    )


def _marked_comment(jira: JiraClient, issue: str, marker: str) -> str | None:
    op = Op(f"read the comments of {issue}", "Browse projects", f"issue {issue}", issue)
    start, size = 0, 100
    while True:
        page = _comment_page(jira, issue, start, size, op)
        for found in page:
            if str(found.body).rstrip().endswith(marker):
                return str(found.id)
        if len(page) < size:
            return None
        start += size


def _comment_page(jira: JiraClient, issue: str, start: int, size: int, op: Op) -> list[Any]:
    return jira.run(
        lambda client: client.comments(issue, start_at=start, max_results=size), op, True
    )


def _transition_once(jira: JiraClient, issue: str, status: str, op: Op) -> Ticket:
    current = jira.issue(issue)
    if current.status.casefold() == status.casefold():
        return current
    offered = jira.run(lambda client: client.transitions(issue), op, True)
    chosen = _pick_transition(offered, status)
    if chosen is None:
        choices = ", ".join(f"{t['name']} -> {t['to']['name']}" for t in offered) or "none"
        raise TicketSystemError(
            f"{issue} cannot move to {status!r} from {current.status!r}; its workflow"
            f" offers: {choices}"
        )
    jira.run(lambda client: client.transition_issue(issue, chosen["id"]), op, False)
    return current.model_copy(update={"status": chosen["to"]["name"]})


def _pick_transition(offered: list[dict[str, Any]], status: str) -> dict[str, Any] | None:
    wanted = status.casefold()
    by_status = [t for t in offered if t["to"]["name"].casefold() == wanted]
    by_name = [t for t in offered if t["name"].casefold() == wanted]
    return next(iter(by_status or by_name), None)


def _upload(jira: JiraClient, issue: str, path: Path, name: str, op: Op) -> str:
    with path.open("rb") as file:  # the library rewinds it for each attempt
        added = jira.run(
            lambda client: client.add_attachment(issue, file, filename=name), op, False
        )
    return str(added.id)


def _attachment(jira: JiraClient, issue: str, name: str) -> str | None:
    op = Op(f"read the attachments of {issue}", "Browse projects", f"issue {issue}", issue)
    raw = jira.run(lambda client: client.issue(issue, fields="attachment").raw, op, True)
    files = raw.get("fields", {}).get("attachment") or []
    return next((str(f["id"]) for f in files if f.get("filename") == name), None)
