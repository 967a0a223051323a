"""Channels: found by id or name, created or taken over, and set up without repeating a step.

A channel a runbook names is looked up once (conversations.list) and its id remembered. Opening
a channel that exists, or that was created with the answer lost, takes it over instead of
failing; topic, invitations and bookmark are each applied only where missing.
"""

from __future__ import annotations

import re
from http.client import HTTPException
from typing import Any

from slack_sdk.errors import SlackApiError

from integrations.slack import ChatError
from integrations.slack.client import PAGE, SlackClient
from integrations.slack.people import People
from integrations.slack.refusals import HINTS, describe, error_code

CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
"""Channel names are lowercase, so an uppercase C/G/D word is an id."""


class Channels:
    """The channels the app reaches, with the ids of the names it has seen."""

    def __init__(self, slack: SlackClient) -> None:
        self._slack = slack
        self._people = People(slack)
        self._ids: dict[str, str] = {}

    def id_of(self, channel: str) -> str:
        """The id of a channel given as an id, `#name` or `name`."""
        if CHANNEL_ID.fullmatch(channel):
            return channel
        name = channel.removeprefix("#")
        if name in self._ids:
            return self._ids[name]
        found = self._find(name)
        if found is None:
            raise ChatError(f"Slack: {HINTS['channel_not_found'].format(where=f'#{name}')}")
        return str(found["id"])

    def open(self, name: str) -> dict[str, Any]:
        """Create the channel, or take over the existing one of that name (joining it)."""
        where = f"#{name}"
        try:
            created = dict(self._slack.api.conversations_create(name=name)["channel"])
            self._ids[name] = created["id"]
            return created
        except SlackApiError as err:
            if error_code(err) != "name_taken" and err.response.status_code < 500:
                raise self._slack.refusal(err, where) from err
            failure: Exception = err
        except (OSError, HTTPException) as err:
            failure = err
        # Taken, or perhaps created with the answer lost: the channel may be ours from before.
        return self._take_over(name, failure)

    def set_up(
        self,
        channel: dict[str, Any],
        where: str,
        topic: str,
        invite: tuple[str, ...],
        bookmark: tuple[str, str] | None,
    ) -> None:
        """Set the topic, invite the people and add the bookmark, each only where missing."""
        channel_id = str(channel["id"])
        if topic and (channel.get("topic") or {}).get("value") != topic:
            with self._slack.failures(where):
                self._slack.api.conversations_setTopic(channel=channel_id, topic=topic)
        if invite:
            self._invite(channel_id, where, invite)
        if bookmark is not None:
            self._bookmark_once(channel_id, where, *bookmark)

    def _find(self, name: str) -> dict[str, Any] | None:
        """The channel named `name` (archived too), paging through conversations.list."""
        with self._slack.failures(f"#{name}"):
            pages = self._slack.api.conversations_list(
                types="public_channel,private_channel", limit=PAGE
            )
            for page in pages:
                for channel in page["channels"]:
                    self._ids[channel["name"]] = channel["id"]
                    if channel["name"] == name:
                        return dict(channel)
        return None

    def _take_over(self, name: str, failure: Exception) -> dict[str, Any]:
        """The existing channel `name` after creating it failed, joined; or why it cannot be."""
        where = f"#{name}"
        channel = self._find(name)
        if channel is None:
            if isinstance(failure, SlackApiError) and error_code(failure) == "name_taken":
                raise ChatError(
                    f"Slack: {where} is taken by a channel the app cannot see: invite the app to"
                    " it or choose another name"
                ) from failure
            raise ChatError(
                f"Slack did not confirm creating {where} ({describe(failure)}): re-run the step;"
                " it looks for the channel before creating it"
            ) from failure
        if channel.get("is_archived"):
            raise ChatError(f"Slack: {where} is archived: unarchive it or choose another name")
        if not channel.get("is_member"):
            with self._slack.failures(where):
                self._slack.api.conversations_join(channel=channel["id"])
        return channel

    def _invite(self, channel_id: str, where: str, invite: tuple[str, ...]) -> None:
        """Invite the people (ids, `@handles`, `@groups`, emails) not in the channel yet."""
        wanted = list(dict.fromkeys(user for who in invite for user in self._people.user_ids(who)))
        present = set(self._members(channel_id, where)) | {self._slack.whoami["user_id"]}
        missing = [user for user in wanted if user not in present]
        if missing:
            with self._slack.failures(where):
                self._slack.api.conversations_invite(channel=channel_id, users=missing)

    def _members(self, channel_id: str, where: str) -> list[str]:
        with self._slack.failures(where):
            pages = self._slack.api.conversations_members(channel=channel_id, limit=PAGE)
            return [user for page in pages for user in page["members"]]

    def _bookmark_once(self, channel_id: str, where: str, title: str, url: str) -> None:
        """Add a link bookmark unless the channel already has one to `url`."""
        with self._slack.failures(where):
            existing = self._slack.api.bookmarks_list(channel_id=channel_id)["bookmarks"]
            if not any(bookmark.get("link") == url for bookmark in existing):
                self._slack.api.bookmarks_add(
                    channel_id=channel_id, title=title, type="link", link=url
                )
