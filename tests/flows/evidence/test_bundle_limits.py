"""Bundles are read within limits: crafted zips are refused by name and limit, never a traceback."""

from __future__ import annotations

import os
import struct
import tracemalloc
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from flows.evidence.bundle import MANIFEST_FILE, export_bundle, verify_bundle
from flows.evidence.incident import Incident, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, RunbookRef
from flows.evidence.seal import seal_incident
from flows.evidence.unzip import KiB, Limits, MiB, nests_deeper
from flows.runbook.parse import parse_runbook
from integrations.forensics.store import ArtifactStore
from tests.flows.evidence.test_bundle import GATED, make_incident
from tests.support import run_cli

DEEP = b"[" * 200_000 + b"]" * 200_000
"""JSON nested 200,000 deep: Python's json overflows its recursion limit on it."""


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A sealed incident exported to a zip."""
    folder = make_incident(tmp_path / "incidents")
    seal_incident(folder)
    return export_bundle(folder, tmp_path / "out" / "bundle.zip")


def members(bundle: Path) -> dict[str, bytes]:
    """Every member of a zip, by name."""
    with zipfile.ZipFile(bundle) as source:
        return {name: source.read(name) for name in source.namelist()}


def rewrite(
    bundle: Path,
    change: dict[str, bytes | Iterable[bytes]],
    compression: dict[str, int] | None = None,
) -> None:
    """Rewrite the zip with members replaced or added; an iterable member streams in lazily."""
    contents: dict[str, bytes | Iterable[bytes]] = {**members(bundle), **change}
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, data in contents.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = (compression or {}).get(name, zipfile.ZIP_DEFLATED)
            with target.open(info, "w", force_zip64=True) as out:
                for chunk in [data] if isinstance(data, bytes) else data:
                    out.write(chunk)


def repeated(chunk: bytes, times: int) -> Iterator[bytes]:
    """`chunk` `times` over, one at a time: large members without holding them in memory."""
    for _ in range(times):
        yield chunk


def central_entry(data: bytes | bytearray, name: str) -> int:
    """The offset of `name`'s central directory header in the zip's bytes."""
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + length] == name.encode():
            return at
        at = data.find(b"PK\x01\x02", at + 1)
    raise AssertionError(f"{name} is not in the zip")


def patch(bundle: Path, name: str, central: dict[int, int], local: dict[int, int]) -> None:
    """Overwrite 32-bit fields of a member's central directory header and local header.

    Keys are offsets into the header: 16 CRC, 20 compressed size, 24 size (central); 14, 18, 22
    (local); flags are 16-bit at 8 (central) and 6 (local), written as such.
    """
    data = bytearray(bundle.read_bytes())
    entry = central_entry(data, name)
    header = struct.unpack_from("<L", data, entry + 42)[0]
    for base, fields in ((entry, central), (header, local)):
        for offset, value in fields.items():
            width = "<H" if offset in (6, 8) else "<L"
            struct.pack_into(width, data, base + offset, value)
    bundle.write_bytes(bytes(data))


def peak_memory(bundle: Path, limits: Limits | None = None) -> tuple[list[str], int]:
    """The problems verify_bundle finds and the peak bytes Python allocated finding them."""
    tracemalloc.start()
    try:
        problems = verify_bundle(bundle, limits=limits).problems
        return problems, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def incident_with_artifacts(root: Path, count: int, size: int) -> Path:
    """An incident whose forensics stored `count` artifacts of `size` bytes, with custody."""
    runbook = parse_runbook(GATED)
    incident = Incident(
        id="gated-20260101-000000-many",
        runbook=runbook_info(runbook, GATED),
        inputs={},
        started_at="2026-01-01T00:00:00+00:00",
    )
    folder = open_incident(root, incident, GATED.read_text())
    store = ArtifactStore(folder)
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident.id, ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False})
        for n in range(count):
            stored = store.put_bytes(n.to_bytes(4, "big") + os.urandom(size - 4))
            path = stored.path.relative_to(folder).as_posix()
            custody = {"collector": "file", "name": f"/var/log/app{n}.log"}
            custody |= {"sha256": stored.sha256, "size": stored.size, "path": path}
            ledger.record(Event.ARTIFACT_COLLECTED, step="snap", data=custody)
        ledger.record(Event.NOTE, step="snap", data={"text": "[[[ brackets in a string ]]]" * 50})
        ledger.record(Event.RUN_FINISHED, data={"status": "succeeded", "waiting": []})
    return folder


def test_an_incident_of_a_thousand_artifacts_verifies_within_the_default_limits(
    tmp_path: Path,
) -> None:
    """A sealed export of 1,000 artifacts and bracket-filled strings verifies by default."""
    folder = incident_with_artifacts(tmp_path / "incidents", 1000, 4 * KiB)
    seal_incident(folder)
    check = verify_bundle(export_bundle(folder, tmp_path / "bundle.zip"))
    assert (check.ok, check.problems, check.artifacts) == (True, [], 1000)


def test_a_zip_bomb_is_refused_by_its_ratio_before_it_is_decompressed(bundle: Path) -> None:
    """A ledger of 64 MiB of spaces (1,000:1) is refused from the directory, memory staying low."""
    rewrite(bundle, {"ledger.jsonl": repeated(b" " * MiB, 64)})
    problems, peak = peak_memory(bundle)
    assert len(problems) == 1 and problems[0].startswith("ledger.jsonl: declares a 1,0")
    assert problems[0].endswith("past the 500:1 compression ratio limit (zip bomb?)")
    assert peak < 4 * MiB


def test_a_member_declaring_more_than_the_member_limit_is_refused(bundle: Path) -> None:
    """A member whose declared size is past the member limit is refused before it is read."""
    rewrite(bundle, {"ledger.jsonl": os.urandom(2 * MiB)})
    problems = verify_bundle(bundle, limits=Limits(member_size=MiB)).problems
    assert problems == ["ledger.jsonl: declares 2 MiB, past the 1 MiB member limit (zip bomb?)"]


def test_a_ledger_declaring_one_and_a_half_gib_is_refused_unread(bundle: Path) -> None:
    """A directory entry claiming 1.5 GiB is refused by it, whatever its local header says."""
    patch(bundle, "ledger.jsonl", central={24: 3 * 512 * MiB}, local={22: 10})
    problems, peak = peak_memory(bundle)
    assert problems == ["ledger.jsonl: declares 1.5 GiB, past the 256 MiB member limit (zip bomb?)"]
    assert peak < 4 * MiB


def test_a_member_understating_its_size_is_not_inflated_past_it(bundle: Path) -> None:
    """A member declaring 100 bytes but inflating to 8 MiB is read to 100 bytes and refused."""
    rewrite(bundle, {"ledger.jsonl": repeated(os.urandom(KiB) * 64, 128)})
    patch(bundle, "ledger.jsonl", central={24: 100}, local={22: 100})
    problems, peak = peak_memory(bundle)
    assert "ledger.jsonl: damaged in the zip (checksum mismatch)" in problems
    assert peak < 4 * MiB


def test_an_unlisted_member_is_refused_without_being_read(bundle: Path) -> None:
    """A member the manifest does not list is named as added and never decompressed."""
    planted = b"planted!" * 1024
    rewrite(bundle, {"artifacts/ff/extra": planted}, {"artifacts/ff/extra": zipfile.ZIP_STORED})
    data = bundle.read_bytes()
    at = data.index(planted)  # stored as is: damage one byte, which reading it would notice
    bundle.write_bytes(data[:at] + b"P" + data[at + 1 :])
    problems = verify_bundle(bundle).problems
    assert problems == [f"artifacts/ff/extra: not listed in {MANIFEST_FILE} (added?)"]


def test_an_unlisted_four_gib_member_is_refused_by_its_declared_size(bundle: Path) -> None:
    """An added member declaring 4 GiB is refused from the directory, with nothing decompressed."""
    rewrite(bundle, {"artifacts/ff/extra": b"x"})
    patch(bundle, "artifacts/ff/extra", central={24: 0xFFFF_FFF0}, local={})
    problems, peak = peak_memory(bundle)
    assert problems == [
        "artifacts/ff/extra: declares 4 GiB, past the 256 MiB member limit (zip bomb?)"
    ]
    assert peak < 4 * MiB


def test_members_past_the_total_limit_are_refused(bundle: Path) -> None:
    """A bundle whose members add up past the total limit is refused, naming the zip."""
    problems = verify_bundle(bundle, limits=Limits(total_size=KiB)).problems
    assert len(problems) == 1
    assert problems[0].startswith(f"{bundle}: its members declare ")
    assert problems[0].endswith(" in all, past the 1 KiB total limit")


def test_too_many_members_are_refused_before_the_directory_is_parsed(tmp_path: Path) -> None:
    """A zip of 10,001 members is refused by the count its end record declares."""
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as target:
        for n in range(10_001):
            target.writestr(f"artifacts/{n}", b"")
    problems = verify_bundle(path).problems
    assert problems == [f"{path}: holds 10,001 members, past the 10,000-member limit"]


def end_record(path: Path) -> int:
    """The offset of the zip's end of central directory record (no comment, no zip64)."""
    return path.stat().st_size - 22


