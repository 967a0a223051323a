"""slack_sdk's `WebClient` as this backend uses it: our retry handlers, failures as `ChatError`s.

Rate limits are waited out by slack_sdk's handler; connection errors are retried only for methods
harmless to send twice (`integrations.slack.refusals.REPEATABLE`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cached_property
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RateLimitErrorRetryHandler

from integrations.config import SlackConfig
from integrations.slack import ChatError
from integrations.slack.refusals import RepeatableConnectionErrors, refusal

PAGE = 200
"""Page size of list calls, as Slack recommends."""


class SlackClient:
    """One bot token's `WebClient`, with what to fix when a call fails."""

    def __init__(self, config: SlackConfig) -> None:
        self._config = config
        self.api = WebClient(
            token=config.bot_token.get_secret_value(),
            base_url=config.api_url,
            timeout=config.timeout_s,  # type: ignore[arg-type]  # urllib takes float seconds
            retry_handlers=[
                RateLimitErrorRetryHandler(max_retry_count=config.max_rate_limit_retries),
                RepeatableConnectionErrors(),
            ],
        )

    @contextlib.contextmanager
    def failures(self, where: str = "") -> Iterator[None]:
        """Turn Slack refusals and transport errors into `ChatError`s that say what to fix."""
        try:
            yield
        except SlackApiError as err:
            raise self.refusal(err, where) from err
        except (OSError, HTTPException) as err:
            raise ChatError(f"cannot reach Slack at {self._config.api_url}: {err}") from err

    def refusal(self, err: SlackApiError, where: str) -> ChatError:
        """A refusal as a step failure: the method, and what to fix when Slack's code says."""
        return refusal(err, where, self._config.max_rate_limit_retries, self._app_handle)

    @cached_property
    def whoami(self) -> dict[str, Any]:
        """auth.test's answer for the token: team, bot user and its id (asked once)."""
        with self.failures():
            return dict(self.api.auth_test().data)  # type: ignore[arg-type]

    def _app_handle(self) -> str:
        """The bot user's name for an /invite hint, or a placeholder if Slack will not say."""
        try:
            return str(self.whoami["user"])
        except ChatError:
            return "<the app>"  # the hint still reads right; the real failure is reported
