"""A verifier written only from docs/evidence-format.md checks the engine's ledgers.

Nothing here imports the engine to check: the verifier below follows the spec's hash, line, chain,
head, Merkle tree and seal rules with the standard library alone, so a ledger it accepts or
refuses is judged by the published format, not by our code. The engine only writes the evidence
it is given; the spec's openssl recipe checks the timestamp.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def tree_hash(leaves: list[bytes]) -> bytes:
    """The spec's Merkle tree hash MTH of one or more leaves."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + tree_hash(leaves[:k]) + tree_hash(leaves[k:])).digest()


def audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """The spec's inclusion proof of leaf m (PATH)."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*audit_path(m, leaves[:k]), tree_hash(leaves[k:])]
    return [*audit_path(m - k, leaves[k:]), tree_hash(leaves[:k])]


def proof_holds(leaf: bytes, m: int, n: int, proof: list[bytes], root: bytes) -> bool:
    """The spec's check of a proof of `leaf` at index m in a tree of n leaves."""
    if m >= n:
        return False
    fn, sn, r = m, n - 1, hashlib.sha256(b"\x00" + leaf).digest()
    for x in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + x + r).digest()
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            r = hashlib.sha256(b"\x01" + r + x).digest()
        fn, sn = fn // 2, sn // 2
    return sn == 0 and r == root


def independent_verify_seal(folder: Path) -> str | None:
    """None when seal.json follows the spec's seal rules; otherwise the first rule broken."""
    seal = json.loads((folder / "seal.json").read_bytes())
    records = [json.loads(line) for line in (folder / "ledger.jsonl").read_bytes().splitlines()]
    count = seal["count"]
    if seal["algorithm"] != "rfc6962-sha256" or not 1 <= count <= len(records):
        return "seal: algorithm or count"
    leaves = [bytes.fromhex(record["hash"]) for record in records[:count]]
    root = tree_hash(leaves)
    if root.hex() != seal["root"]:
        return "seal: root"
    if records[count - 1]["hash"] != seal["head_hash"]:
        return "seal: head hash"
    named = [
        r["data"]
        for r in records[count:]
        if r["event"] == "evidence.sealed" and r["data"]["root"] == seal["root"]
    ]
    if not named:
        return "seal: no evidence.sealed record names the root"
    tsa = seal["tsa"]
    expected = {
        "algorithm": seal["algorithm"],
        "count": count,
        "root": seal["root"],
        "head_hash": seal["head_hash"],
        "tsa": tsa["url"] if tsa else None,
        "gen_time": tsa["gen_time"] if tsa else None,
    }
    if named[0] != expected:
        return "seal: the evidence.sealed record differs"
    for m, leaf in enumerate(leaves):
        if not proof_holds(leaf, m, count, audit_path(m, leaves), root):
            return f"record {m + 1}: inclusion proof"
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


def sealed_incident(folder: Path, tsa_url: str | None = None) -> Path:
    """An incident the engine sealed twice, with records after each seal (the last one counts)."""
    from flows.evidence.ledger import Ledger
    from flows.evidence.records import Event, RunbookRef
    from flows.evidence.seal import seal_incident
    from tests.flows.evidence.test_seal import INCIDENT_ID, make_incident

    incident = make_incident(folder, records=4)
    seal_incident(incident)
    first = json.loads((incident / "ledger.jsonl").read_bytes().splitlines()[0])
    ref = RunbookRef(**first["runbook"])
    with Ledger(incident, INCIDENT_ID, ref) as ledger:
        for n in range(6):
            ledger.record(Event.NOTE, data={"text": f"after the first seal {n}"})
    seal_incident(incident, tsa_url=tsa_url)
    with Ledger(incident, INCIDENT_ID, ref) as ledger:
        ledger.record(Event.NOTE, data={"text": "after the last seal"})
    return incident


CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
"""The leaves of certificate-transparency's Merkle test data."""


def test_the_spec_tree_hash_matches_the_rfc_6962_test_vector() -> None:
    """The tree hash written from the spec gives certificate-transparency's known root."""
    root = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert tree_hash(CT_LEAVES).hex() == root


def test_the_fixture_seal_passes_the_independent_seal_check() -> None:
    """The earlier writer's seal has the root the spec gives for its first 6 records."""
    folder = FIXTURES / "ledgers" / "before-typed-records"
    assert independent_verify_seal(folder) is None
    example = re.search(r"first 6 records with root\n`([0-9a-f]{64})`", SPEC.read_text())
    assert example is not None, "the example root is no longer in docs/evidence-format.md"
    seal = json.loads((folder / "seal.json").read_bytes())
    assert (seal["count"], seal["root"]) == (6, example.group(1))


