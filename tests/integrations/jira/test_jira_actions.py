"""The jira.* actions through an ActionContext: on the local store, and on Jira (a fake)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flows.contract.actions import ActionContext
from flows.errors import StepFailed
from flows.runbook.templates import escapes_of
from integrations.jira import wiki
from integrations.jira.actions import AttachArgs, CommentArgs, CreateIssueArgs, LinkArgs
from integrations.jira.local import LocalTicketStore
from tests.fakes.jira_server import FakeJira

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


def test_create_issue_priority_follows_severity(
    run_action: RunAction, jira_context: MakeContext, jira_server: FakeJira
) -> None:
    """Without a priority, a sev2 runbook opens a High priority ticket."""
    run_action("jira.create_issue", LEAK, jira_context(severity="sev2"))
    assert jira_server.issues["SEC-1"].fields["priority"] == {"name": "High"}


def test_create_issue_priority_given_wins(
    run_action: RunAction, jira_context: MakeContext, jira_server: FakeJira
) -> None:
    """An explicit priority is used whatever the severity."""
    run_action("jira.create_issue", {**LEAK, "priority": "Low"}, jira_context(severity="sev1"))
    assert jira_server.issues["SEC-1"].fields["priority"] == {"name": "Low"}


def test_create_issue_description_defaults_to_the_brief(
    run_action: RunAction, jira_context: MakeContext, jira_server: FakeJira
) -> None:
    """Without a description, the ticket body is the incident brief, redacted."""
    context = jira_context(
        brief="**Leak** token hunter2", redact=lambda t: t.replace("hunter2", "*")
    )
    run_action("jira.create_issue", LEAK, context)
    assert jira_server.issues["SEC-1"].fields["description"] == "**Leak** token *"


def test_create_issue_sends_components_and_custom_fields(
    run_action: RunAction, jira_context: MakeContext, jira_server: FakeJira
) -> None:
    """Components and custom fields (by display name) reach Jira."""
    args = {**LEAK, "components": ["api"], "custom_fields": {"Severity": "Sev1"}}
    outputs = run_action("jira.create_issue", args, jira_context())
    fields = jira_server.issues["SEC-1"].fields
    assert fields["components"] == [{"name": "api"}]
    assert fields["customfield_10010"] == {"value": "Sev1"}
    assert outputs == {"key": "SEC-1", "url": f"{jira_server.url}/browse/SEC-1"}


def test_comment_can_carry_the_timeline(
    run_action: RunAction, make_context: MakeContext, tickets: LocalTicketStore
) -> None:
    """timeline: true appends the incident's timeline to the comment."""
    run_action("jira.create_issue", LEAK)
    context = make_context(step="note", timeline=lambda: "14:03Z  ticket: done")
    run_action("jira.comment", {"issue": "SEC-1", "body": "Status", "timeline": True}, context)
    [note] = tickets.comments("SEC-1")
    assert note.body == "Status\n\nTimeline (UTC):\n14:03Z  ticket: done"


def test_attach_reads_from_the_evidence_folder(
    run_action: RunAction, make_context: MakeContext, tickets: LocalTicketStore, tmp_path: Path
) -> None:
    """A relative path is found in the evidence folder and attached under the given name."""
    run_action("jira.create_issue", LEAK)
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "sessions.csv").write_text("user,ip\n")
    context = make_context(step="attach", evidence_dir=tmp_path / "evidence")
    args = {"issue": "SEC-1", "path": "sessions.csv", "filename": "s.csv"}
    assert run_action("jira.attach", args, context) == {"id": "1", "filename": "s.csv"}
    [stored] = tickets.attachments("SEC-1")
    assert stored.path.read_text() == "user,ip\n"


def test_attach_of_a_missing_file_fails_the_step(
    run_action: RunAction, make_context: MakeContext, tmp_path: Path
) -> None:
    """A path that does not exist fails the step, naming the path."""
    run_action("jira.create_issue", LEAK)
    context = make_context(step="attach", evidence_dir=tmp_path)
    with pytest.raises(StepFailed, match=r"nope\.txt"):
        run_action("jira.attach", {"issue": "SEC-1", "path": "nope.txt"}, context)


def test_attach_rejects_a_filename_with_a_folder() -> None:
    """The attachment's name is a plain file name."""
    with pytest.raises(ValidationError, match="filename"):
        AttachArgs.model_validate({"issue": "SEC-1", "path": "a", "filename": "../a"})


def test_link_returns_the_link_id_once(
    run_action: RunAction, make_context: MakeContext, tickets: LocalTicketStore
) -> None:
    """jira.link run twice in one step adds one link and returns its id."""
    run_action("jira.create_issue", LEAK)
    args = {"issue": "SEC-1", "url": "https://grafana.example/d/1", "title": "Dashboard"}
    first = run_action("jira.link", args, make_context(step="link"))
    assert run_action("jira.link", args, make_context(step="link")) == first
    assert [link.url for link in tickets.links("SEC-1")] == ["https://grafana.example/d/1"]


def test_link_needs_a_web_address() -> None:
    """jira.link accepts http and https addresses only."""
    with pytest.raises(ValidationError, match="url"):
        LinkArgs.model_validate({"issue": "SEC-1", "url": "file:///etc/passwd", "title": "x"})


def test_issue_help_names_the_template_path() -> None:
    """Argument help shows `steps.<id>.<output>`, the path templates really use."""
    assert "{{ steps.ticket.key }}" in (CommentArgs.model_fields["issue"].description or "")


def test_descriptions_and_comments_are_wiki_markup() -> None:
    """A ticket's description and a comment's body are escaped as wiki markup; the summary and
    link titles, plain text in Jira, are not."""
    assert escapes_of(CreateIssueArgs) == {"description": wiki.escape}
    assert escapes_of(CommentArgs) == {"body": wiki.escape}
    assert escapes_of(LinkArgs) == {}
