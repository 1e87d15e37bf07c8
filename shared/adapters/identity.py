"""Who the agent is, and how a person's access is borrowed.

The agent acts with its own identity first: the Function App's managed identity in Azure, an app
registration's client credentials against the local Entra stand-in. A person's access comes only
through MSAL's on-behalf-of flow, into a token cache made for that one exchange and dropped with it.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import msal
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential

from shared.ports import CredentialUnavailable

USER_IMPERSONATION = "https://management.azure.com/user_impersonation"
PUBLIC_AUTHORITY_HOSTS = frozenset({
    "https://login.microsoftonline.com", "https://login.microsoftonline.us", "https://login.chinacloudapi.cn",
})


class OneShotCredential:
    """A delegated token for one step. `revoke()` drops it; after that it refuses to hand it out."""

    def __init__(self, token: str, expires_on: int) -> None:
        self._token: str | None = token
        self._expires_on = expires_on

    def get_token(self, *scopes: str, claims: str | None = None, **kwargs: Any) -> AccessToken:
        if self._token is None:
            raise ClientAuthenticationError("the delegated credential was revoked after its step")
        return AccessToken(self._token, self._expires_on)

    def revoke(self) -> None:
        self._token = None

    def __repr__(self) -> str:  # never show the token, not even in a traceback's locals
        return f"OneShotCredential(revoked={self._token is None})"


class MsalTokenBroker:
    def __init__(self, *, authority_host: str, tenant_id: str, client_id: str, client_secret: str,
                 agent: TokenCredential) -> None:
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._instance_discovery = authority_host.rstrip("/") in PUBLIC_AUTHORITY_HOSTS
        self._client_id = client_id
        self._client_secret = client_secret
        self._agent = agent

    def agent_credential(self) -> TokenCredential:
        return self._agent

    def on_behalf_of(self, user_assertion: str, claims: str | None = None) -> OneShotCredential:
        app = msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=self._client_secret,
            authority=self._authority,
            instance_discovery=self._instance_discovery,
            token_cache=msal.TokenCache(),  # this exchange's alone; garbage with `app`
        )
        try:
            result = app.acquire_token_on_behalf_of(user_assertion, [USER_IMPERSONATION], claims_challenge=claims)
        except (ValueError, OSError) as error:
            raise CredentialUnavailable(f"Entra ID could not be reached: {error.__class__.__name__}") from None
        if "access_token" not in result:
            raise CredentialUnavailable(_describe(result))
        expires_on = int(time.time()) + int(result.get("expires_in", 300))
        return OneShotCredential(result["access_token"], expires_on)


def _describe(result: dict[str, Any]) -> str:
    # Entra's error text names the AADSTS code and the cause; it carries no token.
    description = str(result.get("error_description", "")).splitlines()[0] if result.get("error_description") else ""
    return f"{result.get('error', 'unknown_error')}: {description}"[:500]


def agent_credential_from_settings(mode: str, *, tenant_id: str, authority_host: str, client_id: str | None,
                                   client_secret: str | None) -> TokenCredential:
    if mode == "managed_identity":
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    if mode == "client_secret":
        if not (client_id and client_secret):
            raise ValueError(
                "GATES_AGENT_IDENTITY=client_secret needs GATES_AGENT_CLIENT_ID and GATES_AGENT_CLIENT_SECRET")
        host = authority_host.rstrip("/")
        return ClientSecretCredential(tenant_id, client_id, client_secret, authority=host,
                                      disable_instance_discovery=host not in PUBLIC_AUTHORITY_HOSTS)
    raise ValueError(f"GATES_AGENT_IDENTITY must be managed_identity or client_secret, not {mode!r}")


class JwksSigningKeys:
    """Entra's signing keys, fetched from its JWKS and cached by PyJWT (refetched for an unknown `kid`)."""

    def __init__(self, jwks_uri: str) -> None:
        self._client = jwt.PyJWKClient(jwks_uri)

    def key_for(self, token: str) -> Any:
        return self._client.get_signing_key_from_jwt(token).key
