"""Who may pass a gate, through the real paths: `runbook ack` as this OS account, a Slack user,
and the run's own responder; each refusal, approval and acknowledgement is in the ledger."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.contract.ports import GateAnswer
from flows.engine.authority import Outcome
from flows.engine.runner import acknowledge_gate, resume_run, start_run
from flows.engine.settings import Settings
from flows.evidence.records import Record
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import os_identity, slack_identity
from flows.runbook.model import Gate

pytestmark = pytest.mark.usefixtures("prefect_api")

ME = getpass.getuser()
HOST = socket.gethostname()
ACCOUNT = f"{ME}@{HOST}"

RUNBOOK = """---
id: guarded
title: Guarded
kind: breach
severity: sev1
version: 1
owner: "#sec"
---
# Guarded

## Note
```step
id: note
uses: evidence.note
with: {{text: started}}
```

## Triage {{#triage}}

- [ ] Scoped

## Contain {{#contain}}

```gate
{policy}
```

- [ ] Revoked

## Close
```step
id: close
uses: evidence.note
with: {{text: closed}}
```
"""

ROSTER = """roles: {{security: {{}}, sre: {{}}}}
people:
  me: {{os_users: [{me}], roles: [{role}]}}
  bea: {{slack: [U0BEA], roles: [security]}}
  sol: {{slack: [U0SOL], roles: [sre]}}
"""


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


def settings_for(home: Path) -> Settings:
    return Settings(home=home, prefect="external")


def library(tmp_path: Path, policy: str, role: str = "security", roster: bool = True) -> Path:
    """The guarded runbook with `policy` in its contain gate, and a roster where this OS
    account is `me`, holding `role`."""
    path = tmp_path / "guarded.md"
    path.write_text(RUNBOOK.format(policy=policy))
    if roster:
        (tmp_path / "responders.yaml").write_text(ROSTER.format(me=ME, role=role))
    return path


def ack(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`runbook ack ARGS` as users run it, in this process: exit code, stdout, stderr."""
    code = main(["ack", *args])
    out, err = capsys.readouterr()
    return code, out, err


def gate_records(home: Path, incident: str, gate: str = "contain") -> list[Record]:
    return [
        r
        for r in read_records(home / "incidents" / incident)
        if r.step == gate and r.event.value.startswith("gate.")
    ]


def waiting_at_contain(settings: Settings, path: Path, incident: str, **start: object) -> None:
    """Start the incident and take it to the contain gate (triage admits anyone)."""
    assert start_run(settings, path, {}, incident_id=incident, **start).status == "waiting"  # type: ignore[arg-type]
    assert acknowledge_gate(
        settings, incident, "triage", slack_identity("U0SOL", "sol")
    ).acknowledged
    assert resume_run(settings, incident).steps["contain"] == "waiting"


