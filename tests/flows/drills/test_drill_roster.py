"""Drills and the roster: a participant the roster names is checked like anyone, one it does not
name answers in the drill's sandbox as a scenario participant."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.drills.drill import run_drill
from flows.engine.settings import Settings
from flows.evidence.verify import read_records

RUNBOOK = """---
id: tiny-guarded
title: Tiny guarded
kind: breach
severity: sev3
version: 1
owner: "#t"
---
# Tiny

## Note
```step
id: note
uses: evidence.note
with: {text: started}
```

## Contain {#contain}

```gate
approvers: {roles: [security]}
```

- [ ] Contained
"""

ROSTER = """roles: {security: {}, sre: {}}
people:
  alice: {roles: [sre]}
  chen: {roles: [security]}
"""


def drill(tmp_path: Path, participant: str) -> Path:
    (tmp_path / "tiny.md").write_text(RUNBOOK)
    (tmp_path / "responders.yaml").write_text(ROSTER)
    path = tmp_path / f"{participant}.yaml"
    path.write_text(
        f"id: tiny-{participant}\ntitle: Tiny\nrunbook: tiny.md\n"
        f"participants: [{{name: {participant}, role: responder}}]\n"
        f"answers: {{contain: {{by: {participant}, after: 1s}}}}\n"
    )
    return path


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(
    ("participant", "status", "event", "authority"),
    [
        ("alice", "waiting", "gate.refused", None),
        ("chen", "succeeded", "gate.acknowledged", "role:security"),
        ("zed", "succeeded", "gate.acknowledged", "drill participant"),
    ],
)
def test_scripted_answers_are_checked_when_the_roster_names_the_participant(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    participant: str,
    status: str,
    event: str,
    authority: str | None,
) -> None:
    """alice lacks the gate's role and is refused, chen holds it, zed is no roster person and
    answers as a drill participant."""
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)
    settings = Settings(home=home, prefect="external")
    result = run_drill(settings, drill(tmp_path, participant), speed=3000.0)
    assert result.outcome.status == status
    (answer,) = [
        r
        for r in read_records(home / "incidents" / result.outcome.incident)
        if r.step == "contain" and r.event.value in ("gate.refused", "gate.acknowledged")
    ]
    assert (answer.event.value, answer.actor, answer.data["channel"]) == (
        event,
        participant,
        "drill",
    )
    assert answer.data.get("authority") == authority
