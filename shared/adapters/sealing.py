"""Sealing a person's token between the grant and its one use: AES-256-GCM, bound to its request.

Only the ciphertext is ever stored; the key comes from Key Vault (a Key Vault reference setting).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class SealBroken(Exception):
    """The sealed value was altered, or sealed for another request, or with another key."""


class AesGcmSealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the sealing key must be 32 bytes (base64 of 32 random bytes in the setting)")
        self._aead = AESGCM(key)

    @classmethod
    def from_setting(cls, value: str) -> AesGcmSealer:
        return cls(base64.b64decode(value))

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unseal(self, sealed: str, context: str) -> str:
        raw = base64.b64decode(sealed)
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except InvalidTag:
            raise SealBroken("the sealed credential does not open for this request") from None
