"""The token-signing key: RSA 2048, RS256, kept in the state directory so tokens outlive a restart."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_FILE = "entra-signing-key.pem"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._private_key = private_key
        numbers = private_key.public_key().public_numbers()
        self._n = _b64url_uint(numbers.n)
        self._e = _b64url_uint(numbers.e)
        # The RFC 7638 thumbprint: stable for the key, different for a new one.
        canonical = json.dumps({"e": self._e, "kty": "RSA", "n": self._n}, separators=(",", ":"), sort_keys=True)
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()[:27]

    @classmethod
    def in_directory(cls, state_dir: Path) -> SigningKey:
        path = state_dir / KEY_FILE
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if isinstance(loaded, rsa.RSAPrivateKey):
                return cls(loaded)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return cls(key)

    def jwk(self, issuer: str) -> dict[str, Any]:
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "n": self._n, "e": self._e, "alg": "RS256",
                "issuer": issuer}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def verify(self, token: str, **options: Any) -> dict[str, Any]:
        """Decode with this key; raises PyJWT's errors for the caller to translate."""
        return dict(jwt.decode(token, self._private_key.public_key(), algorithms=["RS256"], **options))
