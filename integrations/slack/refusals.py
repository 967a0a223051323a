"""Slack's refusals in words a responder can act on, and which calls are safe to resend."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, HttpRequest, HttpResponse, RetryState
from slack_sdk.web import SlackResponse

from integrations.slack import ChatError

REPEATABLE = frozenset(
    {
        "auth.test",
        "bookmarks.list",
        "chat.update",  # the same edit applied twice leaves the same message
        "conversations.history",
        "conversations.info",
        "conversations.list",
        "conversations.members",
        "conversations.replies",
        "usergroups.list",
        "usergroups.users.list",
        "users.list",
        "users.lookupByEmail",
    }
)
"""Methods safe to resend after a connection error; a resent chat.postMessage can post twice."""

TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
HINTS = {
    "channel_not_found": "no channel {where} that the app can see: invite the app or check the"
    " channel name",
    "not_in_channel": "the app is not in {where}: /invite @{app} to {where}",
    "is_archived": "{where} is archived: unarchive it or use another channel",
    "missing_scope": "the app needs scope {needed}: add it under OAuth & Permissions and"
    " reinstall the app",
    "message_not_found": "no such message in {where}: check `ts`",
    "thread_not_found": "no such thread in {where}: check `thread_ts`",
    "cant_update_message": "the app can only edit its own messages: check `ts`",
    "msg_too_long": "the message is too long for Slack: shorten `text`",
    "invalid_blocks": "Slack rejected the blocks: check `blocks` in Block Kit Builder",
    "user_not_found": "a user to invite does not exist: check `invite`",
    "ratelimited": "still rate limited after {retries} waits: try again later",
}
"""What to fix, by Slack error code; `{where}` is the channel as the runbook named it."""


def refusal(
    err: SlackApiError, where: str, retries: int, app_handle: Callable[[], str]
) -> ChatError:
    """A refusal as a step failure: the method, and what to fix when Slack's code says."""
    response: SlackResponse = err.response
    method = urlsplit(response.api_url).path.rsplit("/", 1)[-1]
    code = error_code(err)
    if response.status_code >= 500:
        return ChatError(f"Slack {method}: Slack answered HTTP {response.status_code}")
    if code in TOKEN_ERRORS:
        return ChatError(
            f"Slack {method}: Slack rejected the bot token ({code}): check RUNBOOK_SLACK_BOT_TOKEN"
        )
    hint = HINTS.get(code)
    if hint is None:
        return ChatError(f"Slack {method} failed: {code or f'HTTP {response.status_code}'}")
    data = response.data if isinstance(response.data, dict) else {}
    fields: dict[str, Callable[[], object]] = {
        "where": lambda: where or "the channel",
        "needed": lambda: data.get("needed", "?"),
        "retries": lambda: retries,
        "app": app_handle,
    }
    return ChatError(
        f"Slack {method}: "
        + hint.format(**{k: make() for k, make in fields.items() if f"{{{k}}}" in hint})
    )


class RepeatableConnectionErrors(ConnectionErrorRetryHandler):
    """slack_sdk's retry after a connection error, only for methods harmless to send twice."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = urlsplit(request.url).path.rsplit("/", 1)[-1]
        return method in REPEATABLE and super()._can_retry(
            state=state, request=request, response=response, error=error
        )


def error_code(err: SlackApiError) -> str:
    """Slack's error code of a refusal (`channel_not_found`), or "" when it gave none."""
    data = err.response.data
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def describe(err: Exception) -> str:
    """A failure in a few words, for a message that says the outcome is unknown."""
    if isinstance(err, SlackApiError):
        return f"HTTP {err.response.status_code}"
    return str(err) or type(err).__name__
