"""Collected artifacts lose secrets of every shape and personal data, each counted by kind."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.contract.actions import ActionContext
from flows.evidence.ledger import Ledger
from flows.evidence.personal import PersonalData, PersonalDataRedactor, marker
from flows.evidence.records import RunbookRef
from flows.evidence.redact import REDACTED, Redactor
from flows.evidence.verify import read_records, verify_ledger
from integrations.backends import local_backends
from integrations.forensics.actions import SnapshotArgs, snapshot
from integrations.forensics.redaction import BATCH_BYTES, Counted
from integrations.forensics.store import ArtifactStore
from tests.flows.evidence.shapes import PERSONAL, SHAPES

CANARY = "canary-3c9d1e7a"

Snapshot = Callable[[list[dict[str, Any]]], dict[str, Any]]
MakeSnapshot = Callable[..., Snapshot]


def engine_redactor(kinds: tuple[PersonalData, ...] = tuple(PersonalData)) -> Redactor:
    """The engine's redactor for one run: a known secret, and personal data of these kinds."""
    return Redactor([CANARY], personal=PersonalDataRedactor(kinds))


def collected(redactor: Redactor) -> Callable[[str], str]:
    """What the engine hands actions as `redact_collected`."""
    return lambda text: redactor.redact(text, personal=True)[0]


@pytest.fixture
def make_snapshot(tmp_path: Path) -> Iterator[MakeSnapshot]:
    """Run `forensics.snapshot` as one step of incident inc-1, redacting as the engine does."""
    ledgers: list[Ledger] = []

    def make(kinds: tuple[PersonalData, ...] = tuple(PersonalData)) -> Snapshot:
        redactor = engine_redactor(kinds)
        ref = RunbookRef(id="breach", version=1, sha256="0" * 64)
        ledger = Ledger(tmp_path, "inc-1", ref, redactor)
        ledgers.append(ledger)
        backends = local_backends(tmp_path / "backends", echo=lambda line: None)
        context = ActionContext(
            incident="inc-1",
            runbook="breach",
            step="snap",
            tickets=backends.tickets,
            chat=backends.chat,
            evidence=ledger,
            home=tmp_path,
            redact=lambda text: redactor.redact(text)[0],
            redact_collected=collected(redactor),
            evidence_dir=tmp_path,
        )

        def run(collectors: list[dict[str, Any]]) -> dict[str, Any]:
            args = SnapshotArgs.model_validate({"collectors": collectors, "label": "pii"})
            return snapshot(args, context)

        return run

    yield make
    for ledger in ledgers:
        ledger.close()


def custody(tmp_path: Path) -> list[dict[str, Any]]:
    """The data of every `artifact.collected` record."""
    return [r.data for r in read_records(tmp_path) if r.event == "artifact.collected"]


def artifact_bytes(tmp_path: Path, entry: dict[str, Any]) -> bytes:
    return (tmp_path / entry["path"]).read_bytes()


def test_personal_data_in_a_collected_file_is_redacted_and_counted_by_kind(
    tmp_path: Path, make_snapshot: MakeSnapshot
) -> None:
    """E-mail, phone, card, national id and IBAN numbers leave the read-only artifact; its
    custody record counts them by kind beside the secrets."""
    log = tmp_path / "support.log"
    lines = [text for text, _, _ in PERSONAL.values()]
    log.write_text("\n".join([*lines, f"DB_PASS={CANARY}", "GET /health 200"]) + "\n")
    out = make_snapshot()([{"type": "file", "paths": [str(log)]}])
    [entry] = out["artifacts"]
    stored = artifact_bytes(tmp_path, entry).decode()
    for _, value, kind in PERSONAL.values():
        assert value not in stored
        assert marker(kind) in stored
    assert CANARY not in stored and "GET /health 200" in stored
    [data] = custody(tmp_path)
    assert data["personal_data"] == {
        "email": 2,
        "phone": 4,
        "card": 3,
        "national_id": 2,
        "iban": 2,
    }
    assert data["redactions"] == len(PERSONAL) + 1
    assert out["redactions"] == len(PERSONAL) + 1
    assert verify_ledger(tmp_path).ok


