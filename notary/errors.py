"""Every error notary raises on purpose, under one root.

    NotaryError                      exit 3 unless a subclass says otherwise
    ├── UsageError                   exit 2: the caller asked for something impossible
    │   ├── ConfigError              bad or unknown configuration keys
    │   ├── SourcePathError          an evidence path that does not exist
    │   ├── NoItemsError             a source with nothing to attest
    │   ├── RunConflictError         a run already exists for this stream and period
    │   ├── NotFoundError            no such run, item or file
    │   └── BundleFormatError        not a readable notary bundle (or a newer major version)
    ├── SourceError                  listing or reading evidence failed
    ├── StoreError                   the database failed or holds something unexpected
    ├── TimestampError               obtaining or checking an RFC 3161 timestamp failed
    │   ├── TSATransportError        HTTP/transport problem talking to a TSA
    │   ├── TSAStatusError           the TSA answered with a non-granted status
    │   └── TokenError               a token failed a check (verdict "invalid")
    │       ├── TokenFormatError     the bytes are not a TimeStampResp/TimeStampToken
    │       ├── ImprintMismatchError
    │       ├── NonceMismatchError
    │       ├── SignatureError
    │       └── CertificateError     signer certificate or path rejected
    │   └── TokenIndeterminateError  a check could not be decided (verdict "indeterminate")
    ├── AnchorError                  EVM anchoring or anchor verification failed
    └── ProofError                   a Merkle proof or bundle content does not check out

Each error carries the facts as attributes (keyword arguments of the constructor), so callers
and JSON reports can show expected and actual values without parsing the message.
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


class SourcePathError(UsageError):
    pass


class NoItemsError(UsageError):
    pass


class RunConflictError(UsageError):
    pass


class NotFoundError(UsageError):
    pass


class BundleFormatError(UsageError):
    pass


class SourceError(NotaryError):
    pass


class StoreError(NotaryError):
    pass


class TimestampError(NotaryError):
    pass


class TSATransportError(TimestampError):
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


class TokenIndeterminateError(TimestampError):
    exit_code = EXIT_INDETERMINATE


class AnchorError(NotaryError):
    pass


class ProofError(NotaryError):
    exit_code = EXIT_INVALID
