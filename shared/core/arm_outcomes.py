"""What an Azure Resource Manager answer means for a step."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    SECURITY_CHALLENGE = "security_challenge"
    FAILED = "failed"
    NOT_SENT = "not_sent"  # a throttled write not sent again: the kill switch was thrown meanwhile


@dataclass(frozen=True)
class ArmOutcome:
    kind: OutcomeKind
    status: int
    code: str = ""
    message: str = ""
    claims: str | None = None  # the claims challenge to pass on to the on-behalf-of request
    body: dict[str, Any] | None = None

    @property
    def is_challenge(self) -> bool:
        return self.kind is OutcomeKind.SECURITY_CHALLENGE


_CLAIMS = re.compile(r'claims="([^"]*)"')
_ERROR = re.compile(r'error="([^"]*)"')
# Codes that mean "this identity may not do this", as opposed to a broken request or a broken resource.
_AUTHORIZATION_CODES = frozenset({"AuthorizationFailed", "LinkedAuthorizationFailed"})


def classify(status: int, headers: dict[str, str], body: bytes | str | None) -> ArmOutcome:
    """Only a security challenge may open a credential request; every other failure is a failure."""
    payload = _json(body)
    error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
    code = str(error.get("code", "")) if error else ""
    message = str(error.get("message", "")) if error else ""
    if 200 <= status < 300:
        return ArmOutcome(OutcomeKind.SUCCEEDED, status, body=payload or None)
    if status == 403 and code in _AUTHORIZATION_CODES:
        return ArmOutcome(OutcomeKind.SECURITY_CHALLENGE, status, code, message)
    if status == 401:
        challenge = _header(headers, "WWW-Authenticate")
        claims = _CLAIMS.search(challenge)
        error_name = _ERROR.search(challenge)
        if claims and error_name and error_name.group(1) == "insufficient_claims":
            return ArmOutcome(OutcomeKind.SECURITY_CHALLENGE, status, code or "insufficient_claims",
                              message or "claims challenge", claims=claims.group(1))
    return ArmOutcome(OutcomeKind.FAILED, status, code or f"HTTP{status}", message or "request failed")


def _header(headers: dict[str, str], name: str) -> str:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), "")


def _json(body: bytes | str | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
