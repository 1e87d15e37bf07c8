"""App Service Authentication ("Easy Auth") for Microsoft Entra ID, in front of the HTTP functions.

What it does, as App Service does it:
- `/.auth/login/aad` runs the OIDC authorization-code flow (with PKCE and a nonce) against the issuer's
  discovery document; the callback redeems the code with the client secret, validates the id_token
  against the JWKS and opens a server-side session named by the `AppServiceAuthSession` cookie.
- `Authorization: Bearer` access tokens are validated (signature, issuer, audience, expiry).
- Any `X-MS-CLIENT-PRINCIPAL*` / `X-MS-TOKEN-*` header a client sends is dropped; for an authenticated
  caller Easy Auth's own are added (principal, id, name, idp; tokens when the token store is on).
- `/.auth/me` and `/.auth/logout`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
import requests

from local_azure.host.auth_settings import AuthSettings
from local_azure.host.web import IncomingRequest, Reply

LOG = logging.getLogger("local_azure.host.auth")
SESSION_COOKIE = "AppServiceAuthSession"
NONCE_COOKIE = "Nonce"
LOGIN_PATH = "/.auth/login/aad"
CALLBACK_PATH = "/.auth/login/aad/callback"
HTTP_TIMEOUT_SECONDS = 10.0
PENDING_LOGIN_SECONDS = 600.0
FORWARDED_LOGIN_PARAMETERS = ("prompt", "login_hint", "domain_hint")
INJECTED_PREFIXES = ("x-ms-client-principal", "x-ms-token-")

# The claim types Easy Auth writes for Entra tokens (it renames a few to their WS-Federation URIs).
_CLAIM_TYPES = {
    "oid": "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "tid": "http://schemas.microsoft.com/identity/claims/tenantid",
    "sub": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
    "email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "upn": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "given_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "family_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    "scp": "http://schemas.microsoft.com/identity/claims/scope",
}
NAME_TYPE = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


class TokenRejected(Exception):
    """A token that does not pass validation; the message is safe to show (no token text in it)."""


class ProviderUnavailable(Exception):
    """The identity provider's discovery document, JWKS or token endpoint could not be reached."""


