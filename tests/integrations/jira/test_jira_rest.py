"""The Jira backend through the real `jira` client against a fake Jira on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows.contract.ports import NewTicket
from integrations.config import JiraConfig
from integrations.idempotency import IdempotencyMap
from integrations.jira import TicketNotFound, TicketSystemError
from integrations.jira.dedupe import OutcomeUnknown, dedupe_tag
from integrations.jira.rest import JiraTickets
from integrations.jira.retry import RetryPolicy
from tests.fakes.jira_server import FakeJira

MakeJira = Callable[..., JiraTickets]
CREATE = r"/rest/api/2/issue"
KEY = "inc-1:ticket"
TAG = dedupe_tag(KEY)
# Searches spread over 1.4 s: long enough for a delayed request to finish in the fake.
PATIENT = RetryPolicy(lookup_backoff_s=0.2)


def new(**fields: object) -> NewTicket:
    return NewTicket.model_validate(
        {"project": "SEC", "summary": "Credential leak on api", "incident": "inc-1", **fields}
    )


def test_create_sends_exactly_one_post(jira: JiraTickets, jira_server: FakeJira) -> None:
    """Opening a ticket is one POST, with project and issue type as objects and no lookups."""
    ticket = jira.create_issue(new(), KEY)
    assert jira_server.count("POST", CREATE) == 1
    [post] = [r for r in jira_server.requests if r.method == "POST"]
    assert post.json()["fields"]["project"] == {"key": "SEC"}
    assert post.json()["fields"]["issuetype"] == {"name": "Task"}
    assert jira_server.count("GET", r".*/(project|issue/createmeta).*") == 0
    assert (ticket.key, ticket.status) == ("SEC-1", "Open")
    assert ticket.url == f"{jira_server.url}/browse/SEC-1"


def test_create_labels_the_ticket(jira: JiraTickets, jira_server: FakeJira) -> None:
    """The ticket carries its own labels, the step's dedupe label and the incident id."""
    jira.create_issue(new(labels=("leak",)), KEY)
    assert jira_server.issues["SEC-1"].fields["labels"] == ["leak", TAG, "inc-1"]


def test_dedupe_label_is_a_hash_of_the_key() -> None:
    """The dedupe label is rb- and the first 16 hex digits of sha256(dedupe key)."""
    assert hashlib.sha256(KEY.encode()).hexdigest()[:16] == TAG.removeprefix("rb-")


def test_create_waits_out_retry_after(jira: JiraTickets, jira_server: FakeJira) -> None:
    """A 429 with Retry-After: 2 is waited out, then the create goes through once."""
    jira_server.fail_next(r"/issue$", 429, retry_after=2)
    started = time.monotonic()
    jira.create_issue(new(), KEY)
    assert time.monotonic() - started >= 2
    assert len(jira_server.issues) == 1
    assert jira_server.count("POST", CREATE) == 2


def test_long_retry_after_is_waited_in_full(make_jira: MakeJira, jira_server: FakeJira) -> None:
    """A Retry-After above 60 s (the library's cap) is waited exactly, within max_retry_wait_s."""
    waits: list[float] = []
    jira = make_jira(sleep=waits.append)
    jira_server.fail_next(r"/issue$", 503, retry_after=120)
    jira.create_issue(new(), KEY)
    assert waits == [120.0]
    assert len(jira_server.issues) == 1


def test_retry_after_beyond_the_limit_fails(make_jira: MakeJira, jira_server: FakeJira) -> None:
    """A Retry-After longer than max_retry_wait_s fails at once, naming both numbers."""
    waits: list[float] = []
    jira = make_jira(sleep=waits.append, max_retry_wait_s=30)
    jira_server.fail_next(r"/issue$", 429, retry_after=600)
    with pytest.raises(TicketSystemError, match=r"600 s.*max_retry_wait_s = 30 s"):
        jira.create_issue(new(), KEY)
    assert waits == []
    assert jira_server.issues == {}


def test_dropped_create_response_makes_no_duplicate(
    jira: JiraTickets, jira_server: FakeJira
) -> None:
    """When the connection drops after Jira made the ticket, that ticket is found, not re-made."""
    jira_server.drop_response_after_create()
    ticket = jira.create_issue(new(), KEY)
    assert list(jira_server.issues) == ["SEC-1"]
    assert ticket.key == "SEC-1"
    assert jira_server.count("POST", CREATE) == 1


def test_dropped_create_is_found_despite_search_lag(
    jira: JiraTickets, jira_server: FakeJira
) -> None:
    """A ticket the search does not show at first is found by searching again."""
    jira_server.drop_response_after_create()
    jira_server.search_lag(2)
    assert jira.create_issue(new(), KEY).key == "SEC-1"
    assert jira_server.count("POST", CREATE) == 1
    assert jira_server.count("GET", r".*/search/jql") >= 3


