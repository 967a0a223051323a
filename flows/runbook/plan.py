"""The execution plan of a runbook: what each item waits for, and the order items run in.

Items run in document order unless `needs:` says otherwise. An item without `needs` waits for
the item above it, so a gate holds back everything written below it. Steps named by some
`on_failure` are rollbacks: they run only when that step fails, never in the normal order.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass

from flows.errors import Problem, RunbookError
from flows.runbook.hints import suggest
from flows.runbook.model import Item, Runbook, Step

ON_FAILURE_KEYWORDS = frozenset({"stop", "continue"})


@dataclass(frozen=True)
class Plan:
    """A checked runbook with its dependencies resolved and its items ordered."""

    runbook: Runbook
    order: tuple[str, ...]
    needs: Mapping[str, tuple[str, ...]]
    rollbacks: frozenset[str]


def build_plan(runbook: Runbook, *, unread: frozenset[str] = frozenset()) -> Plan:
    """Resolve `needs`, implicit document order and rollbacks; raise RunbookError on bad ones.

    `unread` are ids of steps written in the document but left out of it as broken: naming them
    is not reported (their own problem is), and a need of one is dropped.
    """
    problems: list[Problem] = []
    rollbacks = _rollbacks(runbook, unread, problems)
    needs: dict[str, tuple[str, ...]] = {}
    previous: str | None = None
    for item in runbook.items:
        explicit = _explicit_needs(item)
        if explicit is not None:
            needs[item.id] = _checked_needs(runbook, item, explicit, rollbacks, unread, problems)
        elif item.id in rollbacks:
            needs[item.id] = ()
        else:
            needs[item.id] = (previous,) if previous else ()
        if item.id not in rollbacks:
            previous = item.id
    order = _order(runbook, needs, rollbacks, problems)
    if problems:
        raise RunbookError(problems)
    return Plan(runbook=runbook, order=order, needs=needs, rollbacks=rollbacks)


def ancestors(plan: Plan, item_id: str) -> frozenset[str]:
    """Every item that must finish before `item_id` starts (its needs, transitively)."""
    seen: set[str] = set()
    pending = list(plan.needs.get(item_id, ()))
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(plan.needs.get(current, ()))
    return frozenset(seen)


def _explicit_needs(item: Item) -> tuple[str, ...] | None:
    """The needs an item states itself (`needs: []` included), or None to follow the item above."""
    if isinstance(item, Step):
        return (
            tuple(dict.fromkeys(item.spec.needs)) if "needs" in item.spec.model_fields_set else None
        )
    return item.needs or None


def _line(item: Item, key: str) -> int:
    return item.key_lines.get(key, item.line) if isinstance(item, Step) else item.line


def _rollbacks(runbook: Runbook, unread: frozenset[str], problems: list[Problem]) -> frozenset[str]:
    ids = {item.id: item for item in runbook.items}
    found: set[str] = set()
    for step in runbook.steps:
        target = step.spec.on_failure
        if target in ON_FAILURE_KEYWORDS or target in unread:
            continue
        line = _line(step, "on_failure")
        if target == step.id:
            problems.append(
                Problem(
                    runbook.path,
                    line,
                    f"step '{step.id}' names itself as its own rollback",
                    "on_failure is stop, continue, or the id of another step",
                )
            )
        elif isinstance(ids.get(target), Step):
            found.add(target)
        else:
            kind = "a gate, not a step" if target in ids else "not a step in this runbook"
            steps = [s.id for s in runbook.steps if s.id != step.id]
            problems.append(
                Problem(
                    runbook.path,
                    line,
                    f"step '{step.id}' has on_failure '{target}', which is {kind}",
                    suggest(
                        target,
                        steps,
                        known="steps",
                        prefix="on_failure is stop, continue, or a rollback step id",
                    ),
                )
            )
    return frozenset(found)


def _checked_needs(
    runbook: Runbook,
    item: Item,
    explicit: tuple[str, ...],
    rollbacks: frozenset[str],
    unread: frozenset[str],
    problems: list[Problem],
) -> tuple[str, ...]:
    ids = [other.id for other in runbook.items]
    kept = []
    for index, name in enumerate(explicit):
        line = _line(item, f"needs.{index}") if isinstance(item, Step) else item.line
        if name in unread:
            continue
        if name not in ids:
            problems.append(
                Problem(
                    runbook.path,
                    line,
                    f"'{item.id}' needs '{name}', which is not a step or gate in this runbook",
                    suggest(name, (i for i in ids if i != item.id), known="steps and gates"),
                )
            )
        elif name in rollbacks:
            problems.append(
                Problem(
                    runbook.path,
                    line,
                    f"'{item.id}' needs '{name}', which runs only as a rollback",
                    "a rollback step runs only when the step naming it in on_failure fails",
                )
            )
        else:
            kept.append(name)
    return tuple(kept)


def _order(
    runbook: Runbook,
    needs: Mapping[str, tuple[str, ...]],
    rollbacks: frozenset[str],
    problems: list[Problem],
) -> tuple[str, ...]:
    """Kahn's algorithm, ties broken by document position; leftovers are reported as cycles."""
    position = {item.id: index for index, item in enumerate(runbook.items)}
    waiting = {item.id: set(needs[item.id]) for item in runbook.items if item.id not in rollbacks}
    dependents: dict[str, list[str]] = {name: [] for name in waiting}
    for name, required in waiting.items():
        for other in required:
            dependents[other].append(name)
    ready = [position[name] for name, required in waiting.items() if not required]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = runbook.items[heapq.heappop(ready)].id
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent].discard(name)
            if not waiting[dependent]:
                heapq.heappush(ready, position[dependent])
    stuck = [item for item in runbook.items if waiting.get(item.id)]
    if stuck:
        _report_cycles(runbook, stuck, needs, problems)
    return tuple(order)


def _report_cycles(
    runbook: Runbook,
    stuck: list[Item],
    needs: Mapping[str, tuple[str, ...]],
    problems: list[Problem],
) -> None:
    """Name each distinct cycle once, at the `needs` of its first explicit-needs item."""
    blocked = {item.id for item in stuck}
    explained: set[str] = set()
    for start in stuck:
        walk: list[str] = []
        current = start.id
        while current not in walk and current not in explained:
            walk.append(current)
            current = next(other for other in needs[current] if other in blocked)
        explained.update(walk)
        if current not in walk:
            continue
        cycle = walk[walk.index(current) :]
        stated = {name for name in cycle if _explicit_needs(runbook.item(name)) is not None}
        first = next((i for i, name in enumerate(cycle) if name in stated), 0)
        ring = cycle[first:] + cycle[:first]
        chain = ", ".join(
            f"{name} {'needs' if name in stated else 'follows'} {after}"
            for name, after in zip(ring, ring[1:] + ring[:1], strict=True)
        )
        problems.append(
            Problem(
                runbook.path,
                _line(runbook.item(ring[0]), "needs"),
                f"dependency cycle: {chain}",
                "an item without `needs` follows the item above it; change a `needs` to break it",
            )
        )
