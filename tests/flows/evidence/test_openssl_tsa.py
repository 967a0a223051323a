"""Sealing against a real `openssl ts` TSA that sends its chain, and checking seals with openssl."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.evidence.seal import der_ordered, seal_incident, verify_seal
from flows.evidence.verify import SEAL_FILE
from tests.fakes.openssl_tsa import (
    OPENSSL,
    OpensslAuthority,
    OpensslTimestampServer,
    assert_not_der_ordered,
    openssl,
    reply_certificates,
    running_openssl_tsa,
)
from tests.fakes.tsa import Authority, parse_request
from tests.flows.evidence.test_seal import INCIDENT_ID, make_incident

pytestmark = pytest.mark.skipif(
    OPENSSL is None, reason="the openssl command is not installed (apt-get install openssl)"
)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> OpensslAuthority:
    """One root CA, intermediate and TSA certificate made with openssl, for the module."""
    return OpensslAuthority.create(tmp_path_factory.mktemp("openssl-tsa"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> OpensslAuthority:
    """Another authority, whose root CA signed nothing the tests seal with."""
    return OpensslAuthority.create(tmp_path_factory.mktemp("stranger-tsa"), "Stranger TSA")


@pytest.fixture
def tsa(authority: OpensslAuthority) -> Iterator[OpensslTimestampServer]:
    """The openssl authority answering on 127.0.0.1."""
    with running_openssl_tsa(authority) as server:
        yield server


@pytest.fixture
def sealed(tmp_path: Path, tsa: OpensslTimestampServer) -> Path:
    """An incident sealed with a timestamp from the openssl TSA, whose reply is BER-ordered."""
    folder = make_incident(tmp_path / "incidents")
    seal_incident(folder, tsa_url=tsa.url)
    assert len(tsa.replies) == 1
    assert_not_der_ordered(tsa.replies[0], tmp_path)
    return folder


def export_reply(folder: Path, into: Path) -> tuple[Path, Path]:
    """Write seal.json's timestamp as openssl reads it: the TimeStampResp and the root's bytes.

    `tsa.token` is the base64 of the whole TimeStampResp (`openssl ts -verify -in`); the
    timestamp's message imprint is SHA-256 of the 32 bytes whose hex is `root`.
    """
    seal = json.loads((folder / SEAL_FILE).read_text())
    reply, root = into / "seal.tsr", into / "root.bin"
    reply.write_bytes(base64.b64decode(seal["tsa"]["token"]))
    root.write_bytes(bytes.fromhex(seal["root"]))
    return reply, root


def test_a_seal_from_an_openssl_tsa_verifies_through_the_intermediate(
    sealed: Path, authority: OpensslAuthority
) -> None:
    """Given only the root CA, the token of a TSA certified by an intermediate verifies."""
    check = verify_seal(sealed, trusted_roots=[authority.root_ca_pem()])
    assert check.ok, check.problems
    assert check.time_verified
    seal = json.loads((sealed / SEAL_FILE).read_text())
    assert check.gen_time == seal["tsa"]["gen_time"]


def test_seal_json_keeps_the_reply_as_the_authority_sent_it(
    sealed: Path, tsa: OpensslTimestampServer
) -> None:
    """The token in seal.json is the TSA's reply byte for byte, certificates in its order."""
    seal = json.loads((sealed / SEAL_FILE).read_text())
    assert base64.b64decode(seal["tsa"]["token"]) == tsa.replies[0]


def test_an_openssl_timestamp_fails_against_another_root(
    sealed: Path, stranger: OpensslAuthority
) -> None:
    """A root that did not certify the TSA fails, though the reply carries a root of its own."""
    check = verify_seal(sealed, trusted_roots=[stranger.root_ca_pem()])
    assert not check.ok and not check.time_verified
    assert "timestamp signature does not verify" in check.problems[0]


