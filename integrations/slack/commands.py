"""Slack's side of triggers: slash commands, the gate button, and the gate message.

Bodies come from outside: anything that is not what Slack sends is a `PayloadError` (400) and
changes nothing. No web framework here: the HTTP server and Socket Mode both call these with the
raw form body, after they have established that Slack sent it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from flows.evidence.incident import INCIDENT_ID
from flows.runbook.model import IDENTIFIER, Gate
from integrations.alerts import PayloadError
from integrations.slack.mrkdwn import escape

ACK_GATE = "runbook_ack_gate"
"""The action id of the gate message's Acknowledge button."""
REJECT_GATE = "runbook_reject_gate"
"""The action id of the gate message's Reject button."""
GATE_DIALOG = "runbook_gate_answer"
"""The callback id of the dialog a gate button opens, asking for the note or the reason."""
ANSWER_BLOCK = ANSWER_INPUT = "answer"
"""Where the dialog's text box is, in the submission's `view.state.values`."""
METADATA_LIMIT = 3000
NOTE_LIMIT = 3000
"""The longest note or reason the dialog takes (Slack's plain_text_input allows 3000)."""
USAGE = (
    "Usage: `/runbook COMMAND key=value ...` starts a runbook, `/runbook list` lists them,"
    " `/runbook status [INCIDENT]`, `/runbook drill SCENARIO [key=value ...]`,"
    " `/runbook help [COMMAND]`."
    ' Quote values with spaces or apostrophes: `note="can\'t log in"`.'
)
COMMAND_FIELDS = (
    "command",
    "text",
    "user_id",
    "user_name",
    "channel_id",
    "channel_name",
    "team_id",
    "response_url",
    "trigger_id",
)
MAX_FIELDS = 64
"""Slack sends about 15 form fields; a body with many more is not from Slack."""
SECTION_LIMIT = 3000
VALUE_LIMIT = 2000

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A runbook command or drill scenario as typed: safe to echo back in a reply."""
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
GROUP_ID = re.compile(r"S[A-Z0-9]{2,}")
GATE_ID = re.compile(IDENTIFIER)
MENTION = re.compile(r"<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>")
SEVERITY = re.compile(r"[Ss][Ee][Vv][1-5]")


class Kind(StrEnum):
    """What a `/runbook` command asks for."""

    RUN = "run"
    LIST = "list"
    STATUS = "status"
    DRILL = "drill"
    HELP = "help"
    RESUME = "resume"
    RETRY = "retry"
    SKIP = "skip"
    ABORT = "abort"
    ASSIGN = "assign"
    SEVERITY = "severity"
    NOTE = "note"


STEERING = frozenset(
    {Kind.RESUME, Kind.RETRY, Kind.SKIP, Kind.ABORT, Kind.ASSIGN, Kind.SEVERITY, Kind.NOTE}
)
"""The kinds that steer an incident: each names one, and the engine records it."""
STEERING_USAGE = (
    "Steer an incident: `/runbook resume INCIDENT`, `/runbook retry INCIDENT STEP`,"
    " `/runbook skip INCIDENT STEP reason...`, `/runbook abort INCIDENT reason...`,"
    " `/runbook assign INCIDENT ROLE @person`, `/runbook severity INCIDENT sev1..sev5`,"
    " `/runbook note INCIDENT text...`."
)


@dataclass(frozen=True)
class SlashCommand:
    """A slash command invocation as Slack sends it: who typed what, where."""

    command: str
    text: str
    user_id: str
    user_name: str
    channel_id: str
    channel_name: str
    team_id: str
    response_url: str
    trigger_id: str


@dataclass(frozen=True)
class CommandRequest:
    """What the command text asks for: start a runbook, list, status, a drill, or help."""

    kind: Kind
    name: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    incident: str | None = None
    step: str | None = None
    role: str | None = None
    person: str | None = None
    """Whom `assign` names: a Slack user id (from a mention), an @handle, or a roster id."""
    text: str | None = None
    """The reason of `skip` and `abort`, the text of `note`, the level of `severity`."""


class Answer(StrEnum):
    """What a gate button asks for."""

    ACKNOWLEDGE = "acknowledge"
    REJECT = "reject"


_ANSWER_OF = {ACK_GATE: Answer.ACKNOWLEDGE, REJECT_GATE: Answer.REJECT}


@dataclass(frozen=True)
class GateClick:
    """A responder pressed Acknowledge or Reject on a gate message."""

    incident: str
    gate: str
    user_id: str
    user_name: str
    channel_id: str
    message_ts: str
    response_url: str
    trigger_id: str = ""
    """Slack's id of this one press; empty when the payload has none (older Socket Mode)."""
    answer: Answer = Answer.ACKNOWLEDGE


