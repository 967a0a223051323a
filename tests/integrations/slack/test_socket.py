"""Socket Mode: each envelope reaches the callbacks as the HTTP form body and is acked once."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from flows.errors import RunbookError
from integrations.alerts import PayloadError
from integrations.slack.commands import (
    ACK_GATE,
    GateClick,
    SlashCommand,
    parse_command,
    parse_interaction,
)
from integrations.slack.socket import SocketModeBridge
from tests.fakes.slack_server import FakeSlack

APP_TOKEN = "xapp-1-A0APP-1-secretsecret"
COMMAND_ENVELOPE = {
    "envelope_id": "env-command",
    "type": "slash_commands",
    "accepts_response_payload": True,
    "payload": {
        "token": "legacy",
        "team_id": "T0001",
        "team_domain": "acme",
        "channel_id": "C0SECOPS",
        "channel_name": "sec-oncall",
        "user_id": "U0ALICE",
        "user_name": "alice",
        "command": "/runbook",
        "text": 'breach note="a & b"',
        "api_app_id": "A0APP",
        "is_enterprise_install": False,
        "response_url": "https://hooks.slack.com/commands/T0001/1/abc",
        "trigger_id": "1.2.abc",
    },
}
INTERACTIVE_ENVELOPE = {
    "envelope_id": "env-click",
    "type": "interactive",
    "accepts_response_payload": False,
    "payload": {
        "type": "block_actions",
        "user": {"id": "U0BOB", "username": "bob"},
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "channel": {"id": "C0INC"},
        "response_url": "https://hooks.slack.com/actions/T0001/1/xyz",
        "actions": [
            {"action_id": ACK_GATE, "value": json.dumps({"incident": "inc-1", "gate": "contain"})}
        ],
    },
}


class Recording(BaseSocketModeClient):
    """A Socket Mode client that keeps the acks it is asked to send instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_socket_mode_response(self, response: dict[str, Any] | SocketModeResponse) -> None:
        self.sent.append(
            response.to_dict() if isinstance(response, SocketModeResponse) else response
        )


class Callbacks:
    """The server's side: records each body it gets and answers with preset payloads."""

    def __init__(
        self, command: dict[str, Any] | None = None, interaction: dict[str, Any] | None = None
    ) -> None:
        self.commands: list[bytes] = []
        self.interactions: list[bytes] = []
        self.command_answer = command or {"response_type": "ephemeral", "text": "started"}
        self.interaction_answer = interaction

    def on_command(self, body: bytes) -> dict[str, Any]:
        self.commands.append(body)
        return self.command_answer

    def on_interaction(self, body: bytes) -> dict[str, Any] | None:
        self.interactions.append(body)
        return self.interaction_answer


def bridge_for(callbacks: Callbacks, web_client: WebClient | None = None) -> SocketModeBridge:
    """A bridge handing envelopes to `callbacks`."""
    return SocketModeBridge(
        APP_TOKEN, web_client or WebClient(), callbacks.on_command, callbacks.on_interaction
    )


def deliver(bridge: SocketModeBridge, envelope: dict[str, Any]) -> list[dict[str, Any]]:
    """Hand one envelope, as Slack's JSON frame, to the bridge's listener; return the acks."""
    request = SocketModeRequest.from_dict(json.loads(json.dumps(envelope)))
    assert request is not None
    client = Recording()
    bridge.handle(client, request)
    return client.sent


def test_slash_command_reaches_on_command_as_the_http_form_body() -> None:
    """The command envelope's payload arrives as the form body parse_command reads."""
    callbacks = Callbacks()
    deliver(bridge_for(callbacks), COMMAND_ENVELOPE)
    [body] = callbacks.commands
    assert parse_command(body) == SlashCommand(
        command="/runbook",
        text='breach note="a & b"',
        user_id="U0ALICE",
        user_name="alice",
        channel_id="C0SECOPS",
        channel_name="sec-oncall",
        team_id="T0001",
        response_url="https://hooks.slack.com/commands/T0001/1/abc",
        trigger_id="1.2.abc",
    )


def test_slash_command_booleans_are_spelled_as_in_the_http_form() -> None:
    """A JSON false in the envelope becomes `false`, as Slack's form body spells it."""
    callbacks = Callbacks()
    deliver(bridge_for(callbacks), COMMAND_ENVELOPE)
    assert b"is_enterprise_install=false" in callbacks.commands[0]


def test_slash_command_is_acked_with_the_callback_answer() -> None:
    """The ack carries the envelope id and what on_command returned."""
    answer = {"response_type": "in_channel", "text": "Started breach"}
    acks = deliver(bridge_for(Callbacks(command=answer)), COMMAND_ENVELOPE)
    assert acks == [{"envelope_id": "env-command", "payload": answer}]


