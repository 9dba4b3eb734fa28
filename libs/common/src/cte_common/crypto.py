"""Encryption of secrets at rest (tenant API tokens), with the key from ``CTE_SECRETS_KEY``."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

__all__ = [
    "SecretBox",
    "SecretsUnavailableError",
    "new_key",
]


class SecretsUnavailableError(RuntimeError):
    """No key is configured, or the stored secret was encrypted with another key."""


class SecretBox:
    def __init__(self, key: str | None) -> None:
        self._fernet = Fernet(key.encode()) if key else None

    @property
    def available(self) -> bool:
        return self._fernet is not None

    def encrypt(self, plaintext: str) -> str:
        if self._fernet is None:
            raise SecretsUnavailableError("CTE_SECRETS_KEY is not set")
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        if self._fernet is None:
            raise SecretsUnavailableError("CTE_SECRETS_KEY is not set")
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretsUnavailableError("a stored secret does not decrypt with CTE_SECRETS_KEY") from None


def new_key() -> str:
    return Fernet.generate_key().decode()
