"""OAuth 2.0 errors in the shape Entra ID's v2.0 endpoint gives them.

Entra answers with `error`, an `error_description` that starts with `AADSTSnnnnn:` and ends with
trace id, correlation id and timestamp lines, `error_codes`, `timestamp`, `trace_id`,
`correlation_id` and `error_uri`; sometimes `suberror` and `claims`. `invalid_client` is a 401,
the rest 400.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any


class OAuthError(Exception):
    def __init__(self, error: str, code: int, message: str, *, status: int = 400, suberror: str | None = None,
                 claims: str | None = None) -> None:
        super().__init__(f"{error}: AADSTS{code}: {message}")
        self.error = error
        self.code = code
        self.message = message
        self.status = status
        self.suberror = suberror
        self.claims = claims

    def body(self, correlation_id: str | None = None) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        document: dict[str, Any] = {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.message}\r\nTrace ID: {trace_id}\r\n"
                                 f"Correlation ID: {correlation_id}\r\nTimestamp: {now}",
            "error_codes": [self.code],
            "timestamp": now,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        if self.suberror:
            document["suberror"] = self.suberror
        if self.claims:
            document["claims"] = self.claims
        return document

    # The errors by name, so each call site reads as the condition it reports.

    @classmethod
    def missing_parameter(cls, name: str) -> OAuthError:
        return cls("invalid_request", 900144, f"The request body must contain the following parameter: '{name}'.")

    @classmethod
    def missing_scope(cls) -> OAuthError:
        return cls("invalid_scope", 70011, "The provided request must include a 'scope' input parameter.")

    @classmethod
    def invalid_scope(cls, code: int, message: str) -> OAuthError:
        return cls("invalid_scope", code, message)

    @classmethod
    def invalid_resource(cls, resource: str, tenant: str) -> OAuthError:
        return cls("invalid_resource", 500011,
                   f"The resource principal named {resource} was not found in the tenant named {tenant}. This can "
                   "happen if the application has not been installed by the administrator of the tenant or "
                   "consented to by any user in the tenant. You might have sent your authentication request to the "
                   "wrong tenant.")

    @classmethod
    def unsupported_grant_type(cls) -> OAuthError:
        return cls("unsupported_grant_type", 70003, "The app requested an unsupported grant type ''.")

    @classmethod
    def unknown_client(cls, client_id: str, tenant: str) -> OAuthError:
        return cls("unauthorized_client", 700016,
                   f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can "
                   "happen if the application has not been installed by the administrator of the tenant or "
                   "consented to by any user in the tenant.")

    @classmethod
    def bad_client_secret(cls, client_id: str) -> OAuthError:
        return cls("invalid_client", 7000215,
                   "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                   f"value, not the client secret ID, for a secret added to app '{client_id}'.", status=401)

    @classmethod
    def missing_client_secret(cls) -> OAuthError:
        return cls("invalid_client", 7000218,
                   "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                   status=401)

    @classmethod
    def unknown_user(cls, tenant: str) -> OAuthError:
        return cls("invalid_grant", 50034,
                   f"The user account {{EUII Hidden}} does not exist in the {tenant} directory. To sign into this "
                   "application, the account must be added to the directory.")

    @classmethod
    def bad_password(cls) -> OAuthError:
        return cls("invalid_grant", 50126, "Error validating credentials due to invalid username or password.")

    @classmethod
    def mfa_required(cls, resource: str, claims: str, enrollment: bool = False) -> OAuthError:
        if enrollment:
            return cls("interaction_required", 50079,
                       "Due to a configuration change made by your administrator, or because you moved to a new "
                       f"location, you must enroll in multi-factor authentication to access '{resource}'.",
                       suberror="basic_action", claims=claims)
        return cls("interaction_required", 50076,
                   "Due to a configuration change made by your administrator, or because you moved to a new location, "
                   f"you must use multi-factor authentication to access '{resource}'.",
                   suberror="basic_action", claims=claims)

    @classmethod
    def consent_required(cls, client_id: str, app_name: str) -> OAuthError:
        # Entra reports missing consent as invalid_grant with the suberror consent_required.
        return cls("invalid_grant", 65001,
                   f"The user or administrator has not consented to use the application with ID '{client_id}' named "
                   f"'{app_name}'. Send an interactive authorization request for this user and resource.",
                   suberror="consent_required")

    @classmethod
    def bad_assertion(cls, message: str) -> OAuthError:
        return cls("invalid_grant", 50013, message)

    @classmethod
    def malformed_assertion(cls) -> OAuthError:
        return cls("invalid_request", 50027, "JWT token is invalid or malformed.")

    @classmethod
    def assertion_out_of_time(cls, now: dt.datetime, expiry: dt.datetime) -> OAuthError:
        return cls("invalid_grant", 500133,
                   "Assertion is not within its valid time range. Ensure that the access token is not expired before "
                   "using it for user assertion, or request a new token. Current time: "
                   f"{now:%Y-%m-%dT%H:%M:%S.0000000Z}, expiry time of assertion {expiry:%Y-%m-%dT%H:%M:%S.0000000Z}.")

    @classmethod
    def bad_code(cls) -> OAuthError:
        return cls("invalid_grant", 70000, "The provided value for the 'code' parameter is not valid.")

    @classmethod
    def code_redeemed(cls) -> OAuthError:
        return cls("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new "
                   "valid code or use an existing refresh token.")

    @classmethod
    def bad_refresh_token(cls) -> OAuthError:
        return cls("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")

    @classmethod
    def expired_refresh_token(cls) -> OAuthError:
        return cls("invalid_grant", 700082, "The refresh token has expired due to inactivity.")

    @classmethod
    def redirect_mismatch(cls) -> OAuthError:
        return cls("invalid_grant", 500112, "The reply address does not match the reply address provided when "
                   "requesting the authorization code.")

    @classmethod
    def pkce_mismatch(cls) -> OAuthError:
        return cls("invalid_grant", 501481,
                   "The Code_Verifier does not match the code_challenge supplied in the authorization request.")

    @classmethod
    def post_only(cls, method: str) -> OAuthError:
        return cls("invalid_request", 900561,
                   f"The endpoint only accepts POST, OPTIONS requests. Received a {method} request.")

    @classmethod
    def unknown_tenant(cls, tenant: str) -> OAuthError:
        return cls("invalid_request", 90002,
                   f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
                   "into the correct cloud.")

    @classmethod
    def transient(cls) -> OAuthError:
        return cls("temporarily_unavailable", 90033, "A transient error has occurred. Please try again.", status=503)
