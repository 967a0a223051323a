"""The steering grammar of `/runbook`: resume, retry, skip, abort, assign, severity and note,
each naming an incident; reasons and notes kept as typed."""

from __future__ import annotations

import pytest

from integrations.alerts import PayloadError
from integrations.slack.commands import (
    STEERING_USAGE,
    CommandRequest,
    Kind,
    parse_command_text,
)
from integrations.slack.replies import help_text


@pytest.mark.parametrize(
    ("text", "request_"),
    [
        ("resume inc-1", CommandRequest(Kind.RESUME, incident="inc-1")),
        ("retry inc-1 ticket", CommandRequest(Kind.RETRY, incident="inc-1", step="ticket")),
        (
            "skip inc-1 tell  posted by hand, it's fine ",
            CommandRequest(
                Kind.SKIP, incident="inc-1", step="tell", text="posted by hand, it's fine"
            ),
        ),
        (
            'ABORT inc-1 false alarm: "disk" was fine',
            CommandRequest(Kind.ABORT, incident="inc-1", text='false alarm: "disk" was fine'),
        ),
        (
            "assign inc-1 incident-commander <@U0BOB|bob>",
            CommandRequest(
                Kind.ASSIGN, incident="inc-1", role="incident-commander", person="U0BOB"
            ),
        ),
        (
            "assign inc-1 incident-commander @bob",
            CommandRequest(Kind.ASSIGN, incident="inc-1", role="incident-commander", person="@bob"),
        ),
        (
            "assign inc-1 sre bob",
            CommandRequest(Kind.ASSIGN, incident="inc-1", role="sre", person="bob"),
        ),
        ("severity inc-1 SEV2", CommandRequest(Kind.SEVERITY, incident="inc-1", text="sev2")),
        (
            "note inc-1 can't reach db-1 &amp; db-2",
            CommandRequest(Kind.NOTE, incident="inc-1", text="can't reach db-1 & db-2"),
        ),
    ],
)
def test_steering_commands_read_into_requests(text: str, request_: CommandRequest) -> None:
    """Each steering verb names an incident and what it needs; the rest of a reason or note is
    kept as typed, apostrophes and quotes included."""
    assert parse_command_text(text) == request_


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("resume", "`resume` needs an incident id"),
        ("resume ../etc", "`resume` needs an incident id"),
        ("resume inc-1 now", "takes only the incident id"),
        ("retry inc-1", "needs a step id"),
        ("retry inc-1 Ticket!", "needs a step id"),
        ("retry inc-1 ticket again", "takes an incident id and a step id"),
        ("skip inc-1 tell", "`skip` needs a reason"),
        ("abort inc-1", "`abort` needs a reason"),
        ("note inc-1   ", "`note` needs the note's text"),
        ("severity inc-1 critical", "'critical' is not a severity"),
        ("severity inc-1 sev6", "'sev6' is not a severity"),
        ("assign inc-1 incident-commander", "takes a role and one person"),
        ("assign inc-1 incident-commander bob alice", "takes a role and one person"),
        ("assign inc-1 incident-commander <!channel>", "names nobody"),
    ],
)
def test_steering_text_that_makes_no_sense_is_a_400_with_the_steering_usage(
    text: str, reason: str
) -> None:
    """A steering command missing its incident, step, reason or person says what is missing."""
    with pytest.raises(PayloadError) as caught:
        parse_command_text(text)
    assert caught.value.status == 400
    assert reason in caught.value.reason
    assert caught.value.reason.endswith(STEERING_USAGE)


def test_help_lists_the_steering_commands() -> None:
    """`/runbook help` names every steering command with what it takes."""
    text = help_text([])
    for usage in (
        "/runbook retry INCIDENT STEP",
        "skip INCIDENT STEP reason...",
        "abort INCIDENT reason...",
        "resume INCIDENT",
        "/runbook assign INCIDENT ROLE @person",
        "severity INCIDENT sev2",
        "note INCIDENT text...",
    ):
        assert usage in text
