"""Storage backends: local files with HMAC-signed links, and S3 over HTTP against moto."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from shared.errors import ConfigurationError, InvalidSignature, StorageError
from shared.settings import Settings
from shared.storage import LocalStorage, make_storage
from shared.storage.s3 import MAX_PRESIGNED_EXPIRY, S3Storage
from tests.servers import free_port

BASE_URL = "http://shotline.test:8000"
SIGNING_KEY = b"test-signing-key"
KEY = "results/0123abcd.png"
#: Bigger than three default chunks, so streaming is exercised across chunk boundaries.
PAYLOAD = os.urandom(3 * 64 * 1024 + 123)

UNSAFE_KEYS = [
    "../escape.png",
    "results/../../escape.png",
    "results/..",
    "./results/x.png",
    "/etc/passwd",
    "results//x.png",
    "results/",
    "results/.hidden",
    "",
    "results\\x.png",
    "results/x y.png",
    "results/x.png\n",
    "results/%2e%2e/x.png",
    "results/\u00e9.png",
    "a" * 1025,
]


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio only."""
    return "asyncio"


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    """Every chunk an async iterator yields."""
    return [chunk async for chunk in chunks]


def query_of(url: str) -> dict[str, str]:
    """The query parameters of ``url`` (each assumed to appear once)."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


# --- Local storage ----------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    """A local storage rooted in this test's temporary directory."""
    return LocalStorage(tmp_path / "files", BASE_URL, SIGNING_KEY)


@pytest.mark.anyio
async def test_local_put_then_stream_round_trip(local: LocalStorage) -> None:
    await local.put(KEY, PAYLOAD, content_type="image/png")

    chunks = await collect(local.stream(KEY, chunk_size=64 * 1024))

    assert b"".join(chunks) == PAYLOAD
    assert len(chunks) == 4
    assert all(len(chunk) <= 64 * 1024 for chunk in chunks)
    assert local.path_for(KEY) == local.root / "results" / "0123abcd.png"
    # The temporary file was renamed into place: nothing else is left next to it.
    assert [p.name for p in (local.root / "results").iterdir()] == ["0123abcd.png"]


@pytest.mark.anyio
async def test_local_put_overwrites_a_redelivered_key(local: LocalStorage) -> None:
    await local.put(KEY, b"first attempt", content_type="image/png")
    await local.put(KEY, b"second attempt", content_type="image/png")

    assert b"".join(await collect(local.stream(KEY))) == b"second attempt"
    assert len(list((local.root / "results").iterdir())) == 1


@pytest.mark.anyio
async def test_local_stream_of_a_missing_key_raises_storage_error(local: LocalStorage) -> None:
    with pytest.raises(StorageError, match="No object"):
        await collect(local.stream("results/missing.png"))


@pytest.mark.anyio
async def test_local_put_fails_with_storage_error_when_the_root_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "not-a-directory"
    root.write_bytes(b"")
    storage = LocalStorage(root, BASE_URL, SIGNING_KEY)

    with pytest.raises(StorageError, match="cannot write"):
        await storage.put(KEY, PAYLOAD, content_type="image/png")
    with pytest.raises(StorageError, match="not writable"):
        await storage.check()


@pytest.mark.anyio
async def test_local_check_creates_and_accepts_a_writable_root(local: LocalStorage) -> None:
    await local.check()

    assert local.root.is_dir()
    assert list(local.root.iterdir()) == []  # the probe file is removed


def test_local_signed_url_points_at_the_files_route_and_verifies(local: LocalStorage) -> None:
    before = int(time.time())
    signed = local.signed_url(KEY, expires_in=600)

    parts = urlsplit(signed.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE_URL}/v1/files/{KEY}"
    query = query_of(signed.url)
    assert set(query) == {"expires", "signature"}
    expires = int(query["expires"])
    assert before + 600 <= expires <= int(time.time()) + 600
    assert signed.expires_at == datetime.fromtimestamp(expires, tz=UTC)

    local.verify(KEY, query["expires"], query["signature"])  # as the route receives them
    local.verify(KEY, expires, query["signature"], now=expires - 1)


def test_local_signed_url_expires(local: LocalStorage) -> None:
    query = query_of(local.signed_url(KEY, expires_in=1).url)
    expires = int(query["expires"])

    with pytest.raises(InvalidSignature, match="expired"):
        local.verify(KEY, query["expires"], query["signature"], now=expires)
    with pytest.raises(InvalidSignature, match="expired"):
        local.verify(KEY, query["expires"], query["signature"], now=expires + 3600)


