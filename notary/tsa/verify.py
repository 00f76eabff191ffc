"""Verify RFC 3161 time-stamp tokens as a careful relying party.

`verify_token` runs one named check per rule and returns a `TokenReport`; it raises only
when the bytes are not a token at all (`TokenFormatError`). Each failed check maps to a
typed error that `TokenReport.raise_for_verdict` raises with the check's facts.

Verdicts: ``invalid`` if any check failed; ``indeterminate`` if a check could not be
decided (signer certificate not available, no trust root supplied, no certification
path to a supplied root, unknown algorithm, no data or digest supplied); else ``valid``.
All certificate validity is judged at the token's genTime, never at "now", and no
network fetch (CRL, OCSP, AIA) is ever attempted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from asn1crypto import cms, core
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    InvalidCertificateError,
    PathBuildingError,
    ValidationError,
)
from pyhanko_certvalidator.path import ValidationPath

from notary import errors
from notary.errors import NotaryError, TokenIndeterminateError
from notary.tsa import token as tok
from notary.tsa.token import TokenInfo
from notary.verdict import Check, Verdict, combine

logger = logging.getLogger(__name__)

T = TypeVar("T")

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha512_224": hashes.SHA512_224,
    "sha512_256": hashes.SHA512_256,
    "sha3_224": hashes.SHA3_224,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}
WEAK_HASHES = frozenset({"md5", "sha1"})
EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
TST_INFO_OID = tok.TST_INFO_OID
# What asn1crypto and cryptography raise on malformed input they parse lazily.
MALFORMED = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    x509.DuplicateExtension,
    x509.InvalidVersion,
)
ANY_EKU_OID = "2.5.29.37.0"

# Which error each failed check raises; undecided checks raise TokenIndeterminateError.
CHECK_ERRORS: dict[str, type[NotaryError]] = {
    "status": errors.TSAStatusError,
    "content_type": errors.TokenFormatError,
    "signer_info": errors.TokenFormatError,
    "message_digest": errors.SignatureError,
    "signer_certificate": errors.CertificateError,
    "signature": errors.SignatureError,
    "ess_cert_id": errors.ESSCertIDError,
    "signer_eku": errors.EKUError,
    "signer_not_ca": errors.CertificateError,
    "signer_key_usage": errors.KeyUsageError,
    "signer_validity": errors.CertificateValidityError,
    "path": errors.CertificatePathError,
    "path_eku": errors.EKUError,
    "imprint": errors.ImprintMismatchError,
    "nonce": errors.NonceMismatchError,
}


@dataclass
class TokenReport:
    """The outcome of verifying one token: verdict, every check, the token's facts."""

    verdict: Verdict
    checks: list[Check]
    info: TokenInfo | None
    warnings: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """Return ``name: detail`` for every failed or undecided check."""
        return [f"{c.name}: {c.detail}" for c in self.checks if c.ok is not True]

    def raise_for_verdict(self) -> None:
        """Raise the typed error of the first failed check, or an indeterminate error.

        The error's attributes are the check's facts (expected, actual, certificate).
        Does nothing when the verdict is valid.
        """
        failed = [c for c in self.checks if c.ok is False]
        if failed:
            check = failed[0]
            raise CHECK_ERRORS.get(check.name, errors.TokenError)(
                f"{check.name}: {check.detail}", check=check.name, **check.facts
            )
        if self.verdict is Verdict.INDETERMINATE:
            raise TokenIndeterminateError(
                "token: cannot decide (" + "; ".join(self.reasons) + ")",
                reasons=self.reasons,
            )

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready summary; serial and nonce are lowercase hex strings."""
        info = self.info
        return {
            "verdict": str(self.verdict),
            "reasons": self.reasons,
            "warnings": self.warnings,
            "gen_time": info.gen_time.isoformat() if info else None,
            "gen_time_raw": info.gen_time_raw if info else None,
            "serial": info.serial_hex if info else None,
            "policy": info.policy if info else None,
            "hash_algorithm": info.hash_algorithm if info else None,
            "imprint": info.imprint.hex() if info else None,
            "tsa": info.signer_subject if info else None,
            "tsa_name": info.tsa_name if info else None,
            "nonce": _hex_or_none(info.nonce) if info else None,
            "accuracy": info.accuracy if info else None,
            "ordering": info.ordering if info else None,
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass
class _Token:
    """A parsed token and the certificates the verifier may use."""

    signed_data: cms.SignedData
    info: TokenInfo
    pool: list[ax509.Certificate]
    roots: list[ax509.Certificate]
    signer: ax509.Certificate | None = None
    signer_x509: x509.Certificate | None = None

    @property
    def signer_info(self) -> cms.SignerInfo:
        return self.signed_data["signer_infos"][0]

    @property
    def signer_name(self) -> str:
        return tok.name_to_rfc4514(self.signer.subject) if self.signer else "?"


def verify_token(
    token: bytes,
    *,
    digest: bytes | None = None,
    data: bytes | None = None,
    hash_algorithm: str | None = None,
    nonce: int | None = None,
    trust_roots: Sequence[x509.Certificate] = (),
    untrusted: Sequence[x509.Certificate] = (),
    require_nonce: bool = False,
) -> TokenReport:
    """Check a TimeStampResp or bare TimeStampToken (DER, BER or PEM).

    ``digest`` (bytes, not hex) or ``data`` is what the imprint must match; with
    ``hash_algorithm`` (hashlib name) the imprint's algorithm must match too. ``nonce``
    is the integer sent in the request. ``untrusted`` certificates help find the signer
    and build the path; ``trust_roots`` end it (a pinned TSA certificate may be one).
    Raises `TokenFormatError` only when the bytes are not a response or token.
    """
    status, token_der = check_status(token)
    if token_der is None:
        return _report([status], None)
    signed_data = tok.parse_signed_data(token_der)
    content_type = check_content_type(signed_data)
    if content_type.ok is not True:
        return _report([status, content_type], None)

    parsed = _parse(signed_data, trust_roots, untrusted)
    checks = [status, content_type, _guarded(check_signer_info, parsed)]
    if checks[-1].ok:
        checks += _signer_checks(parsed)
    checks.append(check_imprint(parsed.info, digest, data, hash_algorithm))
    if nonce is not None or require_nonce:
        checks.append(check_nonce(parsed.info, nonce))
    return _report(checks, parsed.info)


def _signer_checks(parsed: _Token) -> list[Check]:
    """Run the checks that need the signer certificate, once it has been found."""
    checks = [_guarded(check_message_digest, parsed)]
    checks.append(_guarded(check_signer_certificate, parsed))
    if parsed.signer is None:
        return checks
    rules = (
        check_signature,
        check_ess_cert_id,
        check_signer_eku,
        check_signer_not_ca,
        check_signer_key_usage,
        check_signer_validity,
    )
    checks += [_guarded(rule, parsed) for rule in rules]
    path_check, path = check_path(parsed)
    checks.append(path_check)
    if path is not None:
        checks.append(_guarded(lambda _: check_path_eku(path), parsed, "path_eku"))
    return checks


def _guarded(
    rule: Callable[[_Token], Check], parsed: _Token, name: str | None = None
) -> Check:
    """Run one check; malformed input it meets (lazily parsed) fails that check."""
    try:
        return rule(parsed)
    except MALFORMED as exc:
        name = name or rule.__name__.removeprefix("check_")
        return Check(name, False, f"malformed token or certificate ({exc})")


def _report(checks: list[Check], info: TokenInfo | None) -> TokenReport:
    warnings = [f"{c.name}: {c.detail}" for c in checks if c.warning]
    verdict = combine(checks)
    logger.info(
        "token %s verdict %s", info.serial_hex if info else "(none)", verdict.value
    )
    return TokenReport(verdict=verdict, checks=checks, info=info, warnings=warnings)


def _parse(
    signed_data: cms.SignedData,
    trust_roots: Sequence[x509.Certificate],
    untrusted: Sequence[x509.Certificate],
) -> _Token:
    roots = [_to_asn1(c) for c in trust_roots]
    embedded = [
        ax509.Certificate.load(d) for d in tok.embedded_certificates(signed_data)
    ]
    return _Token(
        signed_data=signed_data,
        info=tok.info_from_signed_data(signed_data),
        pool=embedded + [_to_asn1(c) for c in untrusted] + roots,
        roots=roots,
    )


def _to_asn1(cert: x509.Certificate) -> ax509.Certificate:
    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


# --- the checks, in the order a relying party applies them ---------------------------


def check_status(token: bytes) -> tuple[Check, bytes | None]:
    """Check the PKIStatus (RFC 3161 §2.4.2); return the token bytes when granted."""
    try:
        token_der = tok.load_token(token)
    except errors.TSAStatusError as exc:
        detail = (
            f"{exc.facts['status']} (failInfo {exc.facts['fail_info'] or 'none'}, "
            f"text {exc.facts['status_text']!r})"
        )
        return Check("status", False, detail, facts=exc.facts), None
    if tok.is_bare_token(token):
        return Check("status", True, "bare token (no response status)"), token_der
    return Check("status", True, tok.parse_status(token)[0]), token_der


def check_content_type(signed_data: cms.SignedData) -> Check:
    """Check that the SignedData encapsulates a TSTInfo (RFC 3161 §2.4.2)."""
    try:
        actual = signed_data["encap_content_info"]["content_type"].dotted
    except MALFORMED as exc:
        return Check("content_type", False, f"malformed ({exc})")
    if actual != TST_INFO_OID:
        return _fail("content_type", "not id-ct-TSTInfo", TST_INFO_OID, actual)
    return Check("content_type", True, "id-ct-TSTInfo")


def check_signer_info(parsed: _Token) -> Check:
    """Check for one SignerInfo with signed attributes (RFC 3161 §2.4.2)."""
    count = len(parsed.signed_data["signer_infos"])
    if count != 1:
        return _fail("signer_info", "signer count", 1, count)
    attrs = parsed.signer_info["signed_attrs"]
    if isinstance(attrs, core.Void) or not len(attrs):
        return Check("signer_info", False, "no signed attributes")
    declared = _attribute(parsed.signer_info, "content_type")
    if declared is None or declared.dotted != TST_INFO_OID:
        actual = None if declared is None else declared.dotted
        return _fail("signer_info", "content-type attribute", TST_INFO_OID, actual)
    return Check("signer_info", True, "one signer, content-type attribute TSTInfo")


def check_message_digest(parsed: _Token) -> Check:
    """Check messageDigest is the hash of the encapsulated TSTInfo (RFC 5652 §5.4)."""
    algorithm = tok.digest_name(parsed.signer_info["digest_algorithm"])
    if algorithm not in HASHES:
        return Check("message_digest", None, f"unknown digest algorithm {algorithm}")
    content = bytes(parsed.signed_data["encap_content_info"]["content"])
    expected = _hash(algorithm, content)
    declared = _attribute(parsed.signer_info, "message_digest")
    actual = None if declared is None else bytes(declared.native)
    if actual != expected:
        return _fail(
            "message_digest",
            "does not match the TSTInfo",
            expected.hex(),
            actual.hex() if actual is not None else None,
        )
    return _weak_aware("message_digest", f"{algorithm} of the TSTInfo", algorithm)


def check_signer_certificate(parsed: _Token) -> Check:
    """Find the signer by SignerInfo sid, never by certificate order (RFC 5652 §5.3)."""
    sid = parsed.signer_info["sid"]
    described = _describe_sid(sid)
    signer = next((c for c in parsed.pool if _names_signer(sid, c)), None)
    if signer is None:
        return Check(
            "signer_certificate",
            None,
            f"not available (sid {described}); supply it as an untrusted certificate",
            facts={"sid": described},
        )
    try:
        parsed.signer_x509 = x509.load_der_x509_certificate(signer.dump())
    except (ValueError, x509.InvalidVersion) as exc:
        detail = f"unreadable certificate for sid {described} ({exc})"
        return Check("signer_certificate", False, detail, facts={"sid": described})
    parsed.signer = signer
    parsed.info.signer_subject = parsed.signer_name
    return Check("signer_certificate", True, parsed.signer_name)


def _names_signer(sid: cms.SignerIdentifier, cert: ax509.Certificate) -> bool:
    """Tell whether ``cert`` is the one sid names; a malformed certificate is not."""
    try:
        return tok.sid_matches(sid, cert)
    except (ValueError, TypeError, AttributeError):
        return False


def check_signature(parsed: _Token) -> Check:
    """Check the signature over the DER of the signed attributes (RFC 5652 §5.4)."""
    if parsed.signer is None:
        return Check("signature", None, "signer certificate not available")
    try:
        algorithm, hash_name, verify = _signature_verifier(parsed)
    except UnsupportedAlgorithm as exc:
        return Check("signature", None, f"unknown algorithm ({exc})")
    except ValueError as exc:
        detail = f"unreadable public key of {parsed.signer_name} ({exc})"
        return Check("signature", False, detail)
    try:
        verify(bytes(parsed.signer_info["signature"].native), _signed_attrs_der(parsed))
    except (InvalidSignature, ValueError) as exc:
        detail = f"does not verify with the key of {parsed.signer_name}"
        facts = {"certificate": parsed.signer_name, "algorithm": algorithm}
        logger.debug("signature failure: %r", exc)
        return Check("signature", False, detail, facts=facts)
    return _weak_aware("signature", f"{algorithm} by {parsed.signer_name}", hash_name)


def check_ess_cert_id(parsed: _Token) -> Check:
    """Check ESSCertID/ESSCertIDv2 binds the signer (RFC 3161 §2.4.2, RFC 5816)."""
    if parsed.signer is None:
        return Check("ess_cert_id", None, "signer certificate not available")
    cert_id, algorithm = _first_ess_cert_id(parsed.signer_info)
    if cert_id is None:
        return Check("ess_cert_id", False, "no SigningCertificate(V2) attribute")
    if algorithm not in HASHES:
        return Check("ess_cert_id", None, f"unknown hash algorithm {algorithm}")
    expected = _hash(algorithm, parsed.signer.dump())
    actual = bytes(cert_id["cert_hash"].native)
    if actual != expected:
        return _fail("ess_cert_id", "certificate hash", expected.hex(), actual.hex())
    problem = _issuer_serial_problem(cert_id["issuer_serial"], parsed.signer)
    if problem:
        return _fail("ess_cert_id", "issuerSerial", *problem)
    return Check("ess_cert_id", True, f"{algorithm} hash binds the signer")


def check_signer_eku(parsed: _Token) -> Check:
    """Check EKU is present, critical and exactly id-kp-timeStamping (RFC 3161 §2.3)."""
    if parsed.signer is None:
        return Check("signer_eku", None, "signer certificate not available")
    who = {"certificate": parsed.signer_name}
    assert parsed.signer_x509 is not None
    try:
        ext = parsed.signer_x509.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage
        )
    except x509.ExtensionNotFound:
        return Check("signer_eku", False, "extended key usage absent", facts=who)
    except (ValueError, x509.DuplicateExtension) as exc:
        return Check("signer_eku", False, f"unreadable extensions ({exc})", facts=who)
    usages = sorted(oid.dotted_string for oid in ext.value)
    expected = [ExtendedKeyUsageOID.TIME_STAMPING.dotted_string]
    if usages != expected:
        return _fail("signer_eku", "not only timeStamping", expected, usages, **who)
    if not ext.critical:
        return _fail("signer_eku", "not critical", True, False, **who)
    return Check("signer_eku", True, "critical, timeStamping only")


def check_signer_not_ca(parsed: _Token) -> Check:
    """Check the signer certificate is an end entity, not a CA."""
    if parsed.signer is None:
        return Check("signer_not_ca", None, "signer certificate not available")
    if parsed.signer.ca:
        return _fail(
            "signer_not_ca", "is a CA", False, True, certificate=parsed.signer_name
        )
    return Check("signer_not_ca", True, "end entity")


def check_signer_key_usage(parsed: _Token) -> Check:
    """Check key usage, when present, allows digitalSignature or nonRepudiation."""
    if parsed.signer is None:
        return Check("signer_key_usage", None, "signer certificate not available")
    usage = parsed.signer.key_usage_value
    if usage is None:
        return Check("signer_key_usage", True, "key usage absent")
    allowed = {"digital_signature", "non_repudiation"}
    if not allowed & set(usage.native):
        return _fail(
            "signer_key_usage",
            "does not allow signing",
            sorted(allowed),
            sorted(usage.native),
            certificate=parsed.signer_name,
        )
    return Check("signer_key_usage", True, ", ".join(sorted(usage.native)))


def check_signer_validity(parsed: _Token) -> Check:
    """Check genTime lies in the signer certificate's validity period."""
    if parsed.signer is None:
        return Check("signer_validity", None, "signer certificate not available")
    validity = parsed.signer["tbs_certificate"]["validity"]
    start, end = validity["not_before"].native, validity["not_after"].native
    moment = parsed.info.gen_time
    if not start <= moment <= end:
        return _fail(
            "signer_validity",
            "genTime outside the certificate's validity",
            f"{start.isoformat()} .. {end.isoformat()}",
            moment.isoformat(),
            certificate=parsed.signer_name,
        )
    return Check("signer_validity", True, f"valid at genTime {moment.isoformat()}")