def test_interaction_reaches_on_interaction_as_the_http_form_body() -> None:
    """The interactive envelope arrives as `payload=<json>`, which parse_interaction reads."""
    callbacks = Callbacks()
    deliver(bridge_for(callbacks), INTERACTIVE_ENVELOPE)
    [body] = callbacks.interactions
    assert parse_interaction(body) == GateClick(
        incident="inc-1",
        gate="contain",
        user_id="U0BOB",
        user_name="bob",
        channel_id="C0INC",
        message_ts="1700000000.000100",
        response_url="https://hooks.slack.com/actions/T0001/1/xyz",
    )


def test_interaction_answered_with_none_is_acked_without_payload() -> None:
    """When on_interaction returns None the ack is the bare envelope id."""
    acks = deliver(bridge_for(Callbacks()), INTERACTIVE_ENVELOPE)
    assert acks == [{"envelope_id": "env-click"}]


def test_interaction_answer_is_passed_on_in_the_ack() -> None:
    """A payload returned by on_interaction goes into the ack."""
    answer = {"text": "ok"}
    acks = deliver(bridge_for(Callbacks(interaction=answer)), INTERACTIVE_ENVELOPE)
    assert acks == [{"envelope_id": "env-click", "payload": answer}]


def test_other_envelopes_are_acked_without_calling_back() -> None:
    """An events_api envelope is acked so Slack does not resend it, and reaches no callback."""
    callbacks = Callbacks()
    envelope = {"envelope_id": "env-event", "type": "events_api", "payload": {"event": {}}}
    acks = deliver(bridge_for(callbacks), envelope)
    assert acks == [{"envelope_id": "env-event"}]
    assert callbacks.commands == callbacks.interactions == []


def test_command_payload_error_is_acked_with_the_reason_for_the_caller() -> None:
    """A PayloadError from on_command is acked with an ephemeral reply saying why."""

    def refuse(body: bytes) -> dict[str, Any]:
        raise PayloadError("`list` takes no arguments", 400)

    bridge = SocketModeBridge(APP_TOKEN, WebClient(), refuse, lambda body: None)
    acks = deliver(bridge, COMMAND_ENVELOPE)
    assert acks == [
        {
            "envelope_id": "env-command",
            "payload": {"response_type": "ephemeral", "text": "`list` takes no arguments"},
        }
    ]


def test_command_error_is_acked_in_plain_words_for_the_caller() -> None:
    """A RunbookError from on_command is acked (Slack would resend otherwise) with what went
    wrong, without the server's paths."""

    def fail(body: bytes) -> dict[str, Any]:
        raise RunbookError("no incident 'x' under /srv/runbook/incidents")

    bridge = SocketModeBridge(APP_TOKEN, WebClient(), fail, lambda body: None)
    acks = deliver(bridge, COMMAND_ENVELOPE)
    assert acks == [
        {
            "envelope_id": "env-command",
            "payload": {"response_type": "ephemeral", "text": "no incident 'x' under incidents"},
        }
    ]


def test_interaction_payload_error_is_acked_without_payload() -> None:
    """A PayloadError from on_interaction still acks the envelope, with nothing to show."""

    def refuse(body: bytes) -> dict[str, Any] | None:
        raise PayloadError("not a gate button", 400)

    bridge = SocketModeBridge(APP_TOKEN, WebClient(), lambda body: {}, refuse)
    assert deliver(bridge, INTERACTIVE_ENVELOPE) == [{"envelope_id": "env-click"}]


def test_a_bot_token_is_refused_without_being_echoed() -> None:
    """An xoxb token given as the app token is a RunbookError that does not print the token."""
    with pytest.raises(RunbookError, match="xapp-") as caught:
        SocketModeBridge("xoxb-123-secret", WebClient(), lambda body: {}, lambda body: None)
    assert "xoxb-123-secret" not in str(caught.value)


def test_start_with_a_refused_token_says_what_to_fix(slack_server: FakeSlack) -> None:
    """When Slack rejects the app token, start raises naming RUNBOOK_SLACK_APP_TOKEN."""
    bridge = bridge_for(Callbacks(), WebClient(base_url=slack_server.url))
    with pytest.raises(RunbookError, match="RUNBOOK_SLACK_APP_TOKEN") as caught:
        bridge.start()
    assert "invalid_auth" in str(caught.value)
    assert APP_TOKEN not in str(caught.value)
    [call] = slack_server.calls("apps.connections.open")
    assert call.headers["authorization"] == f"Bearer {APP_TOKEN}"


def test_failed_start_leaves_no_threads_behind(slack_server: FakeSlack) -> None:
    """slack_sdk's receiver threads are stopped when the connection cannot be opened."""
    before = set(threading.enumerate())
    bridge = bridge_for(Callbacks(), WebClient(base_url=slack_server.url))
    with pytest.raises(RunbookError):
        bridge.start()
    bridge.close()
    assert set(threading.enumerate()) - before == set()