class OidcProvider:
    """Discovery and signing keys of one issuer, fetched once and refreshed when a new key id appears."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._metadata: dict[str, Any] | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._lock = threading.Lock()

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)
            response.raise_for_status()
            return dict(response.json())
        except (requests.RequestException, ValueError) as error:
            raise ProviderUnavailable(f"{url}: {type(error).__name__}") from error

    @property
    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                self._metadata = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            return self._metadata

    def _signing_key(self, key_id: str | None) -> jwt.PyJWK:
        jwks_uri = str(self.metadata["jwks_uri"])
        for refresh in (False, True):
            with self._lock:
                if self._keys is None or refresh:
                    try:
                        self._keys = jwt.PyJWKSet.from_dict(self._get_json(jwks_uri))
                    except jwt.PyJWTError as error:
                        raise ProviderUnavailable(f"{jwks_uri}: no usable keys") from error
                keys = self._keys
            for key in keys.keys:
                if key_id is None or key.key_id == key_id:
                    return key
        raise TokenRejected("the token's signing key is not in the issuer's JWKS")

    def validate(self, token: str, audiences: tuple[str, ...], nonce: str | None = None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenRejected("not a JWT") from error
        algorithm = str(header.get("alg", ""))
        if algorithm not in ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256"):
            raise TokenRejected(f"signing algorithm {algorithm!r} is not accepted")
        key = self._signing_key(header.get("kid"))
        expected_issuer = str(self.metadata.get("issuer", self.issuer))
        try:
            claims = jwt.decode(
                token, key=key.key, algorithms=[algorithm], audience=list(audiences), issuer=expected_issuer,
                options={"require": ["exp", "iss", "aud"]}, leeway=dt.timedelta(seconds=30),
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenRejected("the token has expired") from error
        except jwt.InvalidAudienceError as error:
            raise TokenRejected("the token's audience is not allowed") from error
        except jwt.InvalidIssuerError as error:
            raise TokenRejected("the token's issuer is not the configured issuer") from error
        except jwt.PyJWTError as error:
            raise TokenRejected(f"the token is not valid ({type(error).__name__})") from error
        if nonce is not None and claims.get("nonce") != nonce:
            raise TokenRejected("the id_token's nonce does not match the login")
        return dict(claims)


@dataclass
class Principal:
    claims: dict[str, Any]
    access_token: str | None = None
    id_token: str | None = None
    refresh_token: str | None = None
    expires_on: dt.datetime | None = None
    from_bearer: bool = False

    def claim_list(self) -> list[dict[str, str]]:
        listed: list[dict[str, str]] = []
        for name, value in self.claims.items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                text = item if isinstance(item, str) else json.dumps(item)
                listed.append({"typ": _CLAIM_TYPES.get(name, name), "val": text})
        return listed

    @property
    def name(self) -> str:
        return str(self.claims.get("preferred_username") or self.claims.get("upn") or self.claims.get("name") or "")

    def headers(self, token_store: bool) -> list[tuple[str, str]]:
        document = {"auth_typ": "aad", "claims": self.claim_list(), "name_typ": NAME_TYPE, "role_typ": ROLE_TYPE}
        encoded = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
        injected = [
            ("X-MS-CLIENT-PRINCIPAL", encoded),
            ("X-MS-CLIENT-PRINCIPAL-ID", str(self.claims.get("oid") or self.claims.get("sub") or "")),
            ("X-MS-CLIENT-PRINCIPAL-NAME", self.name),
            ("X-MS-CLIENT-PRINCIPAL-IDP", "aad"),
        ]
        if token_store and not self.from_bearer:
            tokens = {"ACCESS-TOKEN": self.access_token, "ID-TOKEN": self.id_token,
                      "REFRESH-TOKEN": self.refresh_token,
                      "EXPIRES-ON": _easy_auth_time(self.expires_on) if self.expires_on else None}
            injected.extend((f"X-MS-TOKEN-AAD-{name}", value) for name, value in tokens.items() if value)
        return injected


def _easy_auth_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


@dataclass
class _PendingLogin:
    nonce: str
    code_verifier: str
    redirect_uri: str
    post_login_redirect: str
    browser_binding: str
    created: float = field(default_factory=time.monotonic)


@dataclass
class _Session:
    principal: Principal
    expires: float


def _safe_relative(target: str | None) -> str | None:
    """Only same-origin relative paths: `/x`, never `//host`, `/\\host` or `scheme:`."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ord(character) < 0x20 for character in target):
        return None
    return target


def strip_injected_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if not name.lower().startswith(INJECTED_PREFIXES)]


