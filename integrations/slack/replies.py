"""What `/runbook` answers in Slack: help, a runbook's own help, open incidents, and errors.

Replies speak to responders in Slack: no file locations, no server paths, no command-line
flags. Everything taken from documents, evidence or errors is escaped for mrkdwn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from flows.errors import RunbookError
from flows.runbook.model import Runbook
from integrations.slack.mrkdwn import escape

SHOWN_INCIDENTS = 20
"""Open incidents listed by `/runbook status`, most recently active first; the rest counted."""

_INPUT_HINT = re.compile(r"\bpass --input (\w+)=VALUE\b")
_FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*")
_PATH = re.compile(r"(?<![\w:/.~-])(?:/[\w.@+-]+)+/?")
"""An absolute path, as error messages quote files on the server (not a URL's path)."""


@dataclass(frozen=True)
class OpenIncident:
    """One line of `/runbook status`: an incident that has not succeeded yet."""

    id: str
    title: str
    standing: str
    started_at: str
    waiting: tuple[str, ...] = ()
    """Titles of the gates it waits at."""


def help_text(commands: list[tuple[str, str]]) -> str:
    """The help reply: each (command, title) a runbook can be started with, then the rest."""
    if commands:
        runbooks = "\n".join(
            f"`/runbook {command} key=value ...` {escape(title)}"
            for command, title in sorted(commands)
        )
    else:
        runbooks = "None yet: give a runbook `triggers.slack.command` in its front matter."
    return (
        f"*Runbooks you can start*\n{runbooks}\n"
        "*Other commands*\n"
        "`/runbook list` the runbooks you can start here\n"
        "`/runbook status` the open incidents; `/runbook status INCIDENT` where one stands\n"
        "`/runbook drill SCENARIO [key=value ...]` start a tabletop drill\n"
        "`/runbook retry INCIDENT STEP`, `skip INCIDENT STEP reason...`,"
        " `abort INCIDENT reason...`, `resume INCIDENT` steer its run\n"
        "`/runbook assign INCIDENT ROLE @person`, `severity INCIDENT sev2`,"
        " `note INCIDENT text...` its commander, severity and timeline\n"
        "`/runbook help COMMAND` what a runbook does and the inputs it takes\n"
        'Quote values with spaces: `/runbook breach service=api note="rotated at 10:02"`'
    )


def runbook_help(runbook: Runbook) -> str:
    """One runbook's help: what it is for, its inputs, and how to start it from Slack."""
    meta = runbook.meta
    lines = [f"*{escape(meta.title)}* ({escape(meta.severity)}, {escape(meta.kind)})"]
    if meta.description.strip():
        lines.append(escape(" ".join(meta.description.split())))
    if meta.inputs:
        lines.append("*Inputs*")
    for name, spec in meta.inputs.items():
        if spec.secret:
            facts = "secret: never taken from Slack, start it from a terminal to give it"
        elif spec.required and spec.default is None:
            facts = f"{spec.type}, required"
        elif spec.default not in (None, ""):
            facts = f"{spec.type}, default `{escape(str(spec.default))}`"
        else:
            facts = f"{spec.type}, optional"
        about = f": {escape(spec.description)}" if spec.description else ""
        lines.append(f"\u2022 `{escape(name)}` ({facts}){about}")
    trigger = meta.triggers.slack
    if trigger is None:
        lines.append("It is not started from Slack: it starts from its alerts or a terminal.")
        return "\n".join(lines)
    needed = [
        f"{name}=..."
        for name, spec in meta.inputs.items()
        if spec.required and spec.default is None and not spec.secret
    ]
    start = " ".join([f"/runbook {trigger.command}", *needed])
    where = (
        f" from {', '.join(escape(entry) for entry in trigger.allowed)}" if trigger.allowed else ""
    )
    lines.append(f"*Start it*{where}: `{escape(start)}`")
    return "\n".join(lines)


def open_incidents(incidents: list[OpenIncident], total: int) -> str:
    """The `/runbook status` reply: the open incidents shown, one line each, of `total`."""
    if not incidents:
        return "No open incidents."
    lines = [f"*Open incidents* ({total})"]
    for incident in incidents:
        line = (
            f"`{escape(incident.id)}` *{escape(incident.title)}*: {escape(incident.standing)},"
            f" started {escape(incident.started_at)}"
        )
        if incident.waiting:
            line += "; waiting at " + ", ".join(f"*{escape(g)}*" for g in incident.waiting)
        lines.append(line)
    if total > len(incidents):
        lines.append(f"\u2026and {total - len(incidents)} more.")
    lines.append("`/runbook status INCIDENT` shows where one stands.")
    return "\n".join(lines)


def plain_error(error: RunbookError) -> str:
    """A user-facing error as sentences for chat: each problem's message and hint, without the
    file and line it was found at, server paths or command-line flags."""
    sentences = []
    for problem in error.problems:
        text = problem.message + (f" ({problem.hint})" if problem.hint else "")
        text = _INPUT_HINT.sub(r"add \1=... to the command", text)
        # A clause about a command-line flag is advice for a terminal, not for Slack.
        kept = "; ".join(clause for clause in text.split("; ") if not _FLAG.search(clause))
        if not kept:  # the flag is the whole message: keep what it says, without the flag
            kept = " ".join(_FLAG.sub("", text).split())
        sentences.append(escape(without_paths(kept)))
    return "\n".join(sentences)


def without_paths(text: str) -> str:
    """`text` with each absolute server path cut to its last name."""
    return _PATH.sub(lambda found: PurePosixPath(found.group()).name or "/", text)
