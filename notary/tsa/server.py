"""The built-in RFC 3161 time-stamping authority and its tiny HTTP front end.

The built-in TSA keeps its own CA and TSA certificate in one directory (the data
directory's ``tsa/`` folder by default), created on first use. Its tokens pass
``openssl ts -verify -CAfile ca.pem``, but they prove nothing to a third party: the
operator controls the clock and the key. Production runs use independent TSAs.

Files in the directory: ``ca.pem``, ``ca.key``, ``tsa.pem``, ``tsa.key`` (keys PKCS#8,
mode 0600). Keys are ECDSA P-256; tokens are CMS SignedData signed with SHA-256, with
the signed attributes contentType, signingTime, messageDigest and ESSCertIDv2.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import http.server
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from notary.errors import BuiltinTSAError

logger = logging.getLogger(__name__)

# A UUID-derived OID (ITU-T X.667, arc 2.25): unique without registering an arc. It
# names the built-in TSA's policy "tokens from a self-operated test TSA; no assurance".
POLICY_OID = "2.25.85054839387041387680700097195007365108"

SUPPORTED_DIGESTS = {"sha256": 32, "sha384": 48, "sha512": 64}
CA_VALIDITY = dt.timedelta(days=20 * 365)
TSA_VALIDITY = dt.timedelta(days=10 * 365)
# Certificates start a little in the past so that a verifier whose clock lags still
# accepts tokens issued right after creation.
BACKDATE = dt.timedelta(minutes=5)
ACCURACY_SECONDS = 1
MAX_REQUEST_BYTES = 16 * 1024
DEFAULT_PORT = 3180
REQUEST_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"

CA_CERT, CA_KEY, TSA_CERT, TSA_KEY = "ca.pem", "ca.key", "tsa.pem", "tsa.key"


@dataclass(frozen=True)
class _Rejection:
    """A request the TSA refuses: RFC 3161 §2.4.2 failInfo bit name and status text."""

    fail_info: str
    text: str


class BuiltinTSA:
    """An RFC 3161 TSA whose CA, certificate and key live in one directory.

    `respond` is thread-safe; one instance can serve many threads.
    """

    def __init__(
        self,
        directory: Path,
        ca_certificate: x509.Certificate,
        certificate: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
    ) -> None:
        self.directory = directory
        self.ca_certificate = ca_certificate
        self.certificate = certificate
        self._key = key
        self._cert_der = certificate.public_bytes(serialization.Encoding.DER)
        self._ca_der = ca_certificate.public_bytes(serialization.Encoding.DER)

    @property
    def ca_path(self) -> Path:
        return self.directory / CA_CERT

    @classmethod
    def open(cls, directory: Path) -> BuiltinTSA:
        """Load the TSA from ``directory``; create its CA and certificate on first use.

        Creation holds an exclusive lock on ``directory/.lock`` and writes each file
        through a temporary name and ``os.replace``, so racing processes end up with one
        CA. Raises `BuiltinTSAError` when the files are partial or do not match.
        """
        directory = Path(directory)
        if not _has_all(directory):
            try:
                with _locked(directory):
                    _create_missing(directory)
            except OSError as exc:
                raise BuiltinTSAError(
                    f"built-in tsa: cannot create its files in {directory} "
                    f"({exc.strerror})",
                    directory=str(directory),
                ) from exc
        return cls._load(directory)

    @classmethod
    def _load(cls, directory: Path) -> BuiltinTSA:
        ca_cert = _read_certificate(directory / CA_CERT)
        cert = _read_certificate(directory / TSA_CERT)
        key = _read_key(directory / TSA_KEY)
        if key.public_key() != cert.public_key():
            raise BuiltinTSAError(
                f"built-in tsa: {TSA_KEY} does not belong to {TSA_CERT} in {directory}",
                directory=str(directory),
            )
        return cls(directory, ca_cert, cert, key)

    def respond(self, request_der: bytes) -> bytes:
        """Return a DER TimeStampResp for a DER TimeStampReq.

        A request that does not parse, asks for another hash than SHA-256/384/512, has
        a digest of the wrong length, a foreign policy or extensions gets a rejection
        response with failInfo; nothing is raised for bad input.
        """
        request = _parse_request(request_der)
        if isinstance(request, _Rejection):
            logger.info("built-in tsa: rejected request: %s", request.text)
            return _rejection_response(request)
        token, serial = self._issue(request)
        imprint = bytes(request["message_imprint"]["hashed_message"].native)
        logger.info(
            "built-in tsa: issued token serial %x for imprint %s", serial, imprint.hex()
        )
        response = tsp.TimeStampResp(
            {"status": {"status": "granted"}, "time_stamp_token": token}
        )
        return bytes(response.dump())

    def _issue(self, request: tsp.TimeStampReq) -> tuple[cms.ContentInfo, int]:
        now = dt.datetime.now(dt.UTC)
        # RFC 3161 §2.4.2: genTime with a fraction: milliseconds, no trailing zeros.
        gen_time = now.replace(microsecond=now.microsecond // 1000 * 1000)
        serial = 1 + secrets.randbelow(2**128 - 1)
        tst_info = self._tst_info(request, gen_time, serial)
        content = bytes(tst_info.dump())
        signer = self._signer_info(content, gen_time)
        certificates = []
        if request["cert_req"].native:
            certificates = [
                ax509.Certificate.load(self._cert_der),
                ax509.Certificate.load(self._ca_der),
            ]
        signed_data = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [{"algorithm": "sha256"}],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": core.ParsableOctetString(content),
                },
                "certificates": certificates or None,
                "signer_infos": [signer],
            }
        )
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
        return token, serial

    def _tst_info(
        self, request: tsp.TimeStampReq, gen_time: dt.datetime, serial: int
    ) -> tsp.TSTInfo:
        fields: dict[str, Any] = {
            "version": "v1",
            "policy": POLICY_OID,
            "message_imprint": request["message_imprint"].copy(),
            "serial_number": serial,
            "gen_time": core.GeneralizedTime(gen_time),
            "accuracy": {"seconds": ACCURACY_SECONDS},
            "tsa": ax509.GeneralName(
                name="directory_name",
                value=ax509.Name.load(self.certificate.subject.public_bytes()),
            ),
        }
        nonce = request["nonce"]
        if not isinstance(nonce, core.Void):
            fields["nonce"] = nonce.native
        return tsp.TSTInfo(fields)

    def _signer_info(self, content: bytes, signing_time: dt.datetime) -> cms.SignerInfo:
        cert = ax509.Certificate.load(self._cert_der)
        ess_cert_id = {
            "cert_hash": hashlib.sha256(self._cert_der).digest(),
            "issuer_serial": {
                "issuer": [ax509.GeneralName(name="directory_name", value=cert.issuer)],
                "serial_number": cert.serial_number,
            },
        }
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {
                    "type": "signing_time",
                    "values": [cms.Time(name="utc_time", value=signing_time)],
                },
                {
                    "type": "message_digest",
                    "values": [hashlib.sha256(content).digest()],
                },
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [ess_cert_id]}],
                },
            ]
        )
        # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF.
        signature = self._key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        return cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value={"issuer": cert.issuer, "serial_number": cert.serial_number},
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm(
                    {"algorithm": "sha256_ecdsa"}
                ),
                "signature": signature,
            }
        )


def _parse_request(der: bytes) -> tsp.TimeStampReq | _Rejection:
    """Return the parsed request, or why it is refused (RFC 3161 §2.4.2 failInfo)."""
    try:
        request = tsp.TimeStampReq.load(der, strict=True)
        request.native  # noqa: B018 - force the lazy parser over every field
        return _check_request(request)
    # NOTE: asn1crypto meets malformed input with assorted exceptions (ValueError,
    # TypeError, AttributeError, ...); a TSA answers every one with a rejection.
    except Exception as exc:
        return _Rejection("bad_data_format", f"request does not parse ({exc})")


def _check_request(request: tsp.TimeStampReq) -> tsp.TimeStampReq | _Rejection:
    if request["version"].native != "v1":
        return _Rejection("bad_request", "request version is not 1")

    algorithm = request["message_imprint"]["hash_algorithm"]
    name = algorithm["algorithm"].native
    if name not in SUPPORTED_DIGESTS:
        return _Rejection("bad_alg", f"hash algorithm {name} is not supported")
    if algorithm["parameters"].native is not None:
        return _Rejection("bad_alg", "hash algorithm parameters must be absent or NULL")
    digest = request["message_imprint"]["hashed_message"].native
    if len(digest) != SUPPORTED_DIGESTS[name]:
        return _Rejection(
            "bad_data_format",
            f"{name} digest: wrong length "
            f"(expected {SUPPORTED_DIGESTS[name]} bytes, got {len(digest)})",
        )

    policy = request["req_policy"]
    if not isinstance(policy, core.Void) and policy.dotted != POLICY_OID:
        return _Rejection("unaccepted_policy", f"policy {policy.dotted} is not offered")
    if not isinstance(request["extensions"], core.Void):
        return _Rejection(
            "unaccepted_extension", "request extensions are not supported"
        )
    return request


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    """TimeStampResp with the token optional, as RFC 3161 §2.4.2 defines it."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _rejection_response(rejection: _Rejection) -> bytes:
    status = tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [rejection.text],
            "fail_info": tsp.PKIFailureInfo({rejection.fail_info}),
        }
    )
    return bytes(_TimeStampResp({"status": status}).dump())


