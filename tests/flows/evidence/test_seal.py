"""Sealing a ledger: RFC 6962 Merkle trees, seal.json, and RFC 3161 timestamps from a real TSA."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.errors import RunbookError
from flows.evidence.incident import Incident, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import LEDGER_FILE, Event, RunbookRef
from flows.evidence.seal import (
    inclusion_proof,
    merkle_root,
    seal_incident,
    verify_inclusion,
    verify_seal,
)
from flows.evidence.verify import SEAL_FILE, read_records
from flows.runbook.parse import parse_runbook
from tests.fakes.tsa import Authority, TimestampServer, running_tsa
from tests.support import FIXTURES

GATED = FIXTURES / "runbooks" / "gated.md"
INCIDENT_ID = "gated-20260101-000000-seal"


def make_incident(root: Path, records: int = 5) -> Path:
    """An incident folder of the gated runbook with `records` note records in its ledger."""
    runbook = parse_runbook(GATED)
    info = runbook_info(runbook, GATED)
    incident = Incident(
        id=INCIDENT_ID, runbook=info, inputs={}, started_at="2026-01-01T00:00:00+00:00"
    )
    folder = open_incident(root, incident, GATED.read_text())
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, INCIDENT_ID, ref) as ledger:
        for number in range(records):
            ledger.record(Event.NOTE, data={"text": f"note {number}"})
    return folder


@pytest.fixture(scope="module")
def authority() -> Authority:
    """One throwaway CA and TSA certificate for the module (RSA keys take a moment)."""
    return Authority.create()


@pytest.fixture
def tsa(authority: Authority) -> Iterator[TimestampServer]:
    """A timestamp authority on 127.0.0.1."""
    with running_tsa(authority) as server:
        yield server


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


LEAVES = [bytes([n]) * 3 for n in range(7)]


def test_root_of_no_leaves_is_the_hash_of_nothing() -> None:
    """RFC 6962: the tree hash of an empty list is SHA-256 of the empty string."""
    assert merkle_root([]) == _h(b"")


def test_root_of_one_leaf_is_its_prefixed_hash() -> None:
    """A single leaf hashes as SHA-256(0x00 || leaf)."""
    assert merkle_root([b"a"]) == _h(b"\x00a")


def test_root_splits_at_the_largest_power_of_two_below_the_size() -> None:
    """Three leaves split 2 + 1, with nodes hashed as SHA-256(0x01 || left || right)."""
    a, b, c = (_h(b"\x00" + leaf) for leaf in (b"a", b"b", b"c"))
    assert merkle_root([b"a", b"b", b"c"]) == _h(b"\x01" + _h(b"\x01" + a + b) + c)


def test_root_matches_the_rfc_6962_test_vector() -> None:
    """The root over the eight leaves of certificate-transparency's test data is the known one."""
    leaves = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    expected = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert merkle_root(leaves).hex() == expected


@pytest.mark.parametrize("size", range(1, 8))
def test_every_leaf_has_a_proof_that_verifies(size: int) -> None:
    """For trees of 1..7 leaves, each leaf's inclusion proof verifies against the root."""
    leaves, root = LEAVES[:size], merkle_root(LEAVES[:size])
    for index, leaf in enumerate(leaves):
        assert verify_inclusion(leaf, index, size, inclusion_proof(index, leaves), root)


def test_a_proof_fails_for_another_leaf() -> None:
    """A proof for leaf 3 does not vouch for different data at index 3."""
    proof, root = inclusion_proof(3, LEAVES), merkle_root(LEAVES)
    assert not verify_inclusion(b"forged", 3, len(LEAVES), proof, root)


def test_a_proof_fails_at_another_index() -> None:
    """A proof for leaf 3 does not verify when claimed for index 2."""
    proof, root = inclusion_proof(3, LEAVES), merkle_root(LEAVES)
    assert not verify_inclusion(LEAVES[3], 2, len(LEAVES), proof, root)


