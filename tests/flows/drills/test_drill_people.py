"""A drill's people: only participants and the facilitator answer, note and attend; a reviewer
closes the exercise, and each further reviewer signs on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.drills.debrief import drill_report
from flows.drills.drill import run_drill
from flows.drills.people import DrillRefused, add_drill_note, attend_drill, sign_off_drill
from flows.engine.authority import Outcome
from flows.engine.runner import acknowledge_gate
from flows.engine.settings import Settings
from flows.engine.steering import add_note
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import Identity, named_identity, os_identity
from tests.flows.drills.tiny import FAST, UNANSWERED, settings_for, write_drill
from tests.support import run_cli

PEOPLE = UNANSWERED.replace(
    "participants:\n  - {name: alice, role: IC}\n",
    "facilitator: sam\nparticipants:\n  - {name: alice, role: IC}\n  - {name: bob, role: comms}\n",
)
"""The tiny scenario, waiting at `contain`, with a facilitator and two participants."""

ROSTER = """roles: {sre: {}}
people:
  alice: {os_users: [alice-os], roles: [sre]}
  chen: {os_users: [chen-os], roles: [sre]}
  rita: {os_users: [rita-os]}
"""


def me(os_user: str, by: str | None = None) -> Identity:
    """Someone at a terminal, as `runbook ack --by` sees them."""
    return os_identity(os_user, "laptop", claimed=by)


def waiting_drill(home: Path, tmp_path: Path, scenario: str = PEOPLE) -> tuple[Settings, str]:
    settings = settings_for(home)
    result = run_drill(settings, write_drill(tmp_path, scenario), speed=FAST)
    assert result.outcome.status == "waiting"
    return settings, result.outcome.incident


@pytest.mark.usefixtures("prefect_api")
def test_only_participants_acknowledge_a_drill_gate(home: Path, tmp_path: Path) -> None:
    """`--by mallory` or `--by zed` is refused on record, naming the drill's people; a
    participant is acknowledged."""
    settings, incident = waiting_drill(home, tmp_path)
    for outsider in ("mallory", "zed"):
        refused = acknowledge_gate(
            settings, incident, "contain", os_identity("x", "h", claimed=outsider)
        )
        assert refused.outcome is Outcome.REFUSED
        assert f"{outsider} is not one of the people of drill 'tiny-drill'" in refused.reason
        assert "participants alice, bob; facilitator sam" in refused.reason
    passed = acknowledge_gate(settings, incident, "contain", os_identity("x", "h", claimed="bob"))
    assert passed.outcome is Outcome.ACKNOWLEDGED
    answers = [
        (r.event.value, r.data.get("claimed"))
        for r in read_records(home / "incidents" / incident)
        if r.step == "contain"
        and r.event.value.startswith("gate.")
        and r.event.value != "gate.waiting"
    ]
    assert answers == [
        ("gate.refused", "mallory"),
        ("gate.refused", "zed"),
        ("gate.acknowledged", "bob"),
    ]


@pytest.mark.usefixtures("prefect_api")
def test_the_roster_decides_who_a_drill_participant_is(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a roster, `--by alice` from chen's account is refused, chen (no participant) is
    refused by his own name, and alice's own account answers."""
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)
    (tmp_path / "responders.yaml").write_text(ROSTER)
    settings, incident = waiting_drill(home, tmp_path)
    posing = acknowledge_gate(settings, incident, "contain", me("chen-os", by="alice"))
    assert posing.outcome is Outcome.REFUSED
    assert "--by names 'alice', but chen-os@laptop is 'chen'" in posing.reason
    chen = acknowledge_gate(settings, incident, "contain", me("chen-os"))
    assert chen.outcome is Outcome.REFUSED and "chen is not one of the people" in chen.reason
    alice = acknowledge_gate(settings, incident, "contain", me("alice-os"))
    assert alice.outcome is Outcome.ACKNOWLEDGED and alice.by == "alice"


@pytest.mark.usefixtures("prefect_api")
def test_notes_in_a_drill_come_only_from_its_people(home: Path, tmp_path: Path) -> None:
    """`runbook note` and `runbook drill note` on a drill are refused for an outsider and
    recorded for a participant and the facilitator."""
    settings, incident = waiting_drill(home, tmp_path)
    outsider = add_note(settings, incident, me("mallory"), "all fine here")
    assert not outsider.allowed and "mallory is not one of the people" in outsider.reason
    assert add_note(settings, incident, me("laptop-user", by="alice"), "status page late").allowed
    with pytest.raises(DrillRefused, match="zed is not one of the people"):
        add_drill_note(settings, incident, me("x", by="zed"), "looks good")
    add_drill_note(settings, incident, me("x", by="sam"), "Jira fallback unclear", lesson=True)
    found = read_records(home / "incidents" / incident)
    notes = [(r.event.value, r.actor) for r in found if r.event.value in ("note", "drill.lesson")]
    assert notes == [("note", "laptop-user@laptop"), ("drill.lesson", "sam")]
    lessons = [r for r in found if r.event.value == "drill.lesson"]
    assert lessons[0].data["identity"] == "x@laptop" and lessons[0].data["claimed"] == "sam"


