"""The jira.* actions run against the local ticket store through an ActionContext."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from flows.actions import ActionContext
from flows.errors import StepFailed
from integrations.jira.actions import CreateIssueArgs
from integrations.jira.local import LocalTicketStore

MakeContext = Callable[..., ActionContext]
RunAction = Callable[..., dict[str, Any]]

LEAK = {"project": "SEC", "summary": "Credential leak on api"}


def test_create_issue_returns_key_and_url(run_action: RunAction) -> None:
    """jira.create_issue returns the new ticket's key and URL."""
    assert run_action("jira.create_issue", LEAK) == {"key": "SEC-1", "url": "local://tickets/SEC-1"}


def test_create_issue_records_the_incident(
    run_action: RunAction, tickets: LocalTicketStore
) -> None:
    """The ticket remembers the incident of the step that opened it."""
    run_action("jira.create_issue", LEAK)
    assert [t.incident for t in tickets.list_tickets()] == ["inc-1"]


def test_create_issue_twice_in_one_step_makes_one_ticket(
    run_action: RunAction, tickets: LocalTicketStore
) -> None:
    """Re-running the same step of the same incident returns the ticket it already opened."""
    first = run_action("jira.create_issue", LEAK)
    second = run_action("jira.create_issue", LEAK)
    assert first == second
    assert len(tickets.list_tickets()) == 1


def test_create_issue_in_another_incident_makes_a_new_ticket(
    run_action: RunAction, make_context: MakeContext
) -> None:
    """The same step in a different incident opens its own ticket."""
    run_action("jira.create_issue", LEAK)
    other = run_action("jira.create_issue", LEAK, make_context(incident="inc-2"))
    assert other["key"] == "SEC-2"


def test_create_issue_redacts_text(
    run_action: RunAction, make_context: MakeContext, tickets: LocalTicketStore
) -> None:
    """The summary passes through the context's redaction before reaching the ticket."""
    context = make_context(redact=lambda text: text.replace("hunter2", "***"))
    run_action("jira.create_issue", {"project": "SEC", "summary": "pw hunter2"}, context)
    assert tickets.list_tickets()[0].summary == "pw ***"


def test_create_issue_rejects_lowercase_project() -> None:
    """A project key must be an uppercase Jira key."""
    with pytest.raises(ValidationError, match="project"):
        CreateIssueArgs.model_validate({"project": "sec", "summary": "x"})


def test_comment_is_added_once(
    run_action: RunAction, make_context: MakeContext, tickets: LocalTicketStore
) -> None:
    """jira.comment run twice in one step adds one comment and returns the same id."""
    run_action("jira.create_issue", LEAK)
    note = make_context(step="note")
    first = run_action("jira.comment", {"issue": "SEC-1", "body": "Key revoked"}, note)
    second = run_action("jira.comment", {"issue": "SEC-1", "body": "Key revoked"}, note)
    assert first == second
    assert [c.body for c in tickets.comments("SEC-1")] == ["Key revoked"]


def test_comment_on_unknown_issue_fails_the_step(run_action: RunAction) -> None:
    """Commenting on a ticket that does not exist fails the step and names the key."""
    with pytest.raises(StepFailed, match="SEC-42"):
        run_action("jira.comment", {"issue": "SEC-42", "body": "x"})


def test_transition_returns_the_new_status(
    run_action: RunAction, make_context: MakeContext
) -> None:
    """jira.transition returns the ticket's key and its new status."""
    run_action("jira.create_issue", LEAK)
    outputs = run_action(
        "jira.transition", {"issue": "SEC-1", "status": "Done"}, make_context(step="close")
    )
    assert outputs == {"key": "SEC-1", "status": "Done"}


def test_transition_of_unknown_issue_fails_the_step(run_action: RunAction) -> None:
    """Moving a ticket that does not exist fails the step."""
    with pytest.raises(StepFailed, match="SEC-42"):
        run_action("jira.transition", {"issue": "SEC-42", "status": "Done"})
