"""Tabletop drills: scenarios checked at their lines, sandboxed runs, injects, scores, reports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows.drills.debrief import drill_report
from flows.drills.drill import DrillResult, resume_incident, run_drill
from flows.drills.people import add_drill_note
from flows.drills.scenario import load_scenario, parse_duration
from flows.drills.simulate import drill_simulator
from flows.engine.runner import acknowledge_gate, resume_run
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import load_incident
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import named_identity
from integrations.catalog import builtin_actions
from integrations.jira.local import LocalTicketStore
from integrations.sandbox import DRILL_PREFIX
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.drills.tiny import (
    FAST,
    GATED,
    RUNBOOK,
    SCENARIO,
    UNANSWERED,
    settings_for,
    write_drill,
)
from tests.support import PROJECT

DRILLS = PROJECT / "runbooks" / "drills"


@contextmanager
def configured_fakes(home: Path) -> Iterator[tuple[Settings, FakeJira, FakeSlack]]:
    """Settings with real Jira and Slack configured, pointing at loopback fakes."""
    jira = FakeJira().start()
    try:
        with serve_slack() as slack:
            yield (
                Settings(
                    home=home,
                    prefect="external",
                    jira_url=jira.url,
                    jira_user=jira.user,
                    jira_token=SecretStr(jira.token),
                    slack_bot_token=SecretStr(slack.token),
                    slack_api_url=slack.url,
                ),
                jira,
                slack,
            )
    finally:
        jira.stop()


def records(home: Path, result: DrillResult) -> list[dict]:
    return read_records(home / "incidents" / result.outcome.incident)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(RunbookError) as error:
        load_scenario(path)
    return [str(problem) for problem in error.value.problems]


# -- scenario validation ---------------------------------------------------------------------


def test_shipped_scenarios_cover_every_library_runbook() -> None:
    """There is a valid scenario for each runbook in the library."""
    drilled = {load_scenario(path).runbook.id for path in DRILLS.glob("*.yaml")}
    assert drilled == {"credential-leak", "model-degradation", "service-outage"}


def test_unknown_scenario_key_is_reported_at_its_line(tmp_path: Path) -> None:
    """A misspelt key is named with its file line and a suggestion."""
    path = write_drill(tmp_path, SCENARIO.replace("targets:", "target:"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:7: scenario: unknown key 'target'")
    assert "did you mean 'targets'" in problem


def test_target_naming_no_step_is_reported_at_its_line(tmp_path: Path) -> None:
    """A target for a step or gate the runbook lacks points at the target's line."""
    path = write_drill(tmp_path, SCENARIO.replace("  ticket: 2m", "  tickets: 2m"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:8: scenario: targets: 'tickets' is no step or gate")


def test_answer_by_unknown_participant_is_reported_at_its_line(tmp_path: Path) -> None:
    """A gate answered by someone who is not a participant points at the `by`."""
    path = write_drill(tmp_path, SCENARIO.replace("by: alice", "by: mallory"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:11: scenario: answers: 'mallory' is not a participant")


def test_bad_duration_is_reported_at_its_line(tmp_path: Path) -> None:
    """A target that is not a duration is reported where it is written."""
    path = write_drill(tmp_path, SCENARIO.replace("contain: 10m", "contain: soon"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:9: scenario: targets.contain:")
    assert "is not a duration" in problem


def test_canned_outputs_for_a_gate_are_refused(tmp_path: Path) -> None:
    """Canned outputs can only stand in for steps."""
    path = write_drill(tmp_path, SCENARIO + "canned:\n  contain: {x: 1}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:13: scenario: canned: 'contain' is no step")


def test_alert_trigger_must_start_the_runbook(tmp_path: Path) -> None:
    """A trigger alert that matches none of the runbook's alert triggers is an error."""
    trigger = "trigger:\n  alert: {source: alertmanager, labels: {alertname: Nope}}\n"
    path = write_drill(tmp_path, SCENARIO + trigger)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:12: scenario: trigger: the alert does not start tiny")


def test_unknown_runbook_id_is_reported(tmp_path: Path) -> None:
    """A runbook that is neither a file nor a library id is named at its line."""
    path = write_drill(tmp_path, SCENARIO.replace("runbook: tiny.md", "runbook: tinny"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3: scenario: no runbook file or library id 'tinny'")


def test_durations_read_seconds_minutes_and_hours() -> None:
    """Durations accept bare seconds and s/m/h suffixes with an optional '+'."""
    assert [parse_duration(v) for v in (90, "90s", "+5m", "1.5h")] == [90, 90, 300, 5400]


# -- simulation ------------------------------------------------------------------------------


def test_simulator_gives_canned_then_default_outputs(tmp_path: Path) -> None:
    """Steps with canned outputs get them; other host-reaching actions get shaped defaults."""
    from flows.runbook.parse import parse_runbook

    (tmp_path / "tiny.md").write_text(RUNBOOK)
    runbook = parse_runbook(tmp_path / "tiny.md")
    actions = {action.name: action for action in builtin_actions()}
    look, ticket = runbook.item("look"), runbook.item("ticket")
    canned = drill_simulator({"look": {"stdout": "ok"}})
    plain = drill_simulator({})
    assert canned(look, actions["shell.run"], None) == {"simulated": True, "stdout": "ok"}
    assert plain(look, actions["shell.run"], None) == {
        "simulated": True,
        "exit_code": 0,
        "stdout": "",
        "stderr": "",
    }
    assert plain(ticket, actions["jira.create_issue"], None) is None


# -- drills through real Prefect -------------------------------------------------------------


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("name", ["credential-leak", "service-outage"])
def test_shipped_scenario_runs_to_the_end(home: Path, name: str) -> None:
    """A shipped scenario with scripted participants finishes, every gate answered as scripted."""
    loaded = load_scenario(DRILLS / f"{name}.yaml")
    result = run_drill(settings_for(home), loaded, speed=FAST)
    assert result.outcome.status == "succeeded"
    gates = {i.id: i.by for i in result.score.items if i.kind == "gate"}
    assert gates == {gate: answer.by for gate, answer in loaded.scenario.answers.items()}
    assert result.score.missed == result.score.failed == 0
    assert verify_ledger(home / "incidents" / result.outcome.incident).ok


@pytest.mark.usefixtures("prefect_api")
def test_chat_outage_inject_fails_one_step_and_the_drill_goes_on(home: Path) -> None:
    """The model drill's Slack outage fails the decision post, which continues; the failure is
    scored as the inject's doing, not the team's."""
    result = run_drill(settings_for(home), DRILLS / "model-degradation.yaml", speed=600)
    verdicts = {i.id: i.verdict for i in result.score.items}
    assert result.outcome.status == "succeeded"
    assert verdicts["decision_update"] == "inject-caused"
    assert "failed" not in verdicts.values()
    assert (result.score.failed, result.score.inject_caused) == (0, 1)


@pytest.mark.usefixtures("prefect_api")
def test_drill_incident_is_marked_and_named(home: Path, tmp_path: Path) -> None:
    """The incident is flagged as a drill and its id names the scenario."""
    result = run_drill(settings_for(home), write_drill(tmp_path), speed=FAST)
    incident = load_incident(home / "incidents", result.outcome.incident)
    assert incident.drill
    assert incident.id.startswith("drill-tiny-drill-")


@pytest.mark.usefixtures("prefect_api")
def test_side_effects_land_in_the_drill_sandbox(home: Path, tmp_path: Path) -> None:
    """Tickets go to <home>/drills labelled `drill`; the everyday local store stays untouched."""
    run_drill(settings_for(home), write_drill(tmp_path), speed=FAST)
    [ticket] = LocalTicketStore(home / "drills" / "tickets.db").list_tickets()
    assert ticket.summary == f"{DRILL_PREFIX}Down: api"
    assert not (home / "tickets.db").exists()


@pytest.mark.usefixtures("prefect_api")
def test_chat_in_a_drill_is_prefixed(home: Path) -> None:
    """Every message a drill posts starts with the drill prefix."""
    run_drill(settings_for(home), DRILLS / "service-outage.yaml", speed=FAST)
    lines = (home / "drills" / "outbox.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines if json.loads(line)["kind"] == "message"]
    assert texts
    assert all(text.startswith(DRILL_PREFIX) for text in texts)


@pytest.mark.usefixtures("prefect_api")
def test_steps_reaching_hosts_are_simulated(home: Path, tmp_path: Path) -> None:
    """A shell step without `drill: run` is not executed: its outputs are marked simulated."""
    result = run_drill(settings_for(home), write_drill(tmp_path), speed=FAST)
    [done] = [r for r in records(home, result) if r.event == "step.succeeded" and r.step == "look"]
    assert done.data["simulated"] is True
    assert done.data["outputs"]["exit_code"] == 0


@pytest.mark.usefixtures("prefect_api")
def test_ticket_outage_inject_fails_the_step(home: Path, tmp_path: Path) -> None:
    """A fail_integration inject makes the next ticket call fail; the failure is recorded."""
    inject = "injects:\n  - {at: 0, kind: fail_integration, system: tickets, text: Jira down}\n"
    result = run_drill(settings_for(home), write_drill(tmp_path, SCENARIO + inject), speed=FAST)
    failed = [r for r in records(home, result) if r.event == "step.failed"]
    assert result.outcome.status == "failed"
    assert [(r.step, "drill inject" in r.data["error"]) for r in failed] == [("ticket", True)]


@pytest.mark.usefixtures("prefect_api")
def test_injects_fire_on_schedule_and_are_recorded(home: Path, tmp_path: Path) -> None:
    """A timed inject is recorded in drill time; one due after the end is listed as not fired."""
    injects = (
        "injects:\n  - {at: +30s, kind: note, text: vendor called}\n"
        "  - {at: 100h, kind: note, text: never}\n"
    )
    scenario = SCENARIO.replace("after: 1m", "after: 3m") + injects
    result = run_drill(settings_for(home), write_drill(tmp_path, scenario), speed=600)
    [fired] = [r for r in records(home, result) if r.event == "drill.inject"]
    assert fired.data["text"] == "vendor called"
    assert 30 <= fired.data["fired_at_s"] < 60
    assert [i.fired_at_s is None for i in result.score.injects] == [False, True]


@pytest.mark.usefixtures("prefect_api")
def test_unanswered_gate_is_missed_and_late_answer_is_late(home: Path, tmp_path: Path) -> None:
    """An answer slower than its target is late; an unanswered gate with a target is missed."""
    late = SCENARIO.replace("contain: 10m", "contain: 30s").replace("after: 1m", "after: 2m")
    result = run_drill(settings_for(home), write_drill(tmp_path, late), speed=600)
    assert {i.id: i.verdict for i in result.score.items}["contain"] == "late"
    result = run_drill(settings_for(home), write_drill(tmp_path, UNANSWERED), speed=600)
    assert {i.id: i.verdict for i in result.score.items}["contain"] == "missed"


@pytest.mark.usefixtures("prefect_api")
def test_score_is_stored_in_a_verifying_ledger(home: Path, tmp_path: Path) -> None:
    """The score is the ledger's `drill.scored` record and the ledger still verifies."""
    result = run_drill(settings_for(home), write_drill(tmp_path), speed=FAST)
    found = records(home, result)
    events = [r.event for r in found]
    assert events.index("drill.started") < events.index("step.succeeded")
    assert found[-1].event == "drill.scored"
    assert found[-1].data == result.score.model_dump(mode="json")
    assert verify_ledger(home / "incidents" / result.outcome.incident).ok


@pytest.mark.usefixtures("prefect_api")
def test_report_shows_score_acks_and_later_notes(home: Path, tmp_path: Path) -> None:
    """The report gives the score, who acknowledged each gate, and notes added afterwards."""
    settings = settings_for(home)
    result = run_drill(settings, write_drill(tmp_path), speed=FAST)
    alice = named_identity("alice")
    add_drill_note(settings, result.outcome.incident, alice, "Jira fallback unclear", lesson=True)
    report = drill_report(home, result.outcome.incident)
    assert "Drill tiny-drill: Tiny" in report
    assert "contain" in report and "alice; done" in report
    assert "Lessons learned:\n  - Jira fallback unclear (alice)" in report
    assert "Evidence: ledger verifies" in report


@pytest.mark.usefixtures("prefect_api")
def test_configured_jira_and_slack_are_never_called(home: Path) -> None:
    """With Jira and Slack configured, a drill sends neither a single request."""
    with configured_fakes(home) as (settings, jira, slack):
        result = run_drill(settings, DRILLS / "credential-leak.yaml", speed=FAST)
        assert result.outcome.status == "succeeded"
        assert slack.requests == []
        assert jira.requests == []


@pytest.mark.usefixtures("prefect_api")
def test_a_waiting_drill_resumed_like_any_incident_stays_in_its_sandboxes(
    home: Path, tmp_path: Path
) -> None:
    """`runbook ack` + `runbook resume` on a drill go on with the sandboxes and simulations,
    and score it again, even with Jira and Slack configured."""
    with configured_fakes(home) as (settings, jira, slack):
        first = run_drill(settings, write_drill(tmp_path, UNANSWERED, GATED), speed=FAST)
        incident = first.outcome.incident
        assert first.outcome.status == "waiting"
        acknowledge_gate(settings, incident, "contain", named_identity("alice"))
        with pytest.raises(RunbookError, match="is a drill"):
            resume_run(settings, incident)  # the engine alone never resumes a drill
        assert resume_incident(settings, incident).status == "waiting"  # now at `done`
        acknowledge_gate(settings, incident, "done", named_identity("alice"))
        resumed = resume_incident(settings, incident)
        assert slack.requests == []
        assert jira.requests == []
    assert resumed.status == "succeeded"
    found = read_records(home / "incidents" / incident)
    outbox = (home / "drills" / "outbox.jsonl").read_text()
    assert f"{DRILL_PREFIX}contained" in outbox
    assert [r.event for r in found].count("drill.started") == 1
    scored = [r.data["status"] for r in found if r.event == "drill.scored"]
    assert scored == ["waiting", "waiting", "succeeded"]
    assert verify_ledger(home / "incidents" / incident).ok