# --- the CA and certificate files -----------------------------------------------------


def _has_all(directory: Path) -> bool:
    return all(
        (directory / name).is_file() for name in (CA_CERT, CA_KEY, TSA_CERT, TSA_KEY)
    )


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _create_missing(directory: Path) -> None:
    """Create the CA and the TSA certificate unless present (caller holds the lock)."""
    ca_key_path, ca_cert_path = directory / CA_KEY, directory / CA_CERT
    if _pair_state(ca_key_path, ca_cert_path, directory):
        ca_key = _read_key(ca_key_path)
        ca_cert = _read_certificate(ca_cert_path)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca_certificate(ca_key)
        _write_key(ca_key_path, ca_key)
        _write_atomic(ca_cert_path, _pem(ca_cert), 0o644)

    key_path, cert_path = directory / TSA_KEY, directory / TSA_CERT
    if not _pair_state(key_path, cert_path, directory):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _make_tsa_certificate(key, ca_key, ca_cert)
        _write_key(key_path, key)
        _write_atomic(cert_path, _pem(cert), 0o644)
        logger.info(
            "built-in tsa: created certificate %s in %s",
            cert.subject.rfc4514_string(),
            directory,
        )


def _pair_state(key_path: Path, cert_path: Path, directory: Path) -> bool:
    """Return True if both files exist, False if neither; raise if only one does."""
    present = key_path.is_file(), cert_path.is_file()
    if all(present):
        return True
    if not any(present):
        return False
    missing = cert_path if present[0] else key_path
    raise BuiltinTSAError(
        f"built-in tsa: {missing.name} is missing in {directory} "
        f"(expected both {key_path.name} and {cert_path.name}, or neither)",
        directory=str(directory),
        missing=missing.name,
    )