def test_an_unauthorized_ack_is_refused_with_its_reason_and_recorded(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone without the gate's role is refused (exit 1, the reason), the attempt goes into
    the ledger with who, how and why, and the gate still waits for an approver."""
    settings = settings_for(home)
    path = library(tmp_path, "approvers: {roles: [security]}", role="sre")
    waiting_at_contain(settings, path, "inc-unauth")
    code, _, err = ack(capsys, "inc-unauth", "contain", "--note", "revoked")
    assert code == 1
    assert "refused: me (sre) may not pass this gate: it needs role security" in err
    (waited, refused) = gate_records(home, "inc-unauth")
    assert (waited.event, refused.event, refused.actor) == ("gate.waiting", "gate.refused", "me")
    assert {k: refused.data[k] for k in ("person", "identity", "channel", "via")} == {
        "person": "me",
        "identity": ACCOUNT,
        "channel": "cli",
        "via": "cli",
    }
    assert "may not pass this gate" in refused.data["reason"]
    bea = acknowledge_gate(settings, "inc-unauth", "contain", slack_identity("U0BEA", "bea"))
    assert bea.acknowledged
    acknowledged = gate_records(home, "inc-unauth")[-1]
    assert (acknowledged.event, acknowledged.actor) == ("gate.acknowledged", "bea")
    assert {k: acknowledged.data[k] for k in ("identity", "channel", "authority")} == {
        "identity": "slack:U0BEA",
        "channel": "slack",
        "authority": "role:security",
    }
    assert acknowledged.data["roster"]["path"] == str(tmp_path / "responders.yaml")
    assert resume_run(settings, "inc-unauth").status == "succeeded"
    assert verify_ledger(home / "incidents" / "inc-unauth").ok


def test_a_two_person_quorum_needs_two_different_people(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With min_approvals 2 one approval leaves the gate waiting, the same person again does
    not count, and a second person's approval passes it."""
    settings = settings_for(home)
    path = library(tmp_path, "approvers: {roles: [security]}\nmin_approvals: 2")
    waiting_at_contain(settings, path, "inc-quorum")
    code, out, _ = ack(capsys, "inc-quorum", "contain")
    assert code == 0
    assert "approved by me (1 of 2); it waits for 1 more approval(s)" in out
    assert resume_run(settings, "inc-quorum").steps["contain"] == "waiting"
    code, _, err = ack(capsys, "inc-quorum", "contain")
    assert code == 1
    assert "me has already approved gate 'contain' (1 of 2)" in err
    second = acknowledge_gate(settings, "inc-quorum", "contain", slack_identity("U0BEA", "bea"))
    assert second.acknowledged and second.approvals == ("me", "bea")
    events = [(r.event.value, r.actor) for r in gate_records(home, "inc-quorum")]
    assert events == [
        ("gate.waiting", "engine"),
        ("gate.approved", "me"),
        ("gate.refused", "me"),
        ("gate.acknowledged", "bea"),
    ]
    final = gate_records(home, "inc-quorum")[-1].data
    assert (final["approvals"], final["needed"], final["approvers"]) == (2, 2, ["me", "bea"])
    assert resume_run(settings, "inc-quorum").status == "succeeded"


def test_whoever_started_the_incident_may_not_approve_a_separated_gate(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`separation: [starter]` refuses the person who ran `runbook run`; another approver
    passes the gate."""
    settings = settings_for(home)
    path = library(tmp_path, "approvers: {roles: [security]}\nseparation: [starter]")
    waiting_at_contain(settings, path, "inc-starter", started_by=f"cli:{ME}")
    code, _, err = ack(capsys, "inc-starter", "contain")
    assert code == 1
    assert "me started this incident, and gate 'contain' must be approved by someone else" in err
    bea = acknowledge_gate(settings, "inc-starter", "contain", slack_identity("U0BEA", "bea"))
    assert bea.acknowledged


def test_a_gate_acknowledged_before_the_run_reaches_it_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runbook ack` of a gate the run has not reached is refused and recorded; once the run
    waits there, the same ack passes it, and the wait is measured from when it was reached."""
    settings = settings_for(home)
    path = library(tmp_path, "{}", roster=False)
    assert start_run(settings, path, {}, incident_id="inc-early").steps["triage"] == "waiting"
    code, _, err = ack(capsys, "inc-early", "contain", "--note", "ahead of time")
    assert code == 1
    assert "gate 'contain' is not reached yet, so it cannot be acknowledged" in err
    assert "it waits at triage" in err
    assert [r.event.value for r in gate_records(home, "inc-early")] == ["gate.refused"]
    assert ack(capsys, "inc-early", "triage")[0] == 0
    assert resume_run(settings, "inc-early").steps["contain"] == "waiting"
    code, out, _ = ack(capsys, "inc-early", "contain")
    assert code == 0 and "acknowledged by" in out
    events = [r.event.value for r in gate_records(home, "inc-early")]
    assert events == ["gate.refused", "gate.waiting", "gate.acknowledged"]
    assert resume_run(settings, "inc-early").status == "succeeded"


def test_by_must_name_the_person_the_os_account_is(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a roster, `--by` naming someone else is refused; naming yourself is kept."""
    settings = settings_for(home)
    path = library(tmp_path, "approvers: {roles: [security]}")
    waiting_at_contain(settings, path, "inc-by")
    code, _, err = ack(capsys, "inc-by", "contain", "--by", "bea")
    assert code == 1
    assert f"--by names 'bea', but {ACCOUNT} is 'me' in the roster" in err
    code, out, _ = ack(capsys, "inc-by", "contain", "--by", "me", "--note", "revoked")
    assert code == 0 and "acknowledged by me (role:security)" in out
    refused, acknowledged = gate_records(home, "inc-by")[1:]
    assert (refused.event, refused.data["claimed"]) == ("gate.refused", "bea")
    assert (acknowledged.actor, acknowledged.data["claimed"], acknowledged.data["note"]) == (
        "me",
        "me",
        "revoked",
    )


def test_an_account_the_roster_lacks_passes_open_gates_only(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OS account not in the roster acknowledges a gate without approvers as itself, but
    cannot claim a name, nor pass a gate that names approvers."""
    settings = settings_for(home)
    path = library(tmp_path, "approvers: {roles: [security]}")
    roster = tmp_path / "responders.yaml"
    roster.write_text(roster.read_text().replace(f"os_users: [{ME}]", "os_users: [someone]"))
    assert start_run(settings, path, {}, incident_id="inc-stranger").steps["triage"] == "waiting"
    code, _, err = ack(capsys, "inc-stranger", "triage", "--by", "me")
    assert code == 1 and f"{ACCOUNT} is not in the roster" in err
    assert ack(capsys, "inc-stranger", "triage")[0] == 0
    (acknowledged,) = [
        r
        for r in gate_records(home, "inc-stranger", "triage")
        if r.event.value == "gate.acknowledged"
    ]
    assert (acknowledged.actor, acknowledged.data["person"]) == (ACCOUNT, None)
    assert acknowledged.data["authority"] == "anyone"
    assert resume_run(settings, "inc-stranger").steps["contain"] == "waiting"
    code, _, err = ack(capsys, "inc-stranger", "contain")
    assert code == 1 and f"{ACCOUNT} is not in the roster" in err


class Answering:
    """A responder in the run that answers as a given OS account and hears the outcome."""

    def __init__(self, os_user: str) -> None:
        self.os_user = os_user
        self.heard_outcomes: list[str] = []

    def ask(self, gate: Gate, incident: str) -> GateAnswer:
        identity = os_identity(self.os_user, HOST, channel="terminal")
        return GateAnswer(by=self.os_user, via="terminal", identity=identity)

    def heard(self, gate: Gate, incident: str, outcome: str) -> None:
        self.heard_outcomes.append(outcome)


def test_an_answer_in_the_run_is_judged_like_an_ack(home: Path, tmp_path: Path) -> None:
    """The run's own responder is checked against the policy: refused, it hears why, the
    refusal is recorded and the run waits at the gate."""
    settings = settings_for(home)
    path = library(tmp_path, "approvers: {roles: [security]}", role="sre")
    responder = Answering(ME)
    outcome = start_run(settings, path, {}, incident_id="inc-in-run", responder=responder)
    assert outcome.status == "waiting" and outcome.steps["contain"] == "waiting"
    assert responder.heard_outcomes[0].startswith("gate 'triage' acknowledged by me (anyone)")
    assert responder.heard_outcomes[1] == (
        "refused: me (sre) may not pass this gate: it needs role security"
    )
    events = [r.event.value for r in gate_records(home, "inc-in-run")]
    assert events == ["gate.waiting", "gate.refused"]
    decision = acknowledge_gate(settings, "inc-in-run", "contain", slack_identity("U0BEA", "bea"))
    assert decision.outcome is Outcome.ACKNOWLEDGED


def test_the_roster_is_found_whatever_folder_an_answer_comes_from(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started with a relative path, the incident is still judged by its runbook's roster when
    the answer comes from another working directory (a server, another terminal)."""
    settings = settings_for(home)
    library(tmp_path, "approvers: {roles: [security]}", role="sre")
    monkeypatch.chdir(tmp_path)
    waiting_at_contain(settings, Path("guarded.md"), "inc-cwd")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    bea = acknowledge_gate(settings, "inc-cwd", "contain", slack_identity("U0BEA", "bea"))
    assert bea.acknowledged, bea
    assert gate_records(home, "inc-cwd")[-1].data["roster"]["path"] == str(
        tmp_path / "responders.yaml"
    )
