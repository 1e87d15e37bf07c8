"""`/{tenant}/oauth2/v2.0/token`: client authentication, then one handler per grant type.

Each handler checks what Entra checks, in Entra's order, and raises `OAuthError` with Entra's code.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import jwt

from local_azure.entra.directory import App, Directory, ScopeRequest, User
from local_azure.entra.errors import OAuthError
from local_azure.entra.grants import Fault, GrantStore, RefreshGrant
from local_azure.entra.tokens import TokenMinter

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_CLAIMS_CHALLENGE = '{"access_token":{"capolids":{"essential":true,"values":["%s"]}}}'
# A stable id for the local "require MFA for Azure management" conditional access policy.
LOCAL_MFA_POLICY_ID = "c0de0000-0000-4000-8000-0000000000fa"


class TokenEndpoint:
    def __init__(self, directory: Directory, minter: TokenMinter, grants: GrantStore) -> None:
        self.directory = directory
        self.minter = minter
        self.grants = grants
        self._handlers: dict[str, Callable[[Mapping[str, str], App, bool], dict[str, Any]]] = {
            "client_credentials": self._client_credentials,
            "password": self._password,
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh_token,
            JWT_BEARER: self._on_behalf_of,
        }

    def handle(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise OAuthError.missing_parameter("grant_type")
        handler = self._handlers.get(grant_type)
        if handler is None:
            error = OAuthError.unsupported_grant_type()
            error.message = f"The app requested an unsupported grant type '{grant_type}'."
            raise error
        needs_secret = grant_type in ("client_credentials", JWT_BEARER)
        client, confidential = self._authenticate_client(form, authorization, needs_secret)
        return handler(form, client, confidential)

    # Client authentication -----------------------------------------------------------------------

    def _authenticate_client(self, form: Mapping[str, str], authorization: str | None,
                             needs_secret: bool) -> tuple[App, bool]:
        client_id = form.get("client_id", "")
        secret = form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError.missing_client_secret() from None
            basic_id, separator, basic_secret = decoded.partition(":")
            if not separator:
                raise OAuthError.missing_client_secret()
            basic_id, basic_secret = unquote(basic_id), unquote(basic_secret)
            if client_id and client_id != basic_id:
                raise OAuthError("invalid_request", 700021,
                                 "Client assertion application identifier doesn't match 'client_id' parameter.")
            client_id, secret = basic_id, basic_secret
        if not client_id:
            raise OAuthError.missing_parameter("client_id")
        client = self.directory.app(client_id)
        if client is None:
            raise OAuthError.unknown_client(client_id, self.directory.tenant_id)
        if form.get("client_assertion"):
            raise OAuthError("invalid_client", 700027,
                             "The certificate with identifier used to sign the client assertion is not registered on "
                             f"application. [Reason - The key was not found., Client app ID: {client_id}]", status=401)
        if secret is None:
            if needs_secret or not client.allow_public_client:
                raise OAuthError.missing_client_secret()
            return client, False
        if not any(hmac.compare_digest(secret.encode(), known.encode()) for known in client.client_secrets):
            raise OAuthError.bad_client_secret(client_id)
        return client, True

    # Shared checks -------------------------------------------------------------------------------

    def _scope(self, form: Mapping[str, str], fallback: str | None = None) -> ScopeRequest:
        scope = form.get("scope") or fallback
        if not scope:
            raise OAuthError.missing_scope()
        return self.directory.parse_scope(scope)

    def _delegated_scopes(self, client: App, user: User, request: ScopeRequest) -> tuple[str, ...]:
        if request.resource.app_id == client.client_id:  # an app may always ask for its own API
            scopes = request.resource.scopes if request.default else request.scopes
        else:
            granted = self.directory.delegated_grant(client, request)
            if granted is None:
                raise OAuthError.consent_required(client.client_id, client.name)
            scopes = granted
        if user.consent_missing_for(request.resource):
            raise OAuthError.consent_required(client.client_id, client.name)
        return scopes

    def _conditional_access(self, user: User, request: ScopeRequest, amr: tuple[str, ...]) -> None:
        if user.mfa_required_for(request.resource) and "mfa" not in amr:
            raise OAuthError.mfa_required(request.resource.primary_uri, DEFAULT_CLAIMS_CHALLENGE % LOCAL_MFA_POLICY_ID,
                                          enrollment=bool(user.flags.get("mfa_enrollment_required", False)))

    def _faults(self, grant: str, client: App, user: User | None, request: ScopeRequest | None) -> None:
        fault = self.grants.take_fault(grant, client.client_id, user.oid if user else None, user.upn if user else None)
        if fault is not None:
            raise _fault_error(fault, client, request)

    def _user_tokens(self, form: Mapping[str, str], client: App, confidential: bool, user: User,
                     request: ScopeRequest, amr: tuple[str, ...], nonce: str | None = None) -> dict[str, Any]:
        scopes = self._delegated_scopes(client, user, request)
        self._conditional_access(user, request, amr)
        refresh_token = None
        if "offline_access" in request.oidc:
            scope_text = " ".join(form.get("scope", "").split()) or request.granted()
            refresh_token = self.grants.issue_refresh_token(RefreshGrant(
                client.client_id, user.oid, scope_text, amr,
                dt.datetime.now(dt.UTC) + self.minter.lifetimes.refresh_token))
        return self.minter.user_response(user, client, request, scopes, amr=amr, confidential=confidential,
                                         refresh_token=refresh_token, nonce=nonce,
                                         want_client_info=form.get("client_info") == "1")

    # Grants --------------------------------------------------------------------------------------

    def _client_credentials(self, form: Mapping[str, str], client: App, confidential: bool) -> dict[str, Any]:
        scope = form.get("scope", "")
        if not scope:
            raise OAuthError.missing_scope()
        words = scope.split()
        if len(words) != 1 or not words[0].endswith("/.default"):
            raise OAuthError.invalid_scope(
                1002012, f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier (application ID URI).")
        request = self.directory.parse_scope(scope)
        self._faults("client_credentials", client, None, request)
        roles = self.directory.application_grant(client, request.resource) or ()
        return self.minter.app_response(client, request.resource, roles)

    def _password(self, form: Mapping[str, str], client: App, confidential: bool) -> dict[str, Any]:
        for name in ("username", "password"):
            if not form.get(name):
                raise OAuthError.missing_parameter(name)
        request = self._scope(form)
        user = self.directory.user(form["username"])
        if user is None:
            raise OAuthError.unknown_user(self.directory.tenant_id)
        if not hmac.compare_digest(form["password"].encode(), user.password.encode()):
            raise OAuthError.bad_password()
        self._faults("password", client, user, request)
        return self._user_tokens(form, client, confidential, user, request, ("pwd",))

    def _authorization_code(self, form: Mapping[str, str], client: App, confidential: bool) -> dict[str, Any]:
        for name in ("code", "redirect_uri"):
            if not form.get(name):
                raise OAuthError.missing_parameter(name)
        grant = self.grants.redeem_code(form["code"])
        if grant is False:
            raise OAuthError.code_redeemed()
        if grant is None or grant is True or grant.request.client_id != client.client_id:
            raise OAuthError.bad_code()
        if grant.request.redirect_uri != form["redirect_uri"]:
            raise OAuthError.redirect_mismatch()
        if grant.request.code_challenge:
            verifier = form.get("code_verifier", "")
            if not verifier:
                raise OAuthError.missing_parameter("code_verifier")
            if not hmac.compare_digest(_challenge(verifier, grant.request.code_challenge_method or "plain"),
                                       grant.request.code_challenge):
                raise OAuthError.pkce_mismatch()
        user = self.directory.user(grant.user_oid)
        if user is None:
            raise OAuthError.unknown_user(self.directory.tenant_id)
        request = self._scope(form, grant.request.scope)
        self._faults("authorization_code", client, user, request)
        return self._user_tokens(form, client, confidential, user, request, ("pwd",), nonce=grant.request.nonce)

    def _refresh_token(self, form: Mapping[str, str], client: App, confidential: bool) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        if not token:
            raise OAuthError.missing_parameter("refresh_token")
        grant = self.grants.refresh_grant(token)
        if grant is None or grant.client_id != client.client_id:
            raise OAuthError.bad_refresh_token()
        if grant.expires_at < dt.datetime.now(dt.UTC):
            raise OAuthError.expired_refresh_token()
        user = self.directory.user(grant.user_oid)
        if user is None:
            raise OAuthError.unknown_user(self.directory.tenant_id)
        request = self._scope(form, grant.scope)
        self._faults("refresh_token", client, user, request)
        return self._user_tokens(form, client, confidential, user, request, grant.amr)

    def _on_behalf_of(self, form: Mapping[str, str], client: App, confidential: bool) -> dict[str, Any]:
        if form.get("requested_token_use") != "on_behalf_of":
            raise OAuthError.missing_parameter("requested_token_use")
        assertion = form.get("assertion", "")
        if not assertion:
            raise OAuthError.missing_parameter("assertion")
        request = self._scope(form)
        claims = self._verify_assertion(assertion, client)
        user = self.directory.user(str(claims.get("oid", "")))
        if user is None:
            raise OAuthError.unknown_user(self.directory.tenant_id)
        amr = claims.get("amr", ["pwd"])
        amr_tuple = tuple(str(method) for method in amr) if isinstance(amr, list) else ("pwd",)
        self._faults("on_behalf_of", client, user, request)
        return self._user_tokens(form, client, confidential, user, request, amr_tuple)

    def _verify_assertion(self, assertion: str, client: App) -> dict[str, Any]:
        """The incoming user token: ours, unexpired, meant for the client that presents it."""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise OAuthError.malformed_assertion() from None
        if header.get("kid") != self.minter.key.kid:
            raise OAuthError.bad_assertion(
                "Assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by "
                f"client: '{header.get('kid')}']")
        try:
            claims = self.minter.key.verify(assertion, options={
                "verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False,
                "verify_iss": False})
        except jwt.InvalidSignatureError:
            raise OAuthError.bad_assertion(
                "Assertion failed signature validation. [Reason - The provided signature value did not match the "
                "expected signature value.]") from None
        except jwt.PyJWTError:
            raise OAuthError.malformed_assertion() from None
        if claims.get("iss") != self.minter.issuer:
            raise OAuthError.bad_assertion(
                f"Assertion failed signature validation. [Reason - The issuer '{claims.get('iss')}' of the assertion "
                f"is not '{self.minter.issuer}'.]")
        now = dt.datetime.now(dt.UTC)
        expiry, not_before = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(expiry, int | float) or (not_before is not None and not isinstance(not_before, int | float)):
            raise OAuthError.malformed_assertion()
        expires_at = dt.datetime.fromtimestamp(expiry, dt.UTC)
        if expires_at <= now or (not_before is not None and dt.datetime.fromtimestamp(not_before, dt.UTC) > now):
            raise OAuthError.assertion_out_of_time(now, expires_at)
        audience = claims.get("aud")
        accepted = {client.client_id, *(client.resource.identifier_uris if client.resource else ())}
        if audience not in accepted:
            raise OAuthError.bad_assertion(
                f"Assertion audience does not match the Client app presenting the assertion. The audience in the "
                f"assertion was '{audience}' and the expected audience is '{client.client_id}' or one of the "
                "Application Ids of the Client app presenting the assertion.")
        if claims.get("tid") != self.directory.tenant_id:
            raise OAuthError.bad_assertion("Assertion failed signature validation. [Reason - The assertion was "
                                           "issued for another tenant.]")
        if claims.get("idtyp") == "app" or not claims.get("scp"):
            raise OAuthError.bad_assertion(
                "Assertion is an application token. The on-behalf-of flow needs a delegated token issued to a user "
                "(it has no 'scp' claim).")
        return claims


def _challenge(verifier: str, method: str) -> str:
    if method == "S256":
        return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier


def _fault_error(fault: Fault, client: App, request: ScopeRequest | None) -> OAuthError:
    resource = request.resource.primary_uri if request else "00000003-0000-0000-c000-000000000000"
    if fault.error == "interaction_required":
        claims = fault.claims or DEFAULT_CLAIMS_CHALLENGE % uuid.uuid4()
        return OAuthError.mfa_required(resource, claims, enrollment=fault.code == 50079)
    if fault.error == "consent_required":
        return OAuthError.consent_required(client.client_id, client.name)
    if fault.error == "invalid_client":
        return OAuthError.bad_client_secret(client.client_id)
    if fault.error == "temporarily_unavailable":
        return OAuthError.transient()
    return OAuthError("invalid_grant", fault.code or 50173,
                      "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user "
                      "might have changed or reset their password.")
