"""The Slack backend: a `ChatSystem` on Slack's Web API through slack_sdk's `WebClient`.

Slack has no idempotency key, so a side effect is checked twice before it is made: in the local
idempotency map, then in Slack itself. Every post carries message metadata naming its dedupe key,
and the channel's recent history is searched for that key before posting, so a crash between the
post and the map write, or an answer lost on the way back, never posts a second message.

The client and its errors are `integrations.slack.client` and `integrations.slack.refusals`;
posting is `integrations.slack.posting`; channels are `integrations.slack.channels`.
"""

from __future__ import annotations

import logging
from typing import Any

from flows.contract.ports import ChatMessage
from integrations.config import SlackConfig
from integrations.idempotency import IdempotencyMap
from integrations.slack import ChatError
from integrations.slack.channels import Channels, NotCreated
from integrations.slack.client import SlackClient
from integrations.slack.people import People
from integrations.slack.posting import find_post, fitted, post_once

SYSTEM = "slack"
"""The idempotency map's name for what this backend made."""
LOG = logging.getLogger("runbook.slack")


class SlackChat:
    """A `ChatSystem` on Slack, idempotent per dedupe key through the map and message metadata."""

    name = "slack"

    def __init__(self, config: SlackConfig, made: IdempotencyMap) -> None:
        self._made = made
        self._slack = SlackClient(config)
        self._channels = Channels(self._slack, config.reconcile_s)
        self._people = People(self._slack)

    def user_groups_of(self, user_id: str) -> set[str]:
        """The ids and handles of the Slack user groups a user is in (for roster groups).

        None known when Slack will not say (no `usergroups:read` scope, Slack down): the user
        is then judged as themselves alone, and the refusal says what they lack.
        """
        try:
            return self._people.groups_of(user_id)
        except ChatError as error:
            LOG.warning("cannot list the Slack user groups of %s: %s", user_id, error)
            return set()

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
        channel_id = self._channels.id_of(channel)
        message = find_post(self._slack, channel_id, channel, dedupe_key, thread_ts)
        if message is None:
            message = post_once(
                self._slack, channel_id, channel, text, dedupe_key, blocks, thread_ts
            )
        self._made.put(
            SYSTEM, dedupe_key, {"kind": "message", "channel": message.channel, "ts": message.ts}
        )
        return message

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> ChatMessage:
        """Replace the text (and blocks) of a message posted earlier (chat.update)."""
        channel_id = self._channels.id_of(channel)
        text, blocks = fitted(text, blocks)
        with self._slack.failures(channel):
            answer = self._slack.api.chat_update(
                channel=channel_id, ts=ts, text=text, blocks=blocks
            )
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
        # An earlier create under this key may have made the channel unheard: ask for the name
        # it asked for (whatever the step renders now), which Slack gives to one channel only.
        intended = self._made.intent(SYSTEM, dedupe_key)
        name = str(intended["name"]) if intended is not None else name
        self._made.intend(SYSTEM, dedupe_key, {"name": name})
        try:
            channel = self._channels.open(name, sent_before=intended is not None)
        except NotCreated:
            self._made.withdraw(SYSTEM, dedupe_key)
            raise
        name = str(channel["name"])
        self._channels.set_up(channel, f"#{name}", topic, invite, bookmark)
        channel_id = str(channel["id"])
        self._made.put(SYSTEM, dedupe_key, {"kind": "channel", "channel": channel_id, "name": name})
        return channel_id

    def incident_channel(self, incident: str) -> str | None:
        """The channel `slack.create_channel` most recently opened for this incident, or None."""
        made = self._made.under(SYSTEM, f"{incident}:")
        channels = [value for _, value in made if value["kind"] == "channel"]
        return str(channels[-1]["channel"]) if channels else None

    def open_modal(self, trigger_id: str, view: dict[str, Any]) -> bool:
        """Open a modal for a press (views.open); Slack takes it within 3 s of the press."""
        with self._slack.failures("a dialog"):
            self._slack.api.views_open(trigger_id=trigger_id, view=view)
        return True

    def tell(self, channel: str, user: str, text: str) -> None:
        """Show `text` to `user` alone in `channel` (chat.postEphemeral); nothing is kept."""
        with self._slack.failures(channel):
            self._slack.api.chat_postEphemeral(channel=channel, user=user, text=text)

    def check(self) -> str:
        """Check the token with auth.test; return the team and bot user it belongs to."""
        whoami = self._slack.whoami
        return f"Slack team {whoami['team']} as {whoami['user']}"