@dataclass(frozen=True)
class GateSubmission:
    """A responder submitted the dialog a gate button opened: the note or the reason typed."""

    incident: str
    gate: str
    answer: Answer
    text: str
    user_id: str
    user_name: str
    channel_id: str
    """The gate message's channel and ts, carried in the dialog's `private_metadata`."""
    message_ts: str
    trigger_id: str = ""


# -- slash commands ----------------------------------------------------------------------------


def parse_command(body: bytes) -> SlashCommand:
    """The slash command in a form-encoded body; PayloadError(400) when it is not one."""
    fields = _form(body)
    missing = [
        name
        for name in COMMAND_FIELDS
        if name not in fields or (name != "text" and not fields[name])
    ]
    if missing:
        raise PayloadError(f"not a Slack slash command: missing {', '.join(missing)}", 400)
    if not fields["response_url"].startswith(("https://", "http://")):
        raise PayloadError("not a Slack slash command: response_url is not an http(s) URL", 400)
    return SlashCommand(**{name: fields[name] for name in COMMAND_FIELDS})


def parse_command_text(text: str) -> CommandRequest:
    """What `/runbook TEXT` asks for; PayloadError(400) with the usage when it makes no sense."""
    steering = _steering_request(_plain(text))
    if steering is not None:
        return steering
    try:
        words = shlex.split(_plain(text), posix=True)
    except ValueError as err:
        raise PayloadError(f"cannot read the command ({err}). {USAGE}", 400) from None
    if not words:
        return CommandRequest(Kind.HELP)
    verb, rest = words[0].lower(), words[1:]
    if verb == "help":
        if len(rest) > 1:
            raise _usage("`help` takes at most one command")
        return CommandRequest(Kind.HELP, name=_name(rest[0]) if rest else None)
    if verb == "list":
        if rest:
            raise _usage("`list` takes no arguments")
        return CommandRequest(Kind.LIST)
    if verb == "status":
        if len(rest) > 1 or (rest and not INCIDENT_ID.fullmatch(rest[0])):
            raise _usage("`status` takes at most one incident id")
        return CommandRequest(Kind.STATUS, incident=rest[0] if rest else None)
    if verb == "drill":
        if not rest:
            raise _usage("`drill` needs a scenario")
        return CommandRequest(Kind.DRILL, name=_name(rest[0]), inputs=_assignments(rest[1:]))
    return CommandRequest(Kind.RUN, name=_name(words[0]), inputs=_assignments(rest))


