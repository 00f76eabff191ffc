"""S3 source error handling with botocore's Stubber (no server; nothing leaves the
process). The real behaviour is covered by tests/integration/test_s3_source.py."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from botocore.stub import Stubber

from notary.errors import ConfigError, SourceError, SourcePathError
from notary.sources import Entry
from notary.sources import s3 as s3_module
from notary.sources.s3 import S3Source, iso_utc, make_client, parse_spec

BUCKET = "evidence"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(s3_module, "RETRY_DELAY", 0.0)
    made = boto3.session.Session().client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    yield made


def _entry(key: str = "p/a", size: int = 4, version: str | None = None) -> Entry:
    fields: dict[str, Any] = {
        "key": key,
        "version_id": version,
        "etag": "abc",
        "size": size,
    }
    return Entry(path=key.encode()[2:], kind="object", fields=fields)


def _body(data: bytes) -> dict[str, Any]:
    return {
        "Body": StreamingBody(io.BytesIO(data), len(data)),
        "ContentLength": len(data),
    }


def test_parse_spec_bucket_and_prefix() -> None:
    assert parse_spec("s3://b/logs/2026/") == ("b", "logs/2026/")
    assert parse_spec("s3://b") == ("b", "")


def test_parse_spec_without_bucket_raises() -> None:
    with pytest.raises(SourcePathError, match="no bucket name"):
        parse_spec("s3:///prefix")


def test_template_without_period_raises_config_error(client: Any) -> None:
    with pytest.raises(ConfigError, match="template needs a period"):
        S3Source("s3://b/{period:%Y}/", client=client)


def test_iso_utc_converts_offsets_and_uses_z() -> None:
    moment = datetime.fromisoformat("2026-11-30T20:00:00-05:00")

    assert iso_utc(moment) == "2026-12-01T01:00:00Z"
    assert iso_utc(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00Z"


def test_versioning_access_denied_falls_back_to_plain_listing(client: Any) -> None:
    source = S3Source(f"s3://{BUCKET}/p/", client=client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_bucket_versioning", "AccessDenied", http_status_code=403
        )
        stub.add_client_error(
            "get_object_lock_configuration", "AccessDenied", http_status_code=403
        )
        stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": "p/a", "Size": 4, "ETag": '"abc"'}], "KeyCount": 1},
        )

        entries = list(source.scan())

    assert [e.path for e in entries] == [b"a"]
    assert not source.versioned


def test_listing_failure_raises_source_error_with_facts(client: Any) -> None:
    source = S3Source(f"s3://{BUCKET}/p/", client=client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_bucket_versioning", "InternalError", http_status_code=500
        )

        with pytest.raises(SourceError, match="InternalError") as caught:
            list(source.scan())

    assert caught.value.facts == {
        "bucket": BUCKET,
        "prefix": "p/",
        "code": "InternalError",
        "operation": "get_bucket_versioning",
    }


def test_digest_server_errors_retried_then_error_result(client: Any) -> None:
    source = S3Source(f"s3://{BUCKET}/p/", client=client)
    with Stubber(client) as stub:
        for _ in range(s3_module.READ_ATTEMPTS):
            stub.add_client_error("get_object", "InternalError", http_status_code=500)

        hashed = source.digest(_entry(), "sha256")

    assert (hashed.status, hashed.attempts) == ("error", s3_module.READ_ATTEMPTS)
    assert hashed.error is not None
    assert f"s3://{BUCKET}/p/a: read failed: InternalError" in hashed.error


def test_digest_transient_error_then_success_is_ok(client: Any) -> None:
    source = S3Source(f"s3://{BUCKET}/p/", client=client)
    with Stubber(client) as stub:
        stub.add_client_error("get_object", "SlowDown", http_status_code=503)
        stub.add_response("get_object", _body(b"data"))

        hashed = source.digest(_entry(), "sha256")

    assert (hashed.status, hashed.attempts) == ("ok", 2)
    assert hashed.content_digest == hashlib.sha256(b"data").digest()


def test_digest_missing_version_is_error_without_retry(client: Any) -> None:
    source = S3Source(f"s3://{BUCKET}/p/", client=client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_object",
            "NoSuchVersion",
            http_status_code=404,
            expected_params={"Bucket": BUCKET, "Key": "p/a", "VersionId": "v1"},
        )

        hashed = source.digest(_entry(version="v1"), "sha256")

    assert (hashed.status, hashed.attempts) == ("error", 1)
    assert "NoSuchVersion" in (hashed.error or "")


def test_digest_size_differs_from_listing_is_error(client: Any) -> None:
    source = S3Source(f"s3://{BUCKET}/p/", client=client)
    with Stubber(client) as stub:
        stub.add_response("get_object", _body(b"longer than listed"))

        hashed = source.digest(_entry(size=4), "sha256")

    assert hashed.status == "error"
    assert "size mismatch (expected 4, got 18)" in (hashed.error or "")


def test_digest_unversioned_get_carries_if_match(client: Any) -> None:
    source = S3Source(f"s3://{BUCKET}/p/", client=client)
    with Stubber(client) as stub:
        expected = {"Bucket": BUCKET, "Key": "p/a", "IfMatch": '"abc"'}
        stub.add_response("get_object", _body(b"data"), expected_params=expected)

        hashed = source.digest(_entry(), "sha256")

    assert hashed.status == "ok"
    assert hashed.fields["retention_mode"] is None


def _first_url(client: Any) -> str:
    """Return the URL of the client's first request, answered locally (never sent)."""
    urls: list[str] = []

    def answer(request: Any, **_kwargs: Any) -> AWSResponse:
        urls.append(request.url)
        return AWSResponse(request.url, 200, {}, None)

    client.meta.events.register("before-send", answer)
    with contextlib.suppress(AttributeError):  # the empty local answer does not parse
        client.get_bucket_versioning(Bucket="audit-logs")
    return urls[0]


def test_make_client_virtual_addressing_puts_bucket_in_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    endpoint = "https://oss-cn-hangzhou.aliyuncs.com"

    virtual = make_client(endpoint, "cn-hangzhou", "virtual")
    default = make_client(endpoint, "cn-hangzhou")

    assert _first_url(virtual).startswith("https://audit-logs.oss-cn-hangzhou")
    assert _first_url(default).startswith(f"{endpoint}/audit-logs")


def test_make_client_unknown_addressing_style_raises() -> None:
    with pytest.raises(ConfigError, match="addressing_style must be virtual"):
        make_client(None, None, "sideways")
