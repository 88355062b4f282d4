"""Storage in an S3 bucket (AWS, MinIO, or any S3-compatible server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import StorageError, UrlBlocked
from shared.storage.base import SignedUrl
from shared.storage.local import validate_key
from shared.storage.pinned import PinnedSession, pin_connections

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from shared.url_policy import UrlPolicy

#: SigV4 presigned URLs cannot be valid for longer than this (7 days).
MAX_PRESIGNED_EXPIRY = 7 * 24 * 3600

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
#: What a request can raise: botocore's errors, and the URL policy's refusal of a connection
#: (pinned clients only, see :mod:`shared.storage.pinned`).
_FAILURES = (BotoCoreError, ClientError, UrlBlocked)


def client_config(*, path_style: bool) -> Config:
    """botocore settings for Shotline's S3 client: short timeouts, a few retries, SigV4."""
    return Config(
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 4, "mode": "standard"},
        s3={"addressing_style": "path" if path_style else "auto"},
    )


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _make_client(endpoint_url: str | None, region: str | None) -> S3Client:
    try:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=client_config(path_style=endpoint_url is not None),
        )
    except (BotoCoreError, ValueError) as exc:
        raise StorageError(f"Cannot create the S3 client: {exc}") from exc


class S3Storage:
    """Objects in ``bucket``; links are presigned ``GetObject`` URLs straight to S3.

    Credentials and (unless ``region`` is given) the region come from boto3's usual chain:
    environment, shared config files, instance/container roles. With ``endpoint_url``
    (MinIO, moto...) requests use path-style addressing. With ``public_endpoint_url``, links
    are signed for that address instead (SigV4 signs the host, so they cannot be rewritten):
    for an S3 server that clients reach by another name than Shotline does. With ``policy``,
    every connection the client opens goes only to addresses that policy accepts for that
    connection's own resolution of the host (customers' buckets, see
    :mod:`shared.storage.pinned`); a refused connection is a :class:`StorageError` caused by
    :class:`~shared.errors.UrlBlocked`.
    """

    name = "s3"

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: S3Client | None = None,
        *,
        public_endpoint_url: str | None = None,
        policy: UrlPolicy | None = None,
    ) -> None:
        if not bucket:
            raise StorageError("S3Storage needs a bucket name.")
        self.bucket = bucket
        if client is None:
            client = _make_client(endpoint_url, region)
        self._client = client
        self._pinned: PinnedSession | None = (None if policy is None
                                              else pin_connections(client, policy))
        # Presigning is local computation: this client never opens a connection.
        self._signer = (client if public_endpoint_url is None
                        else _make_client(public_endpoint_url, client.meta.region_name))

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Upload ``data`` to ``key`` with ``content_type`` (overwriting any previous object)."""
        validate_key(key)
        try:
            await asyncio.to_thread(
                self._client.put_object,
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
            )
        except _FAILURES as exc:
            raise StorageError(f"Cannot upload {key!r} to bucket {self.bucket!r}: {exc}") from exc

    def signed_url(self, key: str, *, expires_in: int) -> SignedUrl:
        """A presigned ``GetObject`` URL for ``key`` valid for ``expires_in`` seconds (no I/O)."""
        validate_key(key)
        if not 1 <= expires_in <= MAX_PRESIGNED_EXPIRY:
            raise StorageError(
                f"S3 download links must be valid for 1 to {MAX_PRESIGNED_EXPIRY} seconds,"
                f" not {expires_in}."
            )
        issued = int(time.time())
        try:
            url = self._signer.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=expires_in,
            )
        except _FAILURES as exc:
            raise StorageError(f"Cannot sign a download link for {key!r}: {exc}") from exc
        return SignedUrl(url=url, expires_at=datetime.fromtimestamp(issued + expires_in, tz=UTC))

    async def stream(self, key: str, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The object's bytes in chunks, downloaded in a worker thread.

        Raises :class:`StorageError` (on the first iteration) when the object does not exist.
        """
        validate_key(key)
        try:
            response = await asyncio.to_thread(
                self._client.get_object, Bucket=self.bucket, Key=key
            )
        except _FAILURES as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise StorageError(f"No object {key!r} in bucket {self.bucket!r}.") from exc
            raise StorageError(f"Cannot download {key!r} from {self.bucket!r}: {exc}") from exc
        body = response["Body"]
        chunks: Iterator[bytes] = body.iter_chunks(chunk_size)
        try:
            while chunk := await asyncio.to_thread(next, chunks, b""):
                yield chunk
        except _FAILURES as exc:
            raise StorageError(f"Download of {key!r} from {self.bucket!r} failed: {exc}") from exc
        finally:
            await asyncio.to_thread(body.close)

    async def delete(self, key: str) -> None:
        """Remove ``key`` (S3 answers success for a key that does not exist)."""
        validate_key(key)
        try:
            await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)
        except _FAILURES as exc:
            if _error_code(exc) in _MISSING_CODES - {"NoSuchBucket"}:
                return
            raise StorageError(f"Cannot delete {key!r} from bucket {self.bucket!r}: {exc}") from exc

    async def list_keys(self, prefix: str) -> list[str]:
        """Keys of the objects whose key starts with ``prefix`` (ListObjectsV2, paginated)."""

        def list_all() -> list[str]:
            keys: list[str] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys += [item["Key"] for item in page.get("Contents", []) if "Key" in item]
            return keys

        try:
            return await asyncio.to_thread(list_all)
        except _FAILURES as exc:
            raise StorageError(f"Cannot list {prefix!r} in bucket {self.bucket!r}: {exc}") from exc

    async def check(self) -> None:
        """Raise :class:`StorageError` unless the bucket exists and is reachable (HeadBucket)."""
        try:
            await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)
        except _FAILURES as exc:
            code = _error_code(exc)
            if code in _MISSING_CODES:
                raise StorageError(f"S3 bucket {self.bucket!r} does not exist.") from exc
            raise StorageError(f"S3 bucket {self.bucket!r} is not reachable: {exc}") from exc

    async def aclose(self) -> None:
        """Close the client's connection pool."""
        await asyncio.to_thread(self._client.close)
        if self._pinned is not None:
            await asyncio.to_thread(self._pinned.close)
        if self._signer is not self._client:
            await asyncio.to_thread(self._signer.close)
