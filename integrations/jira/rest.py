"""Jira through the `jira` library, with our own retry policy and idempotency.

Jira has no idempotency key (pycontribs/jira#1484), so each write is looked for before it is
made: in the local `IdempotencyMap` first, then in Jira (a dedupe label on issues, a marker line
on comments, the file name of attachments, the globalId of remote links). The library's own
retries are off: they re-send any request, POST included, after a 503 or a dropped connection,
which can open two tickets. Here a write whose answer was lost is never sent again blindly: we
search for what it would have made instead.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests
from jira import JIRA, JIRAError
from tenacity import RetryCallState

from flows.contract.ports import NewTicket, Ticket
from integrations.config import JiraConfig
from integrations.idempotency import IdempotencyMap
from integrations.jira import TicketNotFound, TicketSystemError
from integrations.jira.refusals import CREDENTIALS_HINT, Op, refusal
from integrations.jira.retry import (
    NoAnswer,
    RetryPolicy,
    call_with_retries,
    checked_tries,
    lookups,
)

SYSTEM = "jira"
LOG = logging.getLogger(__name__)
T = TypeVar("T")
_LABEL = re.compile(r"^\S{1,255}$")


class OutcomeUnknown(TicketSystemError):
    """A write went unanswered and what it would have made was not found (yet)."""


def dedupe_tag(dedupe_key: str) -> str:
    """The label (and marker) naming what one step made: `rb-` + 16 hex digits of sha256."""
    return "rb-" + hashlib.sha256(dedupe_key.encode()).hexdigest()[:16]


class JiraTickets:
    """A `TicketSystem` on Jira Cloud or Server/DC; connects on first use."""

    name = "jira"

    def __init__(
        self,
        config: JiraConfig,
        made: IdempotencyMap,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._made = made
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._base = config.url.rstrip("/")
        self._lock = threading.Lock()
        self._jira: JIRA | None = None
        self._fields: list[dict[str, Any]] | None = None

    def create_issue(self, ticket: NewTicket, dedupe_key: str) -> Ticket:
        """Open a ticket labelled with the step's dedupe tag, or return the one already opened."""
        tag = dedupe_tag(dedupe_key)
        remembered = self._made.get(SYSTEM, f"issue:{dedupe_key}")
        found = self._existing(remembered["key"]) if remembered else None
        found = found or self._tagged(tag)
        if found is None:
            op = Op(f"create an issue in {ticket.project}", "Create issues", ticket.project)
            fields = self._issue_fields(ticket, tag)
            try:
                created = self._run(
                    lambda: self._client().create_issue(fields=fields, prefetch=False), op, False
                )
            except NoAnswer as err:
                found = self._look_again(lambda: self._tagged(tag), op, str(err))
            else:
                self._made.put(SYSTEM, f"issue:{dedupe_key}", {"key": created.key})
                return self._issue(created.key)
        self._made.put(SYSTEM, f"issue:{dedupe_key}", {"key": found.key})
        return found

    def comment(self, issue: str, body: str, dedupe_key: str) -> str:
        """Add a comment ending in the step's marker line, unless one with it is there already."""
        remembered = self._made.get(SYSTEM, f"comment:{dedupe_key}")
        if remembered:
            return str(remembered["id"])
        marker = f"(runbook {dedupe_tag(dedupe_key)})"
        op = Op(f"comment on {issue}", "Add comments", f"issue {issue}", issue)
        found = self._marked_comment(issue, marker)
        if found is None:
            text = f"{body.rstrip()}\n\n{marker}"
            try:
                found = str(
                    self._run(lambda: self._client().add_comment(issue, text), op, False).id
                )
            except NoAnswer as err:
                found = self._look_again(lambda: self._marked_comment(issue, marker), op, str(err))
        self._made.put(SYSTEM, f"comment:{dedupe_key}", {"id": found, "issue": issue})
        return found

    def transition(self, issue: str, status: str) -> Ticket:
        """Move a ticket to a status (or through a transition) by name; no-op if it is there."""
        op = Op(f"move {issue} to {status!r}", "Transition issues", f"issue {issue}", issue)
        tries = checked_tries(self._policy, self._sleep)
        try:
            # Each try reads the status again: a transition that happened is not repeated.
            return tries(self._transition_once, issue, status, op)
        except NoAnswer:
            raise OutcomeUnknown(
                f"could not {op.what}: Jira did not answer; run the step again"
            ) from None

    def _transition_once(self, issue: str, status: str, op: Op) -> Ticket:
        current = self._issue(issue)
        if current.status.casefold() == status.casefold():
            return current
        offered = self._run(lambda: self._client().transitions(issue), op, True)
        chosen = _pick_transition(offered, status)
        if chosen is None:
            choices = ", ".join(f"{t['name']} -> {t['to']['name']}" for t in offered) or "none"
            raise TicketSystemError(
                f"{issue} cannot move to {status!r} from {current.status!r}; its workflow"
                f" offers: {choices}"
            )
        self._post_transition(issue, chosen["id"], op)
        return current.model_copy(update={"status": chosen["to"]["name"]})

    def attach(self, issue: str, path: Path, dedupe_key: str, filename: str | None = None) -> str:
        """Upload a file unless the issue already has one by that name; return its id."""
        remembered = self._made.get(SYSTEM, f"attach:{dedupe_key}")
        if remembered:
            return str(remembered["id"])
        name = filename or path.name
        op = Op(f"attach {name} to {issue}", "Create attachments", f"issue {issue}", issue)
        if path.stat().st_size == 0:
            raise TicketSystemError(f"could not {op.what}: {path} is empty")
        found = self._attachment(issue, name)
        if found is None:
            try:
                found = self._upload(issue, path, name, op)
            except NoAnswer as err:
                found = self._look_again(lambda: self._attachment(issue, name), op, str(err))
        self._made.put(SYSTEM, f"attach:{dedupe_key}", {"id": found, "issue": issue})
        return found

    def link(self, issue: str, url: str, title: str, dedupe_key: str) -> str:
        """Add (or update) the remote link with the step's globalId; return its id."""
        remembered = self._made.get(SYSTEM, f"link:{dedupe_key}")
        if remembered:
            return str(remembered["id"])
        global_id = "rb:" + dedupe_tag(dedupe_key).removeprefix("rb-")
        op = Op(f"link {issue} to {url}", "Link issues", f"issue {issue}", issue)
        target = {"url": url, "title": title}
        # A POST with a globalId updates the link that has it: repeating it is safe.
        made = self._run(
            lambda: self._client().add_remote_link(issue, target, globalId=global_id), op, True
        )
        self._made.put(SYSTEM, f"link:{dedupe_key}", {"id": str(made.id), "issue": issue})
        return str(made.id)

    def check(self) -> str:
        """Call Jira as the configured account; return where and as whom."""
        me = self._run(
            lambda: self._client().myself(), Op("read the account", "log in", "Jira"), True
        )
        return f"Jira {self._base} as {me.get('displayName') or me.get('name')}"

    # Reads -----------------------------------------------------------------------------------

    def _issue(self, key: str) -> Ticket:
        op = Op(f"read {key}", "Browse projects", f"issue {key}", key)
        raw = self._run(lambda: self._client().issue(key, fields="summary,status").raw, op, True)
        return self._ticket(raw)

    def _existing(self, key: str) -> Ticket | None:
        try:
            return self._issue(key)
        except TicketNotFound:
            return None  # deleted since: fall back to the label search

    def _tagged(self, tag: str) -> Ticket | None:
        op = Op(f"search for label {tag}", "Browse projects", "the projects it can see")
        found = self._run(
            lambda: self._client().search_issues(
                f'labels = "{tag}"', maxResults=10, fields=["summary", "status"], json_result=True
            ),
            op,
            True,
        )
        issues = sorted(found.get("issues", []), key=lambda raw: int(raw["id"]))
        return self._ticket(issues[0]) if issues else None

    def _marked_comment(self, issue: str, marker: str) -> str | None:
        op = Op(f"read the comments of {issue}", "Browse projects", f"issue {issue}", issue)
        start, size = 0, 100
        while True:
            page = self._comment_page(issue, start, size, op)
            for comment in page:
                if str(comment.body).rstrip().endswith(marker):
                    return str(comment.id)
            if len(page) < size:
                return None
            start += size

    def _comment_page(self, issue: str, start: int, size: int, op: Op) -> list[Any]:
        return self._run(
            lambda: self._client().comments(issue, start_at=start, max_results=size), op, True
        )

    def _post_transition(self, issue: str, transition_id: str, op: Op) -> None:
        self._run(lambda: self._client().transition_issue(issue, transition_id), op, False)

    def _upload(self, issue: str, path: Path, name: str, op: Op) -> str:
        with path.open("rb") as file:  # the library rewinds it for each attempt
            made = self._run(
                lambda: self._client().add_attachment(issue, file, filename=name), op, False
            )
        return str(made.id)

    def _attachment(self, issue: str, name: str) -> str | None:
        op = Op(f"read the attachments of {issue}", "Browse projects", f"issue {issue}", issue)
        raw = self._run(lambda: self._client().issue(issue, fields="attachment").raw, op, True)
        files = raw.get("fields", {}).get("attachment") or []
        return next((str(f["id"]) for f in files if f.get("filename") == name), None)

    def _look_again(self, find: Callable[[], T | None], op: Op, failure: str) -> T:
        problem = ""

        def note(state: RetryCallState) -> None:
            nonlocal problem
            if state.outcome is not None and state.outcome.failed:
                problem = f"; the last search failed: {state.outcome.exception()}"

        found: T | None = lookups(self._policy, self._sleep, after=note)(find)
        if found is not None:
            return found
        raise OutcomeUnknown(
            f"Jira did not answer the request to {op.what} ({failure}) and {self._policy.lookups}"
            f" searches did not find what it would have made{problem}: the outcome is unknown."
            " Resuming the incident looks for it again before sending anything"
        )

    # Plumbing --------------------------------------------------------------------------------

    def _client(self) -> JIRA:
        with self._lock:
            if self._jira is None:
                self._jira = self._connect()
            return self._jira

    def _connect(self) -> JIRA:
        config = self._config
        if config.pat is not None:
            auth: dict[str, Any] = {"token_auth": config.pat.get_secret_value()}
        elif config.user and config.token is not None:
            auth = {"basic_auth": (config.user, config.token.get_secret_value())}
        else:
            raise TicketSystemError(
                f"RUNBOOK_JIRA_URL is set but no credentials: {CREDENTIALS_HINT}"
            )
        # max_retries=0: the library's retries would re-send POSTs; ours are in call_with_retries.
        connect = functools.partial(
            JIRA, self._base, timeout=config.timeout_s, max_retries=0, **auth
        )
        return self._run(connect, Op("connect", "Browse projects", "Jira"), True)

    def _run(self, call: Callable[[], T], op: Op, safe: bool) -> T:
        try:
            return call_with_retries(
                call,
                safe=safe,
                what=op.what,
                policy=self._policy,
                max_wait_s=self._config.max_retry_wait_s,
                sleep=self._sleep,
            )
        except JIRAError as err:
            raise self._refusal(err, op) from None
        except requests.RequestException as err:
            raise TicketSystemError(
                f"could not {op.what}: cannot talk to Jira at {self._base} ({type(err).__name__})"
            ) from None

    def _refusal(self, err: JIRAError, op: Op) -> TicketSystemError:
        return refusal(err, op, self._base, self._config, self._fields or [])

    def _issue_fields(self, ticket: NewTicket, tag: str) -> dict[str, Any]:
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
            field = self._field(name)
            fields[field["id"]] = _field_value(field.get("schema") or {}, value)
        return fields

    def _field(self, name: str) -> dict[str, Any]:
        """A field by display name (case-insensitive) or id, from GET /field (read once)."""
        if self._fields is None:
            op = Op("list the issue fields", "Browse projects", "Jira")
            self._fields = self._run(lambda: self._client().fields(), op, True)
        matches = [f for f in self._fields if name.casefold() in (f["name"].casefold(), f["id"])]
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(f["id"] for f in matches)
            raise TicketSystemError(f"several Jira fields are named {name!r} ({ids}): use the id")
        custom = ", ".join(sorted(f["name"] for f in self._fields if f.get("custom")))
        raise TicketSystemError(f"Jira has no field named {name!r}; custom fields: {custom}")

    def _ticket(self, raw: dict[str, Any]) -> Ticket:
        fields = raw.get("fields") or {}
        return Ticket(
            key=raw["key"],
            url=f"{self._base}/browse/{raw['key']}",
            summary=fields.get("summary") or "",
            status=(fields.get("status") or {}).get("name", ""),
        )


def _pick_transition(offered: list[dict[str, Any]], status: str) -> dict[str, Any] | None:
    wanted = status.casefold()
    by_status = [t for t in offered if t["to"]["name"].casefold() == wanted]
    by_name = [t for t in offered if t["name"].casefold() == wanted]
    return next(iter(by_status or by_name), None)


def _field_value(schema: dict[str, Any], value: Any) -> Any:
    """Shape a plain value the way Jira wants it for this field type (options as {"value": x})."""
    kind, items = schema.get("type"), schema.get("items")
    if kind == "option" and isinstance(value, str):
        return {"value": value}
    if kind == "array" and isinstance(value, list | tuple):
        key = {"option": "value", "component": "name", "version": "name"}.get(items or "")
        return [{key: v} if key and isinstance(v, str) else v for v in value]
    return value
