"""A runbook's `clocks:` checked: ids from the catalogue or complete custom clocks, the gates
that start and stop each milestone (and in an order that lets the start come first), and, with
a roster, the owner role to remind. Every problem is at the file line of the key it is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.errors import Problem
from flows.runbook.clocks import AWARENESS, CATALOGUE_IDS, DETERMINATION, Clock, catalogue_clock
from flows.runbook.deadlines import holiday_countries, known_calendar
from flows.runbook.declared_clocks import declared_clock, tracked_milestones
from flows.runbook.hints import line_of, suggest
from flows.runbook.model import ClockSpec, Runbook
from flows.runbook.plan import Plan, ancestors
from flows.runbook.roster import Roster

_DURATIONS = ("hours", "days", "business_days")
_CUSTOM = ("title", "source", *_DURATIONS, "calendar", "time_zone", "day_ends")
_BUSINESS_DAYS_ONLY = ("calendar", "time_zone", "day_ends")


class _Checker:
    """Collects the problems of one runbook's clocks."""

    def __init__(self, runbook: Runbook, plan: Plan | None) -> None:
        self.runbook, self.plan = runbook, plan
        self.problems: list[Problem] = []
        self.gates = [gate.id for gate in runbook.gates]
        self.steps = {step.id for step in runbook.steps}

    def add(self, index: int, keys: Sequence[str], message: str, hint: str = "") -> None:
        lines = self.runbook.meta_lines
        line = line_of(lines, ["clocks", str(index), *keys], line_of(lines, ["clocks"], 1))
        self.problems.append(Problem(self.runbook.path, line, message, hint))

    def gate(self, index: int, keys: Sequence[str], name: str, what: str) -> bool:
        """True when `name` is a gate of the runbook; a problem otherwise."""
        if name in self.gates:
            return True
        if name in self.steps:
            self.add(
                index,
                keys,
                f"{what}: '{name}' is a step; clocks start and stop when a gate is acknowledged",
                suggest(name, self.gates, known="gates"),
            )
        else:
            self.add(
                index, keys, f"{what}: no gate '{name}'", suggest(name, self.gates, known="gates")
            )
        return False

    def check(self) -> list[Problem]:
        seen: dict[str, int] = {}
        for index, spec in enumerate(self.runbook.meta.clocks):
            if spec.id in seen:
                self.add(
                    index,
                    ("id",),
                    f"clock '{spec.id}' is declared twice (first as clocks[{seen[spec.id]}])",
                    "declare each clock once",
                )
                continue
            seen[spec.id] = index
            clock = self.definition(index, spec)
            if clock is not None:
                self.clock_gates(index, spec, clock)
        return self.problems

    def definition(self, index: int, spec: ClockSpec) -> Clock | None:
        """The clock declared, or None (with problems) when it cannot be made out."""
        custom = [key for key in _CUSTOM if key in spec.model_fields_set]
        where = f"clock '{spec.id}'"
        if catalogue_clock(spec.id) is not None:
            for key in custom:
                self.add(
                    index,
                    (key,),
                    f"{where} is from the catalogue: it takes no `{key}`",
                    "its deadlines are fixed by its source; remove the key, or give your own"
                    " clock another id",
                )
            return catalogue_clock(spec.id)
        durations = [key for key in _DURATIONS if getattr(spec, key) is not None]
        if not custom:
            self.add(
                index,
                ("id",),
                f"unknown clock '{spec.id}'",
                suggest(
                    spec.id,
                    CATALOGUE_IDS,
                    known="catalogue clocks",
                    prefix="a custom clock also needs `hours`, `days` or `business_days`, and"
                    " `source`",
                ),
            )
            return None
        problems = len(self.problems)
        if len(durations) != 1:
            said = ", ".join(f"`{key}`" for key in durations) or "none of them"
            self.add(
                index,
                durations[1:2] or ("id",),
                f"custom {where} needs exactly one of `hours`, `days` or `business_days`"
                f" (it has {said})",
            )
        if not spec.source:
            self.add(
                index,
                ("id",),
                f"custom {where} needs `source`",
                "cite what sets the deadline (a law, a contract), so responders can check it",
            )
        if spec.business_days is None:
            for key in _BUSINESS_DAYS_ONLY:
                if key in spec.model_fields_set:
                    self.add(index, (key,), f"{where}: `{key}` is used by `business_days` only")
        else:
            self.business_days(index, spec, where)
        return declared_clock(spec) if len(self.problems) == problems else None

    def business_days(self, index: int, spec: ClockSpec, where: str) -> None:
        if spec.calendar is None:
            self.add(
                index,
                ("business_days",),
                f"{where}: business days need a `calendar`",
                "a country code whose public holidays are days off (US, DE, US-NY), or `none`",
            )
        elif spec.calendar != "none" and not known_calendar(spec.calendar):
            self.add(
                index,
                ("calendar",),
                f"{where}: unknown calendar '{spec.calendar}'",
                suggest(spec.calendar, [*holiday_countries(), "none"], known="calendars"),
            )
        if spec.time_zone is None:
            self.add(
                index,
                ("business_days",),
                f"{where}: business days need a `time_zone`",
                "an IANA time zone, e.g. America/New_York or Europe/Berlin",
            )
            return
        try:
            ZoneInfo(spec.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            self.add(
                index,
                ("time_zone",),
                f"{where}: unknown time zone '{spec.time_zone}'",
                "an IANA time zone, e.g. America/New_York or Europe/Berlin",
            )

    def clock_gates(self, index: int, spec: ClockSpec, clock: Clock) -> None:
        where = f"clock '{spec.id}'"
        started = self.gate(index, ("starts_at",), spec.starts_at, f"{where} starts_at")
        self.variant(index, spec, clock)
        uses_awareness = any(t.after == AWARENESS for m in clock.milestones for t in m.terms)
        aware = None
        if spec.aware_at is not None and not uses_awareness:
            self.add(
                index, ("aware_at",), f"{where} counts nothing from awareness: remove `aware_at`"
            )
        elif spec.aware_at is not None and self.gate(
            index, ("aware_at",), spec.aware_at, f"{where} aware_at"
        ):
            aware = spec.aware_at
        events: dict[str, str] = {}
        for event, gate in spec.events.items():
            if event not in clock.events:
                known = ", ".join(clock.events) or "none"
                self.add(
                    index,
                    ("events", event),
                    f"{where} has no event '{event}'",
                    suggest(event, clock.events, prefix=f"its events: {known}", known="events"),
                )
            elif self.gate(index, ("events", event), gate, f"{where} events.{event}"):
                events[event] = gate
        stops = self.stop_gates(index, spec, clock)
        if self.plan is None:
            return
        if started and aware is not None and aware != spec.starts_at:
            self.after(index, ("aware_at",), aware, spec.starts_at, where, "records awareness")
        for milestone in tracked_milestones(clock, spec):
            stop = stops.get(milestone.id)
            if stop is None:
                continue
            anchor = milestone.after
            if anchor in (DETERMINATION, AWARENESS):
                begins = spec.starts_at if started else None
            else:
                begins = events.get(anchor) or stops.get(anchor)
            keys = ("stops_at", milestone.id) if isinstance(spec.stops_at, dict) else ("stops_at",)
            if begins is not None and stop == begins:
                self.add(
                    index,
                    keys,
                    f"{where}: gate '{stop}' both starts and stops {milestone.id}",
                    "the notified gate is another gate, after the one that starts the clock",
                )
            elif begins is not None:
                self.after(index, keys, begins, stop, where, f"stops {milestone.id}")

    def after(
        self, index: int, keys: Sequence[str], first: str, then: str, where: str, does: str
    ) -> None:
        """A problem unless gate `then` always comes after gate `first`."""
        assert self.plan is not None
        if first in ancestors(self.plan, then):
            return
        self.add(
            index,
            keys,
            f"{where}: gate '{then}' may be passed before '{first}'",
            f"the gate that {does} must come after '{first}': put it below that gate, or list"
            f" '{first}' in its `needs`",
        )

    def variant(self, index: int, spec: ClockSpec, clock: Clock) -> None:
        if spec.variant is None or clock.variant(spec.variant) is not None:
            return
        ids = [v.id for v in clock.variants]
        if len(ids) == 1:
            self.add(index, ("variant",), f"clock '{spec.id}' has no variants: remove `variant`")
        else:
            self.add(
                index,
                ("variant",),
                f"clock '{spec.id}' has no variant '{spec.variant}'",
                suggest(spec.variant, ids, known="variants", listing=True),
            )

    def stop_gates(self, index: int, spec: ClockSpec, clock: Clock) -> dict[str, str]:
        """Milestone -> the gate that files it, for the declared gates that exist."""
        tracked = [m.id for m in tracked_milestones(clock, spec)]
        where = f"clock '{spec.id}'"
        if isinstance(spec.stops_at, str):
            if len(tracked) > 1:
                pairs = ", ".join(f"{m}: <gate>" for m in tracked)
                self.add(
                    index,
                    ("stops_at",),
                    f"{where} has {len(tracked)} milestones: name the gate that files each",
                    f"write `stops_at: {{{pairs}}}`",
                )
                return {}
            ok = self.gate(index, ("stops_at",), spec.stops_at, f"{where} stops_at")
            return {tracked[0]: spec.stops_at} if ok and tracked else {}
        found: dict[str, str] = {}
        for milestone, gate in spec.stops_at.items():
            keys = ("stops_at", milestone)
            if milestone not in tracked:
                self.add(
                    index,
                    keys,
                    f"{where} tracks no milestone '{milestone}'",
                    suggest(milestone, tracked, known="its milestones", listing=True),
                )
            elif self.gate(index, keys, gate, f"{where} stops_at.{milestone}"):
                found[milestone] = gate
        for milestone in tracked:
            if milestone not in spec.stops_at:
                self.add(
                    index,
                    ("stops_at",),
                    f"{where}: no gate files milestone '{milestone}'",
                    f"add `{milestone}: <gate>` under `stops_at`",
                )
        return found


def clock_problems(runbook: Runbook, plan: Plan | None) -> list[Problem]:
    """What a runbook's `clocks:` gets wrong without any roster (see the module); the order
    of gates is checked only when the plan could be built."""
    return _Checker(runbook, plan).check()


def clock_roster_problems(runbook: Runbook, roster: Roster | None) -> list[Problem]:
    """Each clock's `owner` must be a role of the roster; without one there is nothing to
    check it against (the reminder then names the role as written)."""
    if roster is None:
        return []
    roles = roster.spec.roles
    problems = []
    for index, spec in enumerate(runbook.meta.clocks):
        if spec.owner not in roles:
            line = line_of(runbook.meta_lines, ["clocks", str(index), "owner"], 1)
            problems.append(
                Problem(
                    runbook.path,
                    line,
                    f"clock '{spec.id}' owner: role '{spec.owner}' is not in {roster.path}",
                    suggest(spec.owner, roles, known="roles"),
                )
            )
    return problems