# TODO: no revocation checking (CRL/OCSP): it needs the network, and archived
# revocation data for old tokens; a revoked TSA certificate still passes. The TSTInfo
# tsa name is not compared with the signer either.
def check_path(parsed: _Token) -> tuple[Check, ValidationPath | None]:
    """Build and validate a path to a trust root at genTime; nothing is fetched.

    NOTE: no path to any supplied root is undecided, not failed (as ETSI EN 319 102-1
    has NO_CERTIFICATE_CHAIN_FOUND): the verdict is relative to the roots given.
    Revocation is not checked: no CRL or OCSP data is supplied and none is fetched.
    """
    if parsed.signer is None:
        return Check("path", None, "signer certificate not available"), None
    if not parsed.roots:
        return Check("path", None, "no trust root supplied"), None
    try:
        path = _validate_path(parsed)
    except (PathBuildingError, InvalidCertificateError) as exc:
        detail = f"no certification path from {parsed.signer_name} to a trust root"
        return Check("path", None, f"{detail} ({exc})"), None
    except ValidationError as exc:
        facts = {"certificate": parsed.signer_name, "at": parsed.info.gen_time}
        return Check("path", False, str(exc), facts=_jsonable(facts)), None
    except MALFORMED as exc:
        return Check("path", False, f"malformed certificate ({exc})"), None
    names = [tok.name_to_rfc4514(c.subject) for c in path.iter_certs(True)]
    return Check("path", True, " <- ".join(reversed(names))), path


