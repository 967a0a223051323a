"""A fake Slack Web API on 127.0.0.1: real HTTP, Slack's request and response shapes, kept state.

It serves `/api/<method>` the way Slack does (form-encoded or JSON bodies, a bearer token, HTTP 200
with `{"ok": false, "error": ...}` for refusals), so tests drive the real `slack_sdk.WebClient`
against it. Every request is recorded; faults (429, 5xx, dropped responses, delays before or
after applying a call, a channel list that lags behind creates) are injected per method. Slack's
length limits are kept: 40,000 characters in a message, 3,000 in a text object of its blocks,
80 in a channel name, 250 in a topic.
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TOKEN = "xoxb-fake-bot-token"
ALL_SCOPES = frozenset(
    {
        "chat:write",
        "chat:write.public",
        "channels:manage",
        "channels:read",
        "channels:join",
        "channels:history",
        "groups:read",
        "groups:history",
        "bookmarks:read",
        "bookmarks:write",
        "usergroups:read",
        "users:read",
        "users:read.email",
    }
)
SCOPE_OF = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "conversations.create": "channels:manage",
    "conversations.list": "channels:read",
    "conversations.info": "channels:read",
    "conversations.members": "channels:read",
    "conversations.setTopic": "channels:manage",
    "conversations.invite": "channels:manage",
    "conversations.join": "channels:join",
    "conversations.history": "channels:history",
    "conversations.replies": "channels:history",
    "bookmarks.add": "bookmarks:write",
    "bookmarks.list": "bookmarks:read",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
    "users.list": "users:read",
    "users.lookupByEmail": "users:read.email",
}
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
TEXT_LIMIT = 40_000
BLOCK_TEXT_LIMIT = 3_000


@dataclass(frozen=True)
class Request:
    """One request as it reached the server."""

    method: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Channel:
    """A conversation and who is in it."""

    id: str
    name: str
    is_private: bool = False
    is_archived: bool = False
    topic: str = ""
    members: list[str] = field(default_factory=list)
    created_at: float = 0.0
    """time.monotonic() when conversations.create made it; 0 for channels set up by a test."""

    def view(self, viewer: str) -> dict[str, Any]:
        """The channel object as the Web API returns it to `viewer`."""
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": True,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_member": viewer in self.members,
            "topic": {"value": self.topic, "creator": "", "last_set": 0},
            "num_members": len(self.members),
        }


@dataclass
class Fault:
    """What to do instead of (or after) answering the next calls of one method."""

    kind: str
    times: int
    status: int = 200
    error: str = ""
    retry_after: int | None = None


class Refusal(Exception):
    """Slack's `{"ok": false}` answer."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body = {"ok": False, "error": error, **extra}