def _steering_request(plain: str) -> CommandRequest | None:
    """A steering command (`skip inc-1 check the disk was fine`), or None for other verbs.

    Read by words, not as shell words: a reason or note is kept as typed, apostrophes and all.
    """
    verb, rest = _first(plain)
    kind = next((k for k in STEERING if k.value == verb.lower()), None)
    if kind is None:
        return None
    incident, rest = _first(rest)
    if not INCIDENT_ID.fullmatch(incident):
        raise _steering_usage(f"`{kind}` needs an incident id")
    match kind:
        case Kind.RESUME:
            if rest:
                raise _steering_usage("`resume` takes only the incident id")
            return CommandRequest(kind, incident=incident)
        case Kind.NOTE | Kind.ABORT:
            if not rest:
                what = "the note's text" if kind is Kind.NOTE else "a reason"
                raise _steering_usage(f"`{kind}` needs {what} after the incident id")
            return CommandRequest(kind, incident=incident, text=rest[:VALUE_LIMIT])
        case Kind.SEVERITY:
            if not SEVERITY.fullmatch(rest):
                raise _steering_usage(f"{rest!r} is not a severity (sev1 to sev5)")
            return CommandRequest(kind, incident=incident, text=rest.lower())
        case Kind.ASSIGN:
            words = rest.split()
            if len(words) != 2 or not GATE_ID.fullmatch(words[0]):
                raise _steering_usage("`assign` takes a role and one person")
            return CommandRequest(kind, incident=incident, role=words[0], person=_person(words[1]))
    step, reason = _first(rest)
    if not GATE_ID.fullmatch(step):
        raise _steering_usage(f"`{kind}` needs a step id after the incident id")
    if kind is Kind.RETRY and reason:
        raise _steering_usage("`retry` takes an incident id and a step id")
    if kind is Kind.SKIP and not reason:
        raise _steering_usage("`skip` needs a reason after the step id")
    return CommandRequest(kind, incident=incident, step=step, text=reason[:VALUE_LIMIT] or None)


def _first(text: str) -> tuple[str, str]:
    """The first word of `text` and the rest, stripped."""
    words = text.split(None, 1)
    return (words[0], words[1].strip()) if len(words) == 2 else (words[0] if words else "", "")


def _person(word: str) -> str:
    """Whom a word names: `<@U123|bob>` (a mention) is the user id; `@bob` and ids as typed."""
    mention = MENTION.fullmatch(word)
    if mention:
        return mention.group(1)
    if NAME.fullmatch(word.removeprefix("@")):
        return word
    raise _steering_usage(f"{word!r} names nobody: mention them (@name) or give their roster id")


def _steering_usage(reason: str) -> PayloadError:
    return PayloadError(f"{reason}. {STEERING_USAGE}", 400)


def is_allowed(
    allowed: list[str],
    command: SlashCommand,
    user_groups_of: Callable[[str], set[str]] | None = None,
) -> bool:
    """Whether `triggers.slack.allowed` lets this user, in this channel, run the command.

    `user_groups_of(user_id)` returns the handles (without `@`) and ids of the user's groups; it
    is called at most once, and only when a channel or user entry did not already match.
    """
    if not allowed:
        return True
    groups: set[str] | None = None
    for entry in allowed:
        if _names_caller(entry, command):
            return True
        if user_groups_of is None or not (entry.startswith("@") or GROUP_ID.fullmatch(entry)):
            continue
        if groups is None:
            groups = {group.casefold() for group in user_groups_of(command.user_id)}
        if entry.removeprefix("@").casefold() in groups:
            return True
    return False


def _names_caller(entry: str, command: SlashCommand) -> bool:
    """Whether an `allowed` entry names the command's channel or user."""
    if entry.startswith("#"):
        return entry[1:].casefold() == command.channel_name.casefold()
    if entry.startswith("@"):
        return entry[1:].casefold() == command.user_name.casefold()
    if CHANNEL_ID.fullmatch(entry):
        return entry == command.channel_id
    if USER_ID.fullmatch(entry):
        return entry == command.user_id
    return False


def _plain(text: str) -> str:
    """Command text as typed: Slack escapes `&`, `<`, `>`; clients may curl double quotes."""
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return text.replace("\u201c", '"').replace("\u201d", '"')


def _name(word: str) -> str:
    if not NAME.fullmatch(word):
        raise _usage(f"{word!r} is not a command name")
    return word