def _make_ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    name = _name(f"notary built-in TSA CA {ski.digest[:4].hex()}")
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def _make_tsa_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
) -> x509.Certificate:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    now = dt.datetime.now(dt.UTC)
    not_after = min(now + TSA_VALIDITY, ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"notary built-in TSA {ski.digest[:4].hex()}"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        # RFC 3161 §2.3: the EKU must be critical and contain only id-kp-timeStamping.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME, "notary built-in TSA - no assurance"
            ),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=not cert_sign,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(path, data, 0o600)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a fresh temporary file with ``mode``, then rename it over."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _read_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BuiltinTSAError(
            f"built-in tsa: cannot read certificate {path} ({exc})", path=str(path)
        ) from exc


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BuiltinTSAError(
            f"built-in tsa: cannot read key {path} ({exc})", path=str(path)
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BuiltinTSAError(
            f"built-in tsa: key {path} is not an EC key (got {type(key).__name__})",
            path=str(path),
        )
    return key


# --- HTTP front end -------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """RFC 3161 §3.4 over HTTP: POST a TimeStampReq, get a TimeStampResp."""

    tsa: BuiltinTSA
    server_version = "notary-tsa"
    # Seconds a client may stall before its connection is dropped.
    timeout = 10

    def do_POST(self) -> None:
        content_type = self.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != REQUEST_TYPE:
            self._refuse(415, f"expected Content-Type {REQUEST_TYPE}")
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._refuse(411, "Content-Length required")
            return
        length = int(length_header)
        if length > MAX_REQUEST_BYTES:
            self._refuse(413, f"request over {MAX_REQUEST_BYTES} bytes")
            return
        body = self.rfile.read(length)
        self._send(200, REPLY_TYPE, self.tsa.respond(body))

    def do_GET(self) -> None:
        self._refuse(405, "only POST is supported")

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _refuse(self, status: int, text: str) -> None:
        self.close_connection = True
        self._send(status, "text/plain; charset=utf-8", f"{text}\n".encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        if status == 405:
            self.send_header("Allow", "POST")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the base class's name
        logger.debug("built-in tsa http: %s " + format, self.client_address[0], *args)


class _IPv6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(
    tsa: BuiltinTSA, host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> http.server.ThreadingHTTPServer:
    """Bind an HTTP server for ``tsa`` to exactly ``host``:``port`` (0: any free port).

    The caller runs ``serve_forever`` and closes it; ``server_address`` has the port.
    """
    handler = type("TSAHandler", (_Handler,), {"tsa": tsa})
    server_class = _IPv6Server if ":" in host else http.server.ThreadingHTTPServer
    return server_class((host, port), handler)


def serve(
    tsa: BuiltinTSA,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    ready: threading.Event | None = None,
) -> None:
    """Serve ``tsa`` over HTTP on ``host``:``port`` until interrupted or shut down.

    ``ready`` is set once the socket is bound. Blocks the calling thread.
    """
    with make_server(tsa, host, port) as httpd:
        logger.info("built-in tsa: listening on %s:%d", *httpd.server_address[:2])
        if ready is not None:
            ready.set()
        httpd.serve_forever()
