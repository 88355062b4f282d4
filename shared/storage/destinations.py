"""Where a result lives: the default storage, or an API key's own bucket (its destination).

An operator attaches a destination to a key (``shotline keys set-storage``): a bucket on S3
or an S3-compatible server, a key prefix, and either an access key (stored encrypted, see
:mod:`shared.storage.credentials`) or none, for role-based access with the platform's own
credentials (a bucket policy granting the workers' role). That key's results are written
there, under its prefix, and each result record carries a copy of the destination, so its
download links are signed, and its files deleted, in the bucket that holds them even after
the key's destination changed.

The destination's endpoint passes the URL policy like any outbound request, when it is set
and again before every upload: no writing into the metadata service or a private address
unless ``ALLOWED_NETWORKS`` allows it. And since a name can resolve to another address by
the time boto3 connects (DNS rebinding), the clients of endpoints are pinned
(:mod:`shared.storage.pinned`): every connection they open, for uploads, downloads, listings
and deletions alike, goes only to addresses the policy accepted for that connection's own
resolution. (Without an endpoint the bucket is on AWS, whose host names boto3 derives from
the region and bucket name: neither check applies.) Credentials never leave this module in
clear: not in logs, job views, webhooks or error messages (messages name the bucket only).

:class:`StorageRouter` is a :class:`~shared.storage.base.Storage` (the default one, for
everything that does not care) that also finds the storage of a given result.
"""

from __future__ import annotations

import functools
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.errors import ApiKeyNotFound, CaptureError, StorageError, UrlBlocked
from shared.settings import Settings
from shared.storage import make_storage
from shared.storage.base import SignedUrl, Storage
from shared.storage.credentials import BucketCredentials, CredentialCipher
from shared.storage.s3 import S3Storage, client_config
from shared.url_policy import UrlPolicy

if TYPE_CHECKING:
    from shared.apikeys import KeyStore

#: S3's bucket naming rules (3-63 lower-case letters, digits, dots and hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Region used to sign for an S3-compatible server when none is given.
DEFAULT_REGION = "us-east-1"
#: Most customers' bucket clients one process keeps open.
MAX_CLIENTS = 64


class DestinationRefused(CaptureError):
    """Raised when a key's own bucket refuses a result, or its endpoint is refused by the
    URL policy (a job failure with ``error.code`` ``storage_error``, not retried)."""

    code = "storage_error"