class EasyAuth:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.provider = OidcProvider(settings.issuer)
        self._sessions: dict[str, _Session] = {}
        self._pending: dict[str, _PendingLogin] = {}
        self._lock = threading.Lock()

    # ----- the front door -----------------------------------------------------------------------------
    def front(self, request: IncomingRequest) -> Reply | Principal | None:
        """A reply to send instead of the function, the caller's principal, or None (anonymous, allowed)."""
        if request.path.startswith("/.auth/"):
            return self._auth_endpoint(request)
        try:
            principal = self.identify(request)
        except TokenRejected as rejected:
            return self._unauthorized(f"invalid_token: {rejected}")
        except ProviderUnavailable as error:
            LOG.warning("identity provider unavailable: %s", error)
            return Reply.text(502, "The identity provider could not be reached.")
        if principal is not None:
            return principal
        if not self.settings.require_authentication or self.settings.is_excluded(request.path):
            return None
        action = self.settings.unauthenticated_action
        if action == "AllowAnonymous":
            return None
        if action == "Return403":
            return Reply.text(403, "You do not have permission to view this directory or page.")
        if action == "RedirectToLoginPage" and self._is_browser_navigation(request):
            target = urlencode({"post_login_redirect_uri": request.path_and_query})
            return Reply.redirect(f"{LOGIN_PATH}?{target}")
        return self._unauthorized(None)

    def identify(self, request: IncomingRequest) -> Principal | None:
        authorization = request.header("Authorization") or ""
        if authorization[:7].lower() == "bearer ":
            claims = self.provider.validate(authorization[7:].strip(), self.settings.allowed_audiences)
            return Principal(claims=claims, access_token=authorization[7:].strip(), from_bearer=True)
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires < time.monotonic():
                del self._sessions[session_id]
                session = None
        return session.principal if session else None

    @staticmethod
    def _is_browser_navigation(request: IncomingRequest) -> bool:
        # Easy Auth answers XHR, API clients and non-GET with 401; a browser page load gets the login redirect.
        if request.method not in ("GET", "HEAD"):
            return False
        if (request.header("X-Requested-With") or "").lower() == "xmlhttprequest":
            return False
        return "text/html" in (request.header("Accept") or "")

    def _unauthorized(self, error: str | None) -> Reply:
        authorize = self._authorize_endpoint_or_blank()
        challenge = f'Bearer realm="{self.settings.client_id}", authorization_uri="{authorize}"'
        if error:
            challenge += f', error="invalid_token", error_description="{error}"'
        return Reply.text(401, "You do not have permission to view this directory or page.",
                          headers=[("WWW-Authenticate", challenge)])

    def _authorize_endpoint_or_blank(self) -> str:
        try:
            return str(self.provider.metadata.get("authorization_endpoint", ""))
        except ProviderUnavailable:
            return ""

    # ----- /.auth/* -----------------------------------------------------------------------------------
    def _auth_endpoint(self, request: IncomingRequest) -> Reply:
        path = request.path.rstrip("/")
        try:
            if path == LOGIN_PATH and request.method == "GET":
                return self._start_login(request)
            if path == CALLBACK_PATH and request.method in ("GET", "POST"):
                return self._finish_login(request)
            if path == "/.auth/login/done":
                return Reply.text(200, "<html><body>You have successfully signed in.</body></html>", "text/html")
            if path == "/.auth/me" and request.method == "GET":
                return self._me(request)
            if path == "/.auth/logout" and request.method in ("GET", "POST"):
                return self._logout(request)
            if path == "/.auth/logout/complete":
                return Reply.text(200, "<html><body>You have been signed out.</body></html>", "text/html")
        except ProviderUnavailable as error:
            LOG.warning("identity provider unavailable: %s", error)
            return Reply.text(502, "The identity provider could not be reached.")
        except TokenRejected as rejected:
            return self._unauthorized(f"invalid_token: {rejected}")
        return Reply.text(404, "The resource you are looking for has been removed, had its name changed, "
                               "or is temporarily unavailable.")

    def _start_login(self, request: IncomingRequest) -> Reply:
        metadata = self.provider.metadata
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        binding = secrets.token_urlsafe(24)
        redirect_uri = f"{request.origin}{CALLBACK_PATH}"
        post_login = _safe_relative(request.query.get("post_login_redirect_uri")) or "/.auth/login/done"
        pending = _PendingLogin(secrets.token_urlsafe(24), verifier, redirect_uri, post_login, binding)
        with self._lock:
            now = time.monotonic()
            for stale in [key for key, value in self._pending.items() if now - value.created > PENDING_LOGIN_SECONDS]:
                del self._pending[stale]
            self._pending[state] = pending
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        parameters = {
            **{key: value for key, value in self.settings.login_parameters.items() if key != "scope"},
            # As App Service passes them on from /.auth/login/aad's query: "sign in as someone else"
            # sends prompt=select_account, so that single sign-on does not return the same person.
            **{key: request.query[key] for key in FORWARDED_LOGIN_PARAMETERS if request.query.get(key)},
            "client_id": self.settings.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            # App Service asks for form_post; that needs the Nonce cookie as SameSite=None, which browsers
            # accept only with Secure, over https. Locally the host is plain http, so the code comes back
            # on a top-level GET, which carries a SameSite=Lax cookie.
            "response_mode": "query",
            "scope": self.settings.scope,
            "state": state,
            "nonce": pending.nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        cookie = self._cookie(NONCE_COOKIE, binding, request, max_age=int(PENDING_LOGIN_SECONDS))
        return Reply.redirect(f"{metadata['authorization_endpoint']}?{urlencode(parameters)}",
                              headers=[("Set-Cookie", cookie)])

    def _finish_login(self, request: IncomingRequest) -> Reply:
        fields = dict(parse_qsl(request.query_string))
        if request.method == "POST":
            fields.update(parse_qsl(request.body.decode("utf-8", "replace")))
        with self._lock:
            pending = self._pending.pop(fields.get("state", ""), None)
        browser = request.cookies.get(NONCE_COOKIE, "")
        if pending is None or not secrets.compare_digest(browser, pending.browser_binding):
            return Reply.text(401, "The login could not be completed: unknown or expired state. Sign in again.")
        if "error" in fields:
            description = html.escape(fields.get("error_description", fields["error"]))
            return Reply.text(401, f"The identity provider refused the login: {description}")
        if "code" not in fields:
            return Reply.text(400, "The login callback carries neither a code nor an error.")
        tokens = self._redeem(fields["code"], pending)
        claims = self.provider.validate(str(tokens.get("id_token", "")), (self.settings.client_id,), pending.nonce)
        expires_in = float(tokens.get("expires_in", 3600))
        principal = Principal(
            claims=claims, access_token=tokens.get("access_token"), id_token=tokens.get("id_token"),
            refresh_token=tokens.get("refresh_token"),
            expires_on=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in),
        )
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session_id] = _Session(principal, time.monotonic() + self.settings.session_lifetime_seconds)
        LOG.info("signed in %s", principal.name)
        return Reply.redirect(pending.post_login_redirect, headers=[
            ("Set-Cookie", self._cookie(SESSION_COOKIE, session_id, request)),
            ("Set-Cookie", self._cookie(NONCE_COOKIE, "", request, max_age=0)),
        ])

    def _redeem(self, code: str, pending: _PendingLogin) -> Mapping[str, Any]:
        endpoint = str(self.provider.metadata["token_endpoint"])
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": pending.redirect_uri,
                "client_id": self.settings.client_id, "code_verifier": pending.code_verifier,
                "scope": self.settings.scope}
        if self.settings.client_secret:
            form["client_secret"] = self.settings.client_secret
        try:
            response = requests.post(endpoint, data=form, timeout=HTTP_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise ProviderUnavailable(f"{endpoint}: {type(error).__name__}") from error
        try:
            body = dict(response.json())
        except ValueError:
            body = {}
        if response.status_code != 200 or "id_token" not in body:
            raise TokenRejected(f"the token endpoint refused the code ({body.get('error', response.status_code)})")
        return body

    def _me(self, request: IncomingRequest) -> Reply:
        if not self.settings.token_store:
            return Reply.text(404, "The token store is not enabled.")
        principal = self.identify(request)
        if principal is None:
            return self._unauthorized(None)
        entry: dict[str, Any] = {"provider_name": "aad", "user_id": principal.name,
                                 "user_claims": principal.claim_list()}
        if principal.access_token:
            entry["access_token"] = principal.access_token
        if not principal.from_bearer:
            entry.update({"id_token": principal.id_token,
                          "expires_on": _easy_auth_time(principal.expires_on) if principal.expires_on else None})
            if principal.refresh_token:
                entry["refresh_token"] = principal.refresh_token
        return Reply.json(200, [entry])

    def _logout(self, request: IncomingRequest) -> Reply:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)
        target = _safe_relative(request.query.get("post_logout_redirect_uri")) or "/.auth/logout/complete"
        return Reply.redirect(target, headers=[("Set-Cookie", self._cookie(SESSION_COOKIE, "", request, max_age=0))])

    @staticmethod
    def _cookie(name: str, value: str, request: IncomingRequest, max_age: int | None = None) -> str:
        attributes = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if request.scheme == "https":
            attributes.append("Secure")
        if max_age is not None:
            attributes.append(f"Max-Age={max_age}")
        return "; ".join(attributes)
