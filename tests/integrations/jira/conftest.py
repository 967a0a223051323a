"""Fixtures for the Jira backend: a fake Jira per test, and the real client pointed at it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flows.contract.actions import ActionContext
from integrations.config import JiraConfig
from integrations.idempotency import IdempotencyMap
from integrations.jira.rest import JiraTickets
from integrations.jira.retry import RetryPolicy
from tests.fakes.jira_server import FakeJira

FAST = RetryPolicy(backoff_s=0.01, backoff_cap_s=0.05, lookup_backoff_s=0.01)


@pytest.fixture
def jira_server() -> Iterator[FakeJira]:
    """A fake Jira Cloud on 127.0.0.1, accepting bot@example.com with token `api-token`."""
    server = FakeJira().start()
    yield server
    server.stop()


@pytest.fixture
def made(tmp_path: Path) -> IdempotencyMap:
    """An empty idempotency map in tmp_path."""
    return IdempotencyMap(tmp_path / "made.db")


@pytest.fixture
def jira_config(jira_server: FakeJira) -> JiraConfig:
    """Cloud settings for the fake: email + API token, short timeouts (requests, lost creates)."""
    return JiraConfig(
        url=jira_server.url,
        user="bot@example.com",
        token=SecretStr("api-token"),
        timeout_s=5,
        reconcile_s=1,
    )


@pytest.fixture
def make_jira(jira_config: JiraConfig, made: IdempotencyMap) -> Callable[..., JiraTickets]:
    """Build a fresh JiraTickets (short backoffs) on the fake; keyword args override the config."""

    def make(
        made_map: IdempotencyMap | None = None,
        sleep: Callable[[float], None] | None = None,
        policy: RetryPolicy = FAST,
        **config: Any,
    ) -> JiraTickets:
        settings = jira_config.model_copy(update=config)
        extra = {} if sleep is None else {"sleep": sleep}
        return JiraTickets(settings, made_map or made, policy=policy, **extra)

    return make


@pytest.fixture
def jira(make_jira: Callable[..., JiraTickets]) -> JiraTickets:
    """The Jira backend on the fake Jira, with the test's idempotency map."""
    return make_jira()


@pytest.fixture
def jira_context(
    make_context: Callable[..., ActionContext], jira: JiraTickets
) -> Callable[..., ActionContext]:
    """An action context whose ticket system is the Jira backend on the fake."""

    def make(**extra: Any) -> ActionContext:
        return dataclasses.replace(make_context(**extra), tickets=jira)

    return make
