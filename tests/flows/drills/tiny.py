"""A tiny runbook and scenario the drill tests share: a ticket, a simulated shell step, a gate."""

from __future__ import annotations

from pathlib import Path

from flows.engine.settings import Settings

FAST = 3000.0
"""Drill seconds per real second in tests: a ten-minute answer takes 0.2 s."""

RUNBOOK = """---
id: tiny
title: Tiny drill runbook
kind: other
severity: sev3
version: 1
owner: "#t"
inputs:
  service: {type: string, required: true}
---
# Tiny

## Ticket

```step
id: ticket
uses: jira.create_issue
with:
  project: OPS
  summary: "Down: {{ inputs.service }}"
```

## Look

```step
id: look
uses: shell.run
with:
  argv: ["false"]
```

## Contain {#contain}

- [ ] Contained
"""

SCENARIO = """id: tiny-drill
title: Tiny
runbook: tiny.md
inputs: {service: api}
participants:
  - {name: alice, role: IC}
targets:
  ticket: 2m
  contain: 10m
answers:
  contain: {by: alice, after: 1m, note: done}
"""


UNANSWERED = SCENARIO.split("answers:")[0]
"""The tiny scenario with no scripted answers: the drill waits at its first gate."""

GATED = RUNBOOK.replace(
    "## Contain {#contain}",
    "## Contain {#contain}\n- [ ] Contained\n\n## Tell\n"
    '```step\nid: tell\nuses: slack.post\nwith: {channel: "#t", text: "contained"}\n```\n'
    "## Done {#done}",
)
"""The tiny runbook with a chat step and a second gate (`done`, no target) after `contain`."""


def settings_for(home: Path) -> Settings:
    """Settings of a test's home against the session's Prefect server."""
    return Settings(home=home, prefect="external")


def write_drill(tmp_path: Path, scenario: str = SCENARIO, runbook: str = RUNBOOK) -> Path:
    """The runbook as tiny.md and the scenario as drill.yaml in `tmp_path`; the scenario's path."""
    (tmp_path / "tiny.md").write_text(runbook)
    path = tmp_path / "drill.yaml"
    path.write_text(scenario)
    return path
