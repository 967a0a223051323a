"""A fake RFC 3161 timestamp authority on 127.0.0.1: real signed tokens from a throwaway CA.

rfc3161-client builds requests and verifies responses but cannot build responses, so the
TimeStampResp is encoded here with a small DER writer (RFC 3161, CMS SignedData per RFC 5652,
ESS signingCertificateV2 per RFC 5035) and signed with `cryptography`. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_SHA256_RSA = "1.2.840.113549.1.1.11"
POLICY = "1.2.3.4.1"
"""The fake's TSA policy: a placeholder OID, meaningful to no real verifier."""


# -- a small DER writer and reader ---------------------------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _set(*items: bytes) -> bytes:
    # DER orders the members of a SET OF by their encodings.
    return _tlv(0x31, b"".join(sorted(items)))


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc := arc >> 7:
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _octets(data: bytes) -> bytes:
    return _tlv(0x04, data)


def _explicit(number: int, body: bytes) -> bytes:
    return _tlv(0xA0 | number, body)


def _algorithm(oid: str, null: bool = False) -> bytes:
    return _seq(_oid(oid), b"\x05\x00" if null else b"")


def _read(data: bytes, at: int = 0) -> tuple[int, bytes, bytes, int]:
    """One TLV at `at`: tag, whole encoding, value, and the offset after it."""
    tag, size, start = data[at], data[at + 1], at + 2
    if size & 0x80:
        width = size & 0x7F
        size, start = int.from_bytes(data[start : start + width], "big"), start + width
    return tag, data[at : start + size], data[start : start + size], start + size


def _children(body: bytes) -> list[tuple[int, bytes, bytes]]:
    items, at = [], 0
    while at < len(body):
        tag, whole, value, at = _read(body, at)
        items.append((tag, whole, value))
    return items


@dataclass(frozen=True)
class Request:
    """What the TSA understood of one TimeStampReq."""

    imprint: bytes
    """The messageImprint, as encoded by the client (copied into the token verbatim)."""
    nonce: int | None
    cert_req: bool


def parse_request(der: bytes) -> Request:
    """Read a TimeStampReq: message imprint, nonce and certReq."""
    _, _, body, _ = _read(der)
    fields = _children(body)
    imprint, nonce, cert_req = fields[1][1], None, False
    for tag, _, value in fields[2:]:
        if tag == 0x02:
            nonce = int.from_bytes(value, "big", signed=True)
        elif tag == 0x01:
            cert_req = value != b"\x00"
    return Request(imprint, nonce, cert_req)


# -- the authority -------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Authority:
    """A CA and a TSA certificate it issued (EKU timeStamping, critical), with their keys."""

    ca_key: rsa.RSAPrivateKey
    ca_cert: x509.Certificate
    tsa_key: rsa.RSAPrivateKey
    tsa_cert: x509.Certificate
    serials: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def create(cls, name: str = "Fake TSA") -> Authority:
        """A fresh self-signed CA and a timestamping certificate valid for a day."""
        now = datetime.now(UTC)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} Root CA"))
            .issuer_name(_name(f"{name} Root CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tsa_cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(ca_cert.subject)
            .public_key(tsa_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cls(ca_key, ca_cert, tsa_key, tsa_cert)

    def ca_pem(self) -> bytes:
        """The root CA certificate, PEM: what a verifier trusts."""
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    def respond(self, request: Request, gen_time: datetime | None = None) -> bytes:
        """A granted TimeStampResp (DER) with a signed token over the request's imprint."""
        moment = (gen_time or datetime.now(UTC)).astimezone(UTC)
        tst_info = _seq(
            _int(1),
            _oid(POLICY),
            request.imprint,
            _int(next(self.serials)),
            _tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode()),
            _int(request.nonce) if request.nonce is not None else b"",
        )
        return _seq(_seq(_int(0)), self._token(tst_info, request.cert_req))

    def reject(self, text: str) -> bytes:
        """A TimeStampResp with status rejection and no token."""
        return _seq(_seq(_int(2), _seq(_tlv(0x0C, text.encode()))))

    def _token(self, tst_info: bytes, with_certs: bool) -> bytes:
        der = serialization.Encoding.DER
        tsa_der = self.tsa_cert.public_bytes(der)
        attributes = [
            _seq(_oid(OID_CONTENT_TYPE), _set(_oid(OID_TST_INFO))),
            _seq(_oid(OID_MESSAGE_DIGEST), _set(_octets(hashlib.sha256(tst_info).digest()))),
            _seq(
                _oid(OID_SIGNING_CERTIFICATE_V2),
                _set(_seq(_seq(_seq(_octets(hashlib.sha256(tsa_der).digest()))))),
            ),
        ]
        # The signature covers the attributes encoded as a SET; the SignerInfo carries the same
        # bytes under the implicit [0] tag.
        signed_attrs = _set(*attributes)
        signature = self.tsa_key.sign(signed_attrs, padding.PKCS1v15(), hashes.SHA256())
        signer_info = _seq(
            _int(1),
            _seq(self.ca_cert.subject.public_bytes(), _int(self.tsa_cert.serial_number)),
            _algorithm(OID_SHA256),
            b"\xa0" + signed_attrs[1:],
            _algorithm(OID_SHA256_RSA, null=True),
            _octets(signature),
        )
        certificates = (
            _tlv(0xA0, b"".join(sorted([tsa_der, self.ca_cert.public_bytes(der)])))
            if with_certs
            else b""
        )
        signed_data = _seq(
            _int(3),
            _set(_algorithm(OID_SHA256)),
            _seq(_oid(OID_TST_INFO), _explicit(0, _octets(tst_info))),
            certificates,
            _set(signer_info),
        )
        return _seq(_oid(OID_SIGNED_DATA), _explicit(0, signed_data))


class TimestampServer(ThreadingHTTPServer):
    """The HTTP face of an Authority: POST a TimeStampReq, get a TimeStampResp."""

    def __init__(self, authority: Authority) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.authority = authority
        self.requests: list[Request] = []
        self.reject_with: str | None = None
        """When set, every request is answered with a rejection carrying this text."""
        self.forced_nonce: int | None = None
        """When set, answers carry this nonce instead of the request's (a replay)."""

    @property
    def url(self) -> str:
        """Where to POST requests."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/tsa"


class _Handler(BaseHTTPRequestHandler):
    server: TimestampServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/tsa":
            self._send(404, b"no such endpoint", "text/plain")
            return
        if self.headers.get("Content-Type") != "application/timestamp-query":
            self._send(415, b"expected application/timestamp-query", "text/plain")
            return
        request = parse_request(body)
        self.server.requests.append(request)
        authority = self.server.authority
        if self.server.reject_with is not None:
            self._send(200, authority.reject(self.server.reject_with))
            return
        if self.server.forced_nonce is not None:
            request = Request(request.imprint, self.server.forced_nonce, request.cert_req)
        self._send(200, authority.respond(request))

    def _send(self, status: int, body: bytes, kind: str = "application/timestamp-reply") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@contextmanager
def running_tsa(authority: Authority | None = None) -> Iterator[TimestampServer]:
    """A timestamp authority answering on 127.0.0.1 for the duration of the block."""
    server = TimestampServer(authority or Authority.create())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
