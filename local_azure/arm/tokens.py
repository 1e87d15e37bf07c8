"""Bearer-token validation as ARM's gateway does it: signature against the issuer's JWKS, expiry with clock
skew, an ARM audience, a trusted issuer, and an object id to authorise."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from . import errors
from .errors import ARM_AUDIENCES

CLOCK_SKEW_SECONDS = 300  # ARM tolerates five minutes of skew, like Entra-protected services generally
JWKS_FETCH_TIMEOUT_SECONDS = 5.0
JWKS_REFRESH_INTERVAL_SECONDS = 10.0  # an unknown `kid` refetches the set, but no more often than this
ALGORITHMS = ["RS256"]


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    object_id: str
    tenant_id: str
    app_id: str
    display_name: str  # what AuthorizationFailed names: the user's UPN, or the application's id
    claims: dict[str, Any] = field(default_factory=dict, compare=False)


class TokenValidator:
    def __init__(self, jwks: dict[str, Any] | None = None, jwks_uri: str | None = None,
                 issuers: list[str] | None = None, ca_bundle: Path | None = None) -> None:
        if jwks is None and jwks_uri is None:
            raise ValueError("a JWKS or a jwks_uri is needed to validate tokens")
        self._jwks_uri = jwks_uri
        self._issuers = {i.rstrip("/") for i in issuers} if issuers else None
        self._ca_bundle = ca_bundle
        self._lock = threading.Lock()
        self._keys: dict[str | None, jwt.PyJWK] = _keys_of(jwks) if jwks is not None else {}
        self._fetched_at = 0.0

    def validate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise errors.missing_authorization()
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.malformed_authorization()
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise errors.invalid_token() from error
        key = self._key_for(header.get("kid"))
        if key is None:
            raise errors.invalid_token("The access token has invalid signature.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=ALGORITHMS,
                options={"verify_exp": False, "verify_nbf": False, "verify_aud": False, "verify_iss": False,
                         "verify_iat": False},
            )
        except jwt.InvalidSignatureError as error:
            raise errors.invalid_token("The access token has invalid signature.") from error
        except jwt.PyJWTError as error:
            raise errors.invalid_token() from error
        self._check_lifetime(claims)
        audience = claims.get("aud")
        if audience not in ARM_AUDIENCES:
            raise errors.wrong_audience(str(audience))
        issuer = str(claims.get("iss", "")).rstrip("/")
        if not issuer or (self._issuers is not None and issuer not in self._issuers):
            raise errors.wrong_issuer()
        object_id = claims.get("oid")
        if not object_id:
            raise errors.invalid_token(
                "The received access token is not valid: at least one of the claims 'puid' or 'altsecid' or 'oid' "
                "should be present. If you are accessing as application please make sure service principal is "
                "properly created in the tenant.")
        app_id = str(claims.get("appid") or claims.get("azp") or "")
        user_name = claims.get("upn") or claims.get("unique_name") or claims.get("preferred_username")
        return Principal(str(object_id), str(claims.get("tid", "")), app_id, str(user_name or app_id), claims)

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        now = time.time()
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float):
            raise errors.invalid_token()
        if expiry + CLOCK_SKEW_SECONDS < now:
            raise errors.expired_token(_arm_time(expiry), _arm_time(now))
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and not_before - CLOCK_SKEW_SECONDS > now:
            raise errors.invalid_token("The access token is not yet valid.")

    def _key_for(self, kid: str | None) -> jwt.PyJWK | None:
        with self._lock:
            if kid not in self._keys and self._jwks_uri is not None \
                    and time.monotonic() - self._fetched_at > JWKS_REFRESH_INTERVAL_SECONDS:
                self._keys = self._fetch()
            if kid in self._keys:
                return self._keys[kid]
            # A key set of one key signs tokens that name no `kid`.
            return next(iter(self._keys.values())) if kid is None and len(self._keys) == 1 else None

    def _fetch(self) -> dict[str | None, jwt.PyJWK]:
        assert self._jwks_uri is not None
        self._fetched_at = time.monotonic()
        context = ssl.create_default_context(cafile=str(self._ca_bundle) if self._ca_bundle else None)
        try:
            with urllib.request.urlopen(self._jwks_uri, timeout=JWKS_FETCH_TIMEOUT_SECONDS,  # noqa: S310
                                        context=context) as response:
                return _keys_of(json.loads(response.read()))
        except (OSError, ValueError, jwt.PyJWTError):
            # An unreachable issuer leaves the keys we had; tokens signed by unknown keys are then refused.
            return self._keys


def _keys_of(jwks: dict[str, Any]) -> dict[str | None, jwt.PyJWK]:
    entries = jwks.get("keys", [jwks] if "kty" in jwks else [])
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in entries:
        try:
            keys[entry.get("kid")] = jwt.PyJWK.from_dict(entry)
        except jwt.PyJWTError:
            continue  # keys of kinds we cannot use (e.g. encryption keys) do not spoil the set
    return keys


def _arm_time(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    hour = moment.hour % 12 or 12
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {'PM' if moment.hour >= 12 else 'AM'}"
