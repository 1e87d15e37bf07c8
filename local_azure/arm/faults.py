"""Faults a test arms through the control API: ARM throttling, claims challenges, failing operations."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from .rbac import is_within

# gateway_timeout: the action is performed, then the answer is lost (504), as when ARM's gateway times out
# on a slow provider. poll_forbidden: following an accepted operation is refused (403 AuthorizationFailed),
# as for a custom role without .../locations/operations/read. slow_answer: the request is carried out, then
# its answer is held for `seconds` (or until released), as when a client dies between sending and ARM's
# answer. long_operation: an operation it starts runs for `seconds`, however often it is polled.
KINDS = ("throttle", "claims_challenge", "operation_failure", "gateway_timeout", "poll_forbidden", "slow_answer",
         "long_operation")


@dataclass
class Fault:
    kind: str
    count: int | None = None  # how many matching requests it affects; None means until removed
    retry_after: int = 1
    principal: str | None = None  # an object id; None matches everyone
    resource: str | None = None  # a scope: the resource, or a group or subscription it is in
    method: str | None = None
    claims: str | None = None  # the claims request (JSON text) a claims challenge asks for
    code: str = "InternalOperationError"
    message: str = "The operation failed."
    seconds: float = 0.0  # how long slow_answer holds an answer, or a long_operation runs

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> Fault:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(KINDS)}")
        claims = spec.get("claims")
        if isinstance(claims, dict):
            claims = json.dumps(claims, separators=(",", ":"))
        if kind == "claims_challenge" and not claims:
            claims = json.dumps({"access_token": {"acrs": {"essential": True, "value": "c1"}}},
                                separators=(",", ":"))
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("count must be a positive integer or absent")
        retry_after = spec.get("retry_after", 1)
        if not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError("retry_after must be a non-negative integer of seconds")
        seconds = spec.get("seconds", 0)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError("seconds must be a non-negative number")
        if kind in ("slow_answer", "long_operation") and not seconds:
            raise ValueError(f"a {kind} fault needs seconds")
        principal = spec.get("principal")
        return cls(kind=kind, seconds=float(seconds), count=count, retry_after=retry_after,
                   principal=principal.lower() if isinstance(principal, str) else None,
                   resource=spec.get("resource"), method=(spec.get("method") or "").upper() or None,
                   claims=claims, code=spec.get("code", cls.code), message=spec.get("message", cls.message))

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "retry_after": self.retry_after,
                "principal": self.principal, "resource": self.resource, "method": self.method,
                "claims": self.claims, "seconds": self.seconds}

    def applies_to(self, principal_id: str, scope: str | None, method: str) -> bool:
        if self.principal is not None and self.principal != principal_id.lower():
            return False
        if self.method is not None and self.method != method:
            return False
        return self.resource is None or (scope is not None and is_within(scope, self.resource))

    def encoded_claims(self) -> str:
        return base64.b64encode((self.claims or "").encode()).decode()

    def satisfied_by(self, token_claims: dict[str, Any]) -> bool:
        """A token acquired for the claims request answers it: each essential claim carries the value asked."""
        try:
            request = json.loads(self.claims or "")
        except ValueError:
            return False
        wanted = request.get("access_token") if isinstance(request, dict) else None
        if not isinstance(wanted, dict) or not wanted:
            return False
        for name, rule in wanted.items():
            values = _wanted_values(rule)
            present = token_claims.get(name)
            held = set(present) if isinstance(present, list) else {present}
            if values and not values & {str(v) for v in held if v is not None}:
                return False
            if not values and present is None:
                return False
        return True


def _wanted_values(rule: Any) -> set[str]:
    if not isinstance(rule, dict):
        return set()
    if "value" in rule:
        return {str(rule["value"])}
    return {str(v) for v in rule.get("values", [])}
