"""The backends a run acts through: which ticket and chat systems the actions reach."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from integrations.jira.local import LocalTicketStore
from integrations.protocols import ChatSystem, TicketSystem
from integrations.slack.local import Echo, LocalOutbox, echo_to_stderr


@dataclass(frozen=True)
class Backends:
    """One ticket system and one chat system, handed to every action of a run."""

    tickets: TicketSystem
    chat: ChatSystem


def local_backends(home: Path, echo: Echo | None = echo_to_stderr) -> Backends:
    """The embedded defaults under `home`: tickets.db and outbox.jsonl; `echo` None is silent."""
    return Backends(
        tickets=LocalTicketStore(home / "tickets.db"),
        chat=LocalOutbox(home / "outbox.jsonl", echo=echo),
    )
