"""Socket Mode: slash commands and button clicks over an outbound WebSocket, no public URL.

Each envelope is turned back into the form body Slack would have POSTed to the HTTP endpoints,
so the server reads both ways in with one code path. Signatures do not apply here: the
connection itself is authenticated by the app-level token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from flows.errors import RunbookError
from integrations.alerts import PayloadError
from integrations.slack.commands import ephemeral
from integrations.slack.replies import plain_error

TOKEN_REFUSALS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)


class SocketModeBridge:
    """Receives slash commands and interactions over Socket Mode and acknowledges each one.

    `on_command` and `on_interaction` get the form body and return the acknowledgement payload;
    they run on slack_sdk's worker threads, several at a time.
    """

    def __init__(
        self,
        app_token: str,
        web_client: WebClient,
        on_command: Callable[[bytes], dict[str, Any]],
        on_interaction: Callable[[bytes], dict[str, Any] | None],
    ) -> None:
        if not app_token.startswith("xapp-"):
            raise RunbookError(
                "RUNBOOK_SLACK_APP_TOKEN is not an app-level token (xapp-...): create one with"
                " scope connections:write under the app's Basic Information"
            )
        self._app_token = app_token
        self._web_client = web_client
        self._on_command = on_command
        self._on_interaction = on_interaction
        self._client: SocketModeClient | None = None

    def start(self) -> None:
        """Connect to Slack and answer envelopes from now on; RunbookError when Slack refuses."""
        client = SocketModeClient(app_token=self._app_token, web_client=self._web_client)
        client.socket_mode_request_listeners.append(self.handle)
        try:
            client.connect()
        except SlackApiError as err:
            client.close()
            raise RunbookError(_refusal(err)) from err
        except (SlackClientError, OSError) as err:
            client.close()
            raise RunbookError(f"cannot open a Socket Mode connection to Slack: {err}") from err
        self._client = client

    def close(self) -> None:
        """Disconnect and stop slack_sdk's threads; safe to call when not started."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def handle(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        """Ack one envelope with what the callback answered to its form body."""
        answer: dict[str, Any] | None = None
        try:
            if request.type == "slash_commands":
                answer = self._on_command(urlencode(_form_fields(request.payload)).encode())
            elif request.type == "interactive":
                answer = self._on_interaction(
                    urlencode({"payload": json.dumps(request.payload)}).encode()
                )
        except PayloadError as err:
            # Over HTTP this would be a 400; here the person who typed it should see why.
            answer = ephemeral(err.reason) if request.type == "slash_commands" else None
        except RunbookError as err:
            answer = ephemeral(plain_error(err)) if request.type == "slash_commands" else None
        # Every envelope is acked, events included, or Slack delivers it again.
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=answer)
        )


def _form_fields(payload: dict[str, Any]) -> dict[str, str]:
    """A slash command envelope's fields as the HTTP form spells them."""
    return {key: _form_value(value) for key, value in payload.items() if value is not None}


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _refusal(err: SlackApiError) -> str:
    """Why Slack would not open the connection, and what to fix."""
    data = err.response.data if isinstance(err.response.data, dict) else {}
    code = str(data.get("error", "")) or f"HTTP {err.response.status_code}"
    if code in TOKEN_REFUSALS:
        return f"Slack rejected the app-level token ({code}): check RUNBOOK_SLACK_APP_TOKEN"
    if code == "missing_scope":
        return (
            "the app-level token lacks scope connections:write: create a token with it under the"
            " app's Basic Information and set RUNBOOK_SLACK_APP_TOKEN"
        )
    return (
        f"Slack refused a Socket Mode connection ({code}): turn Socket Mode on in the app's"
        " settings and check RUNBOOK_SLACK_APP_TOKEN"
    )
