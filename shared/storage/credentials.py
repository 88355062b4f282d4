"""Credentials of customers' buckets, encrypted at rest (Fernet, from ``cryptography``).

The key comes from the settings: ``CREDENTIALS_KEY``, one or more comma-separated Fernet keys
(the first encrypts, every one decrypts: add a new key in front to rotate). Without it the key
is derived from ``SECRET_KEY`` (HKDF-SHA256), which the API, the workers and the CLI share
already; set ``CREDENTIALS_KEY`` to rotate ``SECRET_KEY`` without losing stored credentials.
"""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, SecretStr

from shared.errors import ConfigurationError
from shared.settings import Settings

_HKDF_INFO = b"shotline.destination-credentials.v1"


class BucketCredentials(BaseModel):
    """An access key of a customer's bucket (an IAM user's, or temporary ones)."""

    access_key_id: SecretStr
    secret_access_key: SecretStr
    session_token: SecretStr | None = None


class CredentialCipher:
    """Encrypts and decrypts :class:`BucketCredentials` with the configured key(s)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigurationError("the credentials cipher needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError as exc:
            raise ConfigurationError(
                "SHOTLINE_CREDENTIALS_KEY must be Fernet keys (32 url-safe base64-encoded"
                " bytes each, comma-separated; make one with `python -c 'from"
                " cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialCipher:
        """The cipher of ``CREDENTIALS_KEY``, or of a key derived from ``SECRET_KEY``."""
        if settings.credentials_key is not None:
            keys = [part.strip().encode()
                    for part in settings.credentials_key.get_secret_value().split(",")
                    if part.strip()]
            return cls(keys)
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=_HKDF_INFO).derive(settings.signing_key)
        return cls([base64.urlsafe_b64encode(derived)])

    def encrypt(self, credentials: BucketCredentials) -> str:
        """The token stored in place of ``credentials``."""
        plain = json.dumps({
            "access_key_id": credentials.access_key_id.get_secret_value(),
            "secret_access_key": credentials.secret_access_key.get_secret_value(),
            "session_token": (credentials.session_token.get_secret_value()
                              if credentials.session_token else None),
        })
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> BucketCredentials:
        """The credentials behind ``token``; :class:`ConfigurationError` when no configured
        key opens it (the key changed since they were stored)."""
        try:
            plain = self._fernet.decrypt(token.encode())
        except InvalidToken as exc:
            raise ConfigurationError(
                "stored bucket credentials cannot be decrypted with the configured"
                " SHOTLINE_CREDENTIALS_KEY (or SECRET_KEY); set them again with"
                " `shotline keys set-storage`"
            ) from exc
        return BucketCredentials.model_validate(json.loads(plain))