def test_evidence_verify_trusts_the_root_given_with_tsa_root(
    home: Path,
    tsa: OpensslTimestampServer,
    authority: OpensslAuthority,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`runbook evidence verify --tsa-root root.pem --require-timestamp` passes, time verified."""
    seal_incident(make_incident(home / "incidents"), tsa_url=tsa.url)
    code = main(
        [
            "evidence",
            "verify",
            INCIDENT_ID,
            "--tsa-root",
            str(authority.root_pem),
            "--require-timestamp",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verified)" in out and "UNVERIFIED" not in out


def test_openssl_verifies_the_response_in_seal_json(
    sealed: Path, tmp_path: Path, authority: OpensslAuthority
) -> None:
    """`openssl ts -verify -in seal.tsr -data root.bin` accepts the exported response."""
    reply, root = export_reply(sealed, tmp_path)
    out = openssl(
        f"ts -verify -in {reply} -data {root} -CAfile {authority.root_pem}"
        f" -untrusted {authority.chain_pem}",
        cwd=tmp_path,
    )
    assert b"Verification: OK" in out


def test_openssl_verifies_the_token_in_seal_json_by_digest(
    sealed: Path, tmp_path: Path, authority: OpensslAuthority
) -> None:
    """The token alone (`-token_in`) verifies against -digest, SHA-256 of the root's bytes."""
    reply, root = export_reply(sealed, tmp_path)
    token = tmp_path / "seal.tst"
    openssl(f"ts -reply -in {reply} -token_out -out {token}", cwd=tmp_path)
    digest = hashlib.sha256(root.read_bytes()).hexdigest()
    out = openssl(
        f"ts -verify -token_in -in {token} -digest {digest} -CAfile {authority.root_pem}"
        f" -untrusted {authority.chain_pem}",
        cwd=tmp_path,
    )
    assert b"Verification: OK" in out


def test_der_ordering_changes_only_the_order_of_the_certificates(
    tmp_path: Path, authority: OpensslAuthority
) -> None:
    """The normalised reply sorts the certificates, reads the same and still verifies."""
    query = openssl(f"ts -query -digest {'ab' * 32} -sha256 -cert", cwd=tmp_path)
    reply = authority.reply(query)
    assert_not_der_ordered(reply, tmp_path)
    ordered = tmp_path / "ordered.tsr"
    ordered.write_bytes(der_ordered(reply))
    (tmp_path / "reply.tsr").write_bytes(reply)
    assert len(ordered.read_bytes()) == len(reply)
    assert reply_certificates(ordered.read_bytes(), tmp_path) == sorted(
        reply_certificates(reply, tmp_path)
    )
    text = [openssl(f"ts -reply -in {name} -text", cwd=tmp_path) for name in ("reply.tsr", ordered)]
    assert text[0] == text[1]
    out = openssl(
        f"ts -verify -in {ordered} -digest {'ab' * 32} -CAfile {authority.root_pem}", cwd=tmp_path
    )
    assert b"Verification: OK" in out


def test_a_reply_already_in_der_order_is_kept_byte_for_byte() -> None:
    """A DER reply (the Python fake's certificates are sorted) comes back unchanged."""
    fake = Authority.create()
    query = openssl(f"ts -query -digest {'cd' * 32} -sha256 -cert", cwd=Path.cwd())
    reply = fake.respond(parse_request(query))
    assert der_ordered(reply) == reply


def test_a_token_that_is_not_asn1_is_reported_not_raised(sealed: Path) -> None:
    """A token of garbage bytes is a problem verify names, never a traceback."""
    seal = json.loads((sealed / SEAL_FILE).read_text())
    seal["tsa"]["token"] = base64.b64encode(b"\x30\x82\xff\xff not a reply").decode()
    (sealed / SEAL_FILE).write_text(json.dumps(seal))
    check = verify_seal(sealed)
    assert not check.ok
    assert "cannot be read (not an RFC 3161 TimeStampResp" in check.problems[0]
