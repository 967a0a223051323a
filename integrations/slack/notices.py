"""What the server tells an incident's channel when a run cannot go on by itself.

Each notice says what stopped (the step and its error, escaped: errors quote what arrived from
outside) and what a responder can do next. Continuing an incident is a terminal command for now,
so the notice names it as one.
"""

from __future__ import annotations

from flows.runbook.model import Gate
from integrations.slack.mrkdwn import escape

ERROR_LIMIT = 1500
"""Characters of an error shown in chat; the evidence ledger keeps the whole of it."""


def run_failed(title: str, incident: str, step: str | None, error: str) -> str:
    """A run stopped at a failed step."""
    what = f"step `{escape(step)}` failed" if step else "a step failed"
    return (
        f":x: *{escape(title)}*: incident `{escape(incident)}` stopped: {what}.\n"
        f"> {_quoted(error)}\n"
        f"Fix the cause, then continue it from a terminal: `runbook resume {escape(incident)}`"
        " (finished steps do not run again)."
    )


def run_crashed(title: str, incident: str, error: str) -> str:
    """A run ended without finishing: the engine could not carry on."""
    return (
        f":x: *{escape(title)}*: the run of incident `{escape(incident)}` ended before it"
        f" finished.\n> {_quoted(error)}\n"
        f"Once the cause is fixed, continue it from a terminal: `runbook resume"
        f" {escape(incident)}` (finished steps do not run again)."
    )


def gates_unasked(title: str, incident: str, unasked: list[tuple[Gate, str]]) -> str:
    """A run waits at gates that could not be posted with their buttons."""
    lines = [
        f":warning: *{escape(title)}*: incident `{escape(incident)}` waits at a gate nobody"
        " could be asked to answer here."
    ]
    for gate, reason in unasked:
        lines.append(
            f"\u2022 *{escape(gate.title)}*: {_quoted(reason)}. Acknowledge it from a terminal:"
            f" `runbook ack {escape(incident)} {escape(gate.id)}`"
        )
    lines.append(f"Then continue the incident: `runbook resume {escape(incident)}`.")
    return "\n".join(lines)


def _quoted(text: str) -> str:
    """An error on one quoted line, shortened, escaped."""
    flat = " ".join(text.split())
    if len(flat) > ERROR_LIMIT:
        flat = flat[: ERROR_LIMIT - 1] + "\u2026"
    return escape(flat)
