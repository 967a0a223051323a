"""Drill sandboxes: ticket and chat systems that can never reach production.

Tickets go to a local store under `<home>/drills/` labelled drill. Chat goes to a local outbox
there or, when the server has a Slack channel set aside for drills, to that one channel and
nowhere else; every text is prefixed `[DRILL] `. Injected faults make the next calls fail on
purpose.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from flows.contract.ports import ChatMessage, ChatSystem, NewTicket, Ticket
from integrations.jira import TicketSystemError
from integrations.jira.local import LocalTicketStore
from integrations.slack import ChatError
from integrations.slack.local import Echo, LocalOutbox

DRILL_PREFIX = "[DRILL] "
DRILL_LABEL = "drill"


class _Faults:
    """Calls to fail next, set by `fail_integration` injects from the inject thread."""

    def __init__(self, error: type[Exception], system: str) -> None:
        self._lock = threading.Lock()
        self._pending = 0
        self._error, self._system = error, system

    def add(self, times: int) -> None:
        with self._lock:
            self._pending += times

    def check(self, call: str) -> None:
        """Raise the system's own error when an injected failure is due."""
        with self._lock:
            if self._pending == 0:
                return
            self._pending -= 1
        raise self._error(f"drill inject: the {self._system} is down ({call} refused)")


class DrillTickets:
    """A `TicketSystem` on the drill store: tickets labelled `drill`, summaries prefixed."""

    name = "drill"

    def __init__(self, store: LocalTicketStore) -> None:
        self.store = store
        self.faults = _Faults(TicketSystemError, "ticket system")

    def create_issue(self, ticket: NewTicket, dedupe_key: str) -> Ticket:
        """Open a drill ticket (labelled, summary prefixed), once per `dedupe_key`."""
        self.faults.check("create_issue")
        labels = ticket.labels if DRILL_LABEL in ticket.labels else (*ticket.labels, DRILL_LABEL)
        marked = ticket.model_copy(
            update={"summary": DRILL_PREFIX + ticket.summary, "labels": labels}
        )
        return self.store.create_issue(marked, dedupe_key)

    def comment(self, issue: str, body: str, dedupe_key: str) -> str:
        """Comment on a drill ticket, prefixed."""
        self.faults.check("comment")
        return self.store.comment(issue, DRILL_PREFIX + body, dedupe_key)

    def transition(self, issue: str, status: str) -> Ticket:
        """Move a drill ticket."""
        self.faults.check("transition")
        return self.store.transition(issue, status)

    def attach(self, issue: str, path: Path, dedupe_key: str, filename: str | None = None) -> str:
        """Attach a file to a drill ticket."""
        self.faults.check("attach")
        return self.store.attach(issue, path, dedupe_key, filename)

    def link(self, issue: str, url: str, title: str, dedupe_key: str) -> str:
        """Link a drill ticket."""
        self.faults.check("link")
        return self.store.link(issue, url, DRILL_PREFIX + title, dedupe_key)

    def check(self) -> str:
        """Say where drill tickets go."""
        return f"drill sandbox: {self.store.check()}"


_DRILL_BANNER = {
    "type": "context",
    "elements": [{"type": "mrkdwn", "text": "*DRILL*: a rehearsal, not a real incident."}],
}


class DrillChat:
    """A `ChatSystem` for drills over another one: every text prefixed `[DRILL] `.

    Over the drill outbox, messages keep the channels steps name. With `pinned` (the Slack
    channel set aside for drills the server runs), every message goes to that one channel with
    a drill banner over any blocks, and no channel is opened nor anybody invited: the drill
    reaches its participants there and can never page an on-call channel.
    """

    def __init__(self, chat: ChatSystem, pinned: str | None = None) -> None:
        self.chat, self.pinned = chat, pinned
        self.name = "drill-channel" if pinned else "drill"
        self.faults = _Faults(ChatError, "chat system")

    def _marked(self, blocks: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return [_DRILL_BANNER, *blocks] if blocks and self.pinned else blocks

    def post(
        self,
        channel: str,
        text: str,
        dedupe_key: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> ChatMessage:
        """Post a prefixed message (to the pinned channel, whichever channel was named)."""
        self.faults.check("post")
        return self.chat.post(
            self.pinned or channel, DRILL_PREFIX + text, dedupe_key, self._marked(blocks), thread_ts
        )

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> ChatMessage:
        """Replace a drill message, prefixed."""
        self.faults.check("update")
        return self.chat.update(
            self.pinned or channel, ts, DRILL_PREFIX + text, self._marked(blocks)
        )

    def incident_channel(self, incident: str) -> str | None:
        """The pinned channel, or the drill channel opened for this incident."""
        return self.pinned or self.chat.incident_channel(incident)

    def create_channel(
        self,
        name: str,
        dedupe_key: str,
        topic: str = "",
        invite: tuple[str, ...] = (),
        bookmark: tuple[str, str] | None = None,
    ) -> str:
        """Open a drill channel, its topic prefixed; pinned, open nothing and say what would
        have been opened."""
        self.faults.check("create_channel")
        if self.pinned is None:
            return self.chat.create_channel(
                name, dedupe_key, DRILL_PREFIX + topic, invite, bookmark
            )
        who = f", inviting {', '.join(invite)}" if invite else ""
        self.chat.post(
            self.pinned,
            f"{DRILL_PREFIX}a real incident would open #{name} ({topic}){who}",
            dedupe_key,
        )
        return self.pinned

    def check(self) -> str:
        """Say where drill messages go."""
        if self.pinned:
            return f"drill channel {self.pinned} via {self.chat.check()}"
        return f"drill sandbox: {self.chat.check()}"

    def announce(self, text: str, dedupe_key: str) -> None:
        """Show participants a drill event (an inject), once per `dedupe_key`."""
        self.chat.post(self.pinned or "#drill", DRILL_PREFIX + text, dedupe_key)


def drill_backends(
    home: Path,
    echo: Echo | None = None,
    *,
    live_chat: ChatSystem | None = None,
    drill_channel: str | None = None,
) -> tuple[DrillTickets, DrillChat]:
    """The sandbox ticket store under `<home>/drills/`, and the drill channel of `live_chat`
    when both are given, the drill outbox there otherwise."""
    folder = home / "drills"
    tickets = DrillTickets(LocalTicketStore(folder / "tickets.db"))
    if live_chat is not None and drill_channel:
        return tickets, DrillChat(live_chat, pinned=drill_channel)
    return tickets, DrillChat(LocalOutbox(folder / "outbox.jsonl", echo=echo))
