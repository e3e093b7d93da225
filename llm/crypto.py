"""Encryption at rest for endpoint API keys (Fernet).

The key comes from FIELD_ENCRYPTION_KEY (comma-separated: the first encrypts, all decrypt, so a
key can be rotated) or is derived from SECRET_KEY.
"""
import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _fernet_key(secret: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())


@cache
def _cipher() -> MultiFernet:
    secrets = [s.strip() for s in settings.FIELD_ENCRYPTION_KEY.split(",") if s.strip()]
    secrets = secrets or [settings.SECRET_KEY]
    return MultiFernet([Fernet(_fernet_key(s)) for s in secrets])


def encrypt(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("the stored API key cannot be decrypted with the configured keys") from exc


def rotate(token: str) -> str:
    """Re-encrypt with the first (newest) key. ValueError if no configured key can read it."""
    if not token:
        return ""
    try:
        return _cipher().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("the stored API key cannot be decrypted with the configured keys") from exc


def reset() -> None:
    """Forget the cipher built from settings (after FIELD_ENCRYPTION_KEY changed, e.g. in tests)."""
    _cipher.cache_clear()
