"""Progress read back from ledgers: gate approvals counted once per person, old ledgers too."""

from __future__ import annotations

import shutil
from pathlib import Path

from flows.evidence.ledger import Ledger
from flows.evidence.progress import ItemStatus, progress_from_records
from flows.evidence.records import Event, RunbookRef
from flows.evidence.verify import read_records, verify_ledger
from tests.support import FIXTURES

BEFORE_TYPED_RECORDS = FIXTURES / "ledgers" / "before-typed-records"
REF = RunbookRef(id="guarded", version=1, sha256="ab" * 32)


def test_a_ledger_from_before_proven_identities_verifies_and_reads(tmp_path: Path) -> None:
    """An acknowledgement written with a typed name and no identity still verifies, counts as
    that name's approval, and reads with no person and its old `via`."""
    folder = tmp_path / "service-outage-fixture"
    shutil.copytree(BEFORE_TYPED_RECORDS, folder)
    assert verify_ledger(folder).ok
    progress = progress_from_records(read_records(folder))
    assert progress.statuses["assess"] is ItemStatus.ACKNOWLEDGED
    ack = progress.acks["assess"]
    assert (ack.by, ack.person, ack.via) == ("Zoë Müller", None, "cli")
    assert progress.approvals == {"assess": ("Zoë Müller",)}


def test_approvals_and_refusals_leave_the_gate_waiting_and_count_each_person_once(
    tmp_path: Path,
) -> None:
    """`gate.approved` and `gate.refused` change no status; approvals list each person once."""
    with Ledger(tmp_path, "inc-1", REF) as ledger:
        ledger.record(Event.GATE_WAITING, step="contain", data={"title": "Contain"})
        for event, person in (
            (Event.GATE_APPROVED, "alice"),
            (Event.GATE_REFUSED, "bob"),
            (Event.GATE_APPROVED, "alice"),
        ):
            data = {"person": person, "identity": f"{person}@host", "channel": "cli"}
            ledger.record(event, step="contain", actor=person, data=data)
    progress = progress_from_records(read_records(tmp_path))
    assert progress.statuses["contain"] is ItemStatus.WAITING
    assert progress.approvals == {"contain": ("alice",)}
    assert "contain" not in progress.acks