def test_a_proof_fails_outside_the_tree() -> None:
    """An index at or past the size never verifies."""
    assert not verify_inclusion(LEAVES[0], 7, 7, inclusion_proof(0, LEAVES), merkle_root(LEAVES))


def test_seal_covers_the_records_before_it(tmp_path: Path) -> None:
    """seal.json holds the root over records 1..count and the hash of record count."""
    folder = make_incident(tmp_path)
    seal = seal_incident(folder)
    records = read_records(folder)
    leaves = [bytes.fromhex(r.hash) for r in records[:5]]
    written = json.loads((folder / SEAL_FILE).read_text())
    assert (seal.count, written["root"]) == (5, merkle_root(leaves).hex())
    assert written["head_hash"] == records[4].hash
    assert written["algorithm"] == "rfc6962-sha256" and written["tsa"] is None


def test_seal_appends_a_sealed_record_naming_the_root(tmp_path: Path) -> None:
    """The ledger's next record is `evidence.sealed` with the root, under the incident's runbook."""
    folder = make_incident(tmp_path)
    seal = seal_incident(folder)
    record = read_records(folder)[-1]
    assert (record.seq, record.event) == (6, Event.EVIDENCE_SEALED)
    assert record.data["root"] == seal.root
    assert record.runbook.sha256 == parse_runbook(GATED).sha256


def test_a_fresh_seal_verifies(tmp_path: Path) -> None:
    """verify_seal accepts the seal just made, even with records appended after it."""
    folder = make_incident(tmp_path)
    seal_incident(folder)
    check = verify_seal(folder)
    assert check.ok, check.problems


def test_seal_refuses_a_broken_ledger(tmp_path: Path) -> None:
    """A ledger that does not verify is not sealed."""
    folder = make_incident(tmp_path)
    path = folder / LEDGER_FILE
    path.write_text(path.read_text().replace("note 2", "note X"))
    with pytest.raises(RunbookError, match="cannot seal: record 3"):
        seal_incident(folder)


def test_an_edited_sealed_record_breaks_the_seal(tmp_path: Path) -> None:
    """Rewriting a sealed record (and its chain) changes the root the seal names."""
    folder = make_incident(tmp_path)
    seal_incident(folder)
    seal = json.loads((folder / SEAL_FILE).read_text())
    seal["root"] = "00" * 32
    (folder / SEAL_FILE).write_text(json.dumps(seal))
    check = verify_seal(folder)
    assert not check.ok
    assert any("Merkle root differs" in problem for problem in check.problems)


def test_a_truncated_ledger_breaks_the_seal(tmp_path: Path) -> None:
    """A seal over more records than the ledger holds fails."""
    folder = make_incident(tmp_path)
    seal_incident(folder)
    seal = json.loads((folder / SEAL_FILE).read_text())
    seal["count"] = 40
    (folder / SEAL_FILE).write_text(json.dumps(seal))
    assert "seals 40 records" in verify_seal(folder).problems[0]


def test_a_missing_seal_is_reported(tmp_path: Path) -> None:
    """verify_seal on an unsealed incident says so."""
    folder = make_incident(tmp_path)
    assert verify_seal(folder).problems == [f"{SEAL_FILE} is missing (never sealed?)"]


def test_seal_with_a_tsa_stores_its_token(tmp_path: Path, tsa: TimestampServer) -> None:
    """With a TSA the seal carries its URL, its time and a token over the root."""
    folder = make_incident(tmp_path)
    seal = seal_incident(folder, tsa_url=tsa.url)
    assert seal.tsa is not None and seal.tsa.url == tsa.url
    assert seal.tsa.gen_time.endswith("Z")
    assert len(tsa.requests) == 1 and tsa.requests[0].cert_req
    assert read_records(folder)[-1].data["gen_time"] == seal.tsa.gen_time


