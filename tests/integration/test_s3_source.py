"""The S3 source against a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from notary import record
from notary.errors import SourceError, SourcePathError
from notary.sources import Entry, Skipped, make_record, open_sources
from notary.sources.s3 import S3Source
from tests.services import SeaweedServer

pytestmark = pytest.mark.timeout(120)


def _bucket(
    server: SeaweedServer, *, versioned: bool = False, lock: bool = False
) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    client: Any = server.client()
    if lock:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": "Enabled"}
        )
    return name


def _entries(source: S3Source) -> list[Entry]:
    return [found for found in source.scan() if isinstance(found, Entry)]


def _source(server: SeaweedServer, spec: str, **options: Any) -> S3Source:
    return S3Source(spec, endpoint_url=server.endpoint_url, **options)


def test_s3_versioned_key_overwritten_after_listing_hashes_listed_version(
    s3_env: SeaweedServer,
) -> None:
    bucket = _bucket(s3_env, versioned=True)
    client: Any = s3_env.client()
    first = client.put_object(Bucket=bucket, Key="logs/a.txt", Body=b"first")
    source = _source(s3_env, f"s3://{bucket}/logs/")
    (entry,) = _entries(source)
    client.put_object(Bucket=bucket, Key="logs/a.txt", Body=b"second, longer")

    hashed = source.digest(entry, "sha256")

    assert hashed.status == "ok"
    assert hashed.content_digest == hashlib.sha256(b"first").digest()
    assert hashed.size == 5
    assert entry.fields["version_id"] == first["VersionId"]


def test_s3_versioned_latest_delete_marker_is_not_listed(s3_env: SeaweedServer) -> None:
    bucket = _bucket(s3_env, versioned=True)
    client: Any = s3_env.client()
    client.put_object(Bucket=bucket, Key="p/gone", Body=b"x")
    client.put_object(Bucket=bucket, Key="p/kept", Body=b"y")
    client.put_object(Bucket=bucket, Key="p/kept", Body=b"y2")
    client.delete_object(Bucket=bucket, Key="p/gone")

    entries = _entries(_source(s3_env, f"s3://{bucket}/p/"))

    assert [e.path for e in entries] == [b"kept"]


def test_s3_versioned_key_deleted_after_listing_still_hashes_listed_version(
    s3_env: SeaweedServer,
) -> None:
    bucket = _bucket(s3_env, versioned=True)
    client: Any = s3_env.client()
    client.put_object(Bucket=bucket, Key="p/a", Body=b"kept in history")
    source = _source(s3_env, f"s3://{bucket}/p/")
    (entry,) = _entries(source)
    client.delete_object(Bucket=bucket, Key="p/a")

    hashed = source.digest(entry, "sha256")

    assert hashed.content_digest == hashlib.sha256(b"kept in history").digest()


def test_s3_unversioned_key_overwritten_after_listing_is_unstable(
    s3_env: SeaweedServer,
) -> None:
    bucket = _bucket(s3_env)
    client: Any = s3_env.client()
    client.put_object(Bucket=bucket, Key="p/a", Body=b"old")
    source = _source(s3_env, f"s3://{bucket}/p/")
    (entry,) = _entries(source)
    client.put_object(Bucket=bucket, Key="p/a", Body=b"new bytes")

    hashed = source.digest(entry, "sha256")

    assert hashed.status == "unstable"
    assert hashed.content_digest == hashlib.sha256(b"new bytes").digest()
    assert hashed.fields["size"] == 9
    assert hashed.fields["etag"] != entry.fields["etag"]


def test_s3_unversioned_key_deleted_after_listing_is_error(
    s3_env: SeaweedServer,
) -> None:
    bucket = _bucket(s3_env)
    client: Any = s3_env.client()
    client.put_object(Bucket=bucket, Key="p/a", Body=b"old")
    source = _source(s3_env, f"s3://{bucket}/p/")
    (entry,) = _entries(source)
    client.delete_object(Bucket=bucket, Key="p/a")

    hashed = source.digest(entry, "sha256")

    assert hashed.status == "error"
    assert hashed.content_digest is None
    assert f"s3://{bucket}/p/a" in (hashed.error or "")


def test_s3_multipart_object_etag_is_metadata_digest_is_sha256(
    s3_env: SeaweedServer,
) -> None:
    bucket = _bucket(s3_env)
    client: Any = s3_env.client()
    parts = [b"a" * (5 * 1024 * 1024), b"tail of the object"]
    upload = client.create_multipart_upload(Bucket=bucket, Key="big/obj.bin")
    done = [
        {
            "PartNumber": n,
            "ETag": client.upload_part(
                Bucket=bucket,
                Key="big/obj.bin",
                UploadId=upload["UploadId"],
                PartNumber=n,
                Body=body,
            )["ETag"],
        }
        for n, body in enumerate(parts, start=1)
    ]
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="big/obj.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": done},
    )
    source = _source(s3_env, f"s3://{bucket}/big/")
    (entry,) = _entries(source)

    hashed = source.digest(entry, "sha256")
    fields = make_record(hashed, record.new_salt())

    assert str(entry.fields["etag"]).endswith("-2")
    assert hashed.content_digest == hashlib.sha256(b"".join(parts)).digest()
    assert fields["size"] == sum(len(p) for p in parts)
    assert fields["etag"] == entry.fields["etag"]


def _put_many(server: SeaweedServer, bucket: str, keys: list[str]) -> None:
    client: Any = server.client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k), keys))


@pytest.fixture(scope="module")
def thousand(seaweedfs: SeaweedServer) -> str:
    """A bucket with 1,000 objects under archive/2026/11/ and two outside it."""
    bucket = _bucket(seaweedfs)
    keys = [f"archive/2026/11/obj-{n:05d}.log" for n in range(1000)]
    _put_many(seaweedfs, bucket, [*keys, "archive/2026/12/outside.log", "other.log"])
    return bucket


@pytest.mark.parametrize("page_size", [1000, 97])
def test_s3_thousand_objects_listed_across_pages_once_each_in_order(
    s3_env: SeaweedServer, thousand: str, page_size: int
) -> None:
    spec = f"s3://{thousand}/archive/2026/11/"
    source = _source(s3_env, spec, page_size=page_size)

    paths = [e.path for e in _entries(source)]

    assert len(paths) == 1000
    assert paths == sorted(set(paths))
    assert paths[0] == b"obj-00000.log"


def test_s3_object_lock_retention_and_legal_hold_recorded(
    s3_env: SeaweedServer,
) -> None:
    bucket = _bucket(s3_env, lock=True)
    client: Any = s3_env.client()
    until = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    client.put_object(
        Bucket=bucket,
        Key="held/a",
        Body=b"locked",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
        ObjectLockLegalHoldStatus="ON",
    )
    client.put_object(Bucket=bucket, Key="held/b", Body=b"not locked")
    source = _source(s3_env, f"s3://{bucket}/held/")

    locked, free = (source.digest(e, "sha256") for e in _entries(source))

    assert locked.fields["retention_mode"] == "GOVERNANCE"
    assert locked.fields["retain_until"] == "2031-01-02T03:04:05Z"
    assert locked.fields["legal_hold"] == "ON"
    assert free.status == "ok"
    assert {k: free.fields[k] for k in ("retention_mode", "retain_until")} == {
        "retention_mode": None,
        "retain_until": None,
    }
    assert free.fields["legal_hold"] in (None, "OFF")


def test_s3_record_has_frozen_object_fields(s3_env: SeaweedServer) -> None:
    bucket = _bucket(s3_env, versioned=True)
    s3_env.client().put_object(Bucket=bucket, Key="r/x.json", Body=b"{}")  # type: ignore[attr-defined]
    source = _source(s3_env, f"s3://{bucket}/r/")
    (entry,) = _entries(source)

    fields = make_record(source.digest(entry, "sha256"), "0" * 32)

    assert fields["kind"] == "object"
    assert fields["path"] == "x.json"
    assert fields["key"] == "r/x.json"
    assert str(fields["last_modified"]).endswith("Z")
    expected = {"version_id", "etag", "storage_class", "retention_mode", "retain_until"}
    assert expected | {"legal_hold", "size", "salt", "v"} <= set(fields)
    record.decode(record.encode(fields))


def test_s3_prefix_without_slash_paths_relative_to_its_folder(
    s3_env: SeaweedServer,
) -> None:
    bucket = _bucket(s3_env)
    _put_many(s3_env, bucket, ["logs/2026-11-a", "logs/2026-11-b", "logs/2026-12-a"])

    paths = [e.path for e in _entries(_source(s3_env, f"s3://{bucket}/logs/2026-11"))]

    assert paths == [b"2026-11-a", b"2026-11-b"]


def test_s3_folder_marker_is_skipped(s3_env: SeaweedServer) -> None:
    bucket = _bucket(s3_env)
    client: Any = s3_env.client()
    client.put_object(Bucket=bucket, Key="p/sub/", Body=b"")
    client.put_object(Bucket=bucket, Key="p/sub/file", Body=b"data")

    found = list(_source(s3_env, f"s3://{bucket}/p/").scan())

    assert [f.path for f in found if isinstance(f, Entry)] == [b"sub/file"]
    assert any(isinstance(f, Skipped) for f in found)


def test_s3_missing_bucket_raises_source_path_error(s3_env: SeaweedServer) -> None:
    source = _source(s3_env, "s3://no-such-bucket-here/p/")

    with pytest.raises(SourcePathError, match="no-such-bucket-here: no such bucket"):
        list(source.scan())


def test_s3_bad_credentials_raise_source_error_with_code(
    s3_env: SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _bucket(s3_env)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    source = _source(s3_env, f"s3://{bucket}/p/")

    with pytest.raises(SourceError, match="SignatureDoesNotMatch") as caught:
        list(source.scan())

    assert caught.value.facts["bucket"] == bucket


def test_s3_template_filled_from_period(s3_env: SeaweedServer) -> None:
    bucket = _bucket(s3_env)
    _put_many(s3_env, bucket, ["AWSLogs/2026/10/a", "AWSLogs/2026/11/b"])
    (source,) = open_sources(
        [f"s3://{bucket}/AWSLogs/{{period:%Y/%m}}/"],
        endpoint_url=s3_env.endpoint_url,
        period="2026-11",
    )

    paths = [e.path for e in source.scan() if isinstance(e, Entry)]

    assert paths == [b"b"]


def test_s3_utf8_keys_paths_are_exact_bytes(s3_env: SeaweedServer) -> None:
    bucket = _bucket(s3_env)
    keys = ["p/données/é.txt", "p/cafe\u0301", "p/caf\u00e9", "p/with space+plus"]
    _put_many(s3_env, bucket, keys)
    source = _source(s3_env, f"s3://{bucket}/p/")

    entries = _entries(source)
    hashed = [source.digest(e, "sha256") for e in entries]

    assert sorted(e.path for e in entries) == sorted(k[2:].encode() for k in keys)
    assert all(h.status == "ok" for h in hashed)
    assert {e.fields["key"] for e in entries} == set(keys)
