"""The Slack backend: a `ChatSystem` on Slack's Web API through slack_sdk's `WebClient`.

Slack has no idempotency key, so a side effect is checked twice before it is made: in the local
idempotency map, then in Slack itself. Every post carries message metadata naming its dedupe key,
and the channel's recent history is searched for that key before posting, so a crash between the
post and the map write, or an answer lost on the way back, never posts a second message.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from functools import cached_property
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    RateLimitErrorRetryHandler,
)

from flows.contract.ports import ChatMessage
from integrations.config import SlackConfig
from integrations.idempotency import IdempotencyMap
from integrations.slack import ChatError
from integrations.slack.refusals import (
    HINTS,
    RepeatableConnectionErrors,
    describe,
    error_code,
    refusal,
)

SYSTEM = "slack"
"""The idempotency map's name for what this backend made."""
EVENT_TYPE = "runbook_step"
"""The message metadata event type whose payload carries a post's dedupe key."""
LOOKBACK = 100
"""Latest messages (of a channel or a thread) searched for an earlier post before posting."""
PAGE = 200
"""Page size of list calls, as Slack recommends."""

CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
"""Channel names are lowercase, so an uppercase C/G/D word is an id."""


class SlackChat:
    """A `ChatSystem` on Slack, idempotent per dedupe key through the map and message metadata."""

    name = "slack"

    def __init__(self, config: SlackConfig, made: IdempotencyMap) -> None:
        self._config = config
        self._made = made
        self._ids: dict[str, str] = {}
        self._client = WebClient(
            token=config.bot_token.get_secret_value(),
            base_url=config.api_url,
            timeout=config.timeout_s,  # type: ignore[arg-type]  # urllib takes float seconds
            retry_handlers=[
                RateLimitErrorRetryHandler(max_retry_count=config.max_rate_limit_retries),
                RepeatableConnectionErrors(),
            ],
        )

    def post(
        self,
        channel: str,
        text: str,
        dedupe_key: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> ChatMessage:
        """Post a message, or return the one already posted under `dedupe_key` (map or Slack)."""
        made = self._made.get(SYSTEM, dedupe_key)
        if made is not None:
            return ChatMessage(channel=made["channel"], ts=made["ts"])
        channel_id = self._channel_id(channel)
        message = self._find_post(channel_id, channel, dedupe_key, thread_ts)
        if message is None:
            message = self._post_once(channel_id, channel, text, dedupe_key, blocks, thread_ts)
        self._made.put(
            SYSTEM, dedupe_key, {"kind": "message", "channel": message.channel, "ts": message.ts}
        )
        return message

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> ChatMessage:
        """Replace the text (and blocks) of a message posted earlier (chat.update)."""
        channel_id = self._channel_id(channel)
        with self._failures(channel):
            answer = self._client.chat_update(channel=channel_id, ts=ts, text=text, blocks=blocks)
        return ChatMessage(channel=answer["channel"], ts=answer["ts"])

    def create_channel(
        self,
        name: str,
        dedupe_key: str,
        topic: str = "",
        invite: tuple[str, ...] = (),
        bookmark: tuple[str, str] | None = None,
    ) -> str:
        """Create a channel (or reuse the one made under `dedupe_key` or with this name); set it up.

        Topic, invitations and bookmark are each applied only where missing, so a re-run after a
        failure half-way finishes the set-up without repeating it. Returns the channel id.
        """
        made = self._made.get(SYSTEM, dedupe_key)
        if made is not None:
            return str(made["channel"])
        where = f"#{name}"
        channel = self._open_channel(name)
        channel_id = str(channel["id"])
        if topic and (channel.get("topic") or {}).get("value") != topic:
            with self._failures(where):
                self._client.conversations_setTopic(channel=channel_id, topic=topic)
        if invite:
            self._invite(channel_id, where, invite)
        if bookmark is not None:
            self._bookmark_once(channel_id, where, *bookmark)
        self._made.put(SYSTEM, dedupe_key, {"kind": "channel", "channel": channel_id, "name": name})
        return channel_id

    def incident_channel(self, incident: str) -> str | None:
        """The channel `slack.create_channel` most recently opened for this incident, or None."""
        made = self._made.under(SYSTEM, f"{incident}:")
        channels = [value for _, value in made if value["kind"] == "channel"]
        return str(channels[-1]["channel"]) if channels else None

    def check(self) -> str:
        """Check the token with auth.test; return the team and bot user it belongs to."""
        return f"Slack team {self._whoami['team']} as {self._whoami['user']}"

    # -- posting -----------------------------------------------------------------------------

    def _post_once(
        self,
        channel_id: str,
        where: str,
        text: str,
        dedupe_key: str,
        blocks: list[dict[str, Any]] | None,
        thread_ts: str | None,
    ) -> ChatMessage:
        """Send chat.postMessage once; when its outcome is unknown, ask Slack what happened."""
        try:
            answer = self._client.chat_postMessage(
                channel=channel_id,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"dedupe": dedupe_key}},
            )
            return ChatMessage(channel=answer["channel"], ts=answer["ts"])
        except SlackApiError as err:
            if err.response.status_code < 500:
                raise self._refusal(err, where) from err
            unknown: Exception = err
        except (OSError, HTTPException) as err:
            unknown = err
        # The post may have landed before the failure: look instead of posting again.
        found = self._find_post(channel_id, where, dedupe_key, thread_ts)
        if found is not None:
            return found
        raise ChatError(
            f"Slack did not confirm the post to {where} ({describe(unknown)}) and it is not in"
            " the channel yet: re-run the step; it looks again before posting"
        ) from unknown

    def _find_post(
        self, channel_id: str, where: str, dedupe_key: str, thread_ts: str | None
    ) -> ChatMessage | None:
        """The message posted under `dedupe_key` among the latest of the channel or thread."""
        for message in self._recent(channel_id, where, thread_ts):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == EVENT_TYPE and payload.get("dedupe") == dedupe_key:
                return ChatMessage(channel=channel_id, ts=message["ts"])
        return None

    def _recent(self, channel_id: str, where: str, thread_ts: str | None) -> list[dict[str, Any]]:
        """The latest messages of the channel, or of the thread under `thread_ts`, with metadata."""

        def read() -> list[dict[str, Any]]:
            if thread_ts is None:
                answer = self._client.conversations_history(
                    channel=channel_id, include_all_metadata=True, limit=LOOKBACK
                )
            else:
                # Replies come oldest first: a thread longer than LOOKBACK is searched in part.
                answer = self._client.conversations_replies(
                    channel=channel_id, ts=thread_ts, include_all_metadata=True, limit=LOOKBACK
                )
            return list(answer["messages"])

        with self._failures(where):
            try:
                return read()
            except SlackApiError as err:
                if error_code(err) != "not_in_channel":
                    raise
                # chat:write.public posts without membership but history needs it: join the
                # public channel, or say how to invite the app when joining is not allowed.
                try:
                    self._client.conversations_join(channel=channel_id)
                except SlackApiError:
                    raise err from None
            return read()

    # -- channels ----------------------------------------------------------------------------

    def _channel_id(self, channel: str) -> str:
        """The id of a channel given as an id, `#name` or `name`."""
        if CHANNEL_ID.fullmatch(channel):
            return channel
        name = channel.removeprefix("#")
        if name in self._ids:
            return self._ids[name]
        found = self._find_channel(name)
        if found is None:
            raise ChatError(f"Slack: {HINTS['channel_not_found'].format(where=f'#{name}')}")
        return str(found["id"])

    def _find_channel(self, name: str) -> dict[str, Any] | None:
        """The channel named `name` (archived too), paging through conversations.list."""
        with self._failures(f"#{name}"):
            pages = self._client.conversations_list(
                types="public_channel,private_channel", limit=PAGE
            )
            for page in pages:
                for channel in page["channels"]:
                    self._ids[channel["name"]] = channel["id"]
                    if channel["name"] == name:
                        return dict(channel)
        return None

    def _open_channel(self, name: str) -> dict[str, Any]:
        """Create the channel, or take over the existing one of that name (joining it)."""
        where = f"#{name}"
        try:
            created = dict(self._client.conversations_create(name=name)["channel"])
            self._ids[name] = created["id"]
            return created
        except SlackApiError as err:
            if error_code(err) != "name_taken" and err.response.status_code < 500:
                raise self._refusal(err, where) from err
            failure: Exception = err
        except (OSError, HTTPException) as err:
            failure = err
        # Taken, or perhaps created with the answer lost: the channel may be ours from before.
        channel = self._find_channel(name)
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
            with self._failures(where):
                self._client.conversations_join(channel=channel["id"])
        return channel

    def _invite(self, channel_id: str, where: str, invite: tuple[str, ...]) -> None:
        """Invite the people (ids, `@handles`, `@groups`, emails) not in the channel yet."""
        wanted = list(dict.fromkeys(user for who in invite for user in self._user_ids(who)))
        present = set(self._members(channel_id, where)) | {self._whoami["user_id"]}
        missing = [user for user in wanted if user not in present]
        if missing:
            with self._failures(where):
                self._client.conversations_invite(channel=channel_id, users=missing)

    def _members(self, channel_id: str, where: str) -> list[str]:
        with self._failures(where):
            pages = self._client.conversations_members(channel=channel_id, limit=PAGE)
            return [user for page in pages for user in page["members"]]

    def _bookmark_once(self, channel_id: str, where: str, title: str, url: str) -> None:
        """Add a link bookmark unless the channel already has one to `url`."""
        with self._failures(where):
            existing = self._client.bookmarks_list(channel_id=channel_id)["bookmarks"]
            if not any(bookmark.get("link") == url for bookmark in existing):
                self._client.bookmarks_add(
                    channel_id=channel_id, title=title, type="link", link=url
                )

    # -- people ------------------------------------------------------------------------------

    def _user_ids(self, who: str) -> list[str]:
        """User ids for a user id, `@handle`, `@user-group` or email address."""
        if who.startswith("@"):
            handle = who[1:]
            for user in self._users:
                if handle in (user["name"], user["profile"].get("display_name")):
                    return [user["id"]]
            for group in self._usergroups:
                if group["handle"] == handle:
                    with self._failures():
                        return list(
                            self._client.usergroups_users_list(usergroup=group["id"])["users"]
                        )
            raise ChatError(f"Slack has no user or user group {who}: check `invite`")
        if "@" in who:
            with self._failures():
                try:
                    return [self._client.users_lookupByEmail(email=who)["user"]["id"]]
                except SlackApiError as err:
                    if error_code(err) != "users_not_found":
                        raise
                    raise ChatError(f"Slack has no user with email {who}: check `invite`") from err
        return [who]

    @cached_property
    def _users(self) -> list[dict[str, Any]]:
        with self._failures():
            pages = self._client.users_list(limit=PAGE)
            return [user for page in pages for user in page["members"] if not user.get("deleted")]

    @cached_property
    def _usergroups(self) -> list[dict[str, Any]]:
        with self._failures():
            return list(self._client.usergroups_list()["usergroups"])

    @cached_property
    def _whoami(self) -> dict[str, Any]:
        with self._failures():
            return dict(self._client.auth_test().data)  # type: ignore[arg-type]

    # -- errors ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _failures(self, where: str = "") -> Iterator[None]:
        """Turn Slack refusals and transport errors into `ChatError`s that say what to fix."""
        try:
            yield
        except SlackApiError as err:
            raise self._refusal(err, where) from err
        except (OSError, HTTPException) as err:
            raise ChatError(f"cannot reach Slack at {self._config.api_url}: {err}") from err

    def _refusal(self, err: SlackApiError, where: str) -> ChatError:
        """A refusal as a step failure: the method, and what to fix when Slack's code says."""
        return refusal(err, where, self._config.max_rate_limit_retries, self._app_handle)

    def _app_handle(self) -> str:
        """The bot user's name for an /invite hint, or a placeholder if Slack will not say."""
        try:
            return str(self._whoami["user"])
        except ChatError:
            return "<the app>"  # the hint still reads right; the real failure is reported
