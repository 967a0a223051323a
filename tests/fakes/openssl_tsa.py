"""A real RFC 3161 timestamp authority on 127.0.0.1: `openssl ts -reply`, behind an intermediate CA.

Everything is made with the `openssl` command, as a TSA operator would: a root CA, an
intermediate CA it signs, and a TSA certificate the intermediate signs (extendedKeyUsage
critical timeStamping), with an openssl.cnf whose [tsa] section has replies carry the chain.
Each POSTed TimeStampReq is answered by running `openssl ts -reply` on it.

OpenSSL writes the reply's certificates as signer, then the chain file in order, not in DER's
sorted order; the chain file is ordered so that the set is never sorted (`assert_not_der_ordered`
checks a reply), which is how real TSAs' replies come.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

POLICY = "1.2.3.4.1"
"""The TSA policy the replies name: a placeholder OID, meaningful to no real verifier."""

OPENSSL = shutil.which("openssl")

CONFIG = """\
# Certificate requests: the subject comes from -subj.
[req]
distinguished_name = subject
prompt = no
[subject]

[root_ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[intermediate_ca]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[tsa_cert]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[tsa]
default_tsa = tsa_config

[tsa_config]
serial = {folder}/serial
crypto_device = builtin
signer_cert = {folder}/tsa.pem
signer_key = {folder}/tsa.key
# The chain goes into every reply, as with public TSAs (certReq asks for it).
certs = {folder}/chain.pem
signer_digest = sha256
default_policy = {policy}
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = yes
# ESS signingCertificateV2 with SHA-256 ids for the signer and for its chain.
ess_cert_id_chain = yes
ess_cert_id_alg = sha256
"""


def openssl(command: str, cwd: Path) -> bytes:
    """Run `openssl COMMAND` (split as a shell would) in `cwd`; its output, or AssertionError."""
    if OPENSSL is None:
        raise AssertionError("the openssl command is not installed")
    done = subprocess.run(
        [OPENSSL, *shlex.split(command)], cwd=cwd, capture_output=True, timeout=60
    )
    if done.returncode:
        raise AssertionError(f"openssl {command}: {done.stderr.decode(errors='replace')}")
    return done.stdout


def _der(pem: Path) -> bytes:
    return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(Encoding.DER)


@dataclass(frozen=True)
class OpensslAuthority:
    """A TSA made with the openssl command: its folder of keys, certificates and openssl.cnf."""

    folder: Path
    name: str

    @property
    def root_pem(self) -> Path:
        """The root CA certificate: the trust anchor a verifier is given."""
        return self.folder / "root.pem"

    @property
    def intermediate_pem(self) -> Path:
        """The intermediate CA certificate, which issued the TSA certificate."""
        return self.folder / "intermediate.pem"

    @property
    def tsa_pem(self) -> Path:
        """The TSA's own certificate."""
        return self.folder / "tsa.pem"

    @property
    def chain_pem(self) -> Path:
        """The certificates sent with every reply besides the TSA's: the intermediate and root."""
        return self.folder / "chain.pem"

    @property
    def config(self) -> Path:
        """The openssl.cnf holding the [tsa] section."""
        return self.folder / "openssl.cnf"

    @classmethod
    def create(cls, folder: Path, name: str = "OpenSSL TSA") -> OpensslAuthority:
        """Make the root CA, the intermediate, the TSA certificate and openssl.cnf in `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        authority = cls(folder, name)
        authority.config.write_text(CONFIG.format(folder=folder, policy=POLICY))
        (folder / "serial").write_text("01\n")
        # EC keys: real TSAs use both RSA and ECDSA, and these are made in milliseconds.
        key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc"
        authority._openssl(
            f"req -x509 {key} -keyout root.key -out root.pem -subj '/CN={name} Root CA'"
            " -config openssl.cnf -extensions root_ca -days 2"
        )
        for issued, issuer, extensions, subject in (
            ("intermediate", "root", "intermediate_ca", f"{name} Intermediate CA"),
            ("tsa", "intermediate", "tsa_cert", name),
        ):
            authority._openssl(
                f"req -new {key} -keyout {issued}.key -out {issued}.csr -subj '/CN={subject}'"
                " -config openssl.cnf"
            )
            authority._openssl(
                f"x509 -req -in {issued}.csr -CA {issuer}.pem -CAkey {issuer}.key -CAcreateserial"
                f" -out {issued}.pem -extfile openssl.cnf -extensions {extensions} -days 2"
            )
        # DER puts the smaller encoding first: writing the chain largest first means the
        # reply's set (signer, then this file) is out of DER order whatever the key sizes.
        chain = sorted((authority.intermediate_pem, authority.root_pem), key=_der, reverse=True)
        authority.chain_pem.write_bytes(b"".join(pem.read_bytes() for pem in chain))
        return authority

    def root_ca_pem(self) -> bytes:
        """The root CA certificate, PEM."""
        return self.root_pem.read_bytes()

    def reply(self, query: bytes) -> bytes:
        """The TimeStampResp `openssl ts -reply` makes for a DER TimeStampReq."""
        with tempfile.TemporaryDirectory(dir=self.folder) as work:
            Path(work, "query.tsq").write_bytes(query)
            config, key = shlex.quote(str(self.config)), shlex.quote(str(self.folder / "tsa.key"))
            signer, chain = shlex.quote(str(self.tsa_pem)), shlex.quote(str(self.chain_pem))
            openssl(
                f"ts -reply -queryfile query.tsq -config {config} -inkey {key} -signer {signer}"
                f" -chain {chain} -out reply.tsr",
                cwd=Path(work),
            )
            return Path(work, "reply.tsr").read_bytes()

    def _openssl(self, command: str) -> bytes:
        return openssl(command, cwd=self.folder)


def reply_certificates(reply: bytes, cwd: Path) -> list[bytes]:
    """The certificates of a TimeStampResp's token, DER, in the order the reply holds them.

    Read by openssl itself (`-token_out`, then `pkcs7 -print_certs`), not by the engine's code.
    """
    with tempfile.TemporaryDirectory(dir=cwd) as work:
        Path(work, "reply.tsr").write_bytes(reply)
        openssl("ts -reply -in reply.tsr -token_out -out token.p7", cwd=Path(work))
        pems = openssl("pkcs7 -inform DER -in token.p7 -print_certs", cwd=Path(work))
    return [cert.public_bytes(Encoding.DER) for cert in x509.load_pem_x509_certificates(pems)]


def assert_not_der_ordered(reply: bytes, cwd: Path) -> None:
    """Fail unless the reply's certificates are several and out of DER order, as a real TSA's."""
    certificates = reply_certificates(reply, cwd)
    assert len(certificates) == 3, f"expected signer, intermediate and root: {len(certificates)}"
    assert certificates != sorted(certificates), "the reply's certificate set is in DER order"


class OpensslTimestampServer(ThreadingHTTPServer):
    """The HTTP face of an OpensslAuthority: POST a TimeStampReq, get openssl's TimeStampResp."""

    def __init__(self, authority: OpensslAuthority) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.authority = authority
        self.queries: list[bytes] = []
        self.replies: list[bytes] = []
        """Every reply sent, byte for byte."""
        # openssl ts -reply reads and rewrites the serial file: one reply at a time.
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """Where to POST requests."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/tsa"


class _Handler(BaseHTTPRequestHandler):
    server: OpensslTimestampServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/tsa":
            self._send(404, b"no such endpoint", "text/plain")
            return
        if self.headers.get("Content-Type") != "application/timestamp-query":
            self._send(415, b"expected application/timestamp-query", "text/plain")
            return
        with self.server.lock:
            self.server.queries.append(body)
            try:
                reply = self.server.authority.reply(body)
            except AssertionError as error:
                self._send(500, str(error).encode(), "text/plain")
                return
            self.server.replies.append(reply)
        self._send(200, reply)

    def _send(self, status: int, body: bytes, kind: str = "application/timestamp-reply") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@contextmanager
def running_openssl_tsa(authority: OpensslAuthority) -> Iterator[OpensslTimestampServer]:
    """An openssl timestamp authority answering on 127.0.0.1 for the duration of the block."""
    server = OpensslTimestampServer(authority)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