def _assignments(words: list[str]) -> dict[str, str]:
    """`key=value` words as a dict; keys are identifiers, each given once."""
    inputs: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not KEY.fullmatch(key):
            raise _usage(f"{word!r} is not key=value with a key of letters, digits and _")
        if key in inputs:
            raise _usage(f"{key} is given twice")
        inputs[key] = value
    return inputs


def _usage(reason: str) -> PayloadError:
    return PayloadError(f"{reason}. {USAGE}", 400)


# -- the gate button ---------------------------------------------------------------------------


def parse_interaction(body: bytes) -> GateClick | GateSubmission | None:
    """The gate press, or the submission of a gate's dialog, in an interaction body; None for
    other interactions."""
    fields = _form(body)
    if "payload" not in fields:
        raise PayloadError("not a Slack interaction: no payload field", 400)
    payload = _object(_json(fields["payload"], "payload"), "payload")
    kind = payload.get("type")
    if not isinstance(kind, str):
        raise PayloadError("not a Slack interaction: payload.type is missing", 400)
    if kind == "view_submission":
        return _submission(payload)
    if kind != "block_actions":
        return None
    actions = payload.get("actions")
    if not isinstance(actions, list):
        raise PayloadError("not a Slack interaction: payload.actions is not a list", 400)
    action = next(
        (
            a
            for a in actions
            if isinstance(a, dict)
            and isinstance(a.get("action_id"), str)
            and a["action_id"] in _ANSWER_OF
        ),
        None,
    )
    if action is None:
        return None
    value = _object(_json(_text(action, "value", "action"), "action.value"), "action.value")
    incident, gate = _gate_of(value, "action.value")
    user_id, name = _user(payload)
    trigger = payload.get("trigger_id")
    return GateClick(
        incident=incident,
        gate=gate,
        user_id=user_id,
        user_name=name,
        channel_id=_text(
            _object(payload.get("channel"), "payload.channel"), "id", "payload.channel"
        ),
        message_ts=_text(
            _object(payload.get("container"), "payload.container"),
            "message_ts",
            "payload.container",
        ),
        response_url=_text(payload, "response_url", "payload"),
        trigger_id=trigger if isinstance(trigger, str) else "",
        answer=_ANSWER_OF[action["action_id"]],
    )


def _submission(payload: dict[str, Any]) -> GateSubmission | None:
    """A gate dialog's submission; None for another dialog's."""
    view = _object(payload.get("view"), "payload.view")
    if view.get("callback_id") != GATE_DIALOG:
        return None
    where = "view.private_metadata"
    metadata = _object(_json(_text(view, "private_metadata", "payload.view"), where), where)
    incident, gate = _gate_of(metadata, where)
    answer = next((a for a in Answer if a.value == metadata.get("answer")), None)
    if answer is None:
        raise PayloadError(f"not a gate dialog: {where}.answer is not acknowledge or reject", 400)
    state = _object(view.get("state"), "payload.view.state")
    values = _object(state.get("values"), "view.state.values")
    block = _object(values.get(ANSWER_BLOCK, {}), f"view.state.values.{ANSWER_BLOCK}")
    box = _object(block.get(ANSWER_INPUT, {}), f"view.state.values.{ANSWER_BLOCK}.{ANSWER_INPUT}")
    text = box.get("value")  # null when an optional box is left empty
    if text is not None and not isinstance(text, str):
        raise PayloadError("not a gate dialog: the answer's value is not text", 400)
    user_id, name = _user(payload)
    trigger = payload.get("trigger_id")
    return GateSubmission(
        incident=incident,
        gate=gate,
        answer=answer,
        text=(text or "").strip()[:NOTE_LIMIT],
        user_id=user_id,
        user_name=name,
        channel_id=_text(metadata, "channel", where),
        message_ts=_text(metadata, "ts", where),
        trigger_id=trigger if isinstance(trigger, str) else "",
    )


