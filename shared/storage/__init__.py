"""Where capture results live: the :class:`Storage` protocol, its backends and a factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import ConfigurationError
from shared.storage.base import SignedUrl, Storage
from shared.storage.local import LocalStorage

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = ["LOCAL_FILES_DIR", "LocalStorage", "SignedUrl", "Storage", "make_storage"]

#: Directory, under ``DATA_DIR``, holding the local backend's objects.
LOCAL_FILES_DIR = "files"


def make_storage(settings: Settings) -> Storage:
    """The storage backend ``settings.storage`` names, configured from ``settings``.

    ``local`` keeps files under ``DATA_DIR/files`` and signs links with the settings'
    signing key; ``s3`` needs ``S3_BUCKET`` (else :class:`ConfigurationError`).
    """
    if settings.storage == "local":
        return LocalStorage(
            settings.data_dir / LOCAL_FILES_DIR, settings.public_base_url, settings.signing_key
        )
    if settings.storage == "s3":
        if not settings.s3_bucket:
            raise ConfigurationError("SHOTLINE_STORAGE=s3 needs SHOTLINE_S3_BUCKET.")
        # Imported here so that processes using local storage never load boto3.
        from shared.storage.s3 import S3Storage

        return S3Storage(settings.s3_bucket, settings.s3_endpoint_url, settings.s3_region,
                         public_endpoint_url=settings.s3_public_endpoint_url)
    raise ConfigurationError(f"Unknown storage backend {settings.storage!r}.")
