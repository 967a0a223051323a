"""A step's attempt ends at its `timeout_s`, whether or not its action stops by itself.

Actions get the deadline in their context and stop themselves: `shell.run` kills the command's
process group, `http.request` cuts its waits to the time left. This module is the backstop for an
action that does not: the attempt runs in a thread of its own, and the step's thread waits for it
until the deadline and a short grace, then gives up on it.

Python cannot stop a thread, so giving up means abandoning it, which is safe only because of what
the abandoned action is left with: its context's ticket system, chat and evidence log are closed
at that moment, so it cannot open a ticket, post a message or write a record after the step was
recorded as timed out and `on_failure` took over. A call it had already sent stays sent, as with
any timeout (backends dedupe by incident and step, so a retry finds what it made). What it does
outside the ports (a command, a request of its own) it may still finish; its thread is a daemon,
so it never keeps the process from exiting. The alternative, raising an exception inside the
running thread (Prefect's task timeout off the main thread), cannot interrupt the blocking call
that is the reason for a timeout, and lands at any instruction, a ledger write included.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from flows.contract.actions import ActionContext, EvidenceLog
from flows.contract.ports import ChatMessage, ChatSystem, NewTicket, Ticket, TicketSystem
from flows.errors import StepFailed
from flows.evidence.records import Event, Record

GRACE_S = 1.0
"""How long past the deadline the engine still waits for an action that stops itself: killing a
process group and saying so takes milliseconds; one that has not answered by then will not."""

Act = Callable[[ActionContext], Mapping[str, Any]]


class Abandoned(Exception):
    """The attempt was still running `GRACE_S` after its deadline; the engine left it running."""


def act_by_deadline(context: ActionContext, act: Act) -> Mapping[str, Any]:
    """Run `act` in a thread of its own with a context whose ports close when it is abandoned;
    return its outputs, raise its error, or raise Abandoned once the deadline and grace pass."""
    deadline = context.deadline
    if deadline is None:
        raise ValueError("act_by_deadline needs a context with a deadline")
    permit = Permit()
    guarded = replace(
        context,
        tickets=GuardedTickets(context.tickets, permit),
        chat=GuardedChat(context.chat, permit),
        evidence=GuardedEvidence(context.evidence, permit),
    )
    outcome: Future[Mapping[str, Any]] = Future()

    def attempt() -> None:
        outcome.set_running_or_notify_cancel()
        try:
            outcome.set_result(act(guarded))
        except BaseException as error:  # handed to the step's thread, which raises it
            outcome.set_exception(error)

    # The attempt sees the context variables of the step (Prefect's run context among them).
    runner = contextvars.copy_context().run
    thread = threading.Thread(
        target=runner, args=(attempt,), name=f"step {context.step}", daemon=True
    )
    thread.start()
    try:
        wait_for([outcome], timeout=max(0.0, deadline - time.monotonic()) + GRACE_S)
    except BaseException:
        permit.withdraw()  # interrupted (Ctrl-C): nobody waits for the attempt any more
        raise
    if not outcome.done():
        permit.withdraw()
        raise Abandoned
    return outcome.result()


class Permit:
    """Whether an attempt may still act through its ports; withdrawn when it is abandoned."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._withdrawn = False

    def withdraw(self) -> None:
        """From now on every port call of the attempt is refused."""
        # Under the lock: a record the attempt is writing is on disk before the engine goes on.
        with self._lock:
            self._withdrawn = True

    def check(self, what: str) -> None:
        """Refuse `what` when the attempt was abandoned."""
        if self._withdrawn:
            raise StepFailed(
                f"{what} refused: this attempt ran past its step's timeout_s and was abandoned"
            )

    @contextmanager
    def held(self, what: str) -> Iterator[None]:
        """Check, then keep the permit from being withdrawn until the block ends."""
        with self._lock:
            self.check(what)
            yield


class GuardedTickets:
    """A ticket system that refuses an abandoned attempt's calls."""

    def __init__(self, tickets: TicketSystem, permit: Permit) -> None:
        self.name = tickets.name
        self._tickets = tickets
        self._permit = permit

    def create_issue(self, ticket: NewTicket, dedupe_key: str) -> Ticket:
        self._permit.check("opening a ticket")
        return self._tickets.create_issue(ticket, dedupe_key)

    def comment(self, issue: str, body: str, dedupe_key: str) -> str:
        self._permit.check(f"commenting on {issue}")
        return self._tickets.comment(issue, body, dedupe_key)

    def transition(self, issue: str, status: str) -> Ticket:
        self._permit.check(f"moving {issue}")
        return self._tickets.transition(issue, status)

    def attach(self, issue: str, path: Path, dedupe_key: str, filename: str | None = None) -> str:
        self._permit.check(f"attaching to {issue}")
        return self._tickets.attach(issue, path, dedupe_key, filename)

    def link(self, issue: str, url: str, title: str, dedupe_key: str) -> str:
        self._permit.check(f"linking from {issue}")
        return self._tickets.link(issue, url, title, dedupe_key)

    def check(self) -> str:
        return self._tickets.check()


class GuardedChat:
    """A chat system that refuses an abandoned attempt's calls."""

    def __init__(self, chat: ChatSystem, permit: Permit) -> None:
        self.name = chat.name
        self._chat = chat
        self._permit = permit

    def post(
        self,
        channel: str,
        text: str,
        dedupe_key: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> ChatMessage:
        self._permit.check(f"posting to {channel}")
        return self._chat.post(channel, text, dedupe_key, blocks, thread_ts)

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> ChatMessage:
        self._permit.check(f"updating a message in {channel}")
        return self._chat.update(channel, ts, text, blocks)

    def incident_channel(self, incident: str) -> str | None:
        return self._chat.incident_channel(incident)

    def create_channel(
        self,
        name: str,
        dedupe_key: str,
        topic: str = "",
        invite: tuple[str, ...] = (),
        bookmark: tuple[str, str] | None = None,
    ) -> str:
        self._permit.check(f"creating channel {name}")
        return self._chat.create_channel(name, dedupe_key, topic, invite, bookmark)

    def check(self) -> str:
        return self._chat.check()


class GuardedEvidence:
    """An evidence log that refuses an abandoned attempt's records."""

    def __init__(self, evidence: EvidenceLog, permit: Permit) -> None:
        self._evidence = evidence
        self._permit = permit

    def record(
        self,
        event: Event,
        *,
        step: str | None = None,
        actor: str = "engine",
        data: Mapping[str, Any],
    ) -> Record:
        with self._permit.held(f"recording {Event(event).value}"):
            return self._evidence.record(event, step=step, actor=actor, data=data)