def _gate_of(value: dict[str, Any], where: str) -> tuple[str, str]:
    """The incident and gate a button value or dialog metadata names."""
    incident, gate = _text(value, "incident", where), _text(value, "gate", where)
    if not INCIDENT_ID.fullmatch(incident) or not GATE_ID.fullmatch(gate):
        raise PayloadError(f"not a gate button: {where} names no incident and gate", 400)
    return incident, gate


def _user(payload: dict[str, Any]) -> tuple[str, str]:
    """The id and name of who pressed or submitted."""
    user = _object(payload.get("user"), "payload.user")
    name = user.get("username") or user.get("name")
    if not isinstance(name, str):
        raise PayloadError("not a Slack interaction: payload.user has no name", 400)
    return _text(user, "id", "payload.user"), name


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise PayloadError(f"not a Slack interaction: {where} is not JSON", 400) from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"not a Slack interaction: {where} is not an object", 400)
    return value


def _text(mapping: dict[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"not a Slack interaction: {where}.{key} is missing", 400)
    return value


def _form(body: bytes) -> dict[str, str]:
    """The fields of a form-encoded UTF-8 body, each given once."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:
        raise PayloadError("the body is not form-encoded UTF-8", 400) from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise PayloadError("the body repeats a field", 400)
    return fields


# -- the gate message --------------------------------------------------------------------------


def gate_blocks(incident: str, gate: Gate, title: str) -> list[dict[str, Any]]:
    """The message asking a responder to acknowledge `gate` of the runbook titled `title`."""
    head = f"*{escape(title)}*: gate *{escape(gate.title)}* waits for a responder"
    return [_section(head, incident, gate, "\u2022"), _buttons(incident, gate)]


def _buttons(incident: str, gate: Gate) -> dict[str, Any]:
    """Acknowledge and Reject; each opens a dialog, which is where the responder confirms."""
    value = json.dumps({"incident": incident, "gate": gate.id}, separators=(",", ":"))
    if len(value) > VALUE_LIMIT:
        raise ValueError(f"incident id and gate id are too long for a Slack button ({len(value)})")
    acknowledge = {
        "type": "button",
        "action_id": ACK_GATE,
        "text": {"type": "plain_text", "text": "Acknowledge"},
        "style": "primary",
        "value": value,
    }
    reject = {
        "type": "button",
        "action_id": REJECT_GATE,
        "text": {"type": "plain_text", "text": "Reject"},
        "style": "danger",
        "value": value,
    }
    return {"type": "actions", "elements": [acknowledge, reject]}


def gate_dialog(
    incident: str, gate: Gate, title: str, answer: Answer, channel: str, ts: str
) -> dict[str, Any]:
    """The modal a gate button opens: the gate, what answering means, a box for the note (to
    acknowledge, optional) or the reason (to reject, required). `private_metadata` carries the
    incident, gate and gate message back with the submission."""
    metadata = json.dumps(
        {"incident": incident, "gate": gate.id, "answer": answer, "channel": channel, "ts": ts},
        separators=(",", ":"),
    )
    if len(metadata) > METADATA_LIMIT:
        raise ValueError(f"the gate is named too long for a Slack dialog ({len(metadata)})")
    head = f"*{escape(title)}*: gate *{escape(gate.title)}*"
    if answer is Answer.ACKNOWLEDGE:
        words = ("Acknowledge gate", "Acknowledge", "Note for the evidence")
        meaning = (
            "You confirm that every item is done. Your name and your note go into the"
            " incident's evidence."
        )
    else:
        words = ("Reject gate", "Reject", "Why it is rejected")
        meaning = (
            "The gate fails and the run ends failed there. Your name and your reason go into"
            " the incident's evidence."
        )
    box = {
        "type": "plain_text_input",
        "action_id": ANSWER_INPUT,
        "multiline": True,
        "max_length": NOTE_LIMIT,
    }
    return {
        "type": "modal",
        "callback_id": GATE_DIALOG,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": words[0]},
        "submit": {"type": "plain_text", "text": words[1]},
        "close": {"type": "plain_text", "text": "Not yet"},
        "blocks": [
            _section(head, incident, gate, "\u2022"),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": meaning}]},
            {
                "type": "input",
                "block_id": ANSWER_BLOCK,
                "optional": answer is Answer.ACKNOWLEDGE,
                "label": {"type": "plain_text", "text": words[2]},
                "element": box,
            },
        ],
    }


def gate_acknowledged_blocks(
    incident: str, gate: Gate, title: str, by: str, approvers: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The gate message once acknowledged `by` a user id (mentioned) or a name: no button.
    A quorum's `approvers` (roster ids or identities) are listed too."""
    head = f"*{escape(title)}*: gate *{escape(gate.title)}* acknowledged"
    said = f"Acknowledged by {_who(by)}"
    if len(approvers) > 1:
        said += f" (approved by {', '.join(_who(a) for a in approvers)})"
    return [_section(head, incident, gate, "\u2611"), _context(said)]


def gate_approved_blocks(
    incident: str, gate: Gate, title: str, approvers: tuple[str, ...], needed: int
) -> list[dict[str, Any]]:
    """The gate message while its quorum is not met: who approved so far, and the buttons."""
    head = f"*{escape(title)}*: gate *{escape(gate.title)}* waits for more approvals"
    said = (
        f"Approved by {', '.join(_who(a) for a in approvers)} ({len(approvers)} of {needed}):"
        f" {waiting_for(needed - len(approvers))}"
    )
    return [_section(head, incident, gate, "\u2022"), _context(said), _buttons(incident, gate)]


def gate_rejected_blocks(
    incident: str, gate: Gate, title: str, by: str, reason: str
) -> list[dict[str, Any]]:
    """The gate message once rejected `by` someone, with their reason: no button."""
    head = f"*{escape(title)}*: gate *{escape(gate.title)}* rejected; the run ends failed there"
    said = f"Rejected by {_who(by)}: {escape(reason)}"
    return [_section(head, incident, gate, "\u2612"), _context(said[:SECTION_LIMIT])]


def waiting_for(more: int) -> str:
    """How many approvals a gate still waits for, in words."""
    if more <= 1:
        return "waiting for another approver"
    return f"waiting for {more} more approvers"


def _who(by: str) -> str:
    """A Slack user id (or a `slack:` identity) as a mention; anyone else by name, escaped."""
    user = by.removeprefix("slack:")
    return f"<@{user}>" if USER_ID.fullmatch(user) else escape(by)


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _section(head: str, incident: str, gate: Gate, bullet: str) -> dict[str, Any]:
    """A section with the heading, the incident and as many checklist items as fit."""
    lines = [head, f"Incident `{escape(incident)}`"]
    items = [f"{bullet} {escape(item)}" for item in gate.items]
    return {"type": "section", "text": {"type": "mrkdwn", "text": _fit(lines, items)}}


def _fit(lines: list[str], items: list[str]) -> str:
    """`lines` then `items`, leaving out the last items (said so) to stay in SECTION_LIMIT."""
    for shown in range(len(items), -1, -1):
        hidden = len(items) - shown
        more = [f"\u2026and {hidden} more in the runbook"] if hidden else []
        text = "\n".join([*lines, *items[:shown], *more])
        if len(text) <= SECTION_LIMIT:
            return text
    return text[: SECTION_LIMIT - 1] + "\u2026"


# -- replies -----------------------------------------------------------------------------------


def ephemeral(text: str) -> dict[str, str]:
    """A reply only the person who typed the command sees."""
    return {"response_type": "ephemeral", "text": text}


def in_channel(text: str) -> dict[str, str]:
    """A reply everyone in the channel sees."""
    return {"response_type": "in_channel", "text": text}
