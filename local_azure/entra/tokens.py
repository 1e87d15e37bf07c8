"""Minting tokens: v2.0 access tokens (user and app), id_tokens, and the token endpoint's response.

Claims follow Entra's v2.0 tokens; `appid`/`appidacr` (v1 names) ride along because Azure services
such as ARM read them. `sub` is pairwise, as in Entra: the same user has a different `sub` per app.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from local_azure.entra.directory import App, Directory, Resource, ScopeRequest, User
from local_azure.entra.signing import SigningKey


@dataclass(frozen=True)
class Lifetimes:
    """How long things live. Entra gives access tokens 60-90 minutes; tests may want seconds."""

    access_token: dt.timedelta = dt.timedelta(minutes=75)
    id_token: dt.timedelta = dt.timedelta(minutes=60)
    refresh_token: dt.timedelta = dt.timedelta(hours=24)
    authorization_code: dt.timedelta = dt.timedelta(minutes=10)


def _uti() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


def pairwise_subject(oid: str, audience: str) -> str:
    digest = hashlib.sha256(f"{oid}|{audience}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()[:43]


def client_info(user: User, tenant_id: str) -> str:
    raw = json.dumps({"uid": user.oid, "utid": tenant_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenMinter:
    def __init__(self, directory: Directory, key: SigningKey, issuer: str, lifetimes: Lifetimes) -> None:
        self.directory = directory
        self.key = key
        self.issuer = issuer
        self.lifetimes = lifetimes

    def _times(self, lifetime: dt.timedelta, now: dt.datetime | None = None) -> dict[str, int]:
        now = now or dt.datetime.now(dt.UTC)
        issued = int(now.timestamp())
        return {"iat": issued, "nbf": issued, "exp": int((now + lifetime).timestamp())}

    def user_access_token(self, user: User, client: App, resource: Resource, scopes: Iterable[str], *,
                          amr: Iterable[str] = ("pwd",), confidential: bool = True,
                          lifetime: dt.timedelta | None = None, now: dt.datetime | None = None,
                          extra: Mapping[str, Any] | None = None) -> str:
        claims: dict[str, Any] = {
            "aud": resource.audience,
            "iss": self.issuer,
            **self._times(lifetime if lifetime is not None else self.lifetimes.access_token, now),
            "amr": list(amr),
            "appid": client.client_id,
            "appidacr": "1" if confidential else "0",
            "azp": client.client_id,
            "azpacr": "1" if confidential else "0",
            "idtyp": "user",
            "name": user.name,
            "oid": user.oid,
            "preferred_username": user.upn,
            "scp": " ".join(scope for scope in scopes if scope),
            "sub": pairwise_subject(user.oid, resource.audience),
            "tid": self.directory.tenant_id,
            "upn": user.upn,
            "uti": _uti(),
            "jti": str(uuid.uuid4()),
            "ver": "2.0",
        }
        roles = user.roles_for(resource)
        if roles:
            claims["roles"] = roles
        claims.update(extra or {})
        return self.key.sign(claims)

    def app_access_token(self, client: App, resource: Resource, roles: Iterable[str], *,
                         lifetime: dt.timedelta | None = None, now: dt.datetime | None = None,
                         extra: Mapping[str, Any] | None = None) -> str:
        claims: dict[str, Any] = {
            "aud": resource.audience,
            "iss": self.issuer,
            **self._times(lifetime if lifetime is not None else self.lifetimes.access_token, now),
            "appid": client.client_id,
            "appidacr": "1",
            "azp": client.client_id,
            "azpacr": "1",
            "idtyp": "app",
            "oid": client.service_principal_id,
            "sub": client.service_principal_id,
            "tid": self.directory.tenant_id,
            "uti": _uti(),
            "jti": str(uuid.uuid4()),
            "ver": "2.0",
        }
        granted = list(roles)
        if granted:
            claims["roles"] = granted
        claims.update(extra or {})
        return self.key.sign(claims)

    def id_token(self, user: User, client: App, *, nonce: str | None, email: bool,
                 amr: Iterable[str] = ("pwd",)) -> str:
        claims: dict[str, Any] = {
            "aud": client.client_id,
            "iss": self.issuer,
            **self._times(self.lifetimes.id_token),
            "amr": list(amr),
            "name": user.name,
            "oid": user.oid,
            "preferred_username": user.upn,
            "sub": pairwise_subject(user.oid, client.client_id),
            "tid": self.directory.tenant_id,
            "uti": _uti(),
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        if email:
            claims["email"] = user.upn
        if client.resource is not None:
            roles = user.roles_for(client.resource)
            if roles:
                claims["roles"] = roles
        return self.key.sign(claims)

    def user_response(self, user: User, client: App, request: ScopeRequest, scopes: tuple[str, ...], *,
                      amr: Iterable[str], confidential: bool, refresh_token: str | None, nonce: str | None = None,
                      want_client_info: bool = False) -> dict[str, Any]:
        """The token endpoint's JSON for a user: access token, and id_token / refresh token as scopes ask."""
        amr = list(amr)
        lifetime = int(self.lifetimes.access_token.total_seconds())
        granted = ScopeRequest(request.resource, scopes, request.oidc, request.default)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": granted.granted(),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.user_access_token(user, client, request.resource, scopes, amr=amr,
                                                   confidential=confidential),
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        if "openid" in request.oidc:
            body["id_token"] = self.id_token(user, client, nonce=nonce, email="email" in request.oidc, amr=amr)
        if want_client_info:
            body["client_info"] = client_info(user, self.directory.tenant_id)
        return body

    def app_response(self, client: App, resource: Resource, roles: Iterable[str]) -> dict[str, Any]:
        lifetime = int(self.lifetimes.access_token.total_seconds())
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.app_access_token(client, resource, roles),
        }
