"""Values longer than Jira keeps are cut to fit with a visible marker, through the real client,
instead of failing the step: summaries, labels, descriptions and comments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flows.contract.actions import ActionContext
from flows.contract.ports import NewTicket
from integrations.jira.dedupe import dedupe_tag
from integrations.jira.rest import JiraTickets
from integrations.jira.wiki import escape
from integrations.limits import MARKER, length
from tests.fakes.jira_server import FakeJira

KEY = "inc-1:ticket"
LONG_SERVICE = "payments-" + "x" * 291  # 300 characters, as the testers' alert label


def new(**fields: object) -> NewTicket:
    return NewTicket.model_validate({"project": "SEC", "incident": "inc-1", **fields})


def test_long_summary_is_cut_to_255_and_kept_whole_in_the_description(
    jira: JiraTickets, jira_server: FakeJira
) -> None:
    """A 300-character summary becomes 255 characters ending in the marker; the description
    starts with the summary in full."""
    summary = f"Credential leak: api-key for {LONG_SERVICE}"
    ticket = jira.create_issue(new(summary=summary, description="Rotate the key."), KEY)
    stored = jira_server.issues[ticket.key].fields
    assert length(stored["summary"]) == 255
    assert stored["summary"].endswith(MARKER)
    assert summary.startswith(stored["summary"].removesuffix(MARKER))
    # Wiki markup: the summary is escaped there, so Jira shows it as it is.
    assert stored["description"] == f"Summary in full: {escape(summary)}\n\nRotate the key."


def test_summary_of_emoji_is_cut_between_characters(
    jira: JiraTickets, jira_server: FakeJira
) -> None:
    """Jira counts an emoji as two: 200 of them are cut to at most 255 such units, none split."""
    ticket = jira.create_issue(new(summary="\U0001f525" * 200), KEY)
    summary = jira_server.issues[ticket.key].fields["summary"]
    assert length(summary) <= 255
    assert summary == "\U0001f525" * 121 + MARKER


def test_long_label_is_cut_without_spaces(jira: JiraTickets, jira_server: FakeJira) -> None:
    """A 300-character label becomes 255, ending in a marker with no space (labels hold none)."""
    ticket = jira.create_issue(new(summary="Leak", labels=(LONG_SERVICE,)), KEY)
    label = jira_server.issues[ticket.key].fields["labels"][0]
    assert (length(label), label[-12:]) == (255, "…[truncated]")
    assert dedupe_tag(KEY) in jira_server.issues[ticket.key].fields["labels"]


def test_long_comment_is_cut_and_keeps_its_marker_line(
    jira: JiraTickets, jira_server: FakeJira
) -> None:
    """A 40,000-character comment fits Jira's 32,767 with the cut marked, and its dedupe marker
    line still ends it, so the step run again finds it rather than commenting twice."""
    jira.create_issue(new(summary="Leak"), KEY)
    body = "timeline line\n" * 3000
    first = jira.comment("SEC-1", body, "inc-1:note")
    [stored] = jira_server.issues["SEC-1"].comments
    marker_line = f"(runbook {dedupe_tag('inc-1:note')})"
    assert length(stored["body"]) == 32_767
    assert stored["body"].endswith(f"{MARKER}\n\n{marker_line}")
    assert jira.comment("SEC-1", body, "inc-1:note") == first
    assert jira_server.count("POST", r".*/comment") == 1


def test_create_issue_step_with_a_300_character_service_succeeds(
    run_action: Callable[..., dict[str, Any]],
    jira_context: Callable[..., ActionContext],
    jira_server: FakeJira,
) -> None:
    """The credential-leak ticket step's summary for a 300-character `service` opens a ticket
    whose summary is 255 characters ending in the marker."""
    summary = f"Credential leak: api-key for {LONG_SERVICE}"
    outputs = run_action(
        "jira.create_issue",
        {"project": "SEC", "summary": summary, "labels": ["security-incident"]},
        jira_context(),
    )
    stored = jira_server.issues[outputs["key"]].fields["summary"]
    assert (length(stored), stored[-len(MARKER) :]) == (255, MARKER)
