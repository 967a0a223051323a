"""Shared fixtures: local backends in tmp_path, an in-memory evidence log, and an action runner."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from flows.contract.actions import ActionContext
from flows.evidence.records import GENESIS, Event, Record, record_hash
from flows.times import utc_stamp
from integrations.backends import Backends, local_backends
from integrations.catalog import builtin_actions
from integrations.jira.local import LocalTicketStore


class ListEvidence:
    """An evidence log kept in a list: records numbered from 1 and chained, as a ledger's are."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def record(
        self,
        event: Event,
        *,
        step: str | None = None,
        actor: str = "engine",
        data: Mapping[str, Any],
    ) -> Record:
        body: dict[str, Any] = {
            "seq": len(self.records) + 1,
            "ts": utc_stamp(),
            "incident": "inc-1",
            "runbook": {"id": "credential-leak", "version": 1, "sha256": GENESIS},
            "step": step,
            "event": Event(event).value,
            "actor": actor,
            "data": json.loads(json.dumps(dict(data))),
            "prev": self.records[-1].hash if self.records else GENESIS,
        }
        record = Record.model_validate_json(json.dumps({**body, "hash": record_hash(body)}))
        self.records.append(record)
        return record


@pytest.fixture
def echoed() -> list[str]:
    """Console lines the local outbox printed."""
    return []


@pytest.fixture
def backends(tmp_path: Path, echoed: list[str]) -> Backends:
    """The embedded ticket store and outbox under tmp_path, echoing into `echoed`."""
    return local_backends(tmp_path, echo=echoed.append)


@pytest.fixture
def tickets(backends: Backends) -> LocalTicketStore:
    """The local ticket store the actions write to, to read back what they did."""
    assert isinstance(backends.tickets, LocalTicketStore)
    return backends.tickets


@pytest.fixture
def outbox_lines(tmp_path: Path) -> Callable[[], list[dict[str, Any]]]:
    """Read the outbox the actions write to, one dict per line."""

    def read() -> list[dict[str, Any]]:
        path = tmp_path / "outbox.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    return read


@pytest.fixture
def evidence() -> ListEvidence:
    """An empty in-memory evidence log."""
    return ListEvidence()


@pytest.fixture
def make_context(
    tmp_path: Path, backends: Backends, evidence: ListEvidence
) -> Callable[..., ActionContext]:
    """Build the context of one step of one incident over the shared local backends."""

    def make(step: str = "step-1", incident: str = "inc-1", **extra: Any) -> ActionContext:
        return ActionContext(
            incident=incident,
            runbook="credential-leak",
            step=step,
            tickets=backends.tickets,
            chat=backends.chat,
            evidence=evidence,
            home=tmp_path,
            **extra,
        )

    return make


@pytest.fixture
def run_action(make_context: Callable[..., ActionContext]) -> Callable[..., Any]:
    """Validate `with_` against a built-in action's model and run it, as the engine would."""
    actions = {action.name: action for action in builtin_actions()}

    def run(name: str, with_: Mapping[str, Any], context: ActionContext | None = None) -> Any:
        action = actions[name]
        outputs = action.run(action.args.model_validate(with_), context or make_context())
        assert set(outputs) == set(action.outputs)
        return outputs

    return run
