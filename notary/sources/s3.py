"""S3-compatible object storage as an evidence source (AWS S3, Aliyun OSS, Tencent COS,
Huawei OBS, SeaweedFS, MinIO… through boto3).

A source is ``s3://bucket/prefix``. Every object whose key starts with the prefix is
an item; its path is the key relative to the prefix's folder (the prefix up to and
including its last ``/``), so ``s3://logs/2026/11/`` lists ``2026/11/a.gz`` as
``a.gz``. Zero-byte keys ending in ``/`` are folder markers: skipped, not attested.

Listing is paginated. When the bucket is versioned (or versioning is suspended) the
listing is ListObjectVersions and each key's latest version at listing time is the item
(a key whose latest version is a delete marker is gone); every GET is then pinned to
that VersionId, so the digest belongs to the listed version even if the key is
overwritten meanwhile. In an unversioned bucket the GET carries ``If-Match`` with the
listed ETag; an object replaced in between is hashed as it now is, ``unstable``.

Record fields (`notary.record`): ``key``/``key_hex`` (the full key), ``version_id``,
``etag`` (unquoted; metadata only, no content digest for multipart uploads),
``last_modified`` (ISO 8601 UTC), ``storage_class``, ``size`` and, from object lock,
``retention_mode``, ``retain_until``, ``legal_hold`` (null when absent or unreadable).

Credentials come from boto3's standard chain (environment, shared profiles, instance or
container roles), never from notary's config file. A client is thread-safe, so `digest`
may run in many threads at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from notary import period as periods
from notary.errors import ConfigError, NotaryError, SourceError, SourcePathError
from notary.hashing import hash_chunks
from notary.record import Value, name_fields
from notary.sources import S3_SCHEME, Entry, Hashed, Skipped

logger = logging.getLogger(__name__)

KIND = "object"
CHUNK = 1 << 20
PAGE_SIZE = 1000
READ_ATTEMPTS = 3
RETRY_DELAY = 0.5
MAX_POOL = 32
LOCK_FIELDS = ("retention_mode", "retain_until", "legal_hold")
# Answers meaning "no object lock here" (or not readable by us): the field is null.
NO_LOCK_CODES = frozenset(
    {
        "NoSuchObjectLockConfiguration",
        "ObjectLockConfigurationNotFoundError",
        "NoSuchObjectLegalHold",
        "InvalidRequest",
        "AccessDenied",
        "MethodNotAllowed",
        "NotImplemented",
        "501",
        "405",
        "403",
        "404",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404"})
CHANGED_CODES = frozenset({"PreconditionFailed", "412"})


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into (bucket, prefix); raises SourcePathError."""
    if not spec.startswith(S3_SCHEME):
        raise SourcePathError(f"source {spec!r}: not an s3:// URL", source=spec)
    bucket, _, prefix = spec[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise SourcePathError(
            f"source {spec!r}: no bucket name", source=spec, hint="s3://bucket/prefix/"
        )
    return bucket, prefix


def iso_utc(moment: datetime | None) -> str | None:
    """Return an aware datetime as ISO 8601 UTC with a ``Z`` suffix."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def error_code(exc: BaseException) -> str:
    """Return the S3 error code of a botocore error (its class name otherwise)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(error.get("Code") or status or "ClientError")
    return type(exc).__name__


def _unquote(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


class S3Source:
    """The objects under an S3 prefix (module docstring).

    ``endpoint_url`` selects a non-AWS service; ``region`` its region;
    ``addressing_style`` ``virtual`` is for services that refuse path-style requests
    (Aliyun OSS, Tencent COS); ``period`` fills ``{period:...}`` placeholders left in
    ``spec``; ``client`` is a ready boto3 S3 client (otherwise one is made from the
    standard credential chain). Nothing is contacted before `scan`.
    """

    def __init__(
        self,
        spec: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        period: str | None = None,
        client: Any = None,
        page_size: int = PAGE_SIZE,
        addressing_style: str | None = None,
    ) -> None:
        if "{period" in spec:
            if period is None:
                raise ConfigError(f"source {spec!r}: template needs a period")
            spec = periods.fill(spec, period)
        self.spec = spec
        self.bucket, self.prefix = parse_spec(spec)
        self.base = self.prefix[: self.prefix.rfind("/") + 1]
        self.description = spec
        self.page_size = page_size
        self.versioned = False
        self.object_lock = False
        self._client = client or make_client(endpoint_url, region, addressing_style)

    # listing --------------------------------------------------------------------------

    def scan(self) -> Iterator[Entry | Skipped]:
        """Yield the prefix's objects in ascending key order (S3 lists keys in UTF-8
        byte order). Raises SourcePathError for a missing bucket, SourceError when
        listing fails."""
        self.versioned = self._is_versioned()
        self.object_lock = self._has_object_lock()
        logger.info(
            "s3 %s: listing (versioned=%s, object lock=%s)",
            self.spec,
            self.versioned,
            self.object_lock,
        )
        listing = self._versions() if self.versioned else self._objects()
        for item in listing:
            yield self._entry(item)

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return dict(getattr(self._client, operation)(Bucket=self.bucket, **params))
        except (ClientError, BotoCoreError) as exc:
            raise self._listing_error(operation, exc) from exc

    def _listing_error(self, operation: str, exc: BaseException) -> NotaryError:
        code = error_code(exc)
        facts = {"bucket": self.bucket, "prefix": self.prefix, "code": code}
        if code in ("NoSuchBucket", "404"):
            return SourcePathError(f"s3 bucket {self.bucket}: no such bucket", **facts)
        message = f"s3 bucket {self.bucket}: {operation} failed: {code}: {exc}"
        return SourceError(message, operation=operation, **facts)

    def _is_versioned(self) -> bool:
        try:
            answer = self._call("get_bucket_versioning")
        except SourceError as exc:
            if exc.facts.get("code") not in ("AccessDenied", "403"):
                raise
            # NOTE: least-privilege policies often allow only ListBucket and GetObject.
            # Without the versioning status, GETs are pinned by If-Match on the ETag.
            logger.warning(
                "s3 bucket %s: versioning status not readable (%s); reading objects "
                "by ETag instead of version id",
                self.bucket,
                exc.facts.get("code"),
            )
            return False
        return answer.get("Status") in ("Enabled", "Suspended")

    def _has_object_lock(self) -> bool:
        try:
            answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if error_code(exc) in NO_LOCK_CODES:
                return False
            raise self._listing_error("get_object_lock_configuration", exc) from exc
        except BotoCoreError as exc:
            raise self._listing_error("get_object_lock_configuration", exc) from exc
        config = answer.get("ObjectLockConfiguration", {})
        return bool(config.get("ObjectLockEnabled") == "Enabled")

    def _pages(self, operation: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator(operation)
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self.prefix,
            PaginationConfig={"PageSize": self.page_size},
        )
        try:
            yield from pages
        except (ClientError, BotoCoreError) as exc:
            raise self._listing_error(operation, exc) from exc

    def _objects(self) -> Iterator[dict[str, Any]]:
        for page in self._pages("list_objects_v2"):
            yield from page.get("Contents", [])

    def _versions(self) -> Iterator[dict[str, Any]]:
        # Each key's latest version appears once, flagged IsLatest; a key whose latest
        # version is a delete marker has none in "Versions" flagged so.
        for page in self._pages("list_object_versions"):
            for version in page.get("Versions", []):
                if version.get("IsLatest"):
                    yield version

    def _entry(self, item: Mapping[str, Any]) -> Entry | Skipped:
        key = str(item["Key"])
        raw = key.encode("utf-8", "surrogateescape")
        path = raw[len(self.base.encode("utf-8", "surrogateescape")) :]
        size = int(item.get("Size", 0))
        if not path or (key.endswith("/") and size == 0):
            return Skipped(path or raw, "folder marker (zero-byte key ending in /)")
        version = item.get("VersionId") if self.versioned else None
        fields: dict[str, Value] = {
            **name_fields("key", raw),
            "version_id": str(version) if version is not None else None,
            "etag": _unquote(item.get("ETag")),
            "last_modified": iso_utc(item.get("LastModified")),
            "storage_class": item.get("StorageClass"),
            "size": size,
        }
        return Entry(path=path, kind=KIND, fields=fields)

    # hashing --------------------------------------------------------------------------

    def digest(self, entry: Entry, algorithm: str) -> Hashed:
        """Stream the listed object into ``algorithm``; never raises for one object.

        Transient failures (connection, 5xx, a short body) are retried; the result is
        ``error`` with a message naming bucket, key and S3 code when all attempts fail.
        """
        key = _key_of(entry)
        last_error = ""
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return self._read(entry, key, algorithm, attempt)
            except _ObjectError as exc:
                return _failed(entry, exc.message, attempt)
            except (ClientError, BotoCoreError, OSError) as exc:
                last_error = self._read_message(key, exc)
                if error_code(exc) in NOT_FOUND_CODES or not _is_transient(exc):
                    return _failed(entry, last_error, attempt)
                logger.warning(
                    "%s (attempt %d of %d)", last_error, attempt, READ_ATTEMPTS
                )
                time.sleep(RETRY_DELAY * attempt)
        return _failed(entry, last_error, READ_ATTEMPTS)

    def _read_message(self, key: str, exc: BaseException) -> str:
        return f"s3://{self.bucket}/{key}: read failed: {error_code(exc)}: {exc}"

    def _read(self, entry: Entry, key: str, algorithm: str, attempt: int) -> Hashed:
        version = entry.fields.get("version_id")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version is not None:
            params["VersionId"] = version
        elif entry.fields.get("etag"):
            params["IfMatch"] = f'"{entry.fields["etag"]}"'
        try:
            response = self._client.get_object(**params)
        except ClientError as exc:
            if version is None and error_code(exc) in CHANGED_CODES:
                return self._read_changed(entry, key, algorithm, attempt)
            raise
        digest, size = _stream(response, algorithm)
        expected = entry.fields.get("size")
        if size != expected:
            raise _ObjectError(
                f"s3://{self.bucket}/{key}: size mismatch "
                f"(expected {expected}, got {size})"
            )
        fields = {"size": size, **self._lock_fields(key, version, response)}
        return Hashed(entry, "ok", digest, size, fields, attempts=attempt)

    def _read_changed(
        self, entry: Entry, key: str, algorithm: str, attempt: int
    ) -> Hashed:
        """Hash an unversioned object replaced since listing, as it is now."""
        logger.warning(
            "s3://%s/%s: changed since listing (etag %s); hashing the current object",
            self.bucket,
            key,
            entry.fields.get("etag"),
        )
        response = self._client.get_object(Bucket=self.bucket, Key=key)
        digest, size = _stream(response, algorithm)
        fields: dict[str, Value] = {
            "size": size,
            "etag": _unquote(response.get("ETag")),
            "last_modified": iso_utc(response.get("LastModified")),
            **self._lock_fields(key, None, response),
        }
        return Hashed(entry, "unstable", digest, size, fields, attempts=attempt + 1)

    def _lock_fields(
        self, key: str, version: Value, response: Mapping[str, Any]
    ) -> dict[str, Value]:
        fields: dict[str, Value] = {
            "retention_mode": response.get("ObjectLockMode"),
            "retain_until": iso_utc(response.get("ObjectLockRetainUntilDate")),
            "legal_hold": response.get("ObjectLockLegalHoldStatus"),
        }
        if self.object_lock and fields["retention_mode"] is None:
            fields.update(self._retention(key, version))
        if self.object_lock and fields["legal_hold"] is None:
            fields["legal_hold"] = self._legal_hold(key, version)
        return fields

    def _retention(self, key: str, version: Value) -> dict[str, Value]:
        answer = self._lock_call("get_object_retention", key, version)
        retention = answer.get("Retention", {}) if answer else {}
        return {
            "retention_mode": retention.get("Mode"),
            "retain_until": iso_utc(retention.get("RetainUntilDate")),
        }

    def _legal_hold(self, key: str, version: Value) -> Value:
        answer = self._lock_call("get_object_legal_hold", key, version)
        status = answer.get("LegalHold", {}).get("Status") if answer else None
        return str(status) if status is not None else None

    def _lock_call(self, operation: str, key: str, version: Value) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version is not None:
            params["VersionId"] = version
        try:
            return dict(getattr(self._client, operation)(**params))
        except ClientError as exc:
            if error_code(exc) not in NO_LOCK_CODES:
                raise
            return {}


class _ObjectError(Exception):
    """A permanent per-object problem, turned into an ``error`` result by `digest`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def make_client(
    endpoint_url: str | None,
    region: str | None,
    addressing_style: str | None = None,
) -> Any:
    """Return an S3 client from boto3's standard credential chain (thread-safe).

    ``addressing_style`` ``virtual`` puts the bucket in the host name, as Aliyun OSS
    and Tencent COS require; boto3 uses path style for other endpoints by default.
    Raises ConfigError for another value than virtual, path or auto.
    """
    if addressing_style not in (None, "virtual", "path", "auto"):
        raise ConfigError(
            f"s3: addressing_style must be virtual, path or auto, "
            f"got {addressing_style!r}"
        )
    session = boto3.session.Session(region_name=region)
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=MAX_POOL,
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": addressing_style or "auto"},
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config)


def _key_of(entry: Entry) -> str:
    key = entry.fields.get("key")
    if isinstance(key, str):
        return key
    raw = entry.fields.get("key_hex")
    return bytes.fromhex(str(raw)).decode("utf-8", "surrogateescape")


def _stream(response: Mapping[str, Any], algorithm: str) -> tuple[bytes, int]:
    """Feed a GET body into a fresh digest in chunks; return (digest, bytes read)."""
    body = response["Body"]
    try:
        return hash_chunks(body.iter_chunks(CHUNK), algorithm)
    finally:
        body.close()


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status or 0) >= 500
    return True


def _failed(entry: Entry, message: str, attempts: int) -> Hashed:
    logger.warning("%s", message)
    return Hashed(entry, "error", None, 0, {}, error=message, attempts=attempts)
