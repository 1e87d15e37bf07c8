"""A user's token from the stand-in through the real MSAL, for tests and scripts of other parts."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msal
import msal.authority


def skip_user_realm_discovery(authority: str) -> None:
    """Before a password grant MSAL asks `https://<host>/common/userrealm/<user>` whether the account is
    federated, on port 443 whatever port the authority has. Nothing listens there, so MSAL would raise.
    MSAL remembers hosts that answered 404 (managed accounts only) in a class-level set; this records
    the stand-in's host there, which is what MSAL would have learnt had the stand-in served port 443.
    """
    host = urlsplit(authority).hostname
    if host:
        msal.authority.Authority._domains_without_user_realm_discovery.add(host)


def user_token(authority: str, client_id: str, client_secret: str | None, username: str, password: str,
               scope: str) -> str:
    """The access token MSAL gets with the password grant; raises with Entra's error text otherwise."""
    result = user_token_result(authority, client_id, client_secret, username, password, scope)
    if "access_token" not in result:
        raise RuntimeError(f"{result.get('error')}: {result.get('error_description', '').splitlines()[0]}")
    return str(result["access_token"])


def user_token_result(authority: str, client_id: str, client_secret: str | None, username: str, password: str,
                      scope: str) -> dict[str, Any]:
    skip_user_realm_discovery(authority)
    app: msal.ClientApplication
    if client_secret is None:
        app = msal.PublicClientApplication(client_id, authority=authority, instance_discovery=False,
                                           token_cache=msal.TokenCache())
    else:
        app = msal.ConfidentialClientApplication(client_id, client_credential=client_secret, authority=authority,
                                                 instance_discovery=False, token_cache=msal.TokenCache())
    result: dict[str, Any] = app.acquire_token_by_username_password(username, password, scopes=[scope])
    return result


def confidential_app(authority: str, client_id: str, client_secret: str) -> msal.ConfidentialClientApplication:
    """A fresh MSAL app with its own cache: MSAL also throttles repeated failing requests per app."""
    return msal.ConfidentialClientApplication(client_id, client_credential=client_secret, authority=authority,
                                              instance_discovery=False, token_cache=msal.TokenCache())