class FakeSlack:
    """Workspace state and the Web API methods over it; `url` is the `base_url` for WebClient."""

    def __init__(self, token: str = TOKEN, scopes: frozenset[str] = ALL_SCOPES) -> None:
        self.token = token
        self.scopes = scopes
        self.requests: list[Request] = []
        self.channels: dict[str, Channel] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.bookmarks: dict[str, list[dict[str, Any]]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        """Views opened (views.open), by view id, as Slack returned them."""
        self.ephemerals: list[dict[str, str]] = []
        """Ephemeral messages (chat.postEphemeral): channel, user, text; Slack keeps none."""
        self.expired_triggers: set[str] = set()
        """Trigger ids views.open refuses as expired (Slack's 3 s)."""
        self._used_triggers: set[str] = set()
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)
        self._faults: dict[str, list[Fault]] = {}
        self._delays: dict[str, float] = {}
        self._late: dict[str, float] = {}
        self._list_lag_s = 0.0
        self._lock = threading.RLock()
        self.bot = self.add_user("runbook", is_bot=True)
        self.url = ""

    # -- state set-up and inspection -------------------------------------------------------

    def add_channel(
        self, name: str, *, private: bool = False, archived: bool = False, member: bool = True
    ) -> str:
        """Create a channel directly (no request recorded); the bot is in it unless `member`."""
        channel = Channel(self._id("C"), name, private, archived)
        if member:
            channel.members.append(self.bot)
        self.channels[channel.id] = channel
        self.messages[channel.id] = []
        self.bookmarks[channel.id] = []
        return channel.id

    def add_user(
        self,
        name: str,
        *,
        email: str = "",
        display_name: str = "",
        is_bot: bool = False,
        user_id: str = "",
    ) -> str:
        """Add a workspace member (with this id, or a new one); return their user id."""
        user_id = user_id or self._id("U")
        self.users[user_id] = {
            "id": user_id,
            "name": name,
            "deleted": False,
            "is_bot": is_bot,
            "real_name": name,
            "profile": {"display_name": display_name or name, "email": email, "real_name": name},
        }
        return user_id

    def add_usergroup(self, handle: str, users: list[str]) -> str:
        """Add a user group (`@handle`) with these members; return its id."""
        group_id = self._id("S")
        self.usergroups[group_id] = {
            "id": group_id,
            "handle": handle,
            "name": handle,
            "users": users,
        }
        return group_id

    def channel_named(self, name: str) -> Channel | None:
        """The channel with this name, or None."""
        return next((c for c in self.channels.values() if c.name == name), None)

    def count(self, method: str) -> int:
        """How many requests reached this method."""
        return sum(1 for r in self.requests if r.method == method)

    def calls(self, method: str) -> list[Request]:
        """The requests that reached this method, in order."""
        return [r for r in self.requests if r.method == method]

    def submission(
        self, view_id: str, user_id: str, values: dict[str, dict[str, str | None]]
    ) -> dict[str, Any]:
        """The view_submission payload Slack posts when `user_id` submits the opened view
        `view_id` with `values` typed in its plain_text_input boxes ({block_id: {action_id:
        value}})."""
        user = self.users[user_id]
        view = dict(self.views[view_id])
        view["state"] = {
            "values": {
                block: {
                    action: {"type": "plain_text_input", "value": value}
                    for action, value in actions.items()
                }
                for block, actions in values.items()
            }
        }
        return {
            "type": "view_submission",
            "team": {"id": "T00000001", "domain": "acme"},
            "user": {
                "id": user_id,
                "username": user["name"],
                "name": user["name"],
                "team_id": "T00000001",
            },
            "api_app_id": "A00000001",
            "token": "legacy-verification-token",
            "trigger_id": f"{next(self._ts)}.{int(time.time())}.{view_id.lower()}",
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
        }

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 2,
        times: int = 1,
        error: str = "",
    ) -> None:
        """Answer the next `times` calls with `status` (429 carries Retry-After) and no effect."""
        default = {429: "ratelimited", 503: "service_unavailable"}.get(status, "internal_error")
        fault = Fault(
            "fail", times, status, error or default, retry_after if status == 429 else None
        )
        self._faults.setdefault(method, []).append(fault)

    def drop_response_after(self, method: str, times: int = 1) -> None:
        """Apply the next `times` calls, then close the connection without answering."""
        self._faults.setdefault(method, []).append(Fault("drop", times))

    def delay(self, method: str, seconds: float) -> None:
        """Wait this long before answering every call of this method."""
        self._delays[method] = seconds

    def answer_late(self, method: str, seconds: float) -> None:
        """Apply every call of this method at once, then wait this long before answering."""
        self._late[method] = seconds

    def list_lag(self, seconds: float) -> None:
        """Leave channels out of conversations.list until `seconds` after their create."""
        self._list_lag_s = seconds

    def _next_fault(self, method: str) -> Fault | None:
        with self._lock:
            faults = self._faults.get(method, [])
            if not faults:
                return None
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            return fault

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, method: str, headers: dict[str, str], body: dict[str, Any]) -> Answer:
        """Record a request and answer it as Slack would."""
        self.requests.append(Request(method, headers, body))
        time.sleep(self._delays.get(method, 0))
        fault = self._next_fault(method)
        if fault is not None and fault.kind == "fail":
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return Answer(fault.status, {"ok": False, "error": fault.error}, extra)
        with self._lock:
            try:
                result = self._dispatch(method, headers, body)
            except Refusal as refusal:
                result = refusal.body
        time.sleep(self._late.get(method, 0))
        return Answer(200, result, {}, dropped=fault is not None)

    def _dispatch(self, method: str, headers: dict[str, str], body: dict[str, Any]) -> dict:
        auth = headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else body.get("token")
        if not token:
            raise Refusal("not_authed")
        if token != self.token:
            raise Refusal("invalid_auth")
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, "api_" + method.replace(".", "_"), None
        )
        if handler is None:
            raise Refusal("unknown_method")
        needed = SCOPE_OF.get(method)
        if needed is not None and needed not in self.scopes:
            raise Refusal("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))
        return {"ok": True, **handler(body)}

    # -- helpers ---------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08X}"

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _channel(self, ref: str | None, *, member: bool = False) -> Channel:
        """The channel an id or name refers to, as the bot is allowed to see it."""
        if not ref:
            raise Refusal("channel_not_found")
        name = ref.removeprefix("#")
        channel = self.channels.get(ref) or self.channel_named(name)
        if channel is None or (channel.is_private and self.bot not in channel.members):
            raise Refusal("channel_not_found")
        if member and self.bot not in channel.members:
            raise Refusal("not_in_channel")
        return channel

    def _page(self, items: list[Any], body: dict[str, Any], key: str) -> dict[str, Any]:
        """One page of `items` under `key`, by Slack's cursor and `limit` rules."""
        limit = min(int(body.get("limit") or 100), 1000)
        cursor = body.get("cursor") or ""
        try:
            start = int(base64.b64decode(cursor).decode().removeprefix("next:")) if cursor else 0
        except ValueError:
            raise Refusal("invalid_cursor") from None
        end = start + limit
        following = base64.b64encode(f"next:{end}".encode()).decode() if end < len(items) else ""
        return {key: items[start:end], "response_metadata": {"next_cursor": following}}

    def _post_allowed(self, channel: Channel) -> None:
        if channel.is_archived:
            raise Refusal("is_archived")
        if self.bot not in channel.members and (
            channel.is_private or "chat:write.public" not in self.scopes
        ):
            raise Refusal("not_in_channel")

    def _message(self, channel: Channel, ts: str) -> dict[str, Any]:
        found = next((m for m in self.messages[channel.id] if m["ts"] == ts), None)
        if found is None:
            raise Refusal("message_not_found")
        return found

    # -- the Web API methods ---------------------------------------------------------------

    def api_auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "team_id": "T00000001",
            "user": self.users[self.bot]["name"],
            "user_id": self.bot,
            "bot_id": "B00000001",
        }

    def api_chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        self._post_allowed(channel)
        text, blocks = body.get("text"), _json_field(body.get("blocks"))
        if not text and not blocks:
            raise Refusal("no_text")
        if text and len(text) > TEXT_LIMIT:
            raise Refusal("msg_too_long")
        _check_blocks(blocks)
        metadata = _json_field(body.get("metadata"))
        if metadata is not None and not (
            isinstance(metadata, dict) and "event_type" in metadata and "event_payload" in metadata
        ):
            raise Refusal("invalid_metadata_format")
        message = {
            "type": "message",
            "user": self.bot,
            "bot_id": "B00000001",
            "text": text or "",
            "ts": self._next_ts(),
        }
        if blocks:
            message["blocks"] = blocks
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        if metadata is not None:
            message["metadata"] = metadata
        self.messages[channel.id].append(message)
        return {"channel": channel.id, "ts": message["ts"], "message": _public(message)}

    def api_chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        if channel.id != body.get("channel"):
            raise Refusal("channel_not_found")  # chat.update takes ids only
        message = self._message(channel, body.get("ts", ""))
        if message.get("user") != self.bot:
            raise Refusal("cant_update_message")
        text, blocks = body.get("text"), _json_field(body.get("blocks"))
        if not text and not blocks:
            raise Refusal("no_text")
        if text and len(text) > TEXT_LIMIT:
            raise Refusal("msg_too_long")
        _check_blocks(blocks)
        message["text"] = text or ""
        if blocks is not None:
            message["blocks"] = blocks
        message["edited"] = {"user": self.bot, "ts": self._next_ts()}
        return {"channel": channel.id, "ts": message["ts"], "text": message["text"]}

    def api_chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        self._post_allowed(channel)
        user = body.get("user") or ""
        if user not in self.users:
            raise Refusal("user_not_found")
        if user not in channel.members:
            raise Refusal("user_not_in_channel")
        text, blocks = body.get("text"), _json_field(body.get("blocks"))
        if not text and not blocks:
            raise Refusal("no_text")
        self.ephemerals.append({"channel": channel.id, "user": user, "text": text or ""})
        return {"message_ts": self._next_ts()}

    def api_views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        trigger = body.get("trigger_id") or ""
        view = _json_field(body.get("view"))
        if not trigger or not isinstance(view, dict):
            raise Refusal("invalid_arguments")
        if trigger in self.expired_triggers:
            raise Refusal("expired_trigger_id")
        if trigger in self._used_triggers:
            raise Refusal("exchanged_trigger_id")  # a trigger_id opens one view
        _check_modal(view)
        self._used_triggers.add(trigger)
        view_id = self._id("V")
        opened = {
            **view,
            "id": view_id,
            "team_id": "T00000001",
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{view_id.lower()}",
            "app_id": "A00000001",
            "bot_id": "B00000001",
        }
        self.views[view_id] = opened
        return {"view": opened}

    def api_conversations_create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name") or ""
        if not name:
            raise Refusal("invalid_name_required")
        if len(name) > 80:
            raise Refusal("invalid_name_maxlength")
        if not set(name) <= NAME_CHARS:
            raise Refusal("invalid_name_specials")
        if not set(name) - {"-", "_"}:
            raise Refusal("invalid_name_punctuation")
        if self.channel_named(name) is not None:
            raise Refusal("name_taken")
        private = _flag(body.get("is_private"))
        channel = self.channels[self.add_channel(name, private=private)]
        channel.created_at = time.monotonic()
        return {"channel": channel.view(self.bot)}

    def api_conversations_list(self, body: dict[str, Any]) -> dict[str, Any]:
        types = set((body.get("types") or "public_channel").split(","))
        visible = [
            c.view(self.bot)
            for c in self.channels.values()
            if ("private_channel" if c.is_private else "public_channel") in types
            and (not c.is_private or self.bot in c.members)
            and not (c.is_archived and _flag(body.get("exclude_archived")))
            and time.monotonic() - c.created_at >= self._list_lag_s
        ]
        if "private_channel" in types and "groups:read" not in self.scopes:
            raise Refusal("missing_scope", needed="groups:read")
        return self._page(visible, body, "channels")

    def api_conversations_info(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self._channel(body.get("channel")).view(self.bot)}

    def api_conversations_members(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._page(self._channel(body.get("channel")).members, body, "members")

    def api_conversations_setTopic(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"), member=True)
        topic = body.get("topic") or ""
        if len(topic) > 250:
            raise Refusal("too_long")
        channel.topic = topic
        return {"channel": channel.view(self.bot)}

    def api_conversations_invite(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"), member=True)
        users = [u for u in (body.get("users") or "").split(",") if u]
        if not users:
            raise Refusal("no_user")
        for user in users:
            if user == self.bot:
                raise Refusal("cant_invite_self")
            if user not in self.users:
                raise Refusal("user_not_found")
            if user in channel.members:
                raise Refusal("already_in_channel")
        channel.members.extend(users)
        return {"channel": channel.view(self.bot)}

    def api_conversations_join(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        if channel.is_private:
            raise Refusal("method_not_supported_for_channel_type")
        if channel.is_archived:
            raise Refusal("is_archived")
        if self.bot in channel.members:
            return {"channel": channel.view(self.bot), "warning": "already_in_channel"}
        channel.members.append(self.bot)
        return {"channel": channel.view(self.bot)}

    def api_conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"), member=True)
        top = [m for m in self.messages[channel.id] if m.get("thread_ts", m["ts"]) == m["ts"]]
        newest_first = [_public(m, body) for m in reversed(top)]
        page = self._page(newest_first, body, "messages")
        return {"has_more": bool(page["response_metadata"]["next_cursor"]), **page}

    def api_conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"), member=True)
        parent = next((m for m in self.messages[channel.id] if m["ts"] == body.get("ts")), None)
        if parent is None:
            raise Refusal("thread_not_found")
        thread = [parent] + [
            m for m in self.messages[channel.id] if m.get("thread_ts") == parent["ts"] != m["ts"]
        ]
        page = self._page([_public(m, body) for m in thread], body, "messages")
        return {"has_more": bool(page["response_metadata"]["next_cursor"]), **page}

    def api_bookmarks_add(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel_id"), member=True)
        if body.get("type") != "link" or not body.get("link") or not body.get("title"):
            raise Refusal("invalid_arguments")
        bookmark = {
            "id": self._id("Bk"),
            "channel_id": channel.id,
            "title": body["title"],
            "link": body["link"],
            "type": "link",
        }
        self.bookmarks[channel.id].append(bookmark)
        return {"bookmark": bookmark}

    def api_bookmarks_list(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel_id"), member=True)
        return {"bookmarks": list(self.bookmarks[channel.id])}

    def api_usergroups_list(self, body: dict[str, Any]) -> dict[str, Any]:
        with_users = _flag(body.get("include_users"))
        return {
            "usergroups": [
                {k: v for k, v in g.items() if with_users or k != "users"}
                for g in self.usergroups.values()
            ]
        }

    def api_usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.usergroups.get(body.get("usergroup") or "")
        if group is None:
            raise Refusal("no_such_subteam")
        return {"users": list(group["users"])}

    def api_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._page(list(self.users.values()), body, "members")

    def api_users_lookupByEmail(self, body: dict[str, Any]) -> dict[str, Any]:
        email = body.get("email")
        user = next((u for u in self.users.values() if u["profile"]["email"] == email), None)
        if user is None:
            raise Refusal("users_not_found")
        return {"user": user}


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, JSON body, extra headers; `dropped` closes without sending it."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    dropped: bool = False


def _check_modal(view: dict[str, Any]) -> None:
    """Refuse a modal Slack would refuse, as `invalid_arguments` (Slack says which field)."""
    problems = []
    if view.get("type") != "modal":
        problems.append("view.type must be modal")
    for key in ("title", "submit", "close"):
        text = (view.get(key) or {}).get("text", "")
        if key == "title" and not text:
            problems.append("view.title is required")
        if len(text) > 24:
            problems.append(f"view.{key} must be at most 24 characters")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 100:
        problems.append("view.blocks must be 1 to 100 blocks")
    elif any(b.get("type") == "input" for b in blocks) and not view.get("submit"):
        problems.append("view.submit is required with an input block")
    if len(view.get("private_metadata") or "") > 3000:
        problems.append("view.private_metadata must be at most 3000 characters")
    if len(view.get("callback_id") or "") > 255:
        problems.append("view.callback_id must be at most 255 characters")
    if problems:
        raise Refusal("invalid_arguments", response_metadata={"messages": problems})


def _check_blocks(blocks: Any) -> None:
    """Refuse blocks holding a text object longer than Slack takes, as `invalid_blocks`."""
    problems: list[str] = []

    def visit(value: Any, where: str) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                visit(item, f"{where}/{index}")
        elif isinstance(value, dict):
            text = value.get("text")
            is_text = value.get("type") in ("mrkdwn", "plain_text") and isinstance(text, str)
            if is_text and len(text) > BLOCK_TEXT_LIMIT:
                problems.append(f"must be less than 3001 characters [json-pointer:{where}/text]")
            for key, item in value.items():
                visit(item, f"{where}/{key}")

    visit(blocks or [], "/blocks")
    if problems:
        raise Refusal("invalid_blocks", response_metadata={"messages": problems})


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true")


def _json_field(value: Any) -> Any:
    """Form bodies carry `blocks` and `metadata` as JSON strings, JSON bodies as objects."""
    return json.loads(value) if isinstance(value, str) and value else value or None


def _public(message: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A stored message as a read returns it: metadata only when `include_all_metadata` asks."""
    shown = dict(message)
    if body is not None and not _flag(body.get("include_all_metadata")):
        shown.pop("metadata", None)
    return shown


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        if not url.path.startswith("/api/"):
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        body: dict[str, Any] = dict(parse_qsl(url.query))
        if "json" in (self.headers.get("Content-Type") or ""):
            body.update(json.loads(raw or "{}"))
        else:
            body.update(parse_qsl(raw, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.server.slack.handle(url.path.removeprefix("/api/"), headers, body)
        if answer.dropped:
            self.close_connection = True
            return
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, slack: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.slack = slack

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client gave up before the answer (timeout tests); report the rest."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_slack(slack: FakeSlack | None = None) -> Iterator[FakeSlack]:
    """Run a fake Slack on 127.0.0.1 (a free port) for the duration of the block."""
    slack = slack or FakeSlack()
    server = _Server(slack)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    slack.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    try:
        yield slack
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