def _flip_last(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


TAMPERINGS: dict[str, Callable[[str, str, str], tuple[str, str, str]]] = {
    "signature changed": lambda k, e, s: (k, e, _flip_last(s)),
    "signature truncated": lambda k, e, s: (k, e, s[:-2]),
    "signature empty": lambda k, e, s: (k, e, ""),
    "signature not ascii": lambda k, e, s: (k, e, s[:-1] + "\u00e9"),
    "key changed": lambda k, e, s: ("results/someone-else.png", e, s),
    "expiry extended": lambda k, e, s: (k, str(int(e) + 3600), s),
    "expiry with leading zero": lambda k, e, s: (k, "0" + e, s),
    "expiry not a number": lambda k, e, s: (k, "tomorrow", s),
    "expiry negative": lambda k, e, s: (k, "-" + e, s),
    "expiry empty": lambda k, e, s: (k, "", s),
}


@pytest.mark.parametrize("tamper", list(TAMPERINGS.values()), ids=list(TAMPERINGS))
def test_local_tampered_links_are_refused(
    local: LocalStorage, tamper: Callable[[str, str, str], tuple[str, str, str]]
) -> None:
    query = query_of(local.signed_url(KEY, expires_in=600).url)

    key, expires, signature = tamper(KEY, query["expires"], query["signature"])

    with pytest.raises(InvalidSignature):
        local.verify(key, expires, signature)


def test_local_links_signed_with_another_key_are_refused(
    local: LocalStorage, tmp_path: Path
) -> None:
    other = LocalStorage(tmp_path / "files", BASE_URL, b"another-secret")
    query = query_of(other.signed_url(KEY, expires_in=600).url)

    with pytest.raises(InvalidSignature, match="signature"):
        local.verify(KEY, query["expires"], query["signature"])


@pytest.mark.anyio
@pytest.mark.parametrize("key", UNSAFE_KEYS)
async def test_local_refuses_unsafe_keys(local: LocalStorage, tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError, match="Invalid storage key"):
        await local.put(key, b"payload", content_type="image/png")
    with pytest.raises(StorageError, match="Invalid storage key"):
        local.path_for(key)
    with pytest.raises(StorageError, match="Invalid storage key"):
        local.signed_url(key, expires_in=60)
    with pytest.raises(StorageError, match="Invalid storage key"):
        await collect(local.stream(key))
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing written anywhere


# --- make_storage -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_make_storage_local_uses_the_data_dir_and_signing_key(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(storage="local", public_base_url="https://shots.example.com/")

    storage = make_storage(settings)

    assert isinstance(storage, LocalStorage)
    assert storage.root == settings.data_dir / "files"
    signed = storage.signed_url(KEY, expires_in=60)
    assert signed.url.startswith(f"https://shots.example.com/v1/files/{KEY}?")
    query = query_of(signed.url)
    # Another process with the same settings (the API) accepts the worker's links.
    LocalStorage(Path("elsewhere"), "", settings.signing_key).verify(
        KEY, query["expires"], query["signature"]
    )
    await storage.put(KEY, b"png", content_type="image/png")
    assert (settings.data_dir / "files" / KEY).read_bytes() == b"png"


def test_make_storage_s3_without_a_bucket_is_a_configuration_error(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ConfigurationError, match="S3_BUCKET"):
        make_storage(make_settings(storage="s3"))


# --- S3 against moto's standalone server --------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy AWS credentials and region; no profile, config file or endpoint from the host."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def bucket(s3_admin: Any, aws_env: None) -> str:
    """A fresh, empty bucket on moto."""
    name = f"shotline-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(moto_endpoint: str, bucket: str) -> Iterator[S3Storage]:
    """S3 storage on this test's bucket, built as ``make_storage`` builds it."""
    storage = S3Storage(bucket, moto_endpoint, "us-east-1")
    yield storage
    asyncio.run(storage.aclose())


@pytest.mark.anyio
async def test_s3_put_stores_the_bytes_with_their_content_type(
    s3: S3Storage, s3_admin: Any, bucket: str
) -> None:
    await s3.put(KEY, PAYLOAD, content_type="image/png")

    head = s3_admin.head_object(Bucket=bucket, Key=KEY)
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == len(PAYLOAD)
    assert s3_admin.get_object(Bucket=bucket, Key=KEY)["Body"].read() == PAYLOAD


@pytest.mark.anyio
async def test_s3_put_then_stream_round_trip(s3: S3Storage) -> None:
    await s3.put(KEY, PAYLOAD, content_type="image/png")

    chunks = await collect(s3.stream(KEY, chunk_size=64 * 1024))

    assert b"".join(chunks) == PAYLOAD
    assert len(chunks) >= 4
    assert all(len(chunk) <= 64 * 1024 for chunk in chunks)


@pytest.mark.anyio
async def test_s3_stream_of_a_missing_key_raises_storage_error(s3: S3Storage) -> None:
    with pytest.raises(StorageError, match="No object"):
        await collect(s3.stream("results/missing.png"))


@pytest.mark.anyio
async def test_s3_presigned_url_downloads_the_object(
    s3: S3Storage, moto_endpoint: str, bucket: str
) -> None:
    await s3.put(KEY, PAYLOAD, content_type="image/png")
    before = int(time.time())

    signed = s3.signed_url(KEY, expires_in=900)

    assert signed.url.startswith(f"{moto_endpoint}/{bucket}/{KEY}?")  # path-style
    query = query_of(signed.url)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "900"
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before + 900 <= signed.expires_at.timestamp() <= int(time.time()) + 900
    assert abs(signed.expires_at.timestamp() - (signed_at.timestamp() + 900)) <= 1
    async with httpx.AsyncClient() as client:
        response = await client.get(signed.url)
    assert response.status_code == 200
    assert response.content == PAYLOAD
    assert response.headers["content-type"] == "image/png"


def test_s3_signed_url_refuses_lifetimes_sigv4_cannot_express(s3: S3Storage) -> None:
    with pytest.raises(StorageError, match="valid for 1 to"):
        s3.signed_url(KEY, expires_in=MAX_PRESIGNED_EXPIRY + 1)
    with pytest.raises(StorageError, match="valid for 1 to"):
        s3.signed_url(KEY, expires_in=0)


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["../escape.png", "/results/x.png", "results/./x.png"])
async def test_s3_refuses_unsafe_keys(s3: S3Storage, s3_admin: Any, bucket: str, key: str) -> None:
    with pytest.raises(StorageError, match="Invalid storage key"):
        await s3.put(key, b"payload", content_type="image/png")
    with pytest.raises(StorageError, match="Invalid storage key"):
        s3.signed_url(key, expires_in=60)
    assert s3_admin.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


