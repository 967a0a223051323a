"""Steps run side by side where their `needs` allow, and `for_each` runs a step once per item."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows.engine.runner import resume_run, start_run
from flows.engine.settings import Settings
from flows.evidence.records import Record
from flows.evidence.report import render_report
from flows.evidence.verify import read_records, verify_ledger
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack, serve_slack

pytestmark = pytest.mark.usefixtures("prefect_api")

FRONT = '---\nid: {id}\ntitle: {id} test\nkind: other\nseverity: sev3\nversion: 1\nowner: "#t"\n'


def write(tmp_path: Path, name: str, body: str, inputs: str = "") -> Path:
    path = tmp_path / f"{name}.md"
    path.write_text(FRONT.format(id=name) + inputs + "---\n" + body)
    return path


def step(id: str, uses: str, *lines: str) -> str:
    return (
        "```step\n" + f"id: {id}\nuses: {uses}\n" + "".join(f"{line}\n" for line in lines) + "```\n"
    )


def records(home: Path, incident: str) -> list[Record]:
    return read_records(home / "incidents" / incident)


def at(records: list[Record], event: str, item: str) -> datetime:
    [found] = [r.at for r in records if r.event == event and r.step == item]
    return found


def settings_for(home: Path) -> Settings:
    return Settings(home=home, prefect="external")


SLEEPS = (
    step("first", "evidence.note", "with:", "  text: go")
    + step("left", "shell.run", "needs: [first]", "with:", "  argv: [sleep, '1']")
    + step("right", "shell.run", "needs: [first]", "with:", "  argv: [sleep, '1']")
    + step("last", "evidence.note", "with:", "  text: both done")
)


def test_steps_that_need_the_same_step_run_at_the_same_time(home: Path, tmp_path: Path) -> None:
    """Two steps with `needs: [first]`, each sleeping 1 s, finish well under 2 s together, and
    the ledger they wrote side by side still verifies."""
    path = write(tmp_path, "sleeps", SLEEPS)
    assert start_run(settings_for(home), path, {}, incident_id="inc-par").status == "succeeded"
    found = records(home, "inc-par")
    starts = [at(found, "step.started", name) for name in ("left", "right")]
    ends = [at(found, "step.succeeded", name) for name in ("left", "right")]
    assert max(starts) < min(ends)  # each started before the other finished
    assert (max(ends) - min(starts)).total_seconds() < 1.75  # one after the other: 2 s or more
    for name in ("left", "right"):
        mine = [r.event for r in found if r.step == name]
        assert mine == ["step.started", "step.succeeded"]
    assert verify_ledger(home / "incidents" / "inc-par").ok


def test_a_step_without_needs_waits_for_everything_started_before_it(
    home: Path, tmp_path: Path
) -> None:
    """A step that declares no `needs` follows the item above it as before: it starts only
    once both side-by-side steps have finished, though only `right` is above it."""
    path = write(tmp_path, "joins", SLEEPS)
    start_run(settings_for(home), path, {}, incident_id="inc-join")
    found = records(home, "inc-join")
    finished = max(at(found, "step.succeeded", name) for name in ("left", "right"))
    assert at(found, "step.started", "last") >= finished


def test_a_step_whose_need_has_not_started_yet_waits_for_it(home: Path, tmp_path: Path) -> None:
    """`note` needs `announce`, which waits behind the running `channel`: `note` is not left
    pending for it, it runs once `announce` has."""
    body = (
        step("ticket", "evidence.note", "with:", "  text: t")
        + step("channel", "shell.run", "needs: [ticket]", "with:", "  argv: [sleep, '0.3']")
        + step("announce", "evidence.note", "needs: [channel]", "with:", "  text: a")
        + step("probe", "evidence.note", "needs: [ticket]", "with:", "  text: p")
        + step("note", "evidence.note", "needs: [announce]", "with:", "  text: n")
    )
    outcome = start_run(settings_for(home), write(tmp_path, "chain", body), {}, incident_id="inc-c")
    assert outcome.status == "succeeded", outcome.steps
    found = records(home, "inc-c")
    assert at(found, "step.started", "note") > at(found, "step.succeeded", "announce")


@pytest.fixture
def fakes() -> Iterator[tuple[FakeJira, FakeSlack]]:
    jira = FakeJira().start()
    try:
        with serve_slack() as slack:
            slack.add_channel("ops")
            yield jira, slack
    finally:
        jira.stop()


def with_fakes(home: Path, jira: FakeJira, slack: FakeSlack) -> Settings:
    """Settings with real Jira and Slack clients configured, pointing at the loopback fakes."""
    return Settings(
        home=home,
        prefect="external",
        jira_url=jira.url,
        jira_user=jira.user,
        jira_token=SecretStr(jira.token),
        slack_bot_token=SecretStr(slack.token),
        slack_api_url=slack.url,
    )


PER_HOST = step(
    "ticket",
    "jira.create_issue",
    'for_each: "{{ inputs.hosts }}"',
    "with:",
    # A host named in `broken` goes to a project Jira does not have: that item fails.
    "  project: \"{{ 'NOPE' if item == inputs.broken else 'OPS' }}\"",
    '  summary: "{{ item }} is down"',
) + step(
    "tell",
    "slack.post",
    "for_each: \"{{ steps.ticket | map(attribute='key') | list }}\"",
    "with:",
    "  channel: '#ops'",
    '  text: "ticket {{ item }} opened"',
)
HOSTS = "inputs:\n  hosts: {default: 'web-1,web-2,web-3'}\n  broken: {default: ''}\n"


def test_for_each_runs_a_step_once_per_item_with_its_outputs_in_item_order(
    home: Path, tmp_path: Path, fakes: tuple[FakeJira, FakeSlack]
) -> None:
    """Three hosts make three tickets, each item recorded as `ticket[i]`; the step's outputs
    are a list in item order, which the next step runs over."""
    jira, slack = fakes
    path = write(tmp_path, "hosts", PER_HOST, HOSTS)
    outcome = start_run(with_fakes(home, jira, slack), path, {}, incident_id="inc-each")
    assert outcome.status == "succeeded", outcome.error
    found = records(home, "inc-each")
    items = [r for r in found if r.step and r.step.startswith("ticket[")]
    assert sorted((r.step, r.event) for r in items) == sorted(
        (f"ticket[{i}]", event) for i in range(3) for event in ("step.started", "step.succeeded")
    )
    assert [r.data["item"] for r in items if r.event == "step.started"] == [
        "web-1",
        "web-2",
        "web-3",
    ]
    by_host = {issue.fields["summary"]: key for key, issue in jira.issues.items()}
    keys = [by_host[f"web-{n} is down"] for n in (1, 2, 3)]
    [told] = [r for r in found if r.event == "step.started" and r.step == "tell"]
    assert told.data["for_each"] == keys  # steps.ticket, in item order
    posted = sorted(call.body["text"] for call in slack.calls("chat.postMessage"))
    assert posted == sorted(f"ticket {key} opened" for key in keys)
    assert verify_ledger(home / "incidents" / "inc-each").ok
    report = render_report(home / "incidents" / "inc-each")
    assert all(f"opened by step <code>ticket[{i}]</code>" in report for i in range(3))


def test_a_resume_runs_only_the_items_that_did_not_finish(
    home: Path, tmp_path: Path, fakes: tuple[FakeJira, FakeSlack]
) -> None:
    """Item 2 fails, the run stops; the resume runs item 2 again and not items 1 and 3: one
    ticket and one message per host in the end."""
    jira, slack = fakes
    settings = with_fakes(home, jira, slack)
    path = write(tmp_path, "hosts", PER_HOST, HOSTS)
    first = start_run(settings, path, {"broken": "web-2"}, incident_id="inc-again")
    assert first.status == "failed"
    assert first.steps["ticket"] == "failed" and first.steps["tell"] == "pending"
    assert "1 of 3 items failed; item 1 (web-2)" in (first.error or "")
    assert sorted(issue.fields["summary"] for issue in jira.issues.values()) == [
        "web-1 is down",
        "web-3 is down",
    ]

    second = resume_run(settings, "inc-again", {"broken": ""})
    assert second.status == "succeeded", second.error
    summaries = sorted(issue.fields["summary"] for issue in jira.issues.values())
    assert summaries == ["web-1 is down", "web-2 is down", "web-3 is down"]
    assert len(slack.calls("chat.postMessage")) == 3
    started = [r.step for r in records(home, "inc-again") if r.event == "step.started"]
    assert started.count("ticket[0]") == 1 and started.count("ticket[2]") == 1
    assert started.count("ticket[1]") == 2
    assert verify_ledger(home / "incidents" / "inc-again").ok


def test_a_resume_whose_items_changed_runs_none_of_them(
    home: Path, tmp_path: Path, fakes: tuple[FakeJira, FakeSlack]
) -> None:
    """Finished items are known by their place in the list: when a resume's list differs from
    the one the step started with, the step fails saying so and opens no ticket."""
    jira, slack = fakes
    settings = with_fakes(home, jira, slack)
    path = write(tmp_path, "hosts", PER_HOST, HOSTS)
    start_run(settings, path, {"broken": "web-2"}, incident_id="inc-moved")
    made = len(jira.issues)
    again = resume_run(settings, "inc-moved", {"hosts": "web-2,web-3", "broken": ""})
    assert again.status == "failed"
    assert "for_each now gives other items than when the step started" in (again.error or "")
    assert len(jira.issues) == made
