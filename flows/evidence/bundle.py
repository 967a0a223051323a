"""The evidence bundle: one zip an auditor verifies offline, with a manifest of every file's hash.

The manifest also records the ledger's count and head hash at export: a copy of the head kept
off the machine, so a later rewrite of the incident folder no longer matches the bundle.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict

from flows.errors import Problem, RunbookError
from flows.evidence.incident import DOCUMENT_FILE, INCIDENT_FILE, SCENARIO_FILE
from flows.evidence.records import HEAD_FILE, LEDGER_FILE
from flows.evidence.seal import SealCheck, verify_seal
from flows.evidence.unzip import Damaged, Digest, Limits, Refused, UntrustedZip, open_zip
from flows.evidence.verify import (
    ARTIFACTS_DIR,
    SEAL_FILE,
    Custody,
    Verification,
    artifact_name,
    check_artifacts,
    verify_ledger,
)
from flows.times import utc_stamp

MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"
BUNDLE_VERSION = 1
_CHUNK = 1024 * 1024


class BundleCheck(BaseModel):
    """The outcome of `verify_bundle`: intact or not, every problem, what the bundle holds."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    problems: list[str]
    records: int = 0
    artifacts: int = 0
    seal: SealCheck | None = None
    """The seal's check, when the bundle holds one: its timestamp and whether it verified."""


class _Entry(BaseModel):
    path: str
    sha256: str
    size: int


class _Head(BaseModel):
    count: int
    head_hash: str


class _Manifest(BaseModel):
    """The parts of manifest.json verification relies on."""

    ledger: _Head
    files: list[_Entry]


