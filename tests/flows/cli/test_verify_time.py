"""`runbook evidence verify` shows the signed token's time, and says whether it is trusted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.evidence.seal import seal_incident
from flows.evidence.verify import SEAL_FILE
from tests.fakes.tsa import Authority, TimestampServer, running_tsa
from tests.flows.evidence.test_seal import INCIDENT_ID, make_incident


@pytest.fixture(scope="module")
def authority() -> Authority:
    """One throwaway CA and TSA certificate for the module."""
    return Authority.create()


@pytest.fixture
def tsa(authority: Authority) -> Iterator[TimestampServer]:
    """A timestamp authority on 127.0.0.1."""
    with running_tsa(authority) as server:
        yield server


@pytest.fixture
def sealed(home: Path, tsa: TimestampServer) -> Path:
    """An incident under the engine home, sealed with a timestamp from the test TSA."""
    folder = make_incident(home / "incidents")
    seal_incident(folder, tsa_url=tsa.url)
    return folder


def verify(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str]:
    """Run `runbook evidence verify INCIDENT` with `flags`; its exit code and output."""
    code = main(["evidence", "verify", INCIDENT_ID, *flags])
    return code, capsys.readouterr().out


def test_an_edited_time_in_seal_json_is_tampering(
    sealed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Setting seal.json's gen_time to 2020 fails: the time shown is the signed token's."""
    seal = json.loads((sealed / SEAL_FILE).read_text())
    seal["tsa"]["gen_time"] = "2020-01-01T00:00:00Z"
    (sealed / SEAL_FILE).write_text(json.dumps(seal))
    code, out = verify(capsys)
    assert code == 1
    assert "not the signed token's" in out
    assert "timestamped 2020" not in out


def test_without_a_trust_anchor_the_time_is_called_unverified(
    sealed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No anchor: verify passes but says plainly that the token's signature is unchecked."""
    code, out = verify(capsys)
    assert code == 0
    assert "UNVERIFIED" in out


def test_require_timestamp_fails_an_unverified_time(
    sealed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--require-timestamp` turns an unverified time into a failure."""
    code, out = verify(capsys, "--require-timestamp")
    assert code == 1
    assert "UNVERIFIED" in out


def test_an_anchor_from_the_environment_verifies_the_time(
    sealed: Path,
    authority: Authority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """RUNBOOK_TSA_ROOTS names the authority's root: the token's time is shown as verified."""
    root = tmp_path / "tsa-root.pem"
    root.write_bytes(authority.ca_pem())
    monkeypatch.setenv("RUNBOOK_TSA_ROOTS", str(root))
    code, out = verify(capsys, "--require-timestamp")
    assert code == 0, out
    assert "verified)" in out and "UNVERIFIED" not in out


def test_require_timestamp_fails_an_unsealed_incident(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An incident never sealed has no trusted time to show."""
    make_incident(home / "incidents")
    code, out = verify(capsys, "--require-timestamp")
    assert code == 1
    assert "not sealed" in out