@pytest.mark.usefixtures("prefect_api")
def test_attendance_is_signed_once_by_each_participant(home: Path, tmp_path: Path) -> None:
    """Each participant signs attendance once, with their scenario role; an outsider cannot."""
    settings, incident = waiting_drill(home, tmp_path)
    assert "alice (participant)" in attend_drill(settings, incident, named_identity("alice"))
    with pytest.raises(DrillRefused, match=r"signed the attendance of drill .* already"):
        attend_drill(settings, incident, named_identity("alice"))
    with pytest.raises(DrillRefused, match="mallory is not one of the people"):
        attend_drill(settings, incident, named_identity("mallory"))
    attend_drill(settings, incident, named_identity("sam"))
    found = read_records(home / "incidents" / incident)
    signed = [(r.actor, r.data["as"], r.data["role"]) for r in found if r.event == "drill.attended"]
    assert signed == [("alice", "participant", "IC"), ("sam", "facilitator", "")]


@pytest.mark.usefixtures("prefect_api")
def test_a_reviewer_sign_off_closes_the_drill_and_each_reviewer_signs_alone(
    home: Path, tmp_path: Path
) -> None:
    """A participant cannot review; rita's sign-off closes the exercise (no more answers or
    attendance), and a second reviewer signs a record of their own, once."""
    settings, incident = waiting_drill(home, tmp_path)
    attend_drill(settings, incident, named_identity("alice"))
    with pytest.raises(DrillRefused, match="bob is not the facilitator"):
        sign_off_drill(settings, incident, named_identity("bob"), signing="facilitator")
    sign_off_drill(settings, incident, named_identity("sam"), signing="facilitator")
    with pytest.raises(DrillRefused, match="alice is a participant of drill"):
        sign_off_drill(settings, incident, named_identity("alice"), signing="reviewer")
    closing = sign_off_drill(
        settings, incident, named_identity("rita"), signing="reviewer", note="targets realistic"
    )
    assert closing.endswith("the exercise is closed")
    late = acknowledge_gate(settings, incident, "contain", named_identity("alice"))
    assert late.outcome is Outcome.REFUSED and "closed by rita's reviewer sign-off" in late.reason
    with pytest.raises(DrillRefused, match="closed by rita"):
        attend_drill(settings, incident, named_identity("bob"))
    second = sign_off_drill(settings, incident, named_identity("omar"), signing="reviewer")
    assert "closed" not in second
    with pytest.raises(DrillRefused, match=r"omar signed drill .* off as reviewer already"):
        sign_off_drill(settings, incident, named_identity("omar"), signing="reviewer")
    found = read_records(home / "incidents" / incident)
    signed = [
        (r.actor, r.data["as"], r.data["closes"], r.data["absent"], r.data["note"])
        for r in found
        if r.event == "drill.signed_off"
    ]
    assert signed == [
        ("sam", "facilitator", False, ["bob"], ""),
        ("rita", "reviewer", True, ["bob"], "targets realistic"),
        ("omar", "reviewer", False, ["bob"], ""),
    ]
    report = drill_report(home, incident)
    assert "rita as reviewer at" in report and "closing the exercise: targets realistic" in report
    assert verify_ledger(home / "incidents" / incident).ok


@pytest.mark.usefixtures("prefect_api")
def test_drill_people_from_the_command_line(home: Path, tmp_path: Path) -> None:
    """`runbook ack --by zed` on a drill exits 1 with the reason; `runbook drill attend`,
    `drill note` (several words) and `drill signoff --as reviewer` record their acts."""
    _, incident = waiting_drill(home, tmp_path)
    refused = run_cli(home, "ack", incident, "contain", "--by", "zed")
    assert refused.returncode == 1
    assert "zed is not one of the people of drill 'tiny-drill'" in refused.stderr
    attended = run_cli(home, "drill", "attend", incident, "--by", "bob")
    assert attended.returncode == 0, attended.stderr
    noted = run_cli(home, "drill", "note", incident, "Nobody", "owned", "comms", "--by", "sam")
    assert noted.returncode == 0, noted.stderr
    outsider = run_cli(home, "drill", "note", incident, "hi", "--by", "mallory")
    assert outsider.returncode == 1 and outsider.stderr.startswith("refused: mallory")
    signed = run_cli(home, "drill", "signoff", incident, "--as", "reviewer", "--by", "rita")
    assert signed.returncode == 0 and "the exercise is closed" in signed.stdout
    report = run_cli(home, "drill", "report", incident).stdout
    assert "Nobody owned comms (sam)" in report
    assert "Attendance:\n  - bob (participant)" in report