def check_path_eku(path: ValidationPath) -> Check:
    """Warn when a CA in the path restricts EKU without allowing timeStamping.

    NOTE: a warning, not a failure: RFC 5280 gives a CA's EKU no meaning for the path
    and OpenSSL ignores it for time stamping; real TSA chains (GlobalSign for Adobe,
    2017) carry intermediates whose EKU names only another purpose. Verifiers that
    chain EKU (Windows) would reject such a path.
    """
    allowed = {ExtendedKeyUsageOID.TIME_STAMPING.dotted_string, ANY_EKU_OID}
    for cert in path.iter_certs(True):
        usage = cert.extended_key_usage_value
        if not cert.ca or usage is None or allowed & {u.dotted for u in usage}:
            continue
        name = tok.name_to_rfc4514(cert.subject)
        detail = f"CA {name} restricts EKU to {[u.dotted for u in usage]}"
        facts = {"certificate": name, "actual": [u.dotted for u in usage]}
        return Check("path_eku", True, detail + " (no timeStamping)", warning=True,
                     facts=facts)  # fmt: skip
    return Check("path_eku", True, "no CA in the path excludes timeStamping")


def check_imprint(
    info: TokenInfo,
    digest: bytes | None,
    data: bytes | None,
    hash_algorithm: str | None,
) -> Check:
    """Check the imprint's algorithm and value against what was stamped.

    A SHA-1 or MD5 imprint is judged like any other, with a weak-algorithm warning.
    """
    check = _compare_imprint(info, digest, data, hash_algorithm)
    if info.hash_algorithm in WEAK_HASHES:
        check.warning = True
        check.detail += f"; weak algorithm {info.hash_algorithm}"
    return check


