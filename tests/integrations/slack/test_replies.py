"""What `/runbook` answers: help, one runbook's help, open incidents, errors in plain sentences."""

from __future__ import annotations

from pathlib import Path

from flows.errors import Problem, RunbookError
from flows.runbook.parse import parse_runbook
from integrations.slack.replies import (
    SHOWN_INCIDENTS,
    OpenIncident,
    help_text,
    open_incidents,
    plain_error,
    runbook_help,
    without_paths,
)
from tests.support import FIXTURES, PROJECT


def test_help_lists_each_command_with_its_title() -> None:
    """Help shows how to start each runbook, sorted, and the other subcommands."""
    text = help_text([("outage", "Service down"), ("breach", "Leaked credentials")])
    assert text.index("`/runbook breach key=value ...` Leaked credentials") < text.index(
        "`/runbook outage key=value ...` Service down"
    )
    for usage in ("/runbook list", "/runbook status INCIDENT", "/runbook drill SCENARIO"):
        assert usage in text
    assert "`/runbook help COMMAND`" in text


def test_help_escapes_titles() -> None:
    """A title with markup is shown as text."""
    assert "A &lt;b&gt; &amp; c" in help_text([("x", "A <b> & c")])


def test_help_without_commands_says_how_to_add_one() -> None:
    """With no Slack-startable runbook, help says which front matter key adds one."""
    assert "triggers.slack.command" in help_text([])


def test_runbook_help_tells_what_it_is_its_inputs_and_how_to_start_it() -> None:
    """A runbook's help has its title, description, each input and the command to type."""
    text = runbook_help(parse_runbook(PROJECT / "runbooks" / "breach" / "credential-leak.md"))
    assert text.startswith("*Leaked credentials / suspected breach* (sev1, breach)")
    assert "A secret (API key, token, password" in text
    assert "\u2022 `service` (string, required): Service that owns the credential" in text
    assert "\u2022 `secret_kind` (string, default `api-key`)" in text
    assert "*Start it* from #sec-oncall: `/runbook breach service=...`" in text


def test_runbook_help_of_a_secret_input_says_it_is_never_taken_from_slack(tmp_path: Path) -> None:
    """A secret input is named, with where to give it instead, and left out of the command."""
    document = (FIXTURES / "library" / "disk-full.md").read_text()
    document = document.replace(
        "inputs:\n", "inputs:\n  api_token: {type: string, required: true, secret: true}\n", 1
    )
    (tmp_path / "disk-full.md").write_text(document)
    text = runbook_help(parse_runbook(tmp_path / "disk-full.md"))
    assert "`api_token` (secret: never taken from Slack" in text
    assert "`/runbook disk host=...`" in text


def test_open_incidents_are_one_line_each_with_the_gates_they_wait_at() -> None:
    """Each open incident shows its id, title, standing, start and waiting gates, escaped."""
    text = open_incidents(
        [OpenIncident("leak-1", "Leak <b>", "waiting", "2026-01-01T10:00:00Z", ("Triage",))], 1
    )
    assert "`leak-1` *Leak &lt;b&gt;*: waiting, started 2026-01-01T10:00:00Z" in text
    assert "waiting at *Triage*" in text


def test_open_incidents_say_how_many_more_there_are() -> None:
    """Past the shown incidents, the reply counts the rest instead of listing them."""
    shown = [OpenIncident(f"i-{n}", "T", "open", "2026") for n in range(SHOWN_INCIDENTS)]
    assert "\u2026and 5 more." in open_incidents(shown, SHOWN_INCIDENTS + 5)


def test_no_open_incidents_says_so() -> None:
    """With nothing open, the reply says so."""
    assert open_incidents([], 0) == "No open incidents."


def test_errors_lose_their_file_location_and_flags() -> None:
    """A problem's path:line is dropped and `--input` advice speaks of the command's key=value."""
    error = RunbookError(
        [
            Problem(
                "/srv/library/disk.md", 12, "input 'host' is required", "pass --input host=VALUE"
            ),
            Problem("runbook", 0, "input 'count' must be a integer, got 'x'"),
        ]
    )
    text = plain_error(error)
    assert text == (
        "input 'host' is required (add host=... to the command)\n"
        "input 'count' must be a integer, got 'x'"
    )
    assert "runbook:0:" not in str(text) and "/srv" not in text


def test_errors_lose_server_paths_and_clauses_about_flags() -> None:
    """Server paths are cut to their last name; a clause that advises a flag is left out."""
    error = RunbookError(
        "no incident 'x' under /home/ops/.runbook/incidents; pick another --incident"
    )
    assert plain_error(error) == "no incident 'x' under incidents"


def test_errors_are_escaped_for_slack() -> None:
    """An error quoting what arrived cannot mention anyone."""
    assert plain_error(RunbookError("bad value '<!channel>'")) == "bad value '&lt;!channel&gt;'"


def test_without_paths_keeps_urls() -> None:
    """A URL's path is not a server path."""
    assert without_paths("see https://jira.example/browse/SEC-1") == (
        "see https://jira.example/browse/SEC-1"
    )
