"""Fixtures for the Slack backend: a fake Slack Web API and SlackChat clients pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integrations.config import SlackConfig
from integrations.idempotency import IdempotencyMap
from integrations.slack.web import SlackChat
from tests.fakes.slack_server import TOKEN, FakeSlack, serve_slack

Connect = Callable[..., SlackChat]


@pytest.fixture
def slack_server() -> Iterator[FakeSlack]:
    """A fake Slack Web API on 127.0.0.1 (free port), recording every request."""
    with serve_slack() as slack:
        yield slack


@pytest.fixture
def connect(slack_server: FakeSlack, tmp_path: Path) -> Connect:
    """Build a real SlackChat on the fake; a new `map_name` gives it an empty idempotency map."""

    def make(map_name: str = "made.db", token: str = TOKEN, **config: Any) -> SlackChat:
        settings = SlackConfig(**{"bot_token": token, "api_url": slack_server.url, **config})
        return SlackChat(settings, IdempotencyMap(tmp_path / map_name))

    return make
