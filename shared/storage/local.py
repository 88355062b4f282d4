"""Storage on the local filesystem, downloaded through the API with HMAC-signed links."""

from __future__ import annotations

import asyncio
import errno
import mimetypes
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

import structlog

from shared.errors import StorageError
from shared.signing import sign_download, verify_download
from shared.storage.base import SignedUrl

log = structlog.get_logger("shotline.storage.local")

#: Longest key accepted (S3's own limit, in bytes; keys here are ASCII).
MAX_KEY_LENGTH = 1024

# Segments start with a letter or digit (so never ".", ".." or a hidden/temporary file)
# and hold only letters, digits, ".", "_" and "-"; segments are joined by single slashes.
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_KEY_PATTERN = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise :class:`StorageError`.

    Safe keys are slash-separated segments of ``[A-Za-z0-9._-]`` that start with a letter or
    digit: no absolute paths, no ``..``, no empty segments, no hidden files, nothing that
    needs escaping in a URL path.
    """
    if len(key) > MAX_KEY_LENGTH or not _KEY_PATTERN.fullmatch(key):
        raise StorageError(f"Invalid storage key {key!r}.")
    return key


def media_type(key: str) -> str:
    """The MIME type to serve ``key`` with, from its extension."""
    guessed, _encoding = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


class LocalStorage:
    """Objects as files under ``root``; links point at the API's ``GET /v1/files/{key}``."""

    name = "local"

    def __init__(self, root: Path, public_base_url: str, signing_key: bytes) -> None:
        if not signing_key:
            raise StorageError("LocalStorage needs a non-empty signing key.")
        self.root = root
        self.public_base_url = public_base_url.rstrip("/")
        self._signing_key = signing_key

    def path_for(self, key: str) -> Path:
        """The file holding ``key`` (which need not exist); :class:`StorageError` if invalid."""
        return self.root / validate_key(key)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Write ``data`` to ``key``'s file atomically (temporary file, fsync, rename).

        ``content_type`` is not stored: downloads are served with :func:`media_type`.
        """
        path = self.path_for(key)
        try:
            await asyncio.to_thread(_write_atomically, path, data)
        except OSError as exc:
            # Clients see the message: the server's paths stay in the log.
            log.error("Could not write to local storage.", key=key, root=str(self.root),
                      error=str(exc))
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageError("storage full: the result could not be written") from exc
            reason = errno.errorcode.get(exc.errno or 0, "an I/O error")
            raise StorageError(f"cannot write {key!r} to local storage ({reason})") from exc

    def signed_url(self, key: str, *, expires_in: int) -> SignedUrl:
        """A link to ``GET /v1/files/{key}`` valid for ``expires_in`` seconds."""
        validate_key(key)
        if expires_in < 1:
            raise StorageError("A download link must be valid for at least one second.")
        expires = int(time.time()) + expires_in
        query = urlencode(
            {"expires": expires, "signature": sign_download(self._signing_key, key, expires)}
        )
        url = f"{self.public_base_url}/v1/files/{quote(key, safe='/')}?{query}"
        return SignedUrl(url=url, expires_at=datetime.fromtimestamp(expires, tz=UTC))

    def verify(
        self, key: str, expires: int | str, signature: str, *, now: float | None = None
    ) -> None:
        """Raise :class:`shared.errors.InvalidSignature` unless the link for ``key`` is valid.

        ``expires`` and ``signature`` are the link's query parameters, as received.
        """
        verify_download(self._signing_key, key, expires, signature, now=now)

    async def stream(self, key: str, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The file's bytes in chunks of at most ``chunk_size``, read in a worker thread.

        Raises :class:`StorageError` (on the first iteration) when the object does not exist.
        """
        path = self.path_for(key)
        try:
            handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise StorageError(f"No object {key!r} in local storage.") from exc
        except OSError as exc:
            raise StorageError(f"Cannot read {key!r} under {self.root}: {exc}") from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def delete(self, key: str) -> None:
        """Remove ``key``'s file (nothing to do when it does not exist)."""
        path = self.path_for(key)
        try:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        except OSError as exc:
            raise StorageError(f"Cannot delete {key!r} under {self.root}: {exc}") from exc

    async def list_keys(self, prefix: str) -> list[str]:
        """Keys of the files under ``root`` whose key starts with ``prefix``."""
        return await asyncio.to_thread(_list_keys, self.root, prefix)

    async def check(self) -> None:
        """Raise :class:`StorageError` unless a file can be created under ``root``."""
        try:
            await asyncio.to_thread(_probe_writable, self.root)
        except OSError as exc:
            raise StorageError(f"Local storage {self.root} is not writable: {exc}") from exc

    async def aclose(self) -> None:
        """Nothing to release."""


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The leading dot keeps the temporary name outside the key space (see validate_key).
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _list_keys(root: Path, prefix: str) -> list[str]:
    # Only the directory the prefix ends in is read (keys of one job share a directory).
    directory = (root / prefix).parent if "/" in prefix else root
    if not directory.is_dir() or not directory.resolve().is_relative_to(root.resolve()):
        return []
    keys = []
    for path in directory.rglob("*"):
        key = path.relative_to(root).as_posix()
        if path.is_file() and key.startswith(prefix) and _KEY_PATTERN.fullmatch(key):
            keys.append(key)
    return sorted(keys)


def _probe_writable(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".check.{secrets.token_hex(8)}.tmp"
    probe.write_bytes(b"")
    probe.unlink()
