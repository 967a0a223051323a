"""`runbook postmortem`: the draft on stdout or in a file, and its summary posted to chat once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.contract.ports import GateAnswer
from flows.drills.drill import run_drill
from flows.engine.runner import start_run
from flows.engine.settings import Settings
from flows.evidence.incident import Incident, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.postmortem import postmortem_markdown
from flows.evidence.records import LEDGER_FILE, Event, RunbookRef
from flows.evidence.verify import verify_ledger
from flows.runbook.model import Gate
from flows.runbook.parse import parse_runbook
from integrations.sandbox import DRILL_PREFIX
from tests.fakes.slack_server import TOKEN, FakeSlack, serve_slack
from tests.support import FIXTURES, PROJECT

GATED = FIXTURES / "runbooks" / "gated.md"


class Alice:
    """Acknowledges every gate as alice."""

    def ask(self, gate: Gate, incident: str) -> GateAnswer:
        return GateAnswer(by="alice", note="failed over", via="test")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A fake Slack with #test-oncall, the gated runbook's owner."""
    with serve_slack() as server:
        server.add_channel("test-oncall")
        yield server


def outbox(path: Path) -> list[dict[str, object]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [m for m in map(json.loads, lines) if m["kind"] == "message"]


def write_incident(
    home: Path, tmp_path: Path, owner: str = "#t", acknowledged_by: str = "alice"
) -> Path:
    """A small incident written with the real Ledger: its gate acknowledged, its run finished."""
    document = tmp_path / "small.md"
    document.write_text(
        f"---\nid: small\ntitle: Small\nkind: other\nseverity: sev3\nversion: 1\nowner: '{owner}'"
        "\n---\n# Small\n```step\nid: note\nuses: evidence.note\nwith:\n  text: hi\n```\n"
        "## Check {#check}\n- [ ] Looked\n"
    )
    runbook = parse_runbook(document)
    incident = Incident(
        id="small-1",
        runbook=runbook_info(runbook, document),
        inputs={},
        started_at="2026-01-01T00:00:00.000000Z",
    )
    folder = open_incident(home / "incidents", incident, document.read_text())
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident.id, ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False})
        answer = {"note": "", "via": "cli"}
        ledger.record(Event.GATE_ACKNOWLEDGED, step="check", actor=acknowledged_by, data=answer)
        ledger.record(Event.RUN_FINISHED, data={"status": "succeeded", "waiting": []})
    return folder


def test_the_draft_goes_to_stdout_or_to_out(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --out the draft is printed; with it the file holds the same draft, and nothing
    is posted without --post."""
    folder = write_incident(home, tmp_path)
    assert main(["postmortem", "small-1"]) == 0
    assert capsys.readouterr().out == postmortem_markdown(folder)
    out = tmp_path / "pm.md"
    assert main(["postmortem", "small-1", "--out", str(out)]) == 0
    assert out.read_text() == postmortem_markdown(folder)
    assert capsys.readouterr().out == ""
    assert outbox(home / "outbox.jsonl") == []


@pytest.mark.usefixtures("prefect_api")
def test_post_sends_the_summary_to_slack_once(
    home: Path,
    tmp_path: Path,
    slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--post` posts one message with the key figures to the owner channel through the real
    WebClient; posting again, even with the idempotency map lost, posts nothing more."""
    local = Settings(home=home, prefect="external")
    outcome = start_run(local, GATED, {"service": "api"}, incident_id="pm-2", responder=Alice())
    assert outcome.status == "succeeded"
    # The CLI's settings come from the environment: Slack from here on.
    monkeypatch.setenv("RUNBOOK_SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("RUNBOOK_SLACK_API_URL", slack.url)
    out = tmp_path / "pm.md"
    assert main(["postmortem", "pm-2", "--post", "--out", str(out)]) == 0
    [call] = slack.calls("chat.postMessage")
    text = call.body["text"]
    head = verify_ledger(outcome.evidence).head_hash
    assert text.startswith("Postmortem draft: Gated test incident (pm-2)\nReal incident\n")
    assert "Status succeeded, severity sev2, kind outage" in text
    assert "Gates: 1 of 1 acknowledged; failures: 0; lessons: 0" in text
    assert f"head {head}" in text and f"Full draft: {out.resolve()}" in text
    assert slack.channel_named("test-oncall") is not None
    assert call.body["channel"] == slack.channel_named("test-oncall").id  # type: ignore[union-attr]
    assert "is in #test-oncall" in capsys.readouterr().err
    assert main(["postmortem", "pm-2", "--post"]) == 0
    (home / "idempotency.db").unlink()  # Slack's history is searched for the post instead
    assert main(["postmortem", "pm-2", "--post"]) == 0
    assert slack.count("chat.postMessage") == 1


@pytest.mark.usefixtures("prefect_api")
def test_a_drill_postmortem_is_posted_to_the_drill_sandbox(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A drill's summary goes to the drill outbox, marked as a drill, never to the real chat."""
    settings = Settings(home=home, prefect="external")
    drill = run_drill(settings, PROJECT / "runbooks" / "drills" / "service-outage.yaml", speed=3e3)
    before = outbox(home / "drills" / "outbox.jsonl")
    assert main(["postmortem", drill.outcome.incident, "--post"]) == 0
    assert "> **Drill**" in capsys.readouterr().out
    posted = outbox(home / "drills" / "outbox.jsonl")[len(before) :]
    [message] = posted
    assert str(message["text"]).startswith(f"{DRILL_PREFIX}Postmortem draft: ")
    assert "Drill: a rehearsal, not a real incident" in str(message["text"])
    assert outbox(home / "outbox.jsonl") == []


def test_post_without_a_channel_says_how_to_name_one(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An owner that is a team, not a channel, and no incident channel: exit 2 with a message
    naming --channel; with --channel the summary goes there."""
    write_incident(home, tmp_path, owner="platform team")
    assert main(["postmortem", "small-1", "--post"]) == 2
    err = capsys.readouterr().err
    assert "its runbook's owner 'platform team' is not a channel: name one with --channel" in err
    assert "Traceback" not in err
    assert outbox(home / "outbox.jsonl") == []
    assert main(["postmortem", "small-1", "--post", "--channel", "#ops"]) == 0
    [message] = outbox(home / "outbox.jsonl")
    assert message["channel"] == "#ops"


def test_a_ledger_that_does_not_verify_is_not_posted(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An edited ledger's draft is printed but its summary is not posted: exit 2, saying why."""
    folder = write_incident(home, tmp_path)
    ledger = folder / LEDGER_FILE
    ledger.write_bytes(ledger.read_bytes().replace(b'"succeeded"', b'"failed"'))
    assert main(["postmortem", "small-1", "--post"]) == 2
    captured = capsys.readouterr()
    assert "**The ledger does not verify**" in captured.out
    assert "does not verify (record 3: hash does not match its contents (edited?))" in captured.err
    assert outbox(home / "outbox.jsonl") == []


def test_the_summary_cannot_mention_or_link(home: Path, tmp_path: Path) -> None:
    """Ledger text in the summary keeps `<`, `>` and `&` as Slack's entities: a responder's
    name cannot notify the channel or become a link."""
    write_incident(home, tmp_path, acknowledged_by="<!channel> & <https://evil.example|you>")
    assert main(["postmortem", "small-1", "--post"]) == 0
    [message] = outbox(home / "outbox.jsonl")
    text = str(message["text"])
    assert "Commander: &lt;!channel&gt; &amp; &lt;https://evil.example|you&gt;" in text
    assert "<" not in text and ">" not in text
