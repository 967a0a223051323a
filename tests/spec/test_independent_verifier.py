"""A verifier written only from docs/evidence-format.md checks the engine's ledgers.

Nothing here imports the engine to check: the verifier below follows the spec's hash, line, chain
and head rules with the standard library alone, so a ledger it accepts or refuses is judged by
the published format, not by our code.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.support import FIXTURES, PROJECT

FIELDS = ("seq", "ts", "incident", "runbook", "step", "event", "actor", "data", "prev", "hash")
SPEC = PROJECT / "docs" / "evidence-format.md"


def canonical(value: object) -> bytes:
    """The spec's canonical JSON: sorted keys, no whitespace, UTF-8 unescaped."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def independent_verify(folder: Path) -> str | None:
    """None when the ledger and head follow the spec; otherwise the first rule broken."""
    data = (folder / "ledger.jsonl").read_bytes()
    if data and not data.endswith(b"\n"):
        return "torn last line"
    prev, sizes = "0" * 64, [0]
    for n, line in enumerate(data.splitlines(), start=1):
        record = json.loads(line)
        if tuple(record) != FIELDS:
            return f"record {n}: fields"
        body = {k: v for k, v in record.items() if k != "hash"}
        if hashlib.sha256(canonical(body)).hexdigest() != record["hash"]:
            return f"record {n}: hash"
        if record["seq"] != n or record["prev"] != prev:
            return f"record {n}: chain"
        stored = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        if stored != line:
            return f"record {n}: not the canonical line"
        prev = record["hash"]
        sizes.append(sizes[-1] + len(line) + 1)
    head = json.loads((folder / "head.json").read_bytes())
    count = head["count"]
    if len((folder / "head.json").read_bytes()) != 256 or count > len(sizes) - 1:
        return "head"
    if head["size"] != sizes[count]:
        return "head size"
    hashes = [json.loads(line)["hash"] for line in data.splitlines()]
    if head["hash"] != (hashes[count - 1] if count else "0" * 64):
        return "head hash"
    return None


def engine_ledger(folder: Path) -> Path:
    """A ledger written by the engine's writer, holding floats, unicode and nested data."""
    from flows.evidence.ledger import Ledger
    from flows.evidence.records import Event, RunbookRef

    ref = RunbookRef(id="leak", version=2, sha256="ab" * 32)
    with Ledger(folder, "INC-9", ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {"service": "api"}, "drill": False})
        ledger.record(
            Event.STEP_SUCCEEDED,
            step="measure",
            data={"outputs": {"p99": 60.0, "tiny": 1e-07, "big": 2**70, "who": "Zoë 東京 🚨"}},
        )
        ledger.record(Event.NOTE, step="measure", actor="alice", data={"text": 'a "quote"\n'})
    return folder


def test_the_fixture_ledger_passes_the_independent_verifier() -> None:
    """The ledger written by the earlier writer follows the published format."""
    assert independent_verify(FIXTURES / "ledgers" / "before-typed-records") is None


def test_a_ledger_the_engine_writes_passes_the_independent_verifier(tmp_path: Path) -> None:
    """The current writer's floats, big integers, unicode and escapes follow the spec."""
    assert independent_verify(engine_ledger(tmp_path)) is None


def test_the_independent_verifier_refuses_what_verify_refuses(tmp_path: Path) -> None:
    """An edited value and a re-spaced line fail the spec's rules, as they fail verify."""
    folder = engine_ledger(tmp_path)
    lines = (folder / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    (folder / "ledger.jsonl").write_bytes(
        b"".join([lines[0], lines[1].replace(b"60.0", b"60"), lines[2]])
    )
    assert independent_verify(folder) == "record 2: hash"
    record = json.loads(lines[1])
    (folder / "ledger.jsonl").write_bytes(
        b"".join([lines[0], json.dumps(record).encode() + b"\n", lines[2]])
    )
    assert independent_verify(folder) == "record 2: not the canonical line"


def test_the_python_recipe_in_the_spec_runs_as_written(tmp_path: Path) -> None:
    """The one-liner the spec gives for recomputing hashes says True for every record."""
    recipe = re.search(r"```\npython3 -c '\n(.*?)\n' ledger.jsonl\n```", SPEC.read_text(), re.S)
    assert recipe is not None, "the recipe is no longer in docs/evidence-format.md"
    folder = engine_ledger(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", recipe.group(1), str(folder / "ledger.jsonl")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["1", "True", "2", "True", "3", "True"]