def test_timed_out_create_is_found_not_resent(make_jira: MakeJira, jira_server: FakeJira) -> None:
    """A create that times out is looked for (and found once Jira finishes), never re-sent."""
    jira = make_jira(timeout_s=0.3, policy=PATIENT)
    jira_server.delay(r"/issue$", 0.6)
    assert jira.create_issue(new(), KEY).key == "SEC-1"
    assert jira_server.count("POST", CREATE) == 1


def test_server_error_on_create_is_never_resent(jira: JiraTickets, jira_server: FakeJira) -> None:
    """After a 500 on create nothing is found, so the outcome is reported unknown, one POST made."""
    jira_server.fail_next(r"/issue$", 500)
    with pytest.raises(OutcomeUnknown, match=rf"HTTP 500.*not created again.*labels = \"{TAG}\""):
        jira.create_issue(new(), KEY)
    assert jira_server.count("POST", CREATE) == 1
    assert jira_server.issues == {}


def test_second_create_uses_the_map(
    make_jira: MakeJira, made: IdempotencyMap, jira_server: FakeJira
) -> None:
    """A fresh backend on the same map returns the same ticket without searching or posting."""
    first = make_jira().create_issue(new(), KEY)
    searches = jira_server.count("GET", r".*/search.*")
    again = make_jira(made_map=made).create_issue(new(summary="other"), KEY)
    assert again == first
    assert jira_server.count("POST", CREATE) == 1
    assert jira_server.count("GET", r".*/search.*") == searches


def test_second_create_finds_the_label(
    make_jira: MakeJira, tmp_path: Path, jira_server: FakeJira
) -> None:
    """With an empty map, the label search finds the ticket and nothing is posted."""
    first = make_jira().create_issue(new(), KEY)
    again = make_jira(made_map=IdempotencyMap(tmp_path / "empty.db")).create_issue(new(), KEY)
    assert again == first
    assert jira_server.count("POST", CREATE) == 1


def test_deleted_ticket_in_the_map_is_made_again(jira: JiraTickets, jira_server: FakeJira) -> None:
    """A ticket remembered locally but gone from Jira (and its label) is opened anew."""
    jira.create_issue(new(), KEY)
    del jira_server.issues["SEC-1"]
    assert jira.create_issue(new(), KEY).key == "SEC-2"


def test_server_dc_uses_a_pat_and_classic_search(tmp_path: Path) -> None:
    """On Server/DC the PAT goes in a Bearer header and the label search uses /search."""
    server = FakeJira(pat="pat-123", deployment="Server").start()
    try:
        config = JiraConfig(url=server.url, pat=SecretStr("pat-123"))
        JiraTickets(config, IdempotencyMap(tmp_path / "a.db")).create_issue(new(), KEY)
        JiraTickets(config, IdempotencyMap(tmp_path / "b.db")).create_issue(new(), KEY)
        assert server.requests[0].headers["authorization"] == "Bearer pat-123"
        assert server.count("GET", r"/rest/api/2/search") == 2
        assert server.count("POST", CREATE) == 1
    finally:
        server.stop()


def test_reads_are_retried_after_a_server_error(jira: JiraTickets, jira_server: FakeJira) -> None:
    """A 500 on a GET is retried with backoff."""
    jira.create_issue(new(), KEY)
    jira_server.fail_next(r"/issue/SEC-1$", 500)
    assert jira.transition("SEC-1", "Open").status == "Open"
    assert jira_server.count("GET", r".*/issue/SEC-1") == 3  # after create, failed, retried


def test_reads_give_up_after_a_few_tries(jira: JiraTickets, jira_server: FakeJira) -> None:
    """A GET that keeps failing gives up after the policy's tries with a clear message."""
    jira.create_issue(new(), KEY)
    jira_server.fail_next(r"/issue/SEC-1$", 502, times=10)
    with pytest.raises(TicketSystemError, match=r"failed 3 times \(HTTP 502\)"):
        jira.transition("SEC-1", "Done")


def test_comment_is_added_once(jira: JiraTickets, jira_server: FakeJira) -> None:
    """Commenting twice under one key adds one comment, ending in the step's marker line."""
    jira.create_issue(new(), KEY)
    first = jira.comment("SEC-1", "Key revoked", "inc-1:note")
    second = jira.comment("SEC-1", "Key revoked", "inc-1:note")
    assert first == second
    [stored] = jira_server.issues["SEC-1"].comments
    assert stored["body"] == f"Key revoked\n\n(runbook {dedupe_tag('inc-1:note')})"