def test_a_member_count_the_end_record_understates_is_still_refused(tmp_path: Path) -> None:
    """An end record claiming one member does not hide the 10,001 its directory holds."""
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as target:
        for n in range(10_001):
            target.writestr(f"artifacts/{n}", b"")
    data = bytearray(path.read_bytes())
    struct.pack_into("<HH", data, end_record(path) + 8, 1, 1)
    path.write_bytes(bytes(data))
    problems = verify_bundle(path).problems
    assert problems == [f"{path}: holds 10,001 members, past the 10,000-member limit"]


def test_a_central_directory_too_large_for_the_member_limit_is_refused(tmp_path: Path) -> None:
    """A directory past what the member limit allows is refused before zipfile reads it."""
    path = tmp_path / "names.zip"
    with zipfile.ZipFile(path, "w") as target:
        for n in range(40):
            target.writestr(f"artifacts/{n:0200}", b"")
    data = bytearray(path.read_bytes())
    struct.pack_into("<HH", data, end_record(path) + 8, 1, 1)
    path.write_bytes(bytes(data))
    problems = verify_bundle(path, limits=Limits(members=4)).problems
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: its central directory takes ")
    assert problems[0].endswith("past the 4 KiB that the 4-member limit allows")


@pytest.mark.parametrize("name", [MANIFEST_FILE, "incident.json", "head.json", "seal.json"])
def test_json_nested_200000_deep_is_refused_by_the_depth_limit(bundle: Path, name: str) -> None:
    """A JSON file nested 200,000 deep is refused by the nesting limit, not a RecursionError."""
    rewrite(bundle, {name: DEEP})
    assert verify_bundle(bundle).problems == [
        f"{name}: JSON nested deeper than the 256-level limit"
    ]