def test_a_seal_the_engine_makes_passes_the_independent_seal_check(tmp_path: Path) -> None:
    """The engine's root over records 1..count and its evidence.sealed record follow the spec."""
    folder = sealed_incident(tmp_path)
    assert independent_verify(folder) is None
    assert independent_verify_seal(folder) is None
    assert json.loads((folder / "seal.json").read_bytes())["count"] == 11


def test_the_engines_inclusion_proofs_are_the_specs() -> None:
    """For trees of 1..9 leaves the engine's proofs are the spec's PATH, and hold by its check."""
    from flows.evidence.seal import inclusion_proof

    leaves = [hashlib.sha256(bytes([n])).digest() for n in range(9)]
    for n in range(1, 10):
        root = tree_hash(leaves[:n])
        for m in range(n):
            proof = inclusion_proof(m, leaves[:n])
            assert proof == audit_path(m, leaves[:n])
            assert proof_holds(leaves[m], m, n, proof, root)
            assert not proof_holds(b"\x00" * 32, m, n, proof, root)
            assert n == 1 or not proof_holds(leaves[m], (m + 1) % n, n, proof, root)


def test_the_independent_seal_check_refuses_an_edited_seal(tmp_path: Path) -> None:
    """An edited root fails, and so does a consistent seal over fewer records no record names."""
    folder = sealed_incident(tmp_path)
    path = folder / "seal.json"
    seal = json.loads(path.read_bytes())
    path.write_text(json.dumps({**seal, "root": "00" * 32}))
    assert independent_verify_seal(folder) == "seal: root"
    records = [json.loads(line) for line in (folder / "ledger.jsonl").read_bytes().splitlines()]
    fewer = [bytes.fromhex(r["hash"]) for r in records[:9]]
    path.write_text(
        json.dumps(
            {**seal, "count": 9, "root": tree_hash(fewer).hex(), "head_hash": records[8]["hash"]}
        )
    )
    assert independent_verify_seal(folder) == "seal: no evidence.sealed record names the root"


def openssl_recipe() -> str:
    """The shell commands the spec gives for checking a seal's timestamp with openssl."""
    recipe = re.search(r"```\n(python3 -c '\nimport base64.*?)\n```", SPEC.read_text(), re.S)
    assert recipe is not None, "the openssl recipe is no longer in docs/evidence-format.md"
    assert "openssl ts -verify -token_in" in recipe.group(1)
    return recipe.group(1)


needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None,
    reason="the openssl command is not installed (apt-get install openssl)",
)


@pytest.fixture
def timestamped(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An incident sealed with a timestamp from an `openssl ts` TSA, and that TSA's root CA."""
    from tests.fakes.openssl_tsa import OpensslAuthority, running_openssl_tsa

    authority = OpensslAuthority.create(tmp_path / "tsa")
    with running_openssl_tsa(authority) as tsa:
        yield sealed_incident(tmp_path / "incidents", tsa_url=tsa.url), authority.root_pem


def run_recipe(folder: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """Run the spec's openssl recipe, as written, in `folder` with `root` as tsa-root.pem."""
    (folder / "tsa-root.pem").write_bytes(root.read_bytes())
    return subprocess.run(
        ["bash", "-e", "-c", openssl_recipe()], cwd=folder, capture_output=True, text=True
    )


@needs_openssl
def test_the_openssl_recipe_in_the_spec_runs_as_written(
    timestamped: tuple[Path, Path],
) -> None:
    """The spec's commands verify the engine's token twice, as a response and as a token."""
    folder, root = timestamped
    assert independent_verify_seal(folder) is None
    result = run_recipe(folder, root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Verification: OK") == 2


@needs_openssl
def test_the_openssl_recipe_fails_against_another_root(
    timestamped: tuple[Path, Path], tmp_path: Path
) -> None:
    """With a root that did not certify the TSA, the recipe's verification fails."""
    from tests.fakes.openssl_tsa import OpensslAuthority

    folder, _ = timestamped
    stranger = OpensslAuthority.create(tmp_path / "stranger", "Stranger TSA")
    result = run_recipe(folder, stranger.root_pem)
    assert result.returncode != 0
    assert "Verification: FAILED" in result.stdout