def test_a_kind_turned_off_stays_in_the_artifact(
    tmp_path: Path, make_snapshot: MakeSnapshot
) -> None:
    """Only the kinds the install chose are removed; the others are kept as collected."""
    log = tmp_path / "orders.log"
    log.write_text("alice@example.com paid with 4111 1111 1111 1111\n")
    out = make_snapshot((PersonalData.CARD,))([{"type": "file", "paths": [str(log)]}])
    [entry] = out["artifacts"]
    assert artifact_bytes(tmp_path, entry) == b"alice@example.com paid with [REDACTED:card]\n"
    [data] = custody(tmp_path)
    assert data["personal_data"] == {"card": 1} and data["redactions"] == 1


def test_personal_data_in_command_output_and_json_documents_is_redacted(
    tmp_path: Path, make_snapshot: MakeSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw output and collected JSON documents (the environment) are redacted leaf by leaf."""
    monkeypatch.setenv("ONCALL_EMAIL", "oncall@example.com")
    out = make_snapshot()(
        [
            {"type": "command", "argv": ["echo", "ssn 536-90-4399"]},
            {"type": "environment", "allow": ["ONCALL_EMAIL"]},
        ]
    )
    by_collector = {entry["collector"]: entry for entry in out["artifacts"]}
    assert artifact_bytes(tmp_path, by_collector["command"]) == b"ssn [REDACTED:national_id]\n"
    document = json.loads(artifact_bytes(tmp_path, by_collector["environment"]))
    assert document["environment"] == {"ONCALL_EMAIL": "[REDACTED:email]"}
    records = {data["collector"]: data for data in custody(tmp_path)}
    assert records["command"]["personal_data"] == {"national_id": 1}
    assert records["environment"]["personal_data"] == {"email": 1}
    # The command's name in the record is redacted as its output was.
    assert records["command"]["name"] == "echo ssn [REDACTED:national_id]"


def test_a_context_without_a_collected_redactor_falls_back_to_secrets(tmp_path: Path) -> None:
    """An action context given only `redact` still redacts secrets from what it collects."""
    redactor = engine_redactor()
    backends = local_backends(tmp_path / "backends", echo=lambda line: None)
    ref = RunbookRef(id="breach", version=1, sha256="0" * 64)
    log = tmp_path / "app.log"
    log.write_text(f"token {CANARY} for alice@example.com\n")
    with Ledger(tmp_path, "inc-1", ref, redactor) as ledger:
        context = ActionContext(
            incident="inc-1",
            runbook="breach",
            step="snap",
            tickets=backends.tickets,
            chat=backends.chat,
            evidence=ledger,
            home=tmp_path,
            redact=lambda text: redactor.redact(text)[0],
            evidence_dir=tmp_path,
        )
        args = SnapshotArgs.model_validate({"collectors": [{"type": "file", "paths": [str(log)]}]})
        out = snapshot(args, context)
    [entry] = out["artifacts"]
    assert artifact_bytes(tmp_path, entry) == b"token [REDACTED] for alice@example.com\n"


@pytest.mark.parametrize(("text", "secret"), SHAPES.values(), ids=SHAPES.keys())
def test_each_secret_shape_is_redacted_from_a_stored_artifact(
    tmp_path: Path, text: str, secret: str
) -> None:
    """Every well-known credential shape is gone from the stored bytes and counted as a secret."""
    source = tmp_path / "leak.log"
    source.write_text(f"first line\n{text}\nlast line\n")
    stored = ArtifactStore(tmp_path).put_file(source, collected(engine_redactor()))
    data = stored.path.read_bytes().decode()
    assert secret not in data and REDACTED in data
    assert stored.redactions >= 1 and stored.personal_data == {}


def test_counts_are_exact_across_redaction_batches(tmp_path: Path) -> None:
    """A file spanning many batches gets every value counted once, by kind."""
    line = "2026-11-26T10:00:00Z login alice@example.com from +44 20 7946 0018 ok\n"
    repeats = 3 * BATCH_BYTES // len(line)
    source = tmp_path / "auth.log"
    source.write_text(line * repeats)
    stored = ArtifactStore(tmp_path).put_file(source, collected(engine_redactor()))
    assert stored.personal_data == {"email": repeats, "phone": repeats}
    assert stored.redactions == 2 * repeats
    assert b"alice@" not in stored.path.read_bytes()


def test_markers_already_in_the_text_are_not_counted() -> None:
    """Text that already says `[REDACTED:email]` (redacted once before) adds nothing."""
    counted = Counted(collected(engine_redactor()))
    out = counted("was [REDACTED:email], now bob@example.com, key [REDACTED]")
    assert out == "was [REDACTED:email], now [REDACTED:email], key [REDACTED]"
    assert (counted.count, counted.personal_data()) == (1, {"email": 1})
