"""The redaction settings: which personal data kinds go, from the environment or runbook.toml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.engine.settings import Settings
from flows.evidence.personal import PersonalData, marker

TEXT = "alice@example.com paid with 4111 1111 1111 1111 from +44 20 7946 0018"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RUNBOOK_* variable from outside the test, and no runbook.toml but the test's own."""
    for name in list(os.environ):
        if name.upper().startswith("RUNBOOK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_every_kind_is_redacted_by_default() -> None:
    """Without a setting, the install's redactor removes every kind from what arrives."""
    assert Settings().redact_personal_data == list(PersonalData)
    redacted, count = Settings().redactor().redact(TEXT, personal=True)
    assert "alice@" not in redacted and "4111" not in redacted and "7946" not in redacted
    assert count == 3


def test_the_environment_chooses_kinds_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    """RUNBOOK_REDACT_PERSONAL_DATA=email,card redacts those two kinds and keeps the rest."""
    monkeypatch.setenv("RUNBOOK_REDACT_PERSONAL_DATA", "email, card")
    settings = Settings()
    assert settings.redact_personal_data == [PersonalData.EMAIL, PersonalData.CARD]
    redacted, _ = settings.redactor().redact(TEXT, personal=True)
    assert redacted == (
        f"{marker(PersonalData.EMAIL)} paid with {marker(PersonalData.CARD)} from +44 20 7946 0018"
    )


def test_none_turns_personal_data_redaction_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """RUNBOOK_REDACT_PERSONAL_DATA=none keeps personal data; secrets still go."""
    monkeypatch.setenv("RUNBOOK_REDACT_PERSONAL_DATA", "none")
    redactor = Settings().redactor()
    assert redactor.redact(TEXT, personal=True) == (TEXT, 0)
    assert redactor.redact("password=hunter22", personal=True) == ("password=[REDACTED]", 1)


def test_runbook_toml_chooses_kinds_as_a_list(tmp_path: Path) -> None:
    """`redact_personal_data = ["phone"]` in runbook.toml redacts phone numbers alone."""
    (tmp_path / "runbook.toml").write_text('redact_personal_data = ["phone"]\n')
    redacted, count = Settings().redactor().redact(TEXT, personal=True)
    assert redacted.endswith(f"from {marker(PersonalData.PHONE)}") and "alice@" in redacted
    assert count == 1


def test_an_unknown_kind_is_refused_naming_the_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt kind fails the settings, listing the kinds there are."""
    monkeypatch.setenv("RUNBOOK_REDACT_PERSONAL_DATA", "emails")
    with pytest.raises(ValidationError, match="'email', 'phone', 'card', 'national_id' or 'iban'"):
        Settings()


def test_the_phone_region_reads_national_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """RUNBOOK_REDACT_PHONE_REGION=GB makes `020 7946 0018` a phone number."""
    text = "call 020 7946 0018"
    assert Settings().redactor().redact(text, personal=True) == (text, 0)
    monkeypatch.setenv("RUNBOOK_REDACT_PHONE_REGION", "GB")
    assert Settings().redactor().redact(text, personal=True) == (
        f"call {marker(PersonalData.PHONE)}",
        1,
    )
