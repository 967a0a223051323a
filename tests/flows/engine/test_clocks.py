"""Regulatory clocks kept by the ledger: started by the determination gate's acknowledgement,
stopped by the notified gate's, late recorded as late, milestones counting from filings and
events, and the variant chosen at the determination."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from flows.engine.clocks import mark_clocks
from flows.engine.settings import Settings
from flows.evidence.incident import incident_folder
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, RunbookRef
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.clocks import CATALOGUE_VERSION
from flows.runbook.deadlines import add_months
from flows.runbook.parse import parse_runbook
from flows.times import parse_utc, utc_now, utc_stamp
from tests.flows.engine.clocked import ack, clock_records, open_waiting, write_runbook


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


GDPR = "  - {id: gdpr-art33, starts_at: determined, stops_at: notified, owner: legal}"


def acks(settings: Settings, incident: str, gate: str) -> list[str]:
    folder = incident_folder(settings.incidents_dir, incident)
    return [
        r.ts for r in read_records(folder) if r.event is Event.GATE_ACKNOWLEDGED and r.step == gate
    ]


def test_the_determination_starts_the_clock_at_its_acknowledgement(
    home: Path, tmp_path: Path
) -> None:
    """`clock.started` follows the determination's `gate.acknowledged`, counting 72 h from
    that record's time, with who decided, their reasoning, the source and the catalogue."""
    settings = Settings(home=home)
    path = write_runbook(tmp_path / "library", GDPR, ["determined", "notified"])
    open_waiting(settings, path, "inc-start", ["determined"])
    ack(settings, "inc-start", "determined", "customer emails read through the leaked key")
    (started,) = clock_records(settings, "inc-start")
    records = read_records(incident_folder(settings.incidents_dir, "inc-start"))
    assert records[started.seq - 2].event is Event.GATE_ACKNOWLEDGED
    (acked,) = acks(settings, "inc-start", "determined")
    assert started.event is Event.CLOCK_STARTED
    data = started.data
    assert (data["clock"], data["anchored_at"], data["catalogue"]) == (
        "gdpr-art33",
        acked,
        CATALOGUE_VERSION,
    )
    assert data["source"] == "GDPR (Regulation (EU) 2016/679) Art. 33(1)"
    assert (data["decided_by"], data["person"]) == ("lee", "lee")
    assert data["reasoning"] == "customer emails read through the leaked key"
    (milestone,) = data["milestones"]
    assert milestone["id"] == "notification" and milestone["stops_at"] == "notified"
    assert milestone["rule"] == "72 h from awareness"
    assert parse_utc(milestone["deadline"]) == parse_utc(acked) + timedelta(hours=72)


def test_the_notified_gate_stops_the_clock_with_the_filings_reference(
    home: Path, tmp_path: Path
) -> None:
    """Acknowledged in time: `clock.stopped` with the note as the reference, `late: false`;
    the chain verifies."""
    settings = Settings(home=home)
    path = write_runbook(tmp_path / "library", GDPR, ["determined", "notified"])
    open_waiting(settings, path, "inc-stop", ["determined", "notified"])
    ack(settings, "inc-stop", "determined", "confirmed")
    ack(settings, "inc-stop", "notified", "CNIL notification 2026-0042")
    started, stopped = clock_records(settings, "inc-stop")
    assert stopped.event is Event.CLOCK_STOPPED
    data = stopped.data
    assert (data["milestone"], data["reference"], data["late"]) == (
        "notification",
        "CNIL notification 2026-0042",
        False,
    )
    assert data["deadline"] == started.data["milestones"][0]["deadline"]
    assert data["filed_at"] == acks(settings, "inc-stop", "notified")[0]
    assert "late_by_s" not in data
    assert verify_ledger(incident_folder(settings.incidents_dir, "inc-stop")).ok


