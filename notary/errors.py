"""Every error notary raises on purpose, under one root.

    NotaryError                      exit 3 unless a subclass says otherwise
    ├── UsageError                   exit 2: the caller asked for something impossible
    │   ├── ConfigError              bad or unknown configuration keys
    │   ├── DigestLengthError        a digest whose length does not fit its algorithm
    │   ├── UnsupportedAlgorithmError a hash algorithm notary does not use
    │   ├── SourcePathError          an evidence path that does not exist
    │   ├── NoItemsError             a source with nothing to attest
    │   ├── RunConflictError         a run already exists for this stream and period
    │   ├── NotFoundError            no such run, item or file
    │   │   └── LeafNotFoundError    a leaf that is not in the hash tree
    │   └── BundleFormatError        not a readable notary bundle, or a newer version
    │       └── EvidenceRecordError  not a readable RFC 4998 evidence record
    ├── SourceError                  listing or reading evidence failed
    ├── StoreError                   the database failed or holds something unexpected
    ├── TimestampError               obtaining or checking an RFC 3161 timestamp failed
    │   ├── BuiltinTSAError          the built-in TSA cannot start or its files are bad
    │   ├── TSATransportError        HTTP/transport problem talking to a TSA
    │   │   ├── TSAConnectionError   connect failed or timed out, every attempt
    │   │   ├── TSAHTTPStatusError   an HTTP status other than 200
    │   │   │   └── TSARedirectError a 3xx; redirects are never followed
    │   │   ├── TSAContentTypeError  not application/timestamp-reply
    │   │   ├── TSAEmptyResponseError 200 with an empty body
    │   │   └── TSAResponseTooLargeError body over the size cap
    │   ├── TSAStatusError           the TSA answered with a non-granted status
    │   ├── TokenError               a token failed a check (verdict "invalid")
    │   │   ├── TokenFormatError     the bytes are not a TimeStampResp/TimeStampToken
    │   │   ├── ImprintMismatchError
    │   │   ├── NonceMismatchError
    │   │   ├── SignatureError
    │   │   └── CertificateError     signer certificate or path rejected
    │   │       ├── ESSCertIDError   ESSCertID(v2) does not bind the signer
    │   │       ├── EKUError         extended key usage wrong (signer or a path CA)
    │   │       ├── KeyUsageError    key usage does not allow signing
    │   │       ├── CertificateValidityError  genTime outside the signer's validity
    │   │       └── CertificatePathError      path to a trust root invalid at genTime
    │   └── TokenIndeterminateError  a check could not be decided ("indeterminate")
    ├── AnchorError                  EVM anchoring or anchor verification failed
    └── ProofError                   a Merkle proof or bundle content does not check out

Each error carries the facts as attributes (keyword arguments of the constructor),
so callers and JSON reports can show expected and actual values without parsing the
message.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_OPERATIONAL = 3
EXIT_INDETERMINATE = 4


class NotaryError(Exception):
    """Root of every error notary raises deliberately."""

    exit_code = EXIT_OPERATIONAL
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, **facts: Any) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.facts: dict[str, Any] = facts
        for key, value in facts.items():
            setattr(self, key, value)


class UsageError(NotaryError):
    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    pass


class DigestLengthError(UsageError):
    pass


class UnsupportedAlgorithmError(UsageError):
    pass


class SourcePathError(UsageError):
    pass


class NoItemsError(UsageError):
    pass


class RunConflictError(UsageError):
    pass


class NotFoundError(UsageError):
    pass


class LeafNotFoundError(NotFoundError):
    pass


class BundleFormatError(UsageError):
    pass


class EvidenceRecordError(BundleFormatError):
    pass


class SourceError(NotaryError):
    pass


class StoreError(NotaryError):
    pass


class TimestampError(NotaryError):
    pass


class BuiltinTSAError(TimestampError):
    pass


class TSATransportError(TimestampError):
    pass


class TSAConnectionError(TSATransportError):
    pass


class TSAHTTPStatusError(TSATransportError):
    pass


class TSARedirectError(TSAHTTPStatusError):
    pass


class TSAContentTypeError(TSATransportError):
    pass


class TSAEmptyResponseError(TSATransportError):
    pass


class TSAResponseTooLargeError(TSATransportError):
    pass


class TSAStatusError(TimestampError):
    pass


class TokenError(TimestampError):
    exit_code = EXIT_INVALID


class TokenFormatError(TokenError):
    pass


class ImprintMismatchError(TokenError):
    pass


class NonceMismatchError(TokenError):
    pass


class SignatureError(TokenError):
    pass


class CertificateError(TokenError):
    pass


class ESSCertIDError(CertificateError):
    pass


class EKUError(CertificateError):
    pass


class KeyUsageError(CertificateError):
    pass


class CertificateValidityError(CertificateError):
    pass


class CertificatePathError(CertificateError):
    pass


class TokenIndeterminateError(TimestampError):
    exit_code = EXIT_INDETERMINATE


class AnchorError(NotaryError):
    pass


class ProofError(NotaryError):
    exit_code = EXIT_INVALID