def _compare_imprint(
    info: TokenInfo,
    digest: bytes | None,
    data: bytes | None,
    hash_algorithm: str | None,
) -> Check:
    actual_alg = info.hash_algorithm
    if hash_algorithm is not None and hash_algorithm != actual_alg:
        return _fail("imprint", "hash algorithm", hash_algorithm, actual_alg)
    if actual_alg not in HASHES:
        return Check("imprint", None, f"unknown hash algorithm {actual_alg}")
    if digest is None and data is None:
        return Check("imprint", None, "no data or digest supplied to compare")
    if digest is None:
        digest = _hash(actual_alg, data or b"")
    if digest != info.imprint:
        return _fail("imprint", "value", digest.hex(), info.imprint.hex())
    return Check("imprint", True, f"{actual_alg} {digest.hex()}")


def check_nonce(info: TokenInfo, expected: int | None) -> Check:
    """Compare the nonce as an integer (RFC 3161 §2.4.2); a requested one must exist."""
    if info.nonce is None:
        return _fail("nonce", "missing from the token", _hex_or_none(expected), None)
    if expected is not None and info.nonce != expected:
        return _fail("nonce", "differs", hex(expected), hex(info.nonce))
    return Check("nonce", True, hex(info.nonce))


# --- helpers -------------------------------------------------------------------------


