"""Sealing an incident's ledger: a Merkle root over its records, optionally timestamped (RFC 3161).

The root (RFC 6962) commits to every record up to the seal in one 32-byte value that can be
anchored elsewhere; a timestamp authority's signed token over it proves the records existed, as
they are, no later than the token's time, which the hash chain alone (no secret key) cannot.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import httpx
from cryptography import x509
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1_modules import rfc3161, rfc5652  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from flows.errors import Problem, RunbookError
from flows.evidence.incident import INCIDENT_FILE, Incident
from flows.evidence.ledger import Ledger
from flows.evidence.records import LEDGER_FILE, Event, Record, RunbookRef
from flows.evidence.verify import SEAL_FILE, Chain, read_chain, verify_ledger
from flows.files import write_atomically
from flows.times import utc_stamp

SEAL_VERSION = 1
ALGORITHM = "rfc6962-sha256"
TIMESTAMP_QUERY = "application/timestamp-query"
_LEAF, _NODE = b"\x00", b"\x01"


# -- the Merkle tree (RFC 6962 section 2.1, RFC 9162 section 2.1) -------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    """The hash of one leaf: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(_LEAF + leaf).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size > 1): RFC 6962's split point."""
    return 1 << ((size - 1).bit_length() - 1)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 Merkle tree hash of `leaves`; SHA-256 of nothing for no leaves."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _split(len(leaves))
    return _node(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf `index` (RFC 6962 PATH), from the leaf's sibling up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is outside a tree of {len(leaves)} leaves")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), merkle_root(leaves[:k])]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `proof` shows `leaf` at `index` in the tree of `size` leaves with this root.

    The algorithm of RFC 9162 section 2.1.3.2.
    """
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def record_leaves(hashes: Sequence[str]) -> list[bytes]:
    """The leaves of a ledger's tree: the 32 raw bytes of each record's `hash`, in order."""
    return [bytes.fromhex(digest) for digest in hashes]


# -- sealing ------------------------------------------------------------------------------------


class Timestamp(BaseModel):
    """An RFC 3161 timestamp over the root: the authority, its response (DER) and its time."""

    model_config = ConfigDict(frozen=True)

    url: str
    token: str
    """The TSA's whole TimeStampResp as it sent it, base64: status, signed token, certificates.

    Kept byte for byte, because what the authority sent is the evidence; it is DER except,
    with many TSAs, for the order of the certificates (see `der_ordered`).
    """
    gen_time: str


class Seal(BaseModel):
    """The content of seal.json: the Merkle root over records 1..count and its timestamp."""

    model_config = ConfigDict(frozen=True)

    version: int = SEAL_VERSION
    algorithm: str = ALGORITHM
    count: int
    root: str
    head_hash: str
    sealed_at: str
    tsa: Timestamp | None = None


class SealCheck(BaseModel):
    """The outcome of `verify_seal`: intact or not, with every problem found."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    problems: list[str]
    count: int = 0
    root: str | None = None
    gen_time: str | None = None
    """The signed token's genTime (never seal.json's copy of it); None without a timestamp."""
    time_verified: bool = False
    """Whether the token's signature and certificate chain verified against a trust anchor."""


def seal_incident(folder: Path, tsa_url: str | None = None, timeout_s: float = 10) -> Seal:
    """Seal the incident's ledger: write seal.json and append an `evidence.sealed` record.

    Refuses a ledger that does not verify; with `tsa_url`, the root is timestamped first.
    """
    folder = Path(folder)
    verification = verify_ledger(folder)
    if not verification.ok or verification.head_hash is None:
        raise RunbookError(
            Problem(
                folder / "ledger.jsonl",
                verification.bad_seq,
                f"cannot seal: {verification.problem or 'the ledger has no records'}",
                hint="run `runbook evidence verify` and preserve the folder as it is",
            )
        )
    root = merkle_root(record_leaves(verification.hashes))
    tsa = _timestamp(root, tsa_url, timeout_s) if tsa_url else None
    seal = Seal(
        count=verification.count,
        root=root.hex(),
        head_hash=verification.head_hash,
        sealed_at=utc_stamp(),
        tsa=tsa,
    )
    incident = Incident.model_validate(json.loads((folder / INCIDENT_FILE).read_text()))
    ref = RunbookRef(
        id=incident.runbook.id, version=incident.runbook.version, sha256=incident.runbook.sha256
    )
    # The record first: a crash before seal.json leaves a harmless record, never a seal.json
    # the ledger does not mention.
    with Ledger(folder, incident.id, ref) as ledger:
        ledger.record(
            Event.EVIDENCE_SEALED,
            data={
                "algorithm": ALGORITHM,
                "count": seal.count,
                "root": seal.root,
                "head_hash": seal.head_hash,
                "tsa": tsa.url if tsa else None,
                "gen_time": tsa.gen_time if tsa else None,
            },
        )
    write_atomically(folder / SEAL_FILE, seal.model_dump_json(indent=2).encode())
    return seal


def _timestamp(root: bytes, url: str, timeout_s: float) -> Timestamp:
    request = (
        TimestampRequestBuilder()
        .data(root)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    try:
        reply = httpx.post(
            url,
            content=request.as_bytes(),
            headers={"Content-Type": TIMESTAMP_QUERY},
            timeout=timeout_s,
        )
        reply.raise_for_status()
        response = read_response(reply.content)
    except (httpx.HTTPError, ValueError) as error:
        raise _tsa_error(url, f"no usable response ({error})") from None
    problem = _check_response(response, root)
    if problem is None and response.tst_info.nonce != request.nonce:
        problem = "the nonce does not match the request (replayed response?)"
    if problem is not None:
        raise _tsa_error(url, problem)
    gen_time = _stamp(response.tst_info.gen_time)
    return Timestamp(url=url, token=base64.b64encode(reply.content).decode(), gen_time=gen_time)


def der_ordered(reply: bytes) -> bytes:
    """The TSA's reply re-encoded in DER, which sorts the SET OF certificates of its SignedData.

    DER orders the members of a SET OF by their encodings (X.690 11.6) and rfc3161-client reads
    DER only, but TSAs commonly send their certificates signer first, then its chain (`openssl
    ts -reply` does). pyasn1 reads the reply as BER and writes it back as DER: for a reply that
    is DER but for that order, only the order changes, and a reply in DER comes back byte for
    byte. The certificates are not among the signed attributes, so their order changes nothing
    the signature covers.
    """
    response, rest = ber_decoder.decode(reply, asn1Spec=rfc3161.TimeStampResp())
    if rest:
        raise ValueError(f"{len(rest)} bytes after the TimeStampResp")
    token = response["timeStampToken"]
    # A rejection carries no token, and a token that is not SignedData is left for
    # rfc3161-client to refuse.
    if not token.isValue or token["contentType"] != rfc5652.id_signedData:
        return reply
    signed, rest = ber_decoder.decode(token["content"], asn1Spec=rfc5652.SignedData())
    if rest:
        raise ValueError(f"{len(rest)} bytes after the SignedData")
    token["content"] = der_encoder.encode(signed)
    return der_encoder.encode(response)


def read_response(reply: bytes) -> TimeStampResponse:
    """Decode a TimeStampResp as the TSA sent it (see `der_ordered`); ValueError if unreadable."""
    try:
        ordered = der_ordered(reply)
    except PyAsn1Error as error:
        raise ValueError(f"not an RFC 3161 TimeStampResp ({error})") from None
    return decode_timestamp_response(ordered)


def _check_response(response: TimeStampResponse, root: bytes) -> str | None:
    """What is wrong with a timestamp response for this root, without checking its signature."""
    if PKIStatus(response.status) not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        return f"status {PKIStatus(response.status).name}: {' '.join(response.status_string)}"
    if response.tst_info.message_imprint.message != hashlib.sha256(root).digest():
        return "its message imprint is not SHA-256 of the Merkle root"
    return None


def _tsa_error(url: str, message: str) -> RunbookError:
    return RunbookError(
        Problem(
            url, None, f"timestamp authority: {message}", hint="check --tsa, or seal without it"
        )
    )


# -- verifying ----------------------------------------------------------------------------------


def verify_seal(folder: Path, trusted_roots: Sequence[bytes] | None = None) -> SealCheck:
    """Check seal.json against the ledger; its timestamp's imprint, and signature given roots.

    `trusted_roots` are PEM certificates of the timestamp authorities' root CAs.
    """
    folder = Path(folder)
    try:
        seal = Seal.model_validate_json((folder / SEAL_FILE).read_bytes())
    except FileNotFoundError:
        return SealCheck(ok=False, problems=[f"{SEAL_FILE} is missing (never sealed?)"])
    except ValueError as error:
        return SealCheck(ok=False, problems=[f"{SEAL_FILE}: not a valid seal ({error})"])
    problems = _seal_problems(folder, seal)
    gen_time, verified = None, False
    if seal.tsa is not None:
        stamped, verified, found = _check_timestamp(
            seal.tsa, bytes.fromhex(seal.root), trusted_roots
        )
        problems += found
        if stamped is not None:
            gen_time = _stamp(stamped)
            if gen_time != seal.tsa.gen_time:
                problems.append(
                    f"{SEAL_FILE}: gen_time {seal.tsa.gen_time} is not the signed token's "
                    f"({gen_time}): edited?"
                )
    return SealCheck(
        ok=not problems,
        problems=problems,
        count=seal.count,
        root=seal.root,
        gen_time=gen_time,
        time_verified=verified and not problems,
    )


def _seal_problems(folder: Path, seal: Seal) -> list[str]:
    if seal.algorithm != ALGORITHM:
        return [f"{SEAL_FILE}: unknown algorithm {seal.algorithm!r}"]
    # The records that chain, as verify_ledger reads them; its other checks (the folder, the
    # artifacts) are its own, and hashing every artifact again here would be work done twice.
    ledger = folder / LEDGER_FILE
    chain = read_chain(ledger) if ledger.exists() else Chain()
    if len(chain.hashes) < seal.count or seal.count < 1:
        return [
            f"{SEAL_FILE} seals {seal.count} records but the ledger holds {len(chain.hashes)} "
            "intact ones (truncated or damaged?)"
        ]
    sealed = chain.hashes[: seal.count]
    problems = []
    if merkle_root(record_leaves(sealed)).hex() != seal.root:
        problems.append(f"{SEAL_FILE}: the Merkle root differs from records 1..{seal.count}")
    if sealed[-1] != seal.head_hash:
        problems.append(f"record {seal.count}: hash differs from the head hash in {SEAL_FILE}")
    return problems + _record_problems(seal, chain.sealed)


def _record_problems(seal: Seal, records: Sequence[Record]) -> list[str]:
    """seal.json is the one the latest `evidence.sealed` record describes, field for field.

    An earlier, genuine seal.json put back after a later seal would vouch for fewer records
    than the ledger says were sealed; one with another token would show another time.
    """
    sealed = [r for r in records if r.seq > seal.count]
    if not sealed:
        return [
            f"{SEAL_FILE}: no {Event.EVIDENCE_SEALED} record after record {seal.count} "
            "names its root"
        ]
    latest = sealed[-1]
    expected = {
        "algorithm": seal.algorithm,
        "count": seal.count,
        "root": seal.root,
        "head_hash": seal.head_hash,
        "tsa": seal.tsa.url if seal.tsa else None,
        "gen_time": seal.tsa.gen_time if seal.tsa else None,
    }
    differ = sorted(key for key, value in expected.items() if latest.data.get(key) != value)
    if not differ:
        return []
    if any(r.data.get("root") == seal.root for r in sealed[:-1]):
        return [
            f"{SEAL_FILE} is an earlier seal: record {latest.seq}, the latest "
            f"{Event.EVIDENCE_SEALED}, seals {latest.data.get('count')} records "
            "(put back, or sealing was interrupted: seal again)"
        ]
    return [
        f"{SEAL_FILE}: {', '.join(differ)} differ from the {Event.EVIDENCE_SEALED} record "
        f"{latest.seq} (edited?)"
    ]


def _check_timestamp(
    tsa: Timestamp, root: bytes, trusted_roots: Sequence[bytes] | None
) -> tuple[datetime | None, bool, list[str]]:
    """The token's own genTime, whether its signature verified against a root, and problems."""
    try:
        response = read_response(base64.b64decode(tsa.token, validate=True))
    except ValueError as error:
        return None, False, [f"{SEAL_FILE}: the timestamp token cannot be read ({error})"]
    stamped = response.tst_info.gen_time
    problem = _check_response(response, root)
    if problem is not None:
        return stamped, False, [f"{SEAL_FILE}: timestamp: {problem}"]
    if not trusted_roots:
        return stamped, False, []
    builder = VerifierBuilder()
    for pem in trusted_roots:
        builder = builder.add_root_certificate(x509.load_pem_x509_certificate(pem))
    try:
        builder.build().verify_message(response, root)
    except VerificationError as error:
        return stamped, False, [f"{SEAL_FILE}: timestamp signature does not verify ({error})"]
    return stamped, True, []


def _stamp(moment: datetime) -> str:
    """A token's genTime as the seal records it: to the second, or finer when it is."""
    return utc_stamp(moment, "microseconds" if moment.microsecond else "seconds")
