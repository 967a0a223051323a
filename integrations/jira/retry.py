"""Our retry policy for Jira requests: refusals waited out exactly, unknown outcomes never resent.

The `jira` library's ResilientSession retries every method (POST included) and caps its wait
at 60 s whatever Retry-After says; it is switched off and this one small policy used instead.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import requests
from jira import JIRAError
from pydantic import BaseModel, ConfigDict

from integrations.jira import TicketSystemError

LOG = logging.getLogger(__name__)
T = TypeVar("T")
_REFUSED = (429, 503)  # Jira did not act on the request: sending it again, even a POST, is safe.


class RetryPolicy(BaseModel):
    """How hard to try: backoff for failed reads, searches after a write went unanswered."""

    model_config = ConfigDict(frozen=True)

    tries: int = 3
    """Attempts of a read (or an upsert) after a 5xx other than 503 or a connection error."""
    backoff_s: float = 0.5
    backoff_cap_s: float = 8.0
    refusals: int = 5
    """429 and 503 answers waited out per request before giving up."""
    lookups: int = 4
    """Searches for what an unanswered write made (Jira search can lag behind a create)."""
    lookup_backoff_s: float = 0.5


class NoAnswer(Exception):
    """A write was sent and its outcome is unknown: a 5xx other than 503, a drop, a timeout."""


def call_with_retries(
    call: Callable[[], T],
    *,
    safe: bool,
    what: str,
    policy: RetryPolicy,
    max_wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run one request: wait out 429/503 as told; retry other failures only when `safe`.

    An unsafe call (a create, comment or upload) that fails without a refusal raises `NoAnswer`;
    JIRAErrors that are not server failures propagate for the caller to explain.
    """
    failures = refusals = 0
    while True:
        try:
            return call()
        except JIRAError as err:
            if err.status_code in _REFUSED:
                refusals += 1
                wait = _retry_after(err) or _backoff(refusals, policy)
                if wait > max_wait_s:
                    raise TicketSystemError(
                        f"Jira asked us to wait {wait:g} s before trying to {what} again"
                        f" (HTTP {err.status_code}, Retry-After), more than max_retry_wait_s ="
                        f" {max_wait_s:g} s: try again later"
                    ) from None
                if refusals > policy.refusals:
                    raise TicketSystemError(
                        f"Jira refused to {what} {refusals} times (HTTP {err.status_code}:"
                        " rate-limited or unavailable): try again later"
                    ) from None
                LOG.warning("Jira answered %s to %s: waiting %.1f s", err.status_code, what, wait)
                sleep(wait)
                continue
            if err.status_code is None or err.status_code < 500:
                raise
            failure = f"HTTP {err.status_code}"
        except requests.Timeout:
            failure = "no answer in time"
        except requests.ConnectionError:
            failure = "connection failed or dropped"
        if not safe:
            raise NoAnswer(failure)
        failures += 1
        if failures >= policy.tries:
            raise TicketSystemError(
                f"could not {what}: Jira failed {failures} times ({failure}); check that it is up"
            )
        sleep(_backoff(failures, policy))


def _retry_after(err: JIRAError) -> float | None:
    header = err.response.headers.get("Retry-After") if err.response is not None else None
    try:
        return max(float(header), 0.0) if header else None
    except ValueError:
        return None  # an HTTP date: Jira sends seconds, so back off instead


def _backoff(attempt: int, policy: RetryPolicy) -> float:
    """Capped exponential backoff with jitter, so many runs do not retry in step."""
    return min(policy.backoff_cap_s, policy.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1)
