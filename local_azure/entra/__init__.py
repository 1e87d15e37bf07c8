"""Microsoft Entra ID stand-in: OIDC discovery, JWKS, the v2.0 token endpoint (client credentials,
password, authorization code, refresh token, on-behalf-of) and a sign-in page, over HTTPS, for the
real MSAL. See `server.EntraStandIn`."""

from local_azure.entra.grants import Fault
from local_azure.entra.server import EntraStandIn
from local_azure.entra.tokens import Lifetimes

SRE_GATES_CLIENT_ID = "5e1f0a4b-0000-4000-8000-0000000a5e00"
SRE_AGENT_CLIENT_ID = "a9e77000-0000-4000-8000-00000000a6e7"
ARM_SCOPE_DEFAULT = "https://management.azure.com/.default"
ARM_USER_IMPERSONATION = "https://management.azure.com/user_impersonation"
SRE_GATES_USER_IMPERSONATION = "api://sre-gates/user_impersonation"

__all__ = [
    "ARM_SCOPE_DEFAULT",
    "ARM_USER_IMPERSONATION",
    "SRE_AGENT_CLIENT_ID",
    "SRE_GATES_CLIENT_ID",
    "SRE_GATES_USER_IMPERSONATION",
    "EntraStandIn",
    "Fault",
    "Lifetimes",
]
