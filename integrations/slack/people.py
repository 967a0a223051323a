"""Who a runbook names for an invitation: user ids, `@handles`, `@user-groups`, email addresses."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from slack_sdk.errors import SlackApiError

from integrations.slack import ChatError
from integrations.slack.client import PAGE, SlackClient
from integrations.slack.refusals import error_code


class People:
    """The workspace's users and user groups, listed once, to turn names into user ids."""

    def __init__(self, slack: SlackClient) -> None:
        self._slack = slack

    def user_ids(self, who: str) -> list[str]:
        """User ids for a user id, `@handle`, `@user-group` or email address."""
        if who.startswith("@"):
            return self._by_handle(who)
        if "@" in who:
            with self._slack.failures():
                try:
                    return [self._slack.api.users_lookupByEmail(email=who)["user"]["id"]]
                except SlackApiError as err:
                    if error_code(err) != "users_not_found":
                        raise
                    raise ChatError(f"Slack has no user with email {who}: check `invite`") from err
        return [who]

    def _by_handle(self, who: str) -> list[str]:
        handle = who[1:]
        for user in self._users:
            if handle in (user["name"], user["profile"].get("display_name")):
                return [user["id"]]
        for group in self._usergroups:
            if group["handle"] == handle:
                with self._slack.failures():
                    return list(
                        self._slack.api.usergroups_users_list(usergroup=group["id"])["users"]
                    )
        raise ChatError(f"Slack has no user or user group {who}: check `invite`")

    def groups_of(self, user_id: str) -> set[str]:
        """The ids and handles of the user groups `user_id` is in, asked of Slack now.

        Not cached: a gate or steering decision must see who is in a group when they act.
        """
        found: set[str] = set()
        with self._slack.failures():
            for group in self._slack.api.usergroups_list()["usergroups"]:
                members = self._slack.api.usergroups_users_list(usergroup=group["id"])["users"]
                if user_id in members:
                    found |= {group["id"], group["handle"]}
        return found

    @cached_property
    def _users(self) -> list[dict[str, Any]]:
        with self._slack.failures():
            pages = self._slack.api.users_list(limit=PAGE)
            return [user for page in pages for user in page["members"] if not user.get("deleted")]

    @cached_property
    def _usergroups(self) -> list[dict[str, Any]]:
        with self._slack.failures():
            return list(self._slack.api.usergroups_list()["usergroups"])
