"""The embedded chat system: an append-only JSON-lines outbox echoed to the console.

Idempotency holds across threads and processes: every write happens under an exclusive `flock`
on the outbox, after reading whatever other writers appended since this instance last looked,
so the dedupe check and the append are one step. Each line is fsynced before the call returns.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from flows.contract.ports import ChatMessage
from integrations.slack import ChatError

Echo = Callable[[str], None]
Record = dict[str, Any]

LOCAL_CHANNEL_PREFIX = "C-LOCAL-"


def echo_to_stderr(line: str) -> None:
    """Show a chat line on the console, on stderr so it never mixes with command output."""
    print(line, file=sys.stderr, flush=True)


class LocalOutbox:
    """A `ChatSystem` writing to `outbox.jsonl`; `echo` shows each new line (None: silent)."""

    name = "local"

    def __init__(self, path: Path, echo: Echo | None = echo_to_stderr) -> None:
        self._path = path
        self._echo = echo
        self._lock = threading.Lock()
        self._offset = 0
        self._by_key: dict[str, Record] = {}
        self._channels: dict[str, Record] = {}
        self._channel_lines: list[Record] = []
        self._posted: set[str] = set()
        self._last_us = 0
        path.parent.mkdir(parents=True, exist_ok=True)

    def post(
        self,
        channel: str,
        text: str,
        dedupe_key: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> ChatMessage:
        """Post a message, or return the one already posted under `dedupe_key`."""

        def build(ts: str) -> Record:
            return {
                "kind": "message",
                "ts": ts,
                "channel": channel,
                "text": text,
                "blocks": blocks,
                "thread_ts": thread_ts,
                "dedupe_key": dedupe_key,
            }

        record, created = self._append_once(lambda: self._by_key.get(dedupe_key), build)
        if created and self._echo is not None:
            where = f"{_display(channel)} thread {thread_ts}" if thread_ts else _display(channel)
            self._echo(f"[chat {where}] {text}")
        return ChatMessage(channel=record["channel"], ts=record["ts"])

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> ChatMessage:
        """Replace a message's text (and blocks): append an `update` line naming its ts."""

        def build(_: str) -> Record:
            return {"kind": "update", "ts": ts, "channel": channel, "text": text, "blocks": blocks}

        def find() -> Record | None:
            if ts not in self._posted:
                raise ChatError(f"the local outbox has no message {ts}: check `ts`")
            return None

        self._append_once(find, build)
        if self._echo is not None:
            self._echo(f"[chat {_display(channel)} edit {ts}] {text}")
        return ChatMessage(channel=channel, ts=ts)

    def create_channel(
        self,
        name: str,
        dedupe_key: str,
        topic: str = "",
        invite: tuple[str, ...] = (),
        bookmark: tuple[str, str] | None = None,
    ) -> str:
        """Create a channel (or find it, by `dedupe_key` or by name) and return its local id."""
        channel_id = f"{LOCAL_CHANNEL_PREFIX}{name}"

        def build(ts: str) -> Record:
            return {
                "kind": "channel",
                "ts": ts,
                "channel": channel_id,
                "name": name,
                "topic": topic,
                "invite": list(invite),
                "bookmark": list(bookmark) if bookmark else None,
                "dedupe_key": dedupe_key,
                "reused": name in self._channels,
            }

        # A name is taken once, as in Slack: another key's step reuses the channel, and gets a
        # line of its own so the incident it belongs to finds it (`incident_channel`).
        record, created = self._append_once(lambda: self._by_key.get(dedupe_key), build)
        if created and self._echo is not None and not record["reused"]:
            about = f": {topic}" if topic else ""
            invited = f" (invited {', '.join(invite)})" if invite else ""
            pinned = f" [bookmark {bookmark[0]}: {bookmark[1]}]" if bookmark else ""
            self._echo(f"[chat] created #{name}{about}{invited}{pinned}")
        return record["channel"]

    def incident_channel(self, incident: str) -> str | None:
        """The channel `slack.create_channel` most recently opened for this incident, or None."""
        with self._lock, self._path.open("a+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
            self._catch_up(file)
            mine = [r for r in self._channel_lines if r["dedupe_key"].startswith(f"{incident}:")]
        return mine[-1]["channel"] if mine else None

    def open_modal(self, trigger_id: str, view: dict[str, Any]) -> bool:
        """The outbox has nobody to show a dialog to: a press is answered without one."""
        return False

    def tell(self, channel: str, user: str, text: str) -> None:
        """Show a private reply on the console; the outbox keeps only what everyone sees."""
        if self._echo is not None:
            self._echo(f"[chat {_display(channel)} to {user} only] {text}")

    def check(self) -> str:
        """The outbox needs no connection: say where it writes."""
        return f"local outbox at {self._path}"

    def _append_once(
        self, find: Callable[[], Record | None], build: Callable[[str], Record]
    ) -> tuple[Record, bool]:
        """Return the record `find` sees after catching up with the file, or append `build`'s."""
        with self._lock, self._path.open("a+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
            self._catch_up(file)
            existing = find()
            if existing is not None:
                return existing, False
            record = build(self._next_ts())
            line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
            self._offset += len(line)
            self._index(record)
            return record, True

    def _catch_up(self, file: IO[bytes]) -> None:
        """Index the lines other writers appended since this instance last read the file."""
        size = file.seek(0, os.SEEK_END)
        if size < self._offset:  # the outbox was replaced: start over
            self._offset = 0
            self._by_key.clear()
            self._channels.clear()
            self._channel_lines.clear()
            self._posted.clear()
        file.seek(self._offset)
        data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines():
            try:
                self._index(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{self._path}: not a JSON line ({err}): {line[:80]!r}") from err
        self._offset += len(complete)
        if len(complete) < len(data):
            # Only a crash mid-write leaves a line without its newline (we hold the lock, so no
            # writer is active): drop it, as the post it belonged to never returned.
            file.truncate(self._offset)

    def _index(self, record: Record) -> None:
        if record["kind"] == "update":
            return  # edits make nothing new: no key, no ts of their own
        self._by_key[record["dedupe_key"]] = record
        if record["kind"] == "message":
            self._posted.add(record["ts"])
        if record["kind"] == "channel":
            self._channels.setdefault(record["name"], record)
            self._channel_lines.append(record)
        seconds, micros = record["ts"].split(".")
        self._last_us = max(self._last_us, int(seconds) * 1_000_000 + int(micros))

    def _next_ts(self) -> str:
        """A Slack-style ts ("1700000000.000100"), later than every ts already in the outbox."""
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"


def _display(channel: str) -> str:
    if channel.startswith(LOCAL_CHANNEL_PREFIX):
        return f"#{channel.removeprefix(LOCAL_CHANNEL_PREFIX)}"
    return channel if channel.startswith("#") else f"#{channel}"
