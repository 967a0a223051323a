"""One connection to Jira, made on first use, through which every request is sent and retried.

A request goes through `call_with_retries` (our policy, integrations.jira.retry); what Jira
refuses comes back as a `TicketSystemError` saying what to fix (integrations.jira.refusals).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from jira import JIRA, JIRAError
from tenacity import RetryCallState, Retrying

from flows.contract.ports import Ticket
from integrations.config import JiraConfig
from integrations.jira import TicketSystemError
from integrations.jira.dedupe import OutcomeUnknown
from integrations.jira.refusals import CREDENTIALS_HINT, Op, refusal
from integrations.jira.retry import RetryPolicy, call_with_retries, checked_tries, lookups

T = TypeVar("T")


class JiraClient:
    """The `jira` library's client, connected on first use, with our retries and error messages."""

    def __init__(
        self, config: JiraConfig, policy: RetryPolicy, sleep: Callable[[float], None]
    ) -> None:
        self.base = config.url.rstrip("/")
        self.config = config
        """The connection's settings: timeouts, and how long unanswered writes are looked for."""
        self._policy = policy
        self._sleep = sleep
        self._lock = threading.Lock()
        self._jira: JIRA | None = None
        self._fields: list[dict[str, Any]] | None = None

    def run(self, request: Callable[[JIRA], T], op: Op, safe: bool) -> T:
        """Send `request` (resent after a failure only when `safe`); refusals as step failures."""
        return self._run(lambda: request(self._client()), op, safe)

    def issue(self, key: str) -> Ticket:
        """The ticket with this key, as Jira has it now."""
        op = Op(f"read {key}", "Browse projects", f"issue {key}", key)
        raw = self.run(lambda jira: jira.issue(key, fields="summary,status").raw, op, True)
        return self.ticket(raw)

    def ticket(self, raw: dict[str, Any]) -> Ticket:
        """A `Ticket` from an issue as Jira's REST API returns it."""
        fields = raw.get("fields") or {}
        return Ticket(
            key=raw["key"],
            url=f"{self.base}/browse/{raw['key']}",
            summary=fields.get("summary") or "",
            status=(fields.get("status") or {}).get("name", ""),
        )

    def fields(self) -> list[dict[str, Any]]:
        """Every issue field Jira knows (GET /field), read once."""
        if self._fields is None:
            op = Op("list the issue fields", "Browse projects", "Jira")
            self._fields = self.run(lambda jira: jira.fields(), op, True)
        return self._fields

    def look_again(self, find: Callable[[], T | None], since: float, unknown: str) -> T:
        """What an unanswered write made, searched for with backoff; `OutcomeUnknown` if absent.

        The searches go on until `reconcile_s` after `since` (a `time.time()`: when the write
        was answered or given up), at least one; `unknown` opens the error when none finds it.
        """
        problem = ""

        def note(state: RetryCallState) -> None:
            nonlocal problem
            if state.outcome is not None and state.outcome.failed:
                problem = f"; the last search failed: {state.outcome.exception()}"

        until = since + self.config.reconcile_s
        found: T | None = lookups(self._policy, until, self._sleep, after=note)(find)
        if found is not None:
            return found
        raise OutcomeUnknown(f"{unknown}{problem}")

    def checked_write_tries(self) -> Retrying:
        """Attempts of a write that reads the state again before it is resent (a transition)."""
        return checked_tries(self._policy, self._sleep)

    def _client(self) -> JIRA:
        with self._lock:
            if self._jira is None:
                self._jira = self._connect()
            return self._jira

    def _connect(self) -> JIRA:
        config = self.config
        if config.pat is not None:
            auth: dict[str, Any] = {"token_auth": config.pat.get_secret_value()}
        elif config.user and config.token is not None:
            auth = {"basic_auth": (config.user, config.token.get_secret_value())}
        else:
            raise TicketSystemError(
                f"RUNBOOK_JIRA_URL is set but no credentials: {CREDENTIALS_HINT}"
            )
        # max_retries=0: the library's retries would re-send POSTs; ours are in call_with_retries.
        connect = functools.partial(
            JIRA, self.base, timeout=config.timeout_s, max_retries=0, **auth
        )
        return self._run(connect, Op("connect", "Browse projects", "Jira"), True)

    def _run(self, call: Callable[[], T], op: Op, safe: bool) -> T:
        try:
            return call_with_retries(
                call,
                safe=safe,
                what=op.what,
                policy=self._policy,
                max_wait_s=self.config.max_retry_wait_s,
                sleep=self._sleep,
            )
        except JIRAError as err:
            raise refusal(err, op, self.base, self.config, self._fields or []) from None
        except requests.RequestException as err:
            raise TicketSystemError(
                f"could not {op.what}: cannot talk to Jira at {self.base} ({type(err).__name__})"
            ) from None