def test_a_timestamp_verifies_against_its_authoritys_root(
    tmp_path: Path, tsa: TimestampServer, authority: Authority
) -> None:
    """Given the TSA's root CA, the token's signature chain verifies."""
    folder = make_incident(tmp_path)
    seal_incident(folder, tsa_url=tsa.url)
    check = verify_seal(folder, trusted_roots=[authority.ca_pem()])
    assert check.ok, check.problems


def test_a_timestamp_fails_against_another_root(tmp_path: Path, tsa: TimestampServer) -> None:
    """A token signed under a CA the verifier does not trust fails."""
    folder = make_incident(tmp_path)
    seal_incident(folder, tsa_url=tsa.url)
    stranger = Authority.create("Stranger")
    check = verify_seal(folder, trusted_roots=[stranger.ca_pem()])
    assert not check.ok
    assert "timestamp signature does not verify" in check.problems[0]


def test_a_timestamp_of_another_root_fails(tmp_path: Path, tsa: TimestampServer) -> None:
    """A token moved onto a seal with another root fails its imprint check."""
    folder = make_incident(tmp_path)
    seal_incident(folder, tsa_url=tsa.url)
    other = make_incident(tmp_path / "other", records=3)
    seal_incident(other)
    token = json.loads((folder / SEAL_FILE).read_text())["tsa"]
    seal = json.loads((other / SEAL_FILE).read_text())
    (other / SEAL_FILE).write_text(json.dumps({**seal, "tsa": token}))
    problems = verify_seal(other).problems
    assert any("imprint is not SHA-256 of the Merkle root" in p for p in problems), problems


def test_an_earlier_seal_put_back_after_a_later_one_fails(tmp_path: Path) -> None:
    """A genuine older seal.json would vouch for fewer records than the ledger says were sealed."""
    folder = make_incident(tmp_path)
    seal_incident(folder)
    earlier = (folder / SEAL_FILE).read_bytes()
    seal_incident(folder)  # seals the first seal's record too
    assert verify_seal(folder).ok
    (folder / SEAL_FILE).write_bytes(earlier)
    problems = verify_seal(folder).problems
    assert problems and "is an earlier seal" in problems[0], problems


def test_a_seal_whose_fields_differ_from_its_record_fails(tmp_path: Path) -> None:
    """seal.json's count and head are checked against the chain; its record says the rest."""
    folder = make_incident(tmp_path)
    seal_incident(folder)
    seal = json.loads((folder / SEAL_FILE).read_text())
    fake_tsa = {"url": "https://tsa.example", "token": "", "gen_time": "2020-01-01T00:00:00Z"}
    (folder / SEAL_FILE).write_text(json.dumps({**seal, "tsa": fake_tsa}))
    problems = verify_seal(folder).problems
    assert any("gen_time, tsa differ from the evidence.sealed record" in p for p in problems)


def test_a_rejecting_tsa_stops_the_seal(tmp_path: Path, tsa: TimestampServer) -> None:
    """A TSA answering with status rejection fails the seal and writes nothing."""
    folder = make_incident(tmp_path)
    tsa.reject_with = "bad policy"
    with pytest.raises(RunbookError, match="REJECTION: bad policy"):
        seal_incident(folder, tsa_url=tsa.url)
    assert not (folder / SEAL_FILE).exists()
    assert len(read_records(folder)) == 5


def test_a_replayed_nonce_stops_the_seal(tmp_path: Path, tsa: TimestampServer) -> None:
    """A response whose nonce is not the request's is refused."""
    folder = make_incident(tmp_path)
    tsa.forced_nonce = 42
    with pytest.raises(RunbookError, match="nonce does not match"):
        seal_incident(folder, tsa_url=tsa.url)


def test_an_unreachable_tsa_stops_the_seal(tmp_path: Path, tsa: TimestampServer) -> None:
    """A TSA URL that answers 404 fails the seal with the URL named."""
    folder = make_incident(tmp_path)
    with pytest.raises(RunbookError, match="no usable response"):
        seal_incident(folder, tsa_url=tsa.url.replace("/tsa", "/nowhere"), timeout_s=2)
