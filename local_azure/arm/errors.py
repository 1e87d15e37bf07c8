"""ARM's error answers: a status, ARM's error JSON, and the headers ARM sends with them."""

from __future__ import annotations

from typing import Any

ARM_AUDIENCES = (
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
)
GATEWAY_AUTHORITY = 'Bearer authorization_uri="https://login.windows.net/", error="invalid_token"'


class ArmError(Exception):
    """Raised anywhere while handling a request; the handler turns it into ARM's answer."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 target: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.target = target

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


def missing_api_version() -> ArmError:
    return ArmError(400, "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.")


def invalid_api_version(value: str) -> ArmError:
    return ArmError(400, "InvalidApiVersionParameter",
                    f"The api-version '{value}' is invalid. The supported versions are "
                    "'2024-07-01,2024-03-01,2023-12-01,2023-09-01,2022-11-01,2021-04-01'.")


def missing_authorization() -> ArmError:
    return ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                    {"WWW-Authenticate": f'{GATEWAY_AUTHORITY}, error_description="The authentication failed '
                                        "because of missing 'Authorization' header.\""})


def malformed_authorization() -> ArmError:
    return ArmError(401, "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                    {"WWW-Authenticate": f'{GATEWAY_AUTHORITY}, error_description="The authentication failed '
                                        "because of invalid format of 'Authorization' header.\""})


def invalid_token(message: str = "The access token is invalid.") -> ArmError:
    return ArmError(401, "InvalidAuthenticationToken", message,
                    {"WWW-Authenticate": f'{GATEWAY_AUTHORITY}, error_description="{_quoted(message)}"'})


def expired_token(expiry: str, now: str) -> ArmError:
    message = f"The access token expiry UTC time '{expiry}' is earlier than current UTC time '{now}'."
    return ArmError(401, "ExpiredAuthenticationToken", message,
                    {"WWW-Authenticate": f'{GATEWAY_AUTHORITY}, error_description="{_quoted(message)}"'})


def wrong_audience(audience: str) -> ArmError:
    allowed = ",".join(f"'{a}'" for a in ARM_AUDIENCES)
    return invalid_token(f"The access token has been obtained for wrong audience or resource '{audience}'. "
                         f"It should exactly match with one of the allowed audiences {allowed}.")


def wrong_issuer() -> ArmError:
    return invalid_token("The access token is from the wrong issuer. It must match one of the trusted issuers "
                         "of the tenant associated with this subscription.")


def wrong_tenant(token_issuer: str, tenant_id: str) -> ArmError:
    return ArmError(401, "InvalidAuthenticationTokenTenant",
                    f"The access token is from the wrong issuer '{token_issuer}'. It must match the tenant "
                    f"'https://sts.windows.net/{tenant_id}/' associated with this subscription. Please use the "
                    f"authority (URL) 'https://login.windows.net/{tenant_id}' to get the token. Note, if the "
                    "subscription is transferred to another tenant there is no impact to the services, but "
                    "information about new tenant could take time to propagate (up to an hour). If you just "
                    "transferred your subscription and see this error message, please try back later.",
                    {"WWW-Authenticate": f'{GATEWAY_AUTHORITY}, error_description="The access token is from the '
                                        'wrong issuer."'})


def claims_challenge(encoded_claims: str) -> ArmError:
    # The shape Entra-protected resources use for Conditional Access step-up and CAE (RFC 6750 plus `claims`).
    return ArmError(401, "InvalidAuthenticationToken",
                    "The access token does not satisfy the claims the resource requires. "
                    "Acquire a new token with the claims in the WWW-Authenticate header.",
                    {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/'
                                         f'authorize", error="insufficient_claims", claims="{encoded_claims}"'})


def authorization_failed(client: str, object_id: str, action: str, scope: str) -> ArmError:
    return ArmError(403, "AuthorizationFailed",
                    f"The client '{client}' with object id '{object_id}' does not have authorization to perform "
                    f"action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
                    "granted, please refresh your credentials.",
                    {"x-ms-failure-cause": "gateway"})


def scope_locked(scope: str, locked_scopes: list[str]) -> ArmError:
    scopes = ",".join(f"'{s}'" for s in locked_scopes)
    return ArmError(409, "ScopeLocked",
                    f"The scope '{scope}' cannot perform write operation because following scope(s) are locked: "
                    f"{scopes}. Please remove the lock and try again.")


def throttled(subscription: str, is_write: bool, retry_after: int) -> ArmError:
    kind = "write" if is_write else "read"
    limit = 1200 if is_write else 12000
    return ArmError(429, "SubscriptionRequestsThrottled",
                    f"Number of {kind} requests for subscription '{subscription}' exceeded the limit of '{limit}' "
                    f"for time interval '01:00:00'. Please try again after '{retry_after}' seconds.",
                    {"Retry-After": str(retry_after),
                     f"x-ms-ratelimit-remaining-subscription-{kind}s": "0"})


def resource_not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. "
                    "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


def resource_group_not_found(resource_group: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found.")


def subscription_not_found(subscription: str) -> ArmError:
    return ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")


def invalid_resource_type(resource_type: str, namespace: str, api_version: str) -> ArmError:
    return ArmError(404, "InvalidResourceType",
                    f"The resource type '{resource_type}' could not be found in the namespace '{namespace}' "
                    f"for api version '{api_version}'.")


def invalid_request_uri(path: str) -> ArmError:
    return ArmError(404, "InvalidRequestUri", f"The request URI '{path}' is not valid.")


def method_not_allowed(method: str) -> ArmError:
    return ArmError(405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'.")


def invalid_request_content(detail: str) -> ArmError:
    return ArmError(400, "InvalidRequestContent",
                    f"The request content was invalid and could not be deserialized: '{detail}'.")


def invalid_parameter(target: str, message: str) -> ArmError:
    return ArmError(400, "InvalidParameter", message, target=target)


def operation_not_allowed(message: str) -> ArmError:
    return ArmError(409, "OperationNotAllowed", message)


def operation_not_found(operation_id: str) -> ArmError:
    return ArmError(404, "NotFound", f"The operation '{operation_id}' was not found.")


def gateway_timeout() -> ArmError:
    return ArmError(504, "GatewayTimeout", "The gateway did not receive a response from the resource provider "
                    "within the specified time period.")


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")
