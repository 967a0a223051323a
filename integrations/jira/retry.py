"""Our retry policy for Jira requests: refusals waited out exactly, unknown outcomes never resent.

The `jira` library's ResilientSession retries every method (POST included) and caps its wait
at 60 s whatever Retry-After says; it is switched off. Every Jira retry is tenacity configured
from the one `RetryPolicy` here: a request (`call_with_retries`), a write that is checked before
it is tried again (`checked_tries`), and the searches for what an unanswered write made
(`lookups`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import NoReturn, TypeGuard, TypeVar

import requests
from jira import JIRAError
from pydantic import BaseModel, ConfigDict
from tenacity import (
    RetryCallState,
    Retrying,
    after_nothing,
    retry_if_exception,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from integrations.jira import TicketSystemError
from integrations.jira.dedupe import NothingMade

LOG = logging.getLogger(__name__)
T = TypeVar("T")
_REFUSED = (429, 503)  # Jira did not act on the request: sending it again, even a POST, is safe.


class RetryPolicy(BaseModel):
    """How hard to try: backoff for failed reads, and for the searches after an unanswered write.

    How long those searches go on is the connection's `reconcile_s` (a setting, see JiraConfig).
    """

    model_config = ConfigDict(frozen=True)

    tries: int = 3
    """Attempts of a read (or an upsert) after a 5xx other than 503 or a connection error."""
    backoff_s: float = 0.5
    backoff_cap_s: float = 8.0
    refusals: int = 5
    """429 and 503 answers waited out per request before giving up."""
    lookup_backoff_s: float = 0.5
    """First wait between two searches for what an unanswered write made; doubled each time."""


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
    tally = _Tally(policy, what, max_wait_s)
    retrying = Retrying(
        sleep=_skip_zero(sleep),
        retry=retry_if_exception(lambda err: _refused(err) or (safe and _failure(err) != "")),
        after=tally.count,
        wait=tally.wait,
        stop=tally.stop,
        before_sleep=tally.log,
        retry_error_callback=tally.give_up,
    )
    try:
        return retrying(call)
    except (JIRAError, requests.Timeout, requests.ConnectionError) as err:
        failure = _failure(err)
        if safe or not failure:
            raise
        raise NoAnswer(failure) from None


def checked_tries(policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """Attempts of a write that reads the state again before it is resent (a transition).

    Each attempt that raises `NoAnswer` is tried again, at once, up to `policy.tries` times;
    then the last `NoAnswer` is raised.
    """
    return Retrying(
        sleep=_skip_zero(sleep),
        retry=retry_if_exception_type(NoAnswer),
        stop=stop_after_attempt(policy.tries),
        reraise=True,
    )


def lookups(
    policy: RetryPolicy,
    until: float,
    sleep: Callable[[float], None] = time.sleep,
    after: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """Searches for what an unanswered write made, with backoff: its result, or None.

    A search that finds nothing or fails with a `TicketSystemError` is tried again while the
    next one would start by `until` (a `time.time()`); at least one search is made. `after`
    sees each search that is tried again.
    """
    return Retrying(
        sleep=_skip_zero(sleep),
        retry=retry_if_result(lambda found: found is None)
        | retry_if_exception_type(TicketSystemError),
        stop=lambda state: time.time() + state.upcoming_sleep > until,
        wait=wait_exponential(multiplier=policy.lookup_backoff_s, max=policy.backoff_cap_s),
        after=after or after_nothing,
        retry_error_callback=lambda state: None,
    )


class _Tally:
    """One request's refusals and failures, which the policy counts and waits for apart."""

    def __init__(self, policy: RetryPolicy, what: str, max_wait_s: float) -> None:
        self.policy, self.what, self.max_wait_s = policy, what, max_wait_s
        self.refusals = self.failures = 0

    def count(self, state: RetryCallState) -> None:
        """Count the attempt that is about to be retried."""
        if _refused(_error(state)):
            self.refusals += 1
        else:
            self.failures += 1

    def wait(self, state: RetryCallState) -> float:
        """Retry-After after a refusal (backoff without one); backoff after a failure."""
        err = _error(state)
        if _refused(err):
            return _retry_after(err) or _backoff(self.refusals, self.policy)
        return _backoff(self.failures, self.policy)

    def stop(self, state: RetryCallState) -> bool:
        """Stop at a wait beyond max_wait_s, too many refusals, or the policy's tries."""
        if _refused(_error(state)):
            too_long = state.upcoming_sleep > self.max_wait_s
            return too_long or self.refusals > self.policy.refusals
        return self.failures >= self.policy.tries

    def log(self, state: RetryCallState) -> None:
        """Say that Jira refused and how long we wait."""
        err = _error(state)
        if _refused(err):
            what, wait = self.what, state.upcoming_sleep
            LOG.warning("Jira answered %s to %s: waiting %.1f s", err.status_code, what, wait)

    def give_up(self, state: RetryCallState) -> NoReturn:
        """Raise why the request is given up, in words the responder can act on."""
        err = _error(state)
        if _refused(err):
            wait = state.upcoming_sleep
            if wait > self.max_wait_s:
                raise NothingMade(
                    f"Jira asked us to wait {wait:g} s before trying to {self.what} again"
                    f" (HTTP {err.status_code}, Retry-After), more than max_retry_wait_s ="
                    f" {self.max_wait_s:g} s: try again later"
                ) from None
            raise NothingMade(
                f"Jira refused to {self.what} {self.refusals} times (HTTP {err.status_code}:"
                " rate-limited or unavailable): try again later"
            ) from None
        raise TicketSystemError(
            f"could not {self.what}: Jira failed {self.failures} times ({_failure(err)});"
            " check that it is up"
        ) from None


def _error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _refused(err: BaseException | None) -> TypeGuard[JIRAError]:
    return isinstance(err, JIRAError) and err.status_code in _REFUSED


def _failure(err: BaseException | None) -> str:
    """What went wrong when Jira may or may not have acted; "" when it surely did not."""
    if isinstance(err, JIRAError):
        status = err.status_code
        server_failed = status is not None and status >= 500 and status not in _REFUSED
        return f"HTTP {status}" if server_failed else ""
    if isinstance(err, requests.Timeout):
        return "no answer in time"
    if isinstance(err, requests.ConnectionError):
        return "connection failed or dropped"
    return ""


def _retry_after(err: JIRAError) -> float | None:
    header = err.response.headers.get("Retry-After") if err.response is not None else None
    try:
        return max(float(header), 0.0) if header else None
    except ValueError:
        return None  # an HTTP date: Jira sends seconds, so back off instead


def _backoff(attempt: int, policy: RetryPolicy) -> float:
    """Capped exponential backoff with jitter, so many runs do not retry in step."""
    return min(policy.backoff_cap_s, policy.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1)


def _skip_zero(sleep: Callable[[float], None]) -> Callable[[float], None]:
    """`sleep`, not called for no wait at all (tenacity calls it between every two attempts)."""

    def nap(seconds: float) -> None:
        if seconds > 0:
            sleep(seconds)

    return nap
