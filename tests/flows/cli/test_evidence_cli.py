"""`runbook evidence seal | export | verify` as an auditor uses them, on a real run's evidence."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.engine.runner import start_run
from flows.engine.settings import Settings
from tests.support import FIXTURES

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def incident(home: Path) -> str:
    """A finished run of the gated runbook (its gate stays waiting)."""
    start_run(
        Settings(home=home, prefect="external"),
        FIXTURES / "runbooks" / "gated.md",
        {"service": "api"},
        incident_id="audit-1",
    )
    return "audit-1"


def latest_evidence_link(key: str) -> str:
    """The newest version of a Prefect artifact's data."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> str:
        async with get_client() as client:
            found = await client.read_latest_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )
            return str(found[0].data) if found else ""

    return asyncio.run(read())


def test_sealed_export_verifies_and_tampering_is_caught(
    incident: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sealed, exported bundle verifies offline; changing one byte inside it fails."""
    assert main(["evidence", "seal", incident]) == 0
    assert main(["evidence", "verify", incident]) == 0
    assert "sealed root" in capsys.readouterr().out
    bundle = tmp_path / "bundle.zip"
    assert main(["evidence", "export", incident, "--out", str(bundle)]) == 0
    assert main(["evidence", "verify", str(bundle)]) == 0
    assert "bundle.zip" in latest_evidence_link("audit-1-evidence")
    with zipfile.ZipFile(bundle) as original:
        names = original.namelist()
        assert {"ledger.jsonl", "manifest.json", "report.html", "runbook.md", "seal.json"} <= set(
            n.split("/")[-1] for n in names
        )
        entries = {name: original.read(name) for name in names}
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as copy:
        for name, data in entries.items():
            if name.endswith("ledger.jsonl"):
                data = data.replace(b'"service":"api"', b'"service":"web"', 1)
            copy.writestr(name, data)
    capsys.readouterr()
    assert main(["evidence", "verify", str(tampered)]) == 1
    assert "TAMPERED" in capsys.readouterr().out
