"""Personal data redaction: each kind is found, checked and marked; look-alikes survive."""

from __future__ import annotations

import random
import time

import pytest

from flows.evidence import personal
from flows.evidence.personal import PersonalData, PersonalDataRedactor, marker
from flows.evidence.redact import REDACTED, Redactor
from tests.flows.evidence.shapes import PERSONAL


@pytest.mark.parametrize(("text", "value", "kind"), PERSONAL.values(), ids=PERSONAL.keys())
def test_each_kind_is_replaced_by_a_marker_naming_it(
    text: str, value: str, kind: PersonalData
) -> None:
    """A real e-mail, phone, card, national id or IBAN is replaced by `[REDACTED:<kind>]`."""
    redacted, count = PersonalDataRedactor().redact(text)
    assert value not in redacted
    assert marker(kind) in redacted
    assert count == 1


def test_the_marker_names_the_kind() -> None:
    """Markers read `[REDACTED:email]`, apart from the secrets' `[REDACTED]`."""
    assert marker(PersonalData.NATIONAL_ID) == "[REDACTED:national_id]"
    assert marker(PersonalData.EMAIL) != REDACTED


@pytest.mark.parametrize(
    "text",
    [
        "order id 4111111111111112 shipped",  # a card's prefix, but not Luhn-valid
        "trace 9234567812345670 done",  # Luhn-valid, but no card network starts with 9
        "epoch_ms=1733251234567 nanos=1733251234567890123",
        "ssn field 000-12-3456 / 666-12-3456 / 912-34-5678 / 536-00-4399 / 536-90-0000",
        "job 536904399 finished",  # nine bare digits are an id, not an SSN
        "prefix GB123456A and QQ 12 34 56 C are never allocated",
        "DE89370400440532013001 fails the IBAN check",
        "2026-11-26T10:05:07Z GET /v1/items/123456 status=200 duration_ms=12",
        "at 2026-11-26 10:05:07.123 from 192.168.100.200:8443 v1.22.333",
        "build 2026.11.26 on 26/11/2026",
        "request_id=4155552671 user_id=2125550143",  # bare digits: ids, never phone numbers
        "sha256 4a5b4155552671cd9f0e uuid 123e4567-e89b-12d3-a456-426614174000",
        "assets icon@2x.png logo@3x.svg",
        "Slack ts 1733251234.567890 in channel C0123ABCD",
        "tz 2026-11-26T10:05:07+00:00 and +05:30",
    ],
)
def test_look_alikes_survive(text: str) -> None:
    """Ids, timestamps, addresses and numbers that fail their kind's check are left as they are."""
    assert PersonalDataRedactor().redact(text) == (text, 0)


@pytest.mark.parametrize(
    "ssn", ["078-05-1120", "123-45-6789", "000-12-3456", "666-12-3456", "900-12-3456"]
)
def test_ssns_outside_the_issued_ranges_or_on_the_blocklist_survive(ssn: str) -> None:
    """Area 000, 666 and 900-999, and the numbers known from advertising, are not SSNs."""
    text = f"ssn {ssn}"
    redacted, _ = PersonalDataRedactor().redact(text)
    assert (redacted == text) is not personal.is_ssn(ssn.replace("-", ""))
    if ssn.startswith(("000", "666", "9")):
        assert redacted == text


def test_only_the_chosen_kinds_are_redacted() -> None:
    """A kind left out of the choice is kept; the chosen ones go."""
    text = "alice@example.com paid with 4111 1111 1111 1111, ssn 536-90-4399"
    redacted, count = PersonalDataRedactor([PersonalData.CARD]).redact(text)
    assert redacted == f"alice@example.com paid with {marker(PersonalData.CARD)}, ssn 536-90-4399"
    assert count == 1


def test_no_kinds_changes_nothing() -> None:
    """With every kind turned off, personal data passes through."""
    text = "alice@example.com 4111 1111 1111 1111 +44 20 7946 0018"
    assert PersonalDataRedactor([]).redact(text) == (text, 0)


def test_phone_numbers_without_a_country_code_are_read_in_the_chosen_region() -> None:
    """`020 7946 0018` is a London number for a GB install, and no number at all for a US one."""
    text = "call 020 7946 0018"
    assert PersonalDataRedactor(phone_region="GB").redact(text) == (
        f"call {marker(PersonalData.PHONE)}",
        1,
    )
    assert PersonalDataRedactor(phone_region="US").redact(text) == (text, 0)


