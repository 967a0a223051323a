"""Slack's refusals become step failures that say what to fix, and never show the token."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

import pytest

from integrations.slack import ChatError
from integrations.slack.web import SlackChat
from tests.fakes.slack_server import ALL_SCOPES, FakeSlack

Connect = Callable[..., SlackChat]
CANARY = "xoxb-canary-7f3a9c1e5b"


def test_bad_token_says_to_check_the_setting(slack_server: FakeSlack, connect: Connect) -> None:
    """invalid_auth names the environment variable holding the token."""
    with pytest.raises(ChatError, match=r"rejected the bot token \(invalid_auth\): check RUNBOOK_"):
        connect(token="xoxb-wrong").check()


def test_unknown_channel_id_says_to_invite_or_check(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """channel_not_found from Slack says to invite the app or check the name."""
    with pytest.raises(ChatError, match="invite the app or check the channel name"):
        connect().post("C0NOPE123", "hello", "inc-1:notify")


def test_unknown_channel_name_says_to_invite_or_check(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """A `#name` no page of conversations.list holds fails with the same hint."""
    with pytest.raises(ChatError, match=r"no channel #nope .* check the channel name"):
        connect().post("#nope", "hello", "inc-1:notify")


def test_not_in_channel_says_how_to_invite_the_app(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """When the app may not join, not_in_channel says `/invite @app to #channel`."""
    slack_server.scopes = ALL_SCOPES - {"channels:join"}
    slack_server.add_channel("ops", member=False)
    with pytest.raises(ChatError, match="the app is not in #ops: /invite @runbook to #ops"):
        connect().post("#ops", "hello", "inc-1:notify")
    assert slack_server.count("chat.postMessage") == 0


def test_missing_scope_names_the_scope(slack_server: FakeSlack, connect: Connect) -> None:
    """missing_scope says which scope the app needs."""
    slack_server.scopes = ALL_SCOPES - {"channels:history"}
    ops = slack_server.add_channel("ops")
    with pytest.raises(ChatError, match="the app needs scope channels:history"):
        connect().post(ops, "hello", "inc-1:notify")


def test_unreachable_slack_names_the_url(connect: Connect) -> None:
    """A refused connection names the API URL that could not be reached."""
    with pytest.raises(ChatError, match=r"cannot reach Slack at http://127\.0\.0\.1:1/api/"):
        connect(api_url="http://127.0.0.1:1/api/").check()


@pytest.mark.parametrize(
    ("valid", "provoke"),
    [
        (False, lambda slack, chat: chat.check()),
        (True, lambda slack, chat: chat.post("#nope", "x", "inc-1:a")),
        (
            True,
            lambda slack, chat: (
                slack.fail_next("chat.postMessage", 500),
                chat.post("#ops", "x", "k"),
            ),
        ),
        (True, lambda slack, chat: chat.create_channel("Bad Name", "inc-1:c")),
    ],
    ids=["rejected-token", "unknown-channel", "server-error", "bad-name"],
)
def test_token_never_appears_in_errors_or_logs(
    slack_server: FakeSlack,
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
    valid: bool,
    provoke: Callable[[FakeSlack, SlackChat], object],
) -> None:
    """Neither a failure (with its causes) nor the SDK's debug log shows the bot token."""
    if valid:
        slack_server.token = CANARY
    slack_server.add_channel("ops")
    with caplog.at_level(logging.DEBUG), pytest.raises(ChatError) as failure:
        provoke(slack_server, connect(token=CANARY))
    shown = "".join(traceback.format_exception(failure.value)) + repr(failure.value)
    assert CANARY not in shown
    assert CANARY not in caplog.text
    assert slack_server.requests[-1].headers["authorization"] == f"Bearer {CANARY}"