def test_a_notification_after_the_deadline_is_recorded_late_after_its_expiry(
    home: Path, tmp_path: Path
) -> None:
    """DORA counts at most 24 h from awareness: an incident opened 30 h before it was
    classified as major has already missed the initial notification, so the classification's
    clock records `clock.expired` at once, and the filing after it `late: true`."""
    settings = Settings(home=home)
    clocks = (
        "  - id: dora-major\n    starts_at: determined\n    owner: legal\n"
        "    stops_at: {initial: notified, intermediate: intermediate, final: final}"
    )
    path = write_runbook(
        tmp_path / "library", clocks, ["determined", "notified", "intermediate", "final"]
    )
    opened = utc_now() - timedelta(hours=30)
    open_waiting(settings, path, "inc-late", ["determined", "notified"], opened=opened)
    ack(settings, "inc-late", "determined", "major: 40 % of payments failing")
    started, expired = clock_records(settings, "inc-late")
    (initial,) = started.data["milestones"]
    assert parse_utc(started.data["awareness"]) == parse_utc(utc_stamp(opened))
    assert parse_utc(initial["deadline"]) == parse_utc(utc_stamp(opened)) + timedelta(hours=24)
    assert [p["id"] for p in started.data["pending"]] == ["intermediate", "final"]
    assert (expired.event, expired.data["milestone"]) == (Event.CLOCK_EXPIRED, "initial")

    ack(settings, "inc-late", "notified", "DORA initial notification ref 77")
    stopped, intermediate = clock_records(settings, "inc-late")[2:]
    assert (stopped.event, stopped.data["late"]) == (Event.CLOCK_STOPPED, True)
    assert stopped.data["late_by_s"] > 5 * 3600
    (filed,) = acks(settings, "inc-late", "notified")
    assert intermediate.event is Event.CLOCK_STARTED
    assert (intermediate.data["anchor"], intermediate.data["gate"]) == ("initial", "notified")
    (next_one,) = intermediate.data["milestones"]
    assert next_one["id"] == "intermediate"
    assert parse_utc(next_one["deadline"]) == parse_utc(filed) + timedelta(hours=72)


def test_nis2s_final_report_starts_when_the_notification_is_filed(
    home: Path, tmp_path: Path
) -> None:
    """Early warning and notification run from awareness; the final report's month starts
    at the notification's filing."""
    settings = Settings(home=home)
    clocks = (
        "  - id: nis2-art23\n    starts_at: determined\n    owner: security\n"
        "    stops_at: {early-warning: warned, notification: notified, final-report: final}"
    )
    gates = ["determined", "warned", "notified", "final"]
    path = write_runbook(tmp_path / "library", clocks, gates)
    open_waiting(settings, path, "inc-nis2", gates)
    ack(settings, "inc-nis2", "determined", "significant: 3 hospitals affected")
    (started,) = clock_records(settings, "inc-nis2")
    assert [m["id"] for m in started.data["milestones"]] == ["early-warning", "notification"]
    assert started.data["pending"][0]["after"] == "notification"
    ack(settings, "inc-nis2", "warned", "CSIRT early warning EW-1")
    ack(settings, "inc-nis2", "notified", "CSIRT notification N-1")
    events = [(r.event, r.data.get("milestone")) for r in clock_records(settings, "inc-nis2")]
    assert events == [
        (Event.CLOCK_STARTED, None),
        (Event.CLOCK_STOPPED, "early-warning"),
        (Event.CLOCK_STOPPED, "notification"),
        (Event.CLOCK_STARTED, None),
    ]
    final = clock_records(settings, "inc-nis2")[-1]
    (filed,) = acks(settings, "inc-nis2", "notified")
    assert final.data["milestones"][0]["id"] == "final-report"
    assert parse_utc(final.data["milestones"][0]["deadline"]) == add_months(parse_utc(filed), 1)


@pytest.mark.parametrize(
    ("declared", "note", "variant", "days"),
    [
        ("", "fleet stopped: 12 cars braked hard", "general", 15),
        ("", "Variant: death. A pedestrian was hit", "death", 10),
        ("\n    variant: widespread", "same fault in 9 member states", "widespread", 2),
        ("\n    variant: widespread", "variant: death confirmed", "death", 10),
    ],
)
def test_the_ai_act_variant_is_chosen_at_the_determination(
    home: Path, tmp_path: Path, declared: str, note: str, variant: str, days: int
) -> None:
    """The note's `variant:` wins over the runbook's `variant:`, which wins over `general`."""
    settings = Settings(home=home)
    clocks = (
        "  - id: eu-ai-act-art73\n    starts_at: determined\n    stops_at: notified\n"
        f"    owner: legal{declared}"
    )
    path = write_runbook(tmp_path / "library", clocks, ["determined", "notified"])
    open_waiting(settings, path, "inc-ai", ["determined"])
    ack(settings, "inc-ai", "determined", note)
    (started,) = clock_records(settings, "inc-ai")
    assert started.data["variant"] == variant
    (acked,) = acks(settings, "inc-ai", "determined")
    deadline = parse_utc(started.data["milestones"][0]["deadline"])
    assert deadline == parse_utc(acked) + timedelta(days=days)