def export_bundle(folder: Path, out: Path, *, exported_by: str | None = None) -> Path:
    """Write the incident's evidence bundle (a zip) to `out` and return its path.

    Refuses a ledger that does not verify: copy such a folder as it is instead. The manifest
    and the report say who exported it (`exported_by`, else the OS user) and when; the ledger
    is not written to, so the bundle holds the evidence exactly as it stood.
    """
    folder, out = Path(folder), Path(out)
    with tempfile.TemporaryDirectory() as staging:
        # One snapshot of the small files, so a run appending meanwhile cannot split them: the
        # head is read before the ledger, since a head behind its ledger verifies, one ahead not.
        snapshot = Path(staging)
        documents = (DOCUMENT_FILE, SCENARIO_FILE)
        for name in (HEAD_FILE, LEDGER_FILE, INCIDENT_FILE, *documents, SEAL_FILE):
            if (folder / name).exists():
                (snapshot / name).write_bytes((folder / name).read_bytes())
        verification = verify_ledger(snapshot, artifacts=False)  # they stay in the folder
        if verification.ok:
            swapped = check_artifacts(folder, verification.custody)
            if swapped is not None:
                verification = replace(
                    verification, ok=False, problem=swapped[0], bad_seq=swapped[1]
                )
        if not verification.ok or verification.head_hash is None:
            raise RunbookError(
                Problem(
                    folder / LEDGER_FILE,
                    verification.bad_seq,
                    f"cannot export: {verification.problem or 'the ledger has no records'}",
                    hint="run `runbook evidence verify`; copy the folder as it is for forensics",
                )
            )
        by, at = exported_by or _os_user(), utc_stamp(timespec="seconds")
        summary = _verification_summary(verification, snapshot)
        report = snapshot / REPORT_FILE
        report.write_text(_report(snapshot, summary, by, at))
        sources = {path.name: path for path in snapshot.iterdir()}
        sources |= dict(_artifact_files(folder))
        manifest = {
            "version": BUNDLE_VERSION,
            "incident": folder.name,
            "exported_at": at,
            "exported_by": by,
            "ledger": {"count": verification.count, "head_hash": verification.head_hash},
            "files": [
                {"path": name, "sha256": _sha256_file(path), "size": path.stat().st_size}
                for name, path in sorted(sources.items())
            ],
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = out.with_suffix(out.suffix + ".tmp")
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr(MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
            for name, path in sorted(sources.items()):
                bundle.write(path, name)
        temporary.replace(out)
    return out


def _artifact_files(folder: Path) -> Iterator[tuple[str, Path]]:
    root = folder / ARTIFACTS_DIR
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        # Dot-files are the store's half-written incoming copies, not artifacts.
        if path.is_file() and not path.name.startswith("."):
            yield path.relative_to(folder).as_posix(), path


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME or USER and no passwd entry, as in some containers
        return f"uid {os.getuid()}"


def _verification_summary(verification: Verification, folder: Path) -> dict[str, Any]:
    """Each check export made, by name: `ok` (None: not made), `detail`, and other facts."""
    summary: dict[str, Any] = {}
    for check in verification.checks:
        summary[check.name] = {"ok": check.ok, "detail": check.detail}
    summary["chain"] |= {"records": verification.count, "head": verification.head_hash}
    # Export checks the artifacts in the folder itself (verify_ledger left them to it), and
    # only a ledger whose artifacts all match is exported.
    custody = verification.custody
    summary["artifacts"] = {
        "ok": verification.ok,
        "detail": f"{len(custody)} artifact(s) present and hashing to their custody records",
    }
    if (folder / SEAL_FILE).exists():
        summary |= _seal_summary(verify_seal(folder))
    else:
        summary["seal root"] = {"ok": None, "detail": "not sealed (runbook evidence seal)"}
    return summary


def _seal_summary(seal: SealCheck) -> dict[str, Any]:
    """The seal's root and its timestamp, as two checks."""
    root: dict[str, Any] = {
        "ok": seal.ok,
        "detail": "; ".join(seal.problems)
        or f"the Merkle root of records 1..{seal.count} is the one sealed",
        "root": seal.root,
    }
    stamp: dict[str, Any]
    if seal.gen_time is None:
        stamp = {"ok": None, "detail": "the seal has no timestamp (seal with --tsa URL)"}
    elif seal.time_verified:
        stamp = {"ok": True, "detail": f"signed at {seal.gen_time}, verified"}
    else:
        # Export has no trust anchor: the token's signature is the auditor's to check.
        stamp = {
            "ok": None,
            "detail": f"the token says {seal.gen_time}; its signature is not checked at export "
            "(runbook evidence verify BUNDLE --tsa-root CERT.pem)",
        }
    return {"seal root": root, "timestamp": stamp}


def _report(folder: Path, verification: Mapping[str, Any], by: str, at: str) -> str:
    # Imported here: the report's templates and Markdown parser add 80 ms that verifying a
    # bundle never needs, only exporting one.
    from flows.evidence.report import Exported, render_report

    return render_report(folder, verification, Exported(by=by, at=at))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- verifying ----------------------------------------------------------------------------------


def verify_bundle(
    zip_path: Path, trusted_roots: list[bytes] | None = None, limits: Limits | None = None
) -> BundleCheck:
    """Check a bundle offline: manifest hashes, no extra files, the ledger, artifacts, the seal.

    `trusted_roots` (PEM) also checks the seal's timestamp signature. The zip is read within
    `limits` (`flows.evidence.unzip`'s defaults if None); a bundle past one is refused.
    """
    try:
        bundle = open_zip(zip_path, limits)
    except Refused as refusal:
        return BundleCheck(ok=False, problems=refusal.problems)
    except (OSError, zipfile.BadZipFile, NotImplementedError) as error:
        return BundleCheck(ok=False, problems=[f"{zip_path}: not a readable zip ({error})"])
    with bundle, tempfile.TemporaryDirectory() as scratch:
        try:
            return _verify_open(bundle, Path(scratch), trusted_roots)
        except Refused as refusal:
            return BundleCheck(ok=False, problems=refusal.problems)


def _verify_open(
    bundle: UntrustedZip, scratch: Path, trusted_roots: list[bytes] | None
) -> BundleCheck:
    names = bundle.names()
    problems = [f"{name}: appears more than once" for name in sorted(_duplicates(names))]
    problems += [f"{name}: unsafe path in the bundle" for name in names if not _safe(name)]
    if problems:
        return BundleCheck(ok=False, problems=problems)
    manifest, problem = _read_manifest(bundle, names)
    if manifest is None:
        return BundleCheck(ok=False, problems=[problem or MANIFEST_FILE])
    listed = {entry["path"]: entry for entry in manifest["files"]}
    members = [name for name in names if not name.endswith("/") and name != MANIFEST_FILE]
    digests: dict[str, Digest] = {}
    # Only listed members are read: an added one is named without decompressing any of it.
    for name in (name for name in members if name in listed):
        try:
            digests[name] = _read_member(bundle, name, scratch)
        except Damaged as damage:
            # A member changed in place without its zip checksum: unreadable is tampered too.
            problems.append(f"{name}: damaged in the zip ({damage})")
    for name, entry in sorted(listed.items()):
        if name not in names:
            problems.append(f"{name}: listed in {MANIFEST_FILE} but missing")
        elif name not in digests:
            continue
        elif (digests[name].sha256, digests[name].size) != (entry["sha256"], entry["size"]):
            problems.append(f"{name}: content differs from {MANIFEST_FILE} (changed?)")
    problems += [
        f"{name}: not listed in {MANIFEST_FILE} (added?)"
        for name in sorted(members)
        if name not in listed
    ]
    hashes = {name: digest.sha256 for name, digest in digests.items()}
    verification = verify_ledger(scratch, artifacts=False)  # checked in the zip, below
    if not verification.ok:
        problems.append(f"{LEDGER_FILE}: {verification.problem}")
    problems += _head_problems(manifest["ledger"], verification)
    problems += _artifact_problems(verification.custody, hashes)
    seal = verify_seal(scratch, trusted_roots) if SEAL_FILE in hashes else None
    if seal is not None:
        problems += seal.problems
    return BundleCheck(
        ok=not problems,
        problems=problems,
        records=verification.count,
        artifacts=sum(1 for name in hashes if name.startswith(ARTIFACTS_DIR + "/")),
        seal=seal,
    )


def _duplicates(names: list[str]) -> set[str]:
    return {name for name, times in Counter(names).items() if times > 1}


def _safe(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and "\\" not in name


def _read_manifest(
    bundle: UntrustedZip, names: list[str]
) -> tuple[dict[str, Any] | None, str | None]:
    if MANIFEST_FILE not in names:
        return None, f"{MANIFEST_FILE}: missing (not an evidence bundle?)"
    try:
        manifest = json.loads(bundle.read_document(MANIFEST_FILE)[0])
        shape = _Manifest.model_validate(manifest)
    except Damaged as damage:
        return None, f"{MANIFEST_FILE}: damaged in the zip ({damage})"
    except ValueError as error:
        return None, f"{MANIFEST_FILE}: not a valid manifest ({error})"
    return shape.model_dump(), None


def _read_member(bundle: UntrustedZip, name: str, scratch: Path) -> Digest:
    """Hash a member; the files a folder's verify reads go to `scratch` on the way: the ledger
    and head, the documents (runbook, a drill's scenario) and facts the records must match,
    and the seal."""
    if name == LEDGER_FILE:
        return bundle.copy_lines(name, scratch / name)
    if name in (HEAD_FILE, INCIDENT_FILE, SEAL_FILE):
        data, digest = bundle.read_document(name)  # JSON that verify parses whole
        (scratch / name).write_bytes(data)
        return digest
    documents = (DOCUMENT_FILE, SCENARIO_FILE)
    return bundle.digest(name, scratch / name if name in documents else None)


def _head_problems(claimed: Mapping[str, Any], verification: Verification) -> list[str]:
    if claimed["count"] != verification.count:
        return [
            f"{MANIFEST_FILE}: records {claimed['count']} records but {LEDGER_FILE} holds "
            f"{verification.count}"
        ]
    if claimed["head_hash"] != verification.head_hash:
        return [
            f"record {verification.count}: hash differs from the head hash in {MANIFEST_FILE} "
            "(rewritten?)"
        ]
    return []


def _artifact_problems(custody: Sequence[Custody], hashes: Mapping[str, str]) -> list[str]:
    problems = []
    for held in custody:
        path = artifact_name(held.sha256)
        where = f"record {held.seq} ({held.collector})"
        if path not in hashes:
            problems.append(f"{where}: artifact {path} is missing")
        elif hashes[path] != held.sha256:
            problems.append(f"{where}: artifact {path} does not hash to {held.sha256}")
    return problems
