"""Proxy passwords are encrypted at rest with Fernet keys from ``WHAGO_ENCRYPTION_KEY``.

The variable holds one or more comma-separated keys, newest first: the first encrypts, all of
them decrypt. To rotate, prepend a new key, run ``whago rotate-encryption-key``, then drop the
old one.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.settings import Settings, SettingsError


class SecretBox:
    def __init__(self, settings: Settings) -> None:
        keys = [k.strip() for k in settings.encryption_key.split(",") if k.strip()]
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError):
            raise SettingsError(
                "WHAGO_ENCRYPTION_KEY: expected comma-separated Fernet keys (32 url-safe base64 bytes)"
            ) from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("proxy secret cannot be decrypted with the configured keys") from None

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()