def test_a_ledger_record_nested_200000_deep_is_refused_by_the_depth_limit(bundle: Path) -> None:
    """A ledger line nested 200,000 deep is refused by the nesting limit, naming its record."""
    first = members(bundle)["ledger.jsonl"].split(b"\n")[0]
    rewrite(bundle, {"ledger.jsonl": first + b"\n" + DEEP + b"\n"})
    assert verify_bundle(bundle).problems == [
        "ledger.jsonl: record 2: JSON nested deeper than the 256-level limit"
    ]


def test_a_ledger_line_past_the_line_limit_is_refused(bundle: Path) -> None:
    """A record longer than the line limit is refused, naming the record."""
    ledger = members(bundle)["ledger.jsonl"]
    rewrite(bundle, {"ledger.jsonl": ledger + b'{"seq":5,"pad":"' + b"x" * 2 * KiB + b'"}\n'})
    problems = verify_bundle(bundle, limits=Limits(line_length=KiB)).problems
    assert problems == ["ledger.jsonl: record 5: longer than the 1 KiB line limit"]


def test_a_ledger_line_that_never_ends_is_refused_at_the_line_limit(bundle: Path) -> None:
    """A ledger of one 8 MiB line without a newline is refused once the line passes the limit."""
    noise = os.urandom(KiB).hex().encode()
    rewrite(bundle, {"ledger.jsonl": repeated(noise * 512, 8)})
    problems, peak = peak_memory(bundle, Limits(line_length=64 * KiB))
    assert problems == ["ledger.jsonl: record 1: longer than the 64 KiB line limit"]
    assert peak < 4 * MiB


def test_a_member_compressed_with_bzip2_is_refused(bundle: Path) -> None:
    """A member compressed other than stored or deflated is refused before it is decompressed."""
    rewrite(bundle, {}, {"ledger.jsonl": zipfile.ZIP_BZIP2})
    assert verify_bundle(bundle).problems == [
        "ledger.jsonl: compressed with zip method 12; a bundle's members are stored or deflated"
    ]


def test_an_encrypted_member_is_refused(bundle: Path) -> None:
    """A member flagged as encrypted is refused instead of asking for a password."""
    patch(bundle, "ledger.jsonl", central={8: 1}, local={6: 1})
    assert verify_bundle(bundle).problems == [
        "ledger.jsonl: encrypted or patch data; a bundle's members are plain"
    ]


def test_depth_counts_brackets_outside_strings_only() -> None:
    """Brackets inside JSON strings, escaped quotes included, do not count as nesting."""
    assert not nests_deeper(b'{"a":"\\"[[[[{{{{"}', 1)
    assert nests_deeper(b'{"a":[[{"b":"]]]]"}]]}', 3)
    assert not nests_deeper(b'{"a":[[{"b":"]]]]"}]]}', 4)


def test_the_cli_prints_a_refusal_not_a_traceback(bundle: Path, tmp_path: Path) -> None:
    """`runbook evidence verify` on a deeply nested manifest says TAMPERED and the limit."""
    rewrite(bundle, {MANIFEST_FILE: DEEP})
    result = run_cli(tmp_path / "home", "evidence", "verify", str(bundle))
    assert result.returncode == 1, result.stderr
    assert (
        result.stdout == f"TAMPERED: {MANIFEST_FILE}: JSON nested deeper than the 256-level limit\n"
    )
    assert "Traceback" not in result.stderr
