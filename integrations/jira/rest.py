"""Jira through the `jira` library, with our own retry policy and idempotency.

Jira has no idempotency key (pycontribs/jira#1484), so each write is looked for before it is
made: in the local `IdempotencyMap` first, then in Jira (a dedupe label on issues, a marker line
on comments, the file name of attachments, the globalId of remote links). The library's own
retries are off: they re-send any request, POST included, after a 503 or a dropped connection,
which can open two tickets. Here a write whose answer was lost is never sent again blindly: we
search for what it would have made instead. A ticket's create is also recorded as an intent in
the map before it is sent, so a retry or a resume after a crash searches (waiting out Jira's
search lag, up to `reconcile_s`) instead of creating a second ticket.

The connection and its requests are `integrations.jira.client`; opening tickets is
`integrations.jira.issues`; comments, transitions, files and links are `integrations.jira.updates`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flows.contract.ports import NewTicket, Ticket
from integrations.config import JiraConfig
from integrations.idempotency import IdempotencyMap
from integrations.jira import issues, updates
from integrations.jira.client import JiraClient
from integrations.jira.refusals import Op
from integrations.jira.retry import RetryPolicy


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
        self._made = made
        self._jira = JiraClient(config, policy or RetryPolicy(), sleep)

    def create_issue(self, ticket: NewTicket, dedupe_key: str) -> Ticket:
        """Open a ticket labelled with the step's dedupe tag, or return the one already opened."""
        return issues.create_issue(self._jira, self._made, ticket, dedupe_key)

    def comment(self, issue: str, body: str, dedupe_key: str) -> str:
        """Add a comment ending in the step's marker line, unless one with it is there already."""
        return updates.comment(self._jira, self._made, issue, body, dedupe_key)

    def transition(self, issue: str, status: str) -> Ticket:
        """Move a ticket to a status (or through a transition) by name; no-op if it is there."""
        return updates.transition(self._jira, issue, status)

    def attach(self, issue: str, path: Path, dedupe_key: str, filename: str | None = None) -> str:
        """Upload a file unless the issue already has one by that name; return its id."""
        return updates.attach(self._jira, self._made, issue, path, dedupe_key, filename)

    def link(self, issue: str, url: str, title: str, dedupe_key: str) -> str:
        """Add (or update) the remote link with the step's globalId; return its id."""
        return updates.link(self._jira, self._made, issue, url, title, dedupe_key)

    def check(self) -> str:
        """Call Jira as the configured account; return where and as whom."""
        op = Op("read the account", "log in", "Jira")
        me = self._jira.run(lambda client: client.myself(), op, True)
        return f"Jira {self._jira.base} as {me.get('displayName') or me.get('name')}"