def test_comment_marker_is_found_without_the_map(
    make_jira: MakeJira, tmp_path: Path, jira_server: FakeJira
) -> None:
    """With an empty map, the marker line in Jira stops a second comment."""
    make_jira().create_issue(new(), KEY)
    first = make_jira().comment("SEC-1", "Key revoked", "inc-1:note")
    fresh = make_jira(made_map=IdempotencyMap(tmp_path / "empty.db"))
    assert fresh.comment("SEC-1", "Key revoked", "inc-1:note") == first
    assert jira_server.count("POST", r".*/comment") == 1


def test_dropped_comment_is_found_not_resent(make_jira: MakeJira, jira_server: FakeJira) -> None:
    """A comment whose answer timed out is found by its marker instead of being posted again."""
    make_jira().create_issue(new(), KEY)
    jira_server.delay(r"/comment$", 0.6, method="POST")
    make_jira(timeout_s=0.3, policy=PATIENT).comment("SEC-1", "Key revoked", "inc-1:note")
    assert len(jira_server.issues["SEC-1"].comments) == 1
    assert jira_server.count("POST", r".*/comment") == 1


def test_refused_comment_is_sent_again(jira: JiraTickets, jira_server: FakeJira) -> None:
    """A 503 means Jira did nothing, so the comment is posted again, and lands once."""
    jira.create_issue(new(), KEY)
    jira_server.fail_next(r"/comment$", 503, method="POST")
    jira.comment("SEC-1", "Key revoked", "inc-1:note")
    assert jira_server.count("POST", r".*/comment") == 2
    assert len(jira_server.issues["SEC-1"].comments) == 1


def test_comment_on_unknown_issue_raises_not_found(jira: JiraTickets) -> None:
    """Commenting on a key Jira does not have raises TicketNotFound naming the key."""
    with pytest.raises(TicketNotFound, match="SEC-42"):
        jira.comment("SEC-42", "hello", "inc-1:note")


def test_transition_by_status_name(jira: JiraTickets, jira_server: FakeJira) -> None:
    """A status name (any case) picks the transition leading to it."""
    jira.create_issue(new(), KEY)
    assert jira.transition("SEC-1", "in progress").status == "In Progress"
    [post] = [r for r in jira_server.requests if r.path.endswith("/transitions") and r.body]
    assert post.json()["transition"] == {"id": 21}


def test_transition_by_transition_name(jira: JiraTickets, jira_server: FakeJira) -> None:
    """A transition's own name works too."""
    jira.create_issue(new(), KEY)
    assert jira.transition("SEC-1", "Close Issue").status == "Done"
    assert jira_server.issues["SEC-1"].status == "Done"


def test_transition_to_current_status_posts_nothing(
    jira: JiraTickets, jira_server: FakeJira
) -> None:
    """Moving a ticket to the status it has is a no-op."""
    jira.create_issue(new(), KEY)
    assert jira.transition("SEC-1", "Open").status == "Open"
    assert jira_server.count("POST", r".*/transitions") == 0


def test_transition_to_unknown_status_lists_the_choices(jira: JiraTickets) -> None:
    """A status the workflow does not offer fails, listing what it does offer."""
    jira.create_issue(new(), KEY)
    with pytest.raises(TicketSystemError, match=r"'Closed'.*Start Progress -> In Progress"):
        jira.transition("SEC-1", "Closed")


def test_attach_uploads_once(jira: JiraTickets, jira_server: FakeJira, tmp_path: Path) -> None:
    """Attaching twice under one key uploads the file once, with the XSRF header."""
    jira.create_issue(new(), KEY)
    evidence = tmp_path / "sessions.csv"
    evidence.write_text("user,ip\n")
    first = jira.attach("SEC-1", evidence, "inc-1:attach")
    assert jira.attach("SEC-1", evidence, "inc-1:attach") == first
    issue = jira_server.issues["SEC-1"]
    assert [a["filename"] for a in issue.attachments] == ["sessions.csv"]
    assert issue.content[first] == b"user,ip\n"
    [post] = [r for r in jira_server.requests if r.path.endswith("/attachments")]
    assert post.headers["x-atlassian-token"] == "no-check"


def test_attach_finds_the_file_without_the_map(
    make_jira: MakeJira, jira_server: FakeJira, tmp_path: Path
) -> None:
    """With an empty map, an attachment of the same name on the issue is reused."""
    make_jira().create_issue(new(), KEY)
    evidence = tmp_path / "sessions.csv"
    evidence.write_text("user,ip\n")
    first = make_jira().attach("SEC-1", evidence, "inc-1:attach", filename="s.csv")
    fresh = make_jira(made_map=IdempotencyMap(tmp_path / "empty.db"))
    assert fresh.attach("SEC-1", evidence, "inc-1:attach", filename="s.csv") == first
    assert jira_server.count("POST", r".*/attachments") == 1


