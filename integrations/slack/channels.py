"""Channels: found by id or name, created or taken over, and set up without repeating a step.

A channel a runbook names is looked up once (conversations.list) and its id remembered. Slack
keeps channel names unique, so a name is the channel's idempotency key: opening a channel that
exists (`name_taken`), or whose create went unanswered, takes it over instead of creating
another. A channel just created may be missing from conversations.list for a while, so it is
listed again with backoff, up to `reconcile_s`, before the step fails. Topic, invitations and
bookmark are each applied only where missing.

A name longer than Slack's 80 characters is shortened the same way every time (its start and a
hash of the whole), so different long names stay different channels; a topic longer than
Slack's 250 characters is cut, ending in a marker.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from http.client import HTTPException
from typing import Any

from slack_sdk.errors import SlackApiError

from integrations.limits import fit
from integrations.slack import ChatError
from integrations.slack.client import PAGE, SlackClient
from integrations.slack.people import People
from integrations.slack.refusals import HINTS, describe, error_code

CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
"""Channel names are lowercase, so an uppercase C/G/D word is an id."""
NAME_LIMIT = 80
"""Characters Slack allows in a channel name."""
TOPIC_LIMIT = 250
"""Characters Slack allows in a channel topic."""
LIST_BACKOFF_S = (1.0, 8.0)
"""First and longest wait between two listings for a channel whose create went unanswered."""


class NotCreated(ChatError):
    """Slack refused to create the channel: nothing was made, so the create may be sent anew."""


def channel_name(name: str) -> str:
    """`name` as Slack allows it: a name over 80 characters becomes its start, `-` and 8 hex
    digits of its sha256, the same on every retry and different for different names."""
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: NAME_LIMIT - len(digest) - 1]}-{digest}"


class Channels:
    """The channels the app reaches, with the ids of the names it has seen."""

    def __init__(
        self,
        slack: SlackClient,
        reconcile_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._slack = slack
        self._people = People(slack)
        self._ids: dict[str, str] = {}
        self._reconcile_s = reconcile_s
        self._sleep = sleep

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

    def open(self, name: str, sent_before: bool = False) -> dict[str, Any]:
        """Create the channel, or take over the existing one of that name (joining it).

        `sent_before`: an earlier create under the same step went unanswered, so a channel of
        this name may be ours and not listed yet. Raises `NotCreated` when Slack refused the
        create (nothing was made).
        """
        name = channel_name(name)
        where = f"#{name}"
        try:
            created = dict(self._slack.api.conversations_create(name=name)["channel"])
            self._ids[name] = created["id"]
            return created
        except SlackApiError as err:
            taken = error_code(err) == "name_taken"
            if not taken and err.response.status_code < 500:
                raise NotCreated(str(self._slack.refusal(err, where))) from err
            failure: Exception = err
        except (OSError, HTTPException) as err:
            taken, failure = False, err
        # Taken, or perhaps created with the answer lost: the channel may be ours from before.
        # Taken at the first create, it was there before this step and is listed already.
        return self._take_over(name, failure, patient=sent_before or not taken)

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
        topic = fit(topic, TOPIC_LIMIT)
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

    def _find_soon(self, name: str) -> dict[str, Any] | None:
        """The channel named `name`, listed again with backoff until it shows or `reconcile_s`
        has passed: a channel just created can be missing from conversations.list a while."""
        deadline = time.monotonic() + self._reconcile_s
        wait, longest = LIST_BACKOFF_S
        while (channel := self._find(name)) is None:
            if time.monotonic() + wait > deadline:
                return None
            self._sleep(wait)
            wait = min(wait * 2, longest)
        return channel

    def _take_over(self, name: str, failure: Exception, patient: bool) -> dict[str, Any]:
        """The existing channel `name` after creating it failed, joined; or why it cannot be.

        `patient`: the channel may have been created just now, so it is listed again with
        backoff, up to `reconcile_s`, before giving up.
        """
        where = f"#{name}"
        channel = self._find_soon(name) if patient else self._find(name)
        if channel is None:
            if isinstance(failure, SlackApiError) and error_code(failure) == "name_taken":
                raise ChatError(
                    f"Slack: {where} is taken by a channel the app cannot see: invite the app to"
                    " it or choose another name"
                ) from failure
            raise ChatError(
                f"Slack did not confirm creating {where} ({describe(failure)}) and the channel"
                f" was not listed within {self._reconcile_s:g} s: run the step again; it asks"
                " for the same name, which Slack gives to one channel only"
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
