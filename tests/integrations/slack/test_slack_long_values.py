"""Values longer than Slack takes are cut to fit with a visible marker, through the real
WebClient, instead of failing the step: message text, text in blocks, channel names, topics."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

from flows.contract.actions import ActionContext
from integrations.limits import MARKER
from integrations.slack.web import SlackChat
from tests.fakes.slack_server import FakeSlack

Connect = Callable[..., SlackChat]


def test_long_message_is_cut_to_40000(slack_server: FakeSlack, connect: Connect) -> None:
    """A 45,000-character message is posted as 40,000 characters ending in the marker."""
    channel = slack_server.add_channel("sec-oncall")
    connect().post("#sec-oncall", "y" * 45_000, "inc-1:announce")
    [message] = slack_server.messages[channel]
    assert (len(message["text"]), message["text"][-len(MARKER) :]) == (40_000, MARKER)


def test_long_section_text_in_blocks_is_cut_to_3000(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """A section's 3,500-character text becomes 3,000 ending in the marker; short ones stay."""
    channel = slack_server.add_channel("sec-oncall")
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "z" * 3_500}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "short"}]},
    ]
    connect().post("#sec-oncall", "fallback", "inc-1:announce", blocks=blocks)
    [message] = slack_server.messages[channel]
    sent = message["blocks"]
    assert len(sent[0]["text"]["text"]) == 3_000 and sent[0]["text"]["text"].endswith(MARKER)
    assert sent[1]["elements"][0]["text"] == "short"


def test_long_update_is_cut_to_40000(slack_server: FakeSlack, connect: Connect) -> None:
    """An edit to 45,000 characters is sent as 40,000 ending in the marker."""
    channel = slack_server.add_channel("sec-oncall")
    chat = connect()
    posted = chat.post(channel, "status: investigating", "inc-1:status")
    chat.update(channel, posted.ts, "w" * 45_000)
    [message] = slack_server.messages[channel]
    assert (len(message["text"]), message["text"][-len(MARKER) :]) == (40_000, MARKER)


def test_long_channel_name_is_shortened_the_same_way_each_time(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """A 100-character name becomes its first 71 characters, `-` and 8 hex digits of its
    sha256; another long name with the same start gets a channel of its own."""
    first, second = "inc-" + "a" * 96, "inc-" + "a" * 95 + "b"
    chat = connect()
    one = chat.create_channel(first, "inc-1:channel")
    other = chat.create_channel(second, "inc-2:channel")
    digest = hashlib.sha256(first.encode()).hexdigest()[:8]
    assert slack_server.channels[one].name == f"{first[:71]}-{digest}"
    assert len(slack_server.channels[one].name) == 80
    assert one != other


def test_long_topic_is_cut_to_250(slack_server: FakeSlack, connect: Connect) -> None:
    """A 300-character topic is set as 250 characters ending in the marker."""
    channel = connect().create_channel("inc-api", "inc-1:channel", topic="t" * 300)
    topic = slack_server.channels[channel].topic
    assert (len(topic), topic[-len(MARKER) :]) == (250, MARKER)


def test_post_step_with_a_long_text_succeeds(
    slack_server: FakeSlack,
    connect: Connect,
    make_context: Callable[..., ActionContext],
    run_action: Callable[..., dict[str, Any]],
) -> None:
    """slack.post with 45,000 characters of text posts, cut, instead of failing the step."""
    channel = slack_server.add_channel("sec-oncall")
    context = dataclasses.replace(make_context(), chat=connect())
    outputs = run_action("slack.post", {"channel": "#sec-oncall", "text": "v" * 45_000}, context)
    [message] = slack_server.messages[channel]
    assert outputs["ts"] == message["ts"] and message["text"].endswith(MARKER)
