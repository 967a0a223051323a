"""The seams between the engine and the outside world: ticket and chat systems, gate responders.

Local, real and drill backends all implement these; the engine and the actions see nothing else.
Every side-effecting method takes a `dedupe_key` (incident + step): calling it twice with the same
key returns what the first call made instead of making it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from flows.runbook.identity import Identity
from flows.runbook.model import Gate


class Ticket(BaseModel):
    """A ticket as the engine sees it, whatever system holds it."""

    model_config = ConfigDict(frozen=True)

    key: str
    url: str
    summary: str
    status: str


class NewTicket(BaseModel):
    """The fields of a ticket to open."""

    model_config = ConfigDict(frozen=True)

    project: str
    summary: str
    description: str = ""
    issue_type: str = "Task"
    priority: str | None = None
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    custom_fields: dict[str, Any] = {}
    """Custom fields by their display name (e.g. "Severity"); backends resolve the field ids."""
    incident: str = ""


class ChatMessage(BaseModel):
    """Where a posted message landed: enough to thread under it or edit it later."""

    model_config = ConfigDict(frozen=True)

    channel: str
    ts: str


class TicketSystem(Protocol):
    """What the engine needs from a ticketing system (Jira or the local store)."""

    name: str

    def create_issue(self, ticket: NewTicket, dedupe_key: str) -> Ticket:
        """Open a ticket, or return the one already opened under `dedupe_key`."""
        ...

    def comment(self, issue: str, body: str, dedupe_key: str) -> str:
        """Add a comment (once per `dedupe_key`) and return its id."""
        ...

    def transition(self, issue: str, status: str) -> Ticket:
        """Move a ticket to the named status; moving it to the status it has is a no-op."""
        ...

    def attach(self, issue: str, path: Path, dedupe_key: str, filename: str | None = None) -> str:
        """Attach a file (once per `dedupe_key`) and return the attachment id."""
        ...

    def link(self, issue: str, url: str, title: str, dedupe_key: str) -> str:
        """Add a remote link (once per `dedupe_key`) and return its id."""
        ...

    def check(self) -> str:
        """Check the connection and credentials; return who we are connected as, and where."""
        ...


class ChatSystem(Protocol):
    """What the engine needs from a chat system (Slack or the local outbox)."""

    name: str

    def post(
        self,
        channel: str,
        text: str,
        dedupe_key: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> ChatMessage:
        """Post a message, or return the one already posted under `dedupe_key`."""
        ...

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> ChatMessage:
        """Replace the text (and blocks) of a message posted earlier."""
        ...

    def incident_channel(self, incident: str) -> str | None:
        """The channel `slack.create_channel` most recently opened for this incident, or None."""
        ...

    def create_channel(
        self,
        name: str,
        dedupe_key: str,
        topic: str = "",
        invite: tuple[str, ...] = (),
        bookmark: tuple[str, str] | None = None,
    ) -> str:
        """Create a channel (or find the one made under `dedupe_key` or with this name).

        `invite` holds user ids, `@handles` or `@user-group` handles; `bookmark` is a
        (title, url) pair pinned to the channel. Returns the channel id.
        """
        ...

    def check(self) -> str:
        """Check the connection and credentials; return who we are connected as, and where."""
        ...


@runtime_checkable
class ChatDialogs(Protocol):
    """What a chat system offers the person who pressed a button: a dialog, a private reply.

    Slack has both; the local outbox has no one to show a dialog to, so its `open_modal` says
    False and the press is answered without one.
    """

    def open_modal(self, trigger_id: str, view: dict[str, Any]) -> bool:
        """Open `view` for the press `trigger_id` (views.open); False when there are no dialogs."""
        ...

    def tell(self, channel: str, user: str, text: str) -> None:
        """Show `text` to `user` alone, in `channel` (chat.postEphemeral)."""
        ...


@dataclass(frozen=True)
class GateAnswer:
    """A responder's acknowledgement of a gate.

    `identity` is who the channel proved is answering (the terminal's OS account). Without one,
    `by` names the person: a scenario participant when `via` is `drill`, else a roster person
    named by a program answering gates. Either way the engine checks the gate's policy.
    """

    by: str
    note: str = ""
    via: str = "terminal"
    identity: Identity | None = None


class GateResponder(Protocol):
    """Asks a responder to acknowledge a gate now; None means nobody can answer now."""

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None: ...


@runtime_checkable
class GateListener(Protocol):
    """A responder that also hears what became of its answer (to show a refusal's reason)."""

    def heard(self, gate: Gate, incident: str, outcome: str) -> None:
        """`outcome`: acknowledged, approved n of m, or refused and why, in words."""
        ...


class NoResponder:
    """Nobody is at the terminal: gates wait for `runbook ack`."""

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None:
        return None