def _fail(name: str, problem: str, expected: Any, actual: Any, **facts: Any) -> Check:
    detail = f"{problem} (expected {expected}, got {actual})"
    facts = {"expected": expected, "actual": actual, **facts}
    return Check(name, False, detail, facts=_jsonable(facts))


def _weak_aware(name: str, detail: str, algorithm: str) -> Check:
    if algorithm in WEAK_HASHES:
        return Check(name, True, f"{detail}; weak algorithm {algorithm}", warning=True)
    return Check(name, True, detail)


def _jsonable(facts: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in facts.items()
    }


def _hex_or_none(value: int | None) -> str | None:
    return None if value is None else format(value, "x")


def _hash(algorithm: str, data: bytes) -> bytes:
    hasher = hashes.Hash(HASHES[algorithm]())
    hasher.update(data)
    return hasher.finalize()


def _attribute(signer_info: cms.SignerInfo, name: str) -> Any:
    """Return the single value of a signed attribute, or None when absent."""
    for attribute in signer_info["signed_attrs"]:
        if attribute["type"].native == name and len(attribute["values"]):
            return attribute["values"][0]
    return None


def _describe_sid(sid: cms.SignerIdentifier) -> str:
    if sid.name == "subject_key_identifier":
        return f"subjectKeyIdentifier {bytes(sid.chosen.native).hex()}"
    issuer = tok.name_to_rfc4514(sid.chosen["issuer"])
    return f"issuer {issuer}, serial {sid.chosen['serial_number'].native:x}"


