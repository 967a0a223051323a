"""Gates answered at the terminal: the responder who runs the command acknowledges them."""

from __future__ import annotations

import sys

from flows.cli.common import err
from flows.contract.ports import GateAnswer, GateResponder
from flows.runbook.model import Gate


class TerminalResponder:
    """Asks the responder at the terminal to acknowledge a gate (prompts go to stderr)."""

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None:
        """Show the gate's checklist and ask who acknowledges it; an empty name waits."""
        err(f"\n== Manual gate '{gate.id}': {gate.title} (incident {incident})")
        for item in gate.items:
            err(f"   [ ] {item}")
        err("Acknowledge when every item is done. Leave the name empty to stop and wait.")
        by = _ask("Acknowledged by: ")
        if not by:
            return None
        return GateAnswer(by=by, note=_ask("Note (optional): "), via="terminal")


def _ask(prompt: str) -> str:
    # Prompts go to stderr, like every other message, so stdout stays the run's JSON outcome.
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def terminal_responder(no_input: bool) -> GateResponder | None:
    """The terminal's responder when a person is there to answer, else None (gates wait)."""
    return TerminalResponder() if sys.stdin.isatty() and not no_input else None
