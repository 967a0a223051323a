"""The drill clock: scripted events (injects) fired on schedule, in drill time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flows.contract.actions import Action
from flows.contract.ports import GateAnswer, GateResponder
from flows.drills.scenario import Inject
from flows.engine.execute import Simulator
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event
from flows.runbook.model import Gate, Step
from integrations.sandbox import DrillChat, DrillTickets

Opening = Callable[[], tuple[Event, Mapping[str, Any]]]
"""What the clock records as it starts: `drill.started` or `drill.resumed`, and its data."""


class InjectClock:
    """The drill clock: runs from the runbook's first step or gate, fires injects on schedule.

    Drill time begins when the runbook does, not when the process does, so document checks and
    Prefect's start-up (which a high speed would magnify into minutes) never count; a resumed
    drill goes on from `offset_s`, the drill time its clock stopped at. Injects due at the start
    fire before the first item acts, so a drill that begins with a failing integration is
    deterministic. Each inject is recorded (`drill.inject`, with its drill time beside the
    record's wall time) and shown in the drill outbox, where participants see it.
    """

    def __init__(
        self,
        injects: list[Inject],
        speed: float,
        ledger: Ledger,
        sandbox: tuple[DrillTickets, DrillChat],
        incident: str,
        actor: str,
        opening: Opening,
        *,
        offset_s: float = 0.0,
        fired: int = 0,
    ) -> None:
        """`opening` gives the record that starts the clock; a resumed drill's clock goes on
        from `offset_s` drill seconds, its first `fired` injects fired already."""
        self.pending = sorted(injects, key=lambda inject: inject.at)[fired:]
        self.speed, self.ledger, self.sandbox = speed, ledger, sandbox
        self.incident, self.actor, self.opening = incident, actor, opening
        self.fired = fired
        self.offset_s = offset_s
        self._start = time.monotonic()
        self._once = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drill-injects", daemon=True)

    def now_s(self) -> float:
        """The drill time now: where the clock started, plus wall time since, times speed."""
        return round(self.offset_s + (time.monotonic() - self._start) * self.speed, 3)

    def start(self) -> None:
        """Record the clock's start and fire what is due now, the rest from a thread (once)."""
        with self._once:
            if self._thread.ident is not None or self._stop.is_set():
                return
            event, data = self.opening()
            self._start = time.monotonic()
            self.ledger.record(event, actor=self.actor, data={**data, "drill_s": self.offset_s})
            while self.pending and self.pending[0].at <= self.offset_s:
                self._fire(self.pending.pop(0))
            self._thread.start()

    def simulator(self, inner: Simulator) -> Simulator:
        """`inner`, starting the clock first: the engine calls it as every step acts."""

        def simulate(step: Step, action: Action, args: BaseModel) -> Mapping[str, Any] | None:
            self.start()
            return inner(step, action, args)

        return simulate

    def responder(self, inner: GateResponder) -> GateResponder:
        """`inner`, starting the clock first: the engine asks it as every gate opens."""
        return _ClockedResponder(self, inner)

    def stop(self) -> None:
        """Stop firing; injects not yet due stay unfired (the score lists them)."""
        with self._once:
            self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()

    def _loop(self) -> None:
        while self.pending:
            due = self._start + (self.pending[0].at - self.offset_s) / self.speed
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self._fire(self.pending.pop(0))

    def _fire(self, inject: Inject) -> None:
        tickets, chat = self.sandbox
        if inject.kind == "fail_integration":
            (tickets if inject.system == "tickets" else chat).faults.add(inject.times)
        self.fired += 1
        data = inject.model_dump(mode="json")
        data["fired_at_s"] = data["drill_s"] = self.now_s()
        self.ledger.record(Event.DRILL_INJECT, actor=self.actor, data=data)
        shown = inject.text or inject.kind
        if inject.kind == "fail_integration":
            shown = f"{inject.system} is failing: {inject.text}" if inject.text else shown
        chat.announce(f"inject: {shown}", f"{self.incident}:inject:{self.fired}")


@dataclass(frozen=True)
class _ClockedResponder:
    clock: InjectClock
    inner: GateResponder

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None:
        self.clock.start()
        return self.inner.ask(gate, incident)
