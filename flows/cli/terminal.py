"""Gates answered at the terminal: the responder who runs the command acknowledges them.

Who answers is the OS account the command runs as: the prompt asks to confirm, not for a name,
so nobody can answer at the terminal in another person's name.
"""

from __future__ import annotations

import getpass
import socket
import sys

from flows.cli.common import err
from flows.contract.ports import GateAnswer, GateResponder
from flows.runbook.identity import os_identity
from flows.runbook.model import Gate


class TerminalResponder:
    """Asks the responder at the terminal to acknowledge a gate (prompts go to stderr)."""

    def __init__(self, os_user: str, host: str) -> None:
        self.os_user, self.host = os_user, host

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None:
        """Show the gate's checklist and who may pass it; ask to confirm (anything else waits)."""
        err(f"\n== Manual gate '{gate.id}': {gate.title} (incident {incident})")
        for item in gate.items:
            err(f"   [ ] {item}")
        approvers = gate.policy.approvers if gate.policy else None
        if approvers is not None and gate.policy is not None:
            names = [*approvers.roles, *approvers.people, *approvers.groups]
            err(f"   Approvers: {', '.join(names)}; approvals needed: {gate.policy.min_approvals}")
        err(
            f"You answer as {self.os_user}@{self.host}. Acknowledge when every item is done;"
            " any other answer stops and waits."
        )
        if _ask("Acknowledge now? [y/N] ").lower() not in ("y", "yes"):
            return None
        identity = os_identity(self.os_user, self.host, channel="terminal")
        note = _ask("Note (optional): ")
        return GateAnswer(by=self.os_user, note=note, via="terminal", identity=identity)

    def heard(self, gate: Gate, incident: str, outcome: str) -> None:
        """Say what became of the answer: a refusal's reason, or the approvals still needed."""
        err(f"   {outcome}")


def _ask(prompt: str) -> str:
    # Prompts go to stderr, like every other message, so stdout stays the run's JSON outcome.
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def terminal_responder(no_input: bool) -> GateResponder | None:
    """The terminal's responder when a person is there to answer, else None (gates wait)."""
    if not sys.stdin.isatty() or no_input:
        return None
    return TerminalResponder(getpass.getuser(), socket.gethostname())
