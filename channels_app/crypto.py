"""Encryption at rest for channel credentials (Fernet, keys from the environment)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from inventory.exceptions import DomainError


def _fernet() -> MultiFernet:
    keys = list(settings.CHANNEL_CREDENTIALS_KEYS)
    if not keys:
        digest = hashlib.sha256(f"channel-credentials:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DomainError(
            "Channel credentials cannot be decrypted: CHANNEL_CREDENTIALS_KEYS has changed. "
            "Enter the credentials again.",
            code="credentials_unreadable",
        ) from None
