"""The action registry: `uses:` names mapped to integration code, each with a typed argument model.

The engine never imports a backend by name. It looks actions up here, validates `with:` against
the action's pydantic model, and calls `run(args, context)`. Backends arrive in the context, so
the same action runs against Jira, the local ticket store or a drill sandbox unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from flows.contract.ports import ChatSystem, TicketSystem
from flows.evidence.records import Event, Record


class EvidenceLog(Protocol):
    """Where actions write evidence of their own (notes, artifacts) beside the engine's records."""

    def record(
        self,
        event: Event,
        *,
        step: str | None = None,
        actor: str = "engine",
        data: Mapping[str, Any],
    ) -> Record:
        """Append one record, on disk before returning; return it as written."""
        ...


@dataclass(frozen=True)
class ActionContext:
    """Everything an action may touch while it runs one step of one incident."""

    incident: str
    runbook: str
    step: str
    tickets: TicketSystem
    chat: ChatSystem
    evidence: EvidenceLog
    home: Path
    drill: bool = False
    attempt: int = 1
    redact: Callable[[str], str] = field(default=lambda text: text)
    """Masks the run's known secrets; actions apply it to anything people will read (chat)."""
    redact_collected: Callable[[str], str] | None = None
    """Masks what `redact` masks and the personal data the install redacts from what arrives
    from outside; actions apply it to evidence they collect. None: `redact` alone."""
    severity: str = ""
    brief: str = ""
    """Markdown: the runbook's title, severity, inputs and opening prose, for ticket bodies."""
    evidence_dir: Path | None = None
    timeline: Callable[[], str] = field(default=lambda: "")
    """Plain text: the incident's steps and gates so far, from the ledger (for comments)."""
    deadline: float | None = None
    """When the step's `timeout_s` runs out, as a `time.monotonic()` value; None: no limit.
    An action that waits (for a command, a server) waits no longer than `time_left` says."""

    def time_left(self, default: float) -> float:
        """Seconds the action may still wait: its own limit `default`, cut to the step deadline."""
        return time_left(self.deadline, default)

    @property
    def dedupe_key(self) -> str:
        """The idempotency key of this step's side effect: the same on every retry and resume."""
        return f"{self.incident}:{self.step}"


def time_left(deadline: float | None, default: float) -> float:
    """`default` seconds, or fewer when `deadline` (a `time.monotonic()` value) comes first; never
    below 0. None: no deadline."""
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic()))


ActionFn = Callable[[Any, ActionContext], Mapping[str, Any]]


class Reach(StrEnum):
    """What an action reaches when it runs; drills let it act for real only inside the incident."""

    UNDECLARED = "undeclared"
    """The action does not say, so drills simulate it: safe by default."""
    EVIDENCE = "evidence"
    """Only the incident's own evidence: its ledger and evidence folder."""
    PORTS = "ports"
    """Only the ticket and chat systems in its `ActionContext`, which drills swap for sandboxes."""
    OUTSIDE = "outside"
    """Hosts and services it reaches by itself: commands, HTTP, the machine's files."""


@dataclass(frozen=True)
class Action:
    """One `uses:` name: its argument model, what it returns, and the function that acts.

    This is the whole contract of an action: the engine, drills and the reference read nothing else.
    """

    name: str
    args: type[BaseModel]
    run: ActionFn
    outputs: tuple[str, ...] = ()
    description: str = ""
    side_effects: bool = True
    """Whether acting changes something; True: the action is idempotent per incident and step."""
    secret_outputs: tuple[str, ...] = field(default=())
    """Outputs that are secrets: later steps see them, the ledger and chat show them redacted."""
    reach: Reach = Reach.UNDECLARED
    """What the action reaches; drills simulate those that reach outside or do not say."""


class ActionRegistry:
    """A name -> Action map; the engine's only way to reach integration code."""

    def __init__(self, actions: Iterable[Action] = ()) -> None:
        self._actions: dict[str, Action] = {}
        for action in actions:
            self.add(action)

    def add(self, action: Action) -> None:
        """Register an action; a name can be registered once."""
        if action.name in self._actions:
            raise ValueError(f"action {action.name!r} is registered twice")
        self._actions[action.name] = action

    def get(self, name: str) -> Action | None:
        """The action with this name, or None."""
        return self._actions.get(name)

    def names(self) -> list[str]:
        """All registered action names, sorted."""
        return sorted(self._actions)

    def __iter__(self) -> Iterator[Action]:
        """The actions, sorted by name."""
        return (self._actions[name] for name in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._actions
