"""One channel per step through the real WebClient, when conversations.create answers late or
never, when conversations.list lags behind it, and when the step is run again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from integrations.idempotency import IdempotencyMap
from integrations.slack import ChatError
from integrations.slack.web import SYSTEM, SlackChat
from tests.fakes.slack_server import FakeSlack

Connect = Callable[..., SlackChat]


def incident_channels(slack: FakeSlack) -> list[str]:
    return sorted(c.name for c in slack.channels.values() if c.name.startswith("inc-"))


def test_create_answered_late_while_the_list_lags_gives_one_channel(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """Slack makes the channel but answers after the client gave up, and conversations.list
    shows it a second later: the step lists again until it does and takes that channel."""
    slack_server.answer_late("conversations.create", 2)
    slack_server.list_lag(1)
    channel = connect(timeout_s=0.5, reconcile_s=5).create_channel("inc-api", "inc-1:channel")
    assert slack_server.channels[channel].name == "inc-api"
    assert incident_channels(slack_server) == ["inc-api"]
    assert slack_server.count("conversations.create") == 1
    assert slack_server.count("conversations.list") >= 2


def test_step_run_again_asks_for_the_name_it_asked_for(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """After a create nobody heard back from, the step run again with another rendered name
    asks for the first name, which Slack has, so the incident still has one channel."""
    slack_server.answer_late("conversations.create", 1)
    slack_server.list_lag(2)
    chat = connect(timeout_s=0.3, reconcile_s=0.5)
    with pytest.raises(ChatError, match=r"not listed within 0\.5 s: run the step again"):
        chat.create_channel("inc-api", "inc-1:channel")
    channel = connect(reconcile_s=5).create_channel("inc-api-2", "inc-1:channel")
    assert slack_server.channels[channel].name == "inc-api"
    assert incident_channels(slack_server) == ["inc-api"]


def test_refused_create_lets_a_corrected_name_through(
    slack_server: FakeSlack, connect: Connect, tmp_path: Path
) -> None:
    """A name Slack refuses made nothing: the step run again with a corrected name creates it."""
    chat = connect()
    with pytest.raises(ChatError, match="invalid_name_specials"):
        chat.create_channel("inc api", "inc-1:channel")
    assert IdempotencyMap(tmp_path / "made.db").intent(SYSTEM, "inc-1:channel") is None
    channel = chat.create_channel("inc-api", "inc-1:channel")
    assert slack_server.channels[channel].name == "inc-api"