@pytest.mark.anyio
async def test_s3_check_passes_for_an_existing_bucket(s3: S3Storage) -> None:
    await s3.check()
    await s3.aclose()


@pytest.mark.anyio
async def test_s3_check_fails_for_a_missing_bucket(moto_endpoint: str, aws_env: None) -> None:
    storage = S3Storage(f"missing-{uuid.uuid4().hex[:12]}", moto_endpoint, "us-east-1")

    with pytest.raises(StorageError, match="does not exist"):
        await storage.check()
    with pytest.raises(StorageError, match="Cannot upload"):
        await storage.put(KEY, PAYLOAD, content_type="image/png")
    await storage.aclose()


@pytest.mark.anyio
async def test_s3_check_fails_when_the_endpoint_is_down(aws_env: None) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        config=Config(connect_timeout=1, retries={"max_attempts": 1, "mode": "standard"}),
    )
    storage = S3Storage("shotline", endpoint, client=client)

    with pytest.raises(StorageError, match="not reachable"):
        await storage.check()
    await storage.aclose()


@pytest.mark.anyio
async def test_make_storage_s3_talks_to_the_configured_endpoint(
    make_settings: Callable[..., Settings], moto_endpoint: str, bucket: str
) -> None:
    settings = make_settings(
        storage="s3", s3_bucket=bucket, s3_endpoint_url=moto_endpoint, s3_region="us-east-1"
    )

    storage = make_storage(settings)

    assert isinstance(storage, S3Storage)
    await storage.check()
    await storage.put(KEY, b"png", content_type="image/png")
    assert b"".join(await collect(storage.stream(KEY))) == b"png"
    await storage.aclose()


@pytest.mark.anyio
async def test_s3_links_can_point_at_a_public_endpoint(moto_endpoint: str, bucket: str) -> None:
    # Shotline reaches S3 as 127.0.0.1 while clients reach it as "localhost" (MinIO in Docker
    # Compose: "minio:9000" inside, "localhost:9000" outside): links are signed for the latter.
    public = moto_endpoint.replace("127.0.0.1", "localhost")
    storage = S3Storage(bucket, moto_endpoint, "us-east-1", public_endpoint_url=public)
    try:
        await storage.put(KEY, PAYLOAD, content_type="image/png")
        signed = storage.signed_url(KEY, expires_in=60)
        assert signed.url.startswith(f"{public}/{bucket}/{KEY}?")
        assert query_of(signed.url)["X-Amz-Credential"].endswith("/us-east-1/s3/aws4_request")
        async with httpx.AsyncClient() as client:
            response = await client.get(signed.url)
        assert response.status_code == 200 and response.content == PAYLOAD
    finally:
        await storage.aclose()