class Destination(BaseModel):
    """An API key's own bucket, as kept on the key's record and on each result stored there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: str
    endpoint_url: str | None = Field(default=None, description="S3-compatible server; none: AWS.")
    region: str | None = None
    prefix: str = Field(default="", description="Key prefix, '' or ending in '/'.")
    credentials: str | None = Field(
        default=None, description="Encrypted access key; none: the platform's own credentials.")

    @field_validator("bucket")
    @classmethod
    def _check_bucket(cls, value: str) -> str:
        if not _BUCKET.fullmatch(value) or ".." in value:
            raise ValueError(f"{value!r} is not a valid S3 bucket name (3-63 characters:"
                             " lower-case letters, digits, dots and hyphens)")
        return value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        segments = [part for part in value.strip("/").split("/") if part]
        if not all(_PREFIX_SEGMENT.fullmatch(part) for part in segments):
            raise ValueError(f"prefix {value!r} may hold only letters, digits, '.', '_', '-'"
                             " and '/' (each segment starting with a letter or digit)")
        return "".join(f"{part}/" for part in segments)

    def describe(self) -> str:
        """The bucket as messages name it (never the credentials)."""
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"bucket {self.bucket!r}{where}"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one job's results go: a storage, a key prefix and the destination (if any)."""

    storage: Storage
    prefix: str = ""
    destination: Destination | None = None

    @property
    def record(self) -> dict[str, Any] | None:
        """The destination as the result record keeps it."""
        return None if self.destination is None else self.destination.model_dump()

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store ``data``; a key's bucket answering 4xx, or at an address the URL policy
        refuses, fails the job for good (:class:`DestinationRefused`, naming the bucket);
        other failures stay retryable."""
        try:
            await self.storage.put(key, data, content_type=content_type)
        except StorageError as exc:
            if self.destination is None:
                raise
            if isinstance(exc.__cause__, UrlBlocked):
                raise DestinationRefused(
                    f"the endpoint of {self.destination.describe()} is refused by the URL"
                    f" policy when connecting: {exc.__cause__.message}") from None
            status = _http_status(exc.__cause__)
            if status is not None and 400 <= status < 500:
                code = _error_code(exc.__cause__)
                raise DestinationRefused(
                    f"the destination {self.destination.describe()} refused the result"
                    f" (HTTP {status} {code})") from None
            raise StorageError(
                f"could not write to the destination {self.destination.describe()}") from None


def _http_status(exc: BaseException | None) -> int | None:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def _error_code(exc: BaseException | None) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def read_destination(raw: str | Mapping[str, Any] | None) -> Destination | None:
    """A destination from its stored form (JSON text on a key, a mapping on a result)."""
    if raw is None or raw == "":
        return None
    data = json.loads(raw) if isinstance(raw, str) else raw
    return Destination.model_validate(data)


async def check_endpoint(policy: UrlPolicy, destination: Destination) -> None:
    """Refuse a destination whose endpoint the URL policy refuses (:class:`DestinationRefused`).

    Without an endpoint the destination is AWS S3 itself, which boto3 addresses.
    """
    if destination.endpoint_url is None:
        return
    try:
        await policy.acheck_url(destination.endpoint_url)
    except UrlBlocked as exc:
        raise DestinationRefused(
            f"the endpoint of {destination.describe()} is refused by the URL policy:"
            f" {exc.message}") from None


class StorageRouter:
    """The default storage, plus the buckets that keys and results name as destinations.

    Clients of customers' buckets are built on first use from the decrypted credentials and
    kept (up to :data:`MAX_CLIENTS`, least recently used closed first). Those with an
    endpoint connect only where ``policy`` allows (:mod:`shared.storage.pinned`).
    """

    def __init__(self, default: Storage, *,
                 cipher: Callable[[], CredentialCipher] | None = None,
                 policy: UrlPolicy | None = None) -> None:
        """``cipher()`` gives the credentials cipher, when first needed; ``policy`` checks
        the connections to customers' endpoints (default: public addresses only)."""
        self.default = default
        self.name = default.name
        self._cipher = cipher
        self._policy = policy or UrlPolicy()
        self._buckets: OrderedDict[str, S3Storage] = OrderedDict()
        self._closing: list[S3Storage] = []

    def for_destination(self, destination: Mapping[str, Any] | Destination | None) -> Storage:
        """The storage a result record's ``destination`` names (None: the default)."""
        if destination is None:
            return self.default
        parsed = (destination if isinstance(destination, Destination)
                  else Destination.model_validate(destination))
        cache_key = parsed.model_dump_json()
        storage = self._buckets.get(cache_key)
        if storage is None:
            storage = S3Storage(parsed.bucket, client=self._client(parsed),
                                policy=None if parsed.endpoint_url is None else self._policy)
            self._buckets[cache_key] = storage
            while len(self._buckets) > MAX_CLIENTS:
                self._closing.append(self._buckets.popitem(last=False)[1])
        self._buckets.move_to_end(cache_key)
        return storage

    def _client(self, destination: Destination) -> Any:
        credentials: BucketCredentials | None = None
        if destination.credentials is not None:
            if self._cipher is None:
                raise StorageError(f"no key to decrypt the credentials of {destination.describe()}")
            credentials = self._cipher().decrypt(destination.credentials)
        session = boto3.session.Session(
            aws_access_key_id=credentials.access_key_id.get_secret_value() if credentials else None,
            aws_secret_access_key=(credentials.secret_access_key.get_secret_value()
                                   if credentials else None),
            aws_session_token=(credentials.session_token.get_secret_value()
                               if credentials and credentials.session_token else None),
        )
        try:
            return session.client(
                "s3", endpoint_url=destination.endpoint_url,
                region_name=destination.region or DEFAULT_REGION,
                config=client_config(path_style=destination.endpoint_url is not None),
            )
        except (BotoCoreError, ValueError) as exc:
            raise StorageError(f"cannot open {destination.describe()}: {type(exc).__name__}"
                               ) from None

    async def placement_for(self, api_key_id: str | None, *, keys: KeyStore,
                            policy: UrlPolicy) -> Placement:
        """Where ``api_key_id``'s results go: its destination (endpoint checked by the URL
        policy now, before every upload) or the default storage."""
        if api_key_id is None:
            return Placement(self.default)
        try:
            record = await keys.get(api_key_id)
        except ApiKeyNotFound:
            return Placement(self.default)
        destination = read_destination(record.storage_destination)
        if destination is None:
            return Placement(self.default)
        await check_endpoint(policy, destination)
        return Placement(self.for_destination(destination), destination.prefix, destination)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store in the default storage."""
        await self.default.put(key, data, content_type=content_type)

    def signed_url(self, key: str, *, expires_in: int) -> SignedUrl:
        """A download URL of the default storage."""
        return self.default.signed_url(key, expires_in=expires_in)

    def stream(self, key: str, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """Read from the default storage."""
        return self.default.stream(key, chunk_size=chunk_size)

    async def delete(self, key: str) -> None:
        """Delete from the default storage."""
        await self.default.delete(key)

    async def list_keys(self, prefix: str) -> list[str]:
        """List the default storage."""
        return await self.default.list_keys(prefix)

    async def check(self) -> None:
        """Check the default storage (customers' buckets are checked when used)."""
        await self.default.check()

    async def aclose(self) -> None:
        """Close every storage opened."""
        opened = [*self._buckets.values(), *self._closing]
        self._buckets.clear()
        self._closing.clear()
        for storage in opened:
            await storage.aclose()
        await self.default.aclose()


def make_storage_router(settings: Settings) -> StorageRouter:
    """The router of ``settings``: their default storage and the customers' buckets (whose
    connections ``settings``' URL policy checks)."""
    return StorageRouter(make_storage(settings),
                         cipher=functools.cache(lambda: CredentialCipher.from_settings(settings)),
                         policy=UrlPolicy.from_settings(settings))


def storage_for(storage: Storage, destination: Mapping[str, Any] | None) -> Storage:
    """The storage holding a result with ``destination``: ``storage`` itself unless it is a
    :class:`StorageRouter`."""
    if isinstance(storage, StorageRouter):
        return storage.for_destination(destination)
    return storage


async def placement_for(storage: Storage, api_key_id: str | None, *, keys: KeyStore,
                        policy: UrlPolicy) -> Placement:
    """Where ``api_key_id``'s results go (the default storage unless ``storage`` is a
    router and the key has a destination)."""
    if isinstance(storage, StorageRouter):
        return await storage.placement_for(api_key_id, keys=keys, policy=policy)
    return Placement(storage)


def router_of(storage: Storage) -> StorageRouter:
    """``storage`` as a router (itself when it is one)."""
    return storage if isinstance(storage, StorageRouter) else StorageRouter(storage)


def default_storage(storage: Storage) -> Storage:
    """The default storage behind ``storage`` (itself unless it is a router)."""
    return storage.default if isinstance(storage, StorageRouter) else storage
