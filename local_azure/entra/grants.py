"""What the stand-in remembers between requests: authorization codes, refresh tokens, sign-in flows in
progress, and faults a test asked for. In memory, behind one lock; a restart forgets them, which
clients treat like an expired refresh token (they sign in again)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

FAULT_ERRORS = ("interaction_required", "consent_required", "invalid_grant", "invalid_client",
                "temporarily_unavailable")
FAULT_GRANTS = ("client_credentials", "password", "authorization_code", "refresh_token", "on_behalf_of")


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated `/authorize` request waiting for the user to sign in."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    response_mode: str
    login_hint: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class CodeGrant:
    request: AuthorizeRequest
    user_oid: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class RefreshGrant:
    client_id: str
    user_oid: str
    scope: str
    amr: tuple[str, ...]
    expires_at: dt.datetime


@dataclass
class Fault:
    """The next `count` matching token requests fail with `error` (count None: until cleared)."""

    error: str
    grant: str | None = None
    user: str | None = None  # oid or UPN
    client_id: str | None = None
    claims: str | None = None
    code: int | None = None
    count: int | None = 1
    id: str = field(default_factory=lambda: secrets.token_hex(8))

    @classmethod
    def from_json(cls, document: Any) -> Fault:
        if not isinstance(document, dict):
            raise ValueError("a fault is a JSON object")
        error = document.get("error")
        if error not in FAULT_ERRORS:
            raise ValueError(f"error must be one of {', '.join(FAULT_ERRORS)}")
        grant = document.get("grant")
        if grant is not None and grant not in FAULT_GRANTS:
            raise ValueError(f"grant must be one of {', '.join(FAULT_GRANTS)}")
        count = document.get("count", 1)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise ValueError("count must be a positive integer, or null for 'until cleared'")
        code = document.get("code")
        if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
            raise ValueError("code must be an integer AADSTS number")
        for name in ("user", "client_id", "claims"):
            if document.get(name) is not None and not isinstance(document[name], str):
                raise ValueError(f"{name} must be a string")
        if document.get("claims") is not None:
            try:
                json.loads(document["claims"])
            except ValueError:
                raise ValueError("claims must be a JSON claims request, as Entra sends it") from None
        return cls(error=error, grant=grant, user=document.get("user"), client_id=document.get("client_id"),
                   claims=document.get("claims"), code=code, count=count)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "error": self.error, "grant": self.grant, "user": self.user,
                "client_id": self.client_id, "claims": self.claims, "code": self.code, "count": self.count}


class GrantStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flows: dict[str, AuthorizeRequest] = {}
        self._codes: dict[str, CodeGrant] = {}
        self._redeemed: dict[str, dt.datetime] = {}
        self._refresh: dict[str, RefreshGrant] = {}
        self._faults: list[Fault] = []

    @staticmethod
    def _now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def _sweep(self) -> None:
        now = self._now()
        for table in (self._flows, self._codes):  # expired refresh tokens stay, to be refused as expired
            for key in [k for k, v in table.items() if v.expires_at < now]:
                del table[key]
        for key in [k for k, until in self._redeemed.items() if until < now]:
            del self._redeemed[key]

    def start_flow(self, request: AuthorizeRequest) -> str:
        flow_id = secrets.token_urlsafe(24)
        with self._lock:
            self._sweep()
            self._flows[flow_id] = request
        return flow_id

    def flow(self, flow_id: str) -> AuthorizeRequest | None:
        with self._lock:
            self._sweep()
            return self._flows.get(flow_id)

    def finish_flow(self, flow_id: str, user_oid: str, code_lifetime: dt.timedelta) -> tuple[AuthorizeRequest, str]:
        code = secrets.token_urlsafe(48)
        with self._lock:
            request = self._flows.pop(flow_id)
            self._codes[code] = CodeGrant(request, user_oid, self._now() + code_lifetime)
        return request, code

    def redeem_code(self, code: str) -> CodeGrant | bool | None:
        """The code's grant; False when it was redeemed before; None when unknown or expired."""
        with self._lock:
            self._sweep()
            grant = self._codes.pop(code, None)
            if grant is None:
                return False if code in self._redeemed else None
            self._redeemed[code] = grant.expires_at
            return grant

    def issue_refresh_token(self, grant: RefreshGrant) -> str:
        token = "0.local." + secrets.token_urlsafe(96)
        with self._lock:
            self._sweep()
            self._refresh[token] = grant
        return token

    def refresh_grant(self, token: str) -> RefreshGrant | None:
        with self._lock:
            return self._refresh.get(token)

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, grant: str, client_id: str, user_oid: str | None, user_upn: str | None) -> Fault | None:
        """The first fault that matches this request, spent once."""
        identities = {name.lower() for name in (user_oid, user_upn) if name}
        with self._lock:
            for fault in self._faults:
                if fault.grant not in (None, grant):
                    continue
                if fault.client_id not in (None, client_id):
                    continue
                if fault.user is not None and fault.user.lower() not in identities:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                return fault
        return None
