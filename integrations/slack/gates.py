"""Gates in chat: a run that reaches a gate posts a message with an Acknowledge button."""

from __future__ import annotations

from collections.abc import Callable

from flows.contract.ports import ChatSystem, GateAnswer
from flows.runbook.model import Gate
from integrations.slack.commands import gate_blocks


class ChatGateResponder:
    """Posts each waiting gate once (per incident and gate) and lets the run stop and wait.

    The button's press arrives at the server, which records who acknowledged and resumes.
    """

    def __init__(self, chat: ChatSystem, title: str, fallback_channel: Callable[[], str | None]):
        self.chat, self.title, self.fallback_channel = chat, title, fallback_channel

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None:
        channel = self.chat.incident_channel(incident) or self.fallback_channel()
        if channel:
            self.chat.post(
                channel,
                f"Waiting for acknowledgement: {gate.title} (incident {incident})",
                f"{incident}:{gate.id}:gate",
                blocks=gate_blocks(incident, gate, self.title),
            )
        return None
