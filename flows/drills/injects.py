"""The drill clock: scripted events (injects) fired on schedule, in drill time."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
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


class InjectClock:
    """The drill clock: starts at the runbook's first step or gate, fires injects on schedule.

    Drill time begins when the runbook does, not when the process does, so document checks and
    Prefect's start-up (which a high speed would magnify into minutes) never count. Injects due
    at the start fire before the first item acts, so a drill that begins with a failing
    integration is deterministic. Each inject is recorded (`drill.inject`) and shown in the
    drill outbox, where participants see it.
    """

    def __init__(
        self,
        injects: list[Inject],
        speed: float,
        ledger: Ledger,
        sandbox: tuple[DrillTickets, DrillChat],
        incident: str,
        actor: str,
        started: Mapping[str, Any] | None,
        *,
        elapsed_s: float = 0.0,
        fired: int = 0,
    ) -> None:
        """`started` None continues a drill: `elapsed_s` real seconds have passed since its
        clock started and its first `fired` injects have fired."""
        self.pending = sorted(injects, key=lambda inject: inject.at)[fired:]
        self.speed, self.ledger, self.sandbox = speed, ledger, sandbox
        self.incident, self.actor, self.started = incident, actor, started
        self.fired = fired
        self._elapsed = elapsed_s
        self._start = time.monotonic() - elapsed_s
        self._once = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drill-injects", daemon=True)

    def start(self) -> None:
        """Record `drill.started` and fire what is due now, the rest from a thread (once)."""
        with self._once:
            if self._thread.ident is not None or self._stop.is_set():
                return
            self._start = time.monotonic() - self._elapsed
            if self.started is not None:
                self.ledger.record(Event.DRILL_STARTED, actor=self.actor, data=self.started)
            while self.pending and self.pending[0].at <= self._elapsed * self.speed:
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
            due = self._start + self.pending[0].at / self.speed
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self._fire(self.pending.pop(0))

    def _fire(self, inject: Inject) -> None:
        tickets, chat = self.sandbox
        if inject.kind == "fail_integration":
            (tickets if inject.system == "tickets" else chat).faults.add(inject.times)
        self.fired += 1
        data = inject.model_dump(mode="json")
        data["fired_at_s"] = round((time.monotonic() - self._start) * self.speed, 3)
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