def _signed_attrs_der(parsed: _Token) -> bytes:
    """Return the signed attributes as a DER SET (RFC 5652 §5.4).

    NOTE: each attribute is re-encoded to DER but kept in received order, as OpenSSL
    does: some TSAs (DigiCert 2018) sign an unsorted SET, and the signature covers
    what they sent.
    """
    attributes = parsed.signer_info["signed_attrs"]
    body = b"".join(attr.dump(force=True) for attr in attributes)
    return b"\x31" + _der_length(len(body)) + body


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _signature_verifier(parsed: _Token) -> tuple[str, str, Any]:
    """Return (description, hash, verify(signature, data)) for the SignerInfo."""
    algorithm = parsed.signer_info["signature_algorithm"]
    assert parsed.signer_x509 is not None
    try:
        kind = algorithm.signature_algo
    except ValueError as exc:
        raise UnsupportedAlgorithm(str(exc)) from exc
    key = parsed.signer_x509.public_key()
    if kind == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
        return _pss_verifier(key, algorithm["parameters"])
    hash_name = _signature_hash(parsed)
    if hash_name not in HASHES:
        raise UnsupportedAlgorithm(f"hash {hash_name}")
    chosen = HASHES[hash_name]()
    if kind == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
        pkcs1 = padding.PKCS1v15()
        return (
            f"RSA PKCS#1 v1.5 {hash_name}",
            hash_name,
            lambda s, d: key.verify(s, d, pkcs1, chosen),
        )
    if kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise UnsupportedAlgorithm(f"curve {key.curve.name}")
        signer = ec.ECDSA(chosen)
        return (
            f"ECDSA {key.curve.name} {hash_name}",
            hash_name,
            lambda s, d: key.verify(s, d, signer),
        )
    raise UnsupportedAlgorithm(f"{kind} with a {type(key).__name__}")


