"""SlackChat opens incident channels through the real WebClient: once, set up once, found again."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from integrations.slack import ChatError
from integrations.slack.web import SlackChat
from tests.fakes.slack_server import FakeSlack

Connect = Callable[..., SlackChat]


def test_create_channel_twice_with_one_key_creates_one(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """The second call under a key returns the first channel without calling Slack."""
    chat = connect()
    first = chat.create_channel("inc-api", "inc-1:channel")
    assert chat.create_channel("inc-api", "inc-1:channel") == first
    assert slack_server.count("conversations.create") == 1
    assert slack_server.channels[first].name == "inc-api"


def test_taken_name_is_found_across_pages_and_joined(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """On name_taken the channel is found by paging conversations.list, then joined."""
    for number in range(450):
        slack_server.add_channel(f"team-{number:03d}")
    existing = slack_server.add_channel("inc-api", member=False)
    assert connect().create_channel("inc-api", "inc-1:channel") == existing
    assert slack_server.count("conversations.list") == 3
    assert slack_server.count("conversations.join") == 1
    assert sum(c.name == "inc-api" for c in slack_server.channels.values()) == 1


def test_lost_create_answer_finds_the_created_channel(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """A create applied but unanswered is found by name instead of failing or creating again."""
    slack_server.drop_response_after("conversations.create")
    channel = connect().create_channel("inc-api", "inc-1:channel")
    assert slack_server.channels[channel].name == "inc-api"
    assert slack_server.count("conversations.create") == 1


def test_topic_is_set(slack_server: FakeSlack, connect: Connect) -> None:
    """The topic given is set on the new channel."""
    channel = connect().create_channel("inc-api", "inc-1:channel", topic="Leak on api")
    assert slack_server.channels[channel].topic == "Leak on api"


def test_invite_by_user_group_invites_its_members(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """`@handle` of a user group invites every member of the group, in one call."""
    alice, bob = slack_server.add_user("alice"), slack_server.add_user("bob")
    slack_server.add_usergroup("sec-oncall", [alice, bob])
    channel = connect().create_channel("inc-api", "inc-1:channel", invite=("@sec-oncall",))
    assert slack_server.channels[channel].members == [slack_server.bot, alice, bob]
    [call] = slack_server.calls("conversations.invite")
    assert call.body["users"] == f"{alice},{bob}"


def test_invite_by_handle_email_and_id(slack_server: FakeSlack, connect: Connect) -> None:
    """A user is invited by `@handle`, by email address or by id."""
    alice = slack_server.add_user("alice")
    bob = slack_server.add_user("bob", email="bob@example.com")
    carol = slack_server.add_user("carol")
    invite = ("@alice", "bob@example.com", carol)
    channel = connect().create_channel("inc-api", "inc-1:channel", invite=invite)
    assert slack_server.channels[channel].members == [slack_server.bot, alice, bob, carol]


def test_unknown_handle_says_to_check_invite(slack_server: FakeSlack, connect: Connect) -> None:
    """An `@handle` that is neither a user nor a user group fails the step with a hint."""
    with pytest.raises(ChatError, match="no user or user group @nobody: check `invite`"):
        connect().create_channel("inc-api", "inc-1:channel", invite=("@nobody",))


def test_bookmark_is_added_once(slack_server: FakeSlack, connect: Connect) -> None:
    """A second incident reusing the channel does not bookmark the same link again."""
    chat = connect()
    bookmark = ("Ticket SEC-1", "https://jira.example.com/browse/SEC-1")
    channel = chat.create_channel("inc-api", "inc-1:channel", bookmark=bookmark)
    chat.create_channel("inc-api", "inc-2:channel", bookmark=bookmark)
    assert [b["title"] for b in slack_server.bookmarks[channel]] == ["Ticket SEC-1"]
    assert slack_server.count("bookmarks.add") == 1


def test_rerun_after_failed_setup_finishes_without_repeating(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """A re-run after a failure half-way sets up only what is missing."""
    alice = slack_server.add_user("alice")
    slack_server.fail_next("conversations.invite", status=500)
    chat = connect()
    setup = {"topic": "Leak", "invite": ("@alice",), "bookmark": ("Runbook", "https://x.test/")}
    with pytest.raises(ChatError, match="HTTP 500"):
        chat.create_channel("inc-api", "inc-1:channel", **setup)
    channel = chat.create_channel("inc-api", "inc-1:channel", **setup)
    assert slack_server.channels[channel].members == [slack_server.bot, alice]
    assert slack_server.count("conversations.create") == 2
    assert slack_server.count("conversations.setTopic") == 1
    assert slack_server.count("bookmarks.add") == 1


def test_archived_name_says_to_unarchive(slack_server: FakeSlack, connect: Connect) -> None:
    """A name taken by an archived channel fails with what to do about it."""
    slack_server.add_channel("inc-api", archived=True)
    with pytest.raises(ChatError, match="#inc-api is archived: unarchive it or choose another"):
        connect().create_channel("inc-api", "inc-1:channel")


def test_name_of_invisible_channel_says_to_invite_the_app(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """A name taken by a private channel the app is not in fails with a hint."""
    slack_server.add_channel("inc-api", private=True, member=False)
    with pytest.raises(ChatError, match="taken by a channel the app cannot see: invite the app"):
        connect().create_channel("inc-api", "inc-1:channel")


def test_incident_channel_is_the_latest_created(slack_server: FakeSlack, connect: Connect) -> None:
    """The incident's channel is the one its most recent create_channel step opened."""
    chat = connect()
    chat.create_channel("inc-api", "inc-1:channel")
    war_room = chat.create_channel("inc-api-war-room", "inc-1:war-room")
    chat.create_channel("inc-db", "inc-10:channel")
    assert chat.incident_channel("inc-1") == war_room
    assert chat.incident_channel("inc-2") is None


def test_check_names_team_and_bot(connect: Connect) -> None:
    """check() says which team and bot user the token belongs to."""
    assert connect().check() == "Slack team Acme as runbook"


def test_unknown_email_says_to_check_invite(slack_server: FakeSlack, connect: Connect) -> None:
    """An email address no Slack user has fails the step with a hint."""
    with pytest.raises(ChatError, match=r"no user with email eve@example\.com: check `invite`"):
        connect().create_channel("inc-api", "inc-1:channel", invite=("eve@example.com",))
