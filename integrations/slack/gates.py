"""Gates in chat: a run that reaches a gate posts a message with an Acknowledge button."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flows.contract.ports import ChatSystem, GateAnswer
from flows.runbook.model import Gate
from integrations.slack import ChatError
from integrations.slack.commands import gate_blocks

LOG = logging.getLogger("runbook.slack")
NO_CHANNEL = "the incident has no channel and its runbook's owner is not a #channel"


class ChatGateResponder:
    """Posts each waiting gate once (per incident and gate) and lets the run stop and wait.

    The button's press arrives at the server, which records who acknowledged and resumes. A gate
    that cannot be posted still lets the run stop and wait (its evidence stays whole); it is kept
    in `unasked`, so the server can say so where it can.
    """

    def __init__(self, chat: ChatSystem, title: str, fallback_channel: Callable[[], str | None]):
        self.chat, self.title, self.fallback_channel = chat, title, fallback_channel
        self.unasked: list[tuple[Gate, str]] = []
        """Gates nobody was asked to answer, and why."""

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None:
        channel = self.chat.incident_channel(incident) or self.fallback_channel()
        if not channel:
            self._unasked(gate, incident, NO_CHANNEL)
            return None
        try:
            self.chat.post(
                channel,
                f"Waiting for acknowledgement: {gate.title} (incident {incident})",
                f"{incident}:{gate.id}:gate",
                blocks=gate_blocks(incident, gate, self.title),
            )
        except ChatError as error:
            self._unasked(gate, incident, str(error))
        return None

    def _unasked(self, gate: Gate, incident: str, reason: str) -> None:
        LOG.warning("gate %s of %s waits, and nobody was asked: %s", gate.id, incident, reason)
        self.unasked.append((gate, reason))