def _signature_hash(parsed: _Token) -> str:
    """Return the hash the signature algorithm names, else the SignerInfo's digest."""
    try:
        return str(parsed.signer_info["signature_algorithm"].hash_algo)
    except ValueError:
        return tok.digest_name(parsed.signer_info["digest_algorithm"])


def _pss_verifier(key: rsa.RSAPublicKey, params: Any) -> tuple[str, str, Any]:
    hash_name = str(params["hash_algorithm"]["algorithm"].native)
    mgf = params["mask_gen_algorithm"]
    mgf_hash = str(mgf["parameters"]["algorithm"].native)
    if mgf["algorithm"].native != "mgf1" or {hash_name, mgf_hash} - set(HASHES):
        raise UnsupportedAlgorithm(f"RSASSA-PSS with {hash_name}/{mgf_hash}")
    pss = padding.PSS(
        mgf=padding.MGF1(HASHES[mgf_hash]()), salt_length=params["salt_length"].native
    )
    chosen = HASHES[hash_name]()
    return (
        f"RSASSA-PSS {hash_name}",
        hash_name,
        lambda s, d: key.verify(s, d, pss, chosen),
    )


def _first_ess_cert_id(signer_info: cms.SignerInfo) -> tuple[Any, str]:
    """Return the first ESSCertIDv2 (preferred) or ESSCertID and its hash algorithm."""
    v2 = _attribute(signer_info, "signing_certificate_v2")
    if v2 is not None and len(v2["certs"]):
        cert_id = v2["certs"][0]
        return cert_id, tok.digest_name(cert_id["hash_algorithm"])
    v1 = _attribute(signer_info, "signing_certificate")
    if v1 is not None and len(v1["certs"]):
        return v1["certs"][0], "sha1"
    return None, ""


def _issuer_serial_problem(
    issuer_serial: Any, signer: ax509.Certificate
) -> tuple[str, str] | None:
    """Return (expected, actual) when an ESSCertID issuerSerial names another cert."""
    if isinstance(issuer_serial, core.Void):
        return None
    serial = issuer_serial["serial_number"].native
    if serial != signer.serial_number:
        return format(signer.serial_number, "x"), format(serial, "x")
    names = [n.chosen for n in issuer_serial["issuer"] if n.name == "directory_name"]
    if names and not any(name == signer.issuer for name in names):
        expected = tok.name_to_rfc4514(signer.issuer)
        return expected, tok.name_to_rfc4514(names[0])
    return None


def _validate_path(parsed: _Token) -> ValidationPath:
    assert parsed.signer is not None
    others = [c for c in parsed.pool if c not in parsed.roots]
    context = ValidationContext(
        trust_roots=parsed.roots,
        other_certs=others,
        moment=parsed.info.gen_time,
        allow_fetching=False,
        revocation_mode="soft-fail",
        # SHA-1 certificate signatures still validate (old TSA chains use them)
        weak_hash_algos={"md2", "md5"},
        time_tolerance=timedelta(0),
    )
    validator = CertificateValidator(parsed.signer, others, context)
    return _run(validator.async_validate_path())


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