def test_link_is_an_upsert(make_jira: MakeJira, jira_server: FakeJira, tmp_path: Path) -> None:
    """A remote link carries the step's globalId, so adding it again keeps one link."""
    make_jira().create_issue(new(), KEY)
    first = make_jira().link("SEC-1", "https://grafana/d/1", "Dashboard", "inc-1:link")
    fresh = make_jira(made_map=IdempotencyMap(tmp_path / "empty.db"))
    assert fresh.link("SEC-1", "https://grafana/d/1", "Dashboard", "inc-1:link") == first
    [link] = jira_server.issues["SEC-1"].remotelinks
    assert link["globalId"] == "rb:" + dedupe_tag("inc-1:link")[3:]
    assert link["object"] == {"url": "https://grafana/d/1", "title": "Dashboard"}


def test_custom_field_by_name(jira: JiraTickets, jira_server: FakeJira) -> None:
    """Custom fields given by display name are sent under their ids, options as objects."""
    jira.create_issue(
        new(custom_fields={"severity": "Sev1", "Affected services": ["api"], "Incident ID": "x"}),
        KEY,
    )
    fields = jira_server.issues["SEC-1"].fields
    assert fields["customfield_10010"] == {"value": "Sev1"}
    assert fields["customfield_10012"] == [{"value": "api"}]
    assert fields["customfield_10011"] == "x"


def test_unknown_custom_field_lists_the_known_ones(jira: JiraTickets) -> None:
    """A custom field name Jira does not have fails before any POST, listing the custom fields."""
    with pytest.raises(TicketSystemError, match=r"'Sevrity'.*Affected services, Incident ID"):
        jira.create_issue(new(custom_fields={"Sevrity": "Sev1"}), KEY)


def test_field_errors_are_listed_by_name(jira: JiraTickets) -> None:
    """A 400 names each rejected field, custom ones by display name."""
    ticket = new(components=("billing",), custom_fields={"Severity": "Sev9"})
    with pytest.raises(TicketSystemError, match=r"components: Component name 'billing'") as err:
        jira.create_issue(ticket, KEY)
    assert "Severity: Option value" in str(err.value)


def test_priority_and_components_are_sent_by_name(jira: JiraTickets, jira_server: FakeJira) -> None:
    """Priority and components go to Jira as {"name": ...} objects."""
    jira.create_issue(new(priority="High", components=("api",)), KEY)
    fields = jira_server.issues["SEC-1"].fields
    assert (fields["priority"], fields["components"]) == ({"name": "High"}, [{"name": "api"}])


def test_bad_credentials_name_the_settings(make_jira: MakeJira) -> None:
    """A 401 says which settings to check."""
    jira = make_jira(token=SecretStr("wrong"))
    with pytest.raises(TicketSystemError, match=r"HTTP 401.*RUNBOOK_JIRA_USER.*RUNBOOK_JIRA_PAT"):
        jira.check()


def test_missing_credentials_are_reported(make_jira: MakeJira) -> None:
    """A Jira URL without a token or PAT fails with what to set."""
    with pytest.raises(TicketSystemError, match="no credentials"):
        make_jira(token=None).check()


def test_forbidden_names_the_permission(jira: JiraTickets, jira_server: FakeJira) -> None:
    """A 403 names the account and the permission it lacks."""
    jira.create_issue(new(), KEY)
    jira_server.fail_next(r"/comment$", 403, method="POST")
    with pytest.raises(TicketSystemError, match=r"bot@example.com lacks the 'Add comments'"):
        jira.comment("SEC-1", "x", "inc-1:note")


def test_token_never_appears_in_errors_or_logs(
    make_jira: MakeJira, jira_server: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    """A canary token shows up in no error message and no log line, accepted or rejected."""
    canary = "canary-7d1e0c35b2"
    caplog.set_level(logging.DEBUG)
    jira_server.token = canary
    jira_server.fail_next(r"/search", 500, times=5)
    with pytest.raises(TicketSystemError) as failing:
        make_jira(token=SecretStr(canary)).create_issue(new(), KEY)
    jira_server.token = "api-token"
    with pytest.raises(TicketSystemError, match="HTTP 401") as rejected:
        make_jira(token=SecretStr(canary)).create_issue(new(), KEY)
    assert canary not in str(failing.value) + str(rejected.value)
    assert canary not in caplog.text


def test_check_names_the_account(jira: JiraTickets, jira_server: FakeJira) -> None:
    """check() calls Jira and says where and as whom."""
    assert jira.check() == f"Jira {jira_server.url} as Runbook Bot"
    assert jira_server.count("GET", r".*/myself") == 1