def test_the_redactor_applies_personal_data_only_when_asked() -> None:
    """`redact(...)` keeps personal data (responders' own text); `personal=True` removes it."""
    redactor = Redactor(personal=PersonalDataRedactor())
    value = {"note": "paged alice@example.com", "token": "t-1"}
    assert redactor.redact(value) == ({"note": "paged alice@example.com", "token": REDACTED}, 1)
    redacted, count = redactor.redact(value, personal=True)
    assert redacted == {"note": f"paged {marker(PersonalData.EMAIL)}", "token": REDACTED}
    assert count == 2


def test_a_redactor_widened_with_secrets_keeps_its_personal_data() -> None:
    """with_secrets keeps the personal data choice of the redactor it widens."""
    redactor = Redactor(personal=PersonalDataRedactor([PersonalData.EMAIL])).with_secrets(["k-99"])
    assert redactor.redact("k-99 alice@example.com", personal=True) == (
        f"{REDACTED} {marker(PersonalData.EMAIL)}",
        2,
    )


def test_secrets_go_before_personal_data() -> None:
    """A token holding digits is replaced whole as a secret, not in pieces as a phone number."""
    redactor = Redactor(personal=PersonalDataRedactor())
    text = "sent Bearer 4155-555-2671-abcdef-99887766 to the api"
    assert redactor.redact(text, personal=True) == (f"sent Bearer {REDACTED} to the api", 1)


def test_redacting_twice_finds_nothing_new() -> None:
    """Output already redacted passes through unchanged with a count of zero."""
    redactor = PersonalDataRedactor()
    text = " ".join(text for text, _, _ in PERSONAL.values())
    once, count = redactor.redact(text)
    assert count == len(PERSONAL)
    assert redactor.redact(once) == (once, 0)


@pytest.mark.parametrize(
    "text",
    [
        "a@" + "a." * 50_000,
        "a" * 200_000 + "@example.com",
        "1" * 200_000,
        "12 " * 70_000,
        "+1 " * 70_000,
        "AB12 " * 40_000,
        "1-" * 100_000,
    ],
)
def test_long_unbroken_text_is_scanned_in_linear_time(text: str) -> None:
    """Hostile text (long runs, endless groups) cannot stall the personal data scans."""
    redactor = PersonalDataRedactor()
    start = time.perf_counter()
    redactor.redact(text)
    assert time.perf_counter() - start < 1.0


def test_the_skeleton_gate_never_skips_text_a_scan_would_redact() -> None:
    """A scan is passed over only when its pattern cannot match: every match leaves a trace."""
    redactor = PersonalDataRedactor()
    rng = random.Random(20261126)
    matched = found = 0
    for _ in range(20_000):
        text = _number_like(rng)
        skeleton = text.translate(personal._SKELETON)
        for scan in redactor._scans:
            if scan.pattern.search(text):
                matched += 1
                assert any(trace in skeleton for trace in scan.traces), (text, scan.traces)
        ungated = _ungated(redactor, text)
        found += ungated[1] > 0
        assert redactor.redact(text) == ungated, text
    # The random texts took the shapes often, and real values among them were redacted.
    assert matched > 1_000 and found > 20


def _number_like(rng: random.Random) -> str:
    """A few groups of digits (or capitals and digits) joined the ways numbers are written."""
    lead = rng.choice(["", "", "+", "(", "AB", "AB ", "GB", "DE89", "GB82 ", "x "])
    sizes = [rng.choice([1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 13]) for _ in range(rng.randint(1, 6))]
    groups = ["".join(rng.choice("0123456789") for _ in range(size)) for size in sizes]
    joints = ["", " ", "-", ".", ") ", "/", ":"]
    same = rng.choice(joints)
    joined = "".join(
        group + (same if rng.random() < 0.7 else rng.choice(joints)) for group in groups
    )
    return lead + joined + rng.choice(["", "C", " end", "-1", "x"])


def _ungated(redactor: PersonalDataRedactor, text: str) -> tuple[str, int]:
    """What the scans make of text when no skeleton gate is consulted."""
    total = 0
    for scan in redactor._scans:
        text, n = personal._substitute(scan.pattern, scan.kind_of, text)
        total += n
    return text, total