def test_an_unknown_variant_in_the_note_takes_the_shortest_deadline_and_says_so(
    home: Path, tmp_path: Path
) -> None:
    """`variant: deth` is no variant: two days (the shortest) rather than fifteen, and the
    record says why."""
    settings = Settings(home=home)
    clocks = "  - {id: eu-ai-act-art73, starts_at: determined, stops_at: notified, owner: legal}"
    path = write_runbook(tmp_path / "library", clocks, ["determined", "notified"])
    open_waiting(settings, path, "inc-typo", ["determined"])
    ack(settings, "inc-typo", "determined", "variant: deth")
    (started,) = clock_records(settings, "inc-typo")
    assert (started.data["variant"], started.data["variant_from"]) == ("widespread", "strictest")
    assert "names variant 'deth'" in started.data["variant_problem"]
    (acked,) = acks(settings, "inc-typo", "determined")
    deadline = parse_utc(started.data["milestones"][0]["deadline"])
    assert deadline == parse_utc(acked) + timedelta(days=2)


def test_a_ransom_payment_gate_starts_circias_24_hour_report(home: Path, tmp_path: Path) -> None:
    """The payment's own milestone starts at its gate's acknowledgement; without a gate for
    the event it is not tracked at all."""
    settings = Settings(home=home)
    clocks = (
        "  - id: circia\n    starts_at: determined\n    owner: security\n"
        "    events: {ransom-payment: paid}\n"
        "    stops_at: {report: reported, ransom-payment-report: payment-reported}"
    )
    gates = ["determined", "paid", "reported", "payment-reported"]
    path = write_runbook(tmp_path / "library", clocks, gates)
    open_waiting(settings, path, "inc-ransom", gates)
    ack(settings, "inc-ransom", "determined", "covered incident: OT network encrypted")
    (started,) = clock_records(settings, "inc-ransom")
    assert [m["after"] for m in started.data["pending"]] == ["ransom-payment"]
    ack(settings, "inc-ransom", "paid", "paid 3 BTC at 14:02 UTC")
    payment = clock_records(settings, "inc-ransom")[-1]
    (paid,) = acks(settings, "inc-ransom", "paid")
    assert (payment.data["anchor"], payment.data["reasoning"]) == (
        "ransom-payment",
        "paid 3 BTC at 14:02 UTC",
    )
    due = parse_utc(payment.data["milestones"][0]["deadline"])
    assert due == parse_utc(paid) + timedelta(hours=24)

    untracked = clocks.replace("    events: {ransom-payment: paid}\n", "").replace(
        ", ransom-payment-report: payment-reported", ""
    )
    path = write_runbook(tmp_path / "other", untracked, gates, runbook_id="other")
    open_waiting(settings, path, "inc-no-payment", gates)
    ack(settings, "inc-no-payment", "determined", "covered incident")
    (started,) = clock_records(settings, "inc-no-payment")
    assert [m["id"] for m in started.data["milestones"]] == ["report"]
    assert started.data["pending"] == []


def test_each_clock_record_is_written_once_whoever_looks(home: Path, tmp_path: Path) -> None:
    """Marking the clocks again (the server's clock after an answer did) records nothing new,
    and a start missed by a crash after the answer is caught up."""
    settings = Settings(home=home)
    path = write_runbook(tmp_path / "library", GDPR, ["determined", "notified"])
    open_waiting(settings, path, "inc-once", ["determined", "notified"])
    ack(settings, "inc-once", "determined", "confirmed")
    folder = incident_folder(settings.incidents_dir, "inc-once")
    runbook = parse_runbook(folder / "runbook.md")
    ref = RunbookRef(id=runbook.id, version=1, sha256=runbook.sha256)
    with Ledger(folder, "inc-once", ref) as ledger:
        assert mark_clocks(ledger, utc_now()) == []
        # The notified gate's answer recorded without its clock record, as a crash would leave it.
        ledger.record(Event.GATE_ACKNOWLEDGED, step="notified", actor="lee", data={"note": "ref 9"})
        (caught_up,) = mark_clocks(ledger, utc_now())
    assert (caught_up.event, caught_up.data["reference"]) == (Event.CLOCK_STOPPED, "ref 9")
