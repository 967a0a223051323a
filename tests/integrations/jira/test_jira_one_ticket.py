"""Exactly one ticket per step through the real `jira` client, when Jira answers late or never,
when the process dies between the create and recording it, and while Jira's search lags."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.contract.ports import NewTicket
from integrations.idempotency import IdempotencyMap
from integrations.jira import TicketSystemError
from integrations.jira.dedupe import SYSTEM, OutcomeUnknown, dedupe_tag
from integrations.jira.rest import JiraTickets
from tests.fakes.jira_server import FakeJira
from tests.support import PROJECT

MakeJira = Callable[..., JiraTickets]
CREATE = r"/rest/api/2/issue"
KEY = "inc-1:ticket"
TAG = dedupe_tag(KEY)

# Run in a child process that is killed while Jira holds the answer to its create.
CREATE_THEN_DIE = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from pydantic import SecretStr
    from flows.contract.ports import NewTicket
    from integrations.config import JiraConfig
    from integrations.idempotency import IdempotencyMap
    from integrations.jira.rest import JiraTickets

    url, made, key = sys.argv[1:4]
    config = JiraConfig(url=url, user="bot@example.com", token=SecretStr("api-token"), timeout_s=1)
    ticket = NewTicket(project="SEC", summary="Credential leak on api", incident="inc-1")
    JiraTickets(config, IdempotencyMap(Path(made))).create_issue(ticket, key)
    """
)


def new(**fields: object) -> NewTicket:
    return NewTicket.model_validate(
        {"project": "SEC", "summary": "Credential leak on api", "incident": "inc-1", **fields}
    )


def die_after_create(jira_server: FakeJira, made_path: Path) -> None:
    """Start a create in a child process and kill it (SIGKILL) once Jira has made the ticket."""
    jira_server.answer_late(CREATE, 30, method="POST")
    child = subprocess.Popen(
        [sys.executable, "-c", CREATE_THEN_DIE, jira_server.url, str(made_path), KEY],
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not jira_server.issues:
            assert child.poll() is None, "the child ended before Jira made the ticket"
            assert time.monotonic() < deadline, "the child never sent its create"
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait()
    jira_server.answer_late(CREATE, 0, method="POST")


def test_create_answered_after_the_timeout_opens_one_ticket(
    make_jira: MakeJira, jira_server: FakeJira
) -> None:
    """Jira makes the ticket but answers after the client gave up, and its search lags: the
    step waits for the search and returns that ticket; a second run of the step sends nothing."""
    jira_server.answer_late(CREATE, 2, method="POST")
    jira_server.search_lag_s(1.5)
    jira = make_jira(timeout_s=0.5, reconcile_s=4)
    ticket = jira.create_issue(new(), KEY)
    assert (ticket.key, list(jira_server.issues)) == ("SEC-1", ["SEC-1"])
    assert make_jira(timeout_s=0.5, reconcile_s=4).create_issue(new(), KEY) == ticket
    assert jira_server.count("POST", CREATE) == 1


def test_unconfirmed_create_is_not_sent_again_while_search_lags(
    make_jira: MakeJira, jira_server: FakeJira
) -> None:
    """Past the bound the step fails naming the label, and running it again while the search
    still lags fails the same way instead of opening a second ticket; once Jira's search shows
    the ticket, the step takes it."""
    jira_server.answer_late(CREATE, 1, method="POST")
    jira_server.search_lag_s(3)
    jira = make_jira(timeout_s=0.3, reconcile_s=0.5)
    with pytest.raises(OutcomeUnknown, match=rf'no answer in time.*labels = "{TAG}"'):
        jira.create_issue(new(), KEY)
    with pytest.raises(OutcomeUnknown, match="not created again"):
        jira.create_issue(new(), KEY)
    assert (list(jira_server.issues), jira_server.count("POST", CREATE)) == (["SEC-1"], 1)
    time.sleep(3)
    assert jira.create_issue(new(), KEY).key == "SEC-1"
    assert jira_server.count("POST", CREATE) == 1


def test_server_error_on_create_is_never_sent_again(
    make_jira: MakeJira, jira_server: FakeJira
) -> None:
    """A 500 may hide a ticket Jira made: a later run of the step searches, and sends no create."""
    jira_server.fail_next(r"/issue$", 500, method="POST")
    jira = make_jira(reconcile_s=0.2)
    for _ in range(2):
        with pytest.raises(OutcomeUnknown, match=r"HTTP 500.*open the ticket by hand"):
            jira.create_issue(new(), KEY)
    assert jira_server.count("POST", CREATE) == 1
    assert jira_server.count("GET", r".*/search/jql") >= 3


def test_death_before_the_answer_is_recorded_resumes_to_that_ticket(
    make_jira: MakeJira, jira_server: FakeJira, tmp_path: Path
) -> None:
    """The process dies after Jira made the ticket and before the map recorded it; the resume,
    while Jira's search lags for two seconds, waits for the search and takes that ticket."""
    jira_server.search_lag_s(2)
    made = IdempotencyMap(tmp_path / "crash.db")
    die_after_create(jira_server, made.path)
    resumed = make_jira(made_map=made, reconcile_s=4).create_issue(new(), KEY)
    assert (resumed.key, list(jira_server.issues)) == ("SEC-1", ["SEC-1"])
    assert jira_server.count("POST", CREATE) == 1
    assert made.get(SYSTEM, f"issue:{KEY}") == {"key": "SEC-1"}
    assert made.intent(SYSTEM, f"issue:{KEY}") is None


def test_death_then_a_search_lag_past_the_bound_fails_the_resume(
    make_jira: MakeJira, jira_server: FakeJira, tmp_path: Path
) -> None:
    """When Jira's search lags longer than the bound, the resume fails saying what to look for,
    and Jira still holds one ticket."""
    jira_server.search_lag_s(60)
    made = IdempotencyMap(tmp_path / "crash.db")
    die_after_create(jira_server, made.path)
    with pytest.raises(OutcomeUnknown) as failed:
        make_jira(made_map=made, reconcile_s=0.5).create_issue(new(), KEY)
    message = str(failed.value)
    assert "the run stopped before its answer was recorded" in message
    assert f'Search Jira for labels = "{TAG}"' in message
    assert (list(jira_server.issues), jira_server.count("POST", CREATE)) == (["SEC-1"], 1)


def test_refused_create_lets_a_corrected_retry_create(
    jira: JiraTickets, jira_server: FakeJira, made: IdempotencyMap
) -> None:
    """A 400 means Jira made nothing: no intent is left, and the corrected step opens the ticket."""
    with pytest.raises(TicketSystemError, match="Component name 'billing' is not valid"):
        jira.create_issue(new(components=("billing",)), KEY)
    assert made.intent(SYSTEM, f"issue:{KEY}") is None
    assert jira.create_issue(new(components=("api",)), KEY).key == "SEC-1"
    assert (list(jira_server.issues), jira_server.count("POST", CREATE)) == (["SEC-1"], 2)


def test_intent_is_on_disk_before_the_create_is_sent(
    jira: JiraTickets, jira_server: FakeJira, made: IdempotencyMap
) -> None:
    """When Jira receives the create, the map on disk already says one was sent, with its label."""
    seen: list[dict[str, object] | None] = []
    jira_server.on_create = lambda: seen.append(made.intent(SYSTEM, f"issue:{KEY}"))
    jira.create_issue(new(), KEY)
    [intent] = seen
    assert intent is not None and intent["label"] == TAG
    assert made.intent(SYSTEM, f"issue:{KEY}") is None  # settled by the answer
