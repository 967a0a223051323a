"""The backends a run acts through: which ticket and chat systems the actions reach.

Each system is chosen on its own: Jira when it is configured, else the local ticket store;
Slack when a bot token is set, else the local outbox. The SDKs are imported only when used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flows.contract.ports import ChatSystem, TicketSystem
from integrations.config import JiraConfig, SlackConfig
from integrations.idempotency import IdempotencyMap
from integrations.jira.local import LocalTicketStore
from integrations.slack.local import Echo, LocalOutbox, echo_to_stderr

IDEMPOTENCY_DB = "idempotency.db"


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


def select_backends(
    home: Path,
    jira: JiraConfig | None,
    slack: SlackConfig | None,
    echo: Echo | None = echo_to_stderr,
) -> Backends:
    """Real Jira and Slack where configured, the local backends otherwise."""
    local = local_backends(home, echo=echo)
    made = IdempotencyMap(home / IDEMPOTENCY_DB) if (jira or slack) else None
    tickets: TicketSystem = local.tickets
    chat: ChatSystem = local.chat
    if jira is not None and made is not None:
        # loads the jira SDK (~80 ms atop `runbook run`): only runs with Jira configured need it
        from integrations.jira.rest import JiraTickets

        tickets = JiraTickets(jira, made)
    if slack is not None and made is not None:
        # loads slack_sdk (~30 ms atop `runbook run`): only runs with Slack configured need it
        from integrations.slack.web import SlackChat

        chat = SlackChat(slack, made)
    return Backends(tickets=tickets, chat=chat)
