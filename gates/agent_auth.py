"""Who the calling agent is: an Entra application token (client credentials) for this API, validated
here as the alert intake validates the secure webhook: signature by the issuer's keys, audience (the
app's client id or api:// URI), issuer, expiry, and the Gates.Agent app role. A person's token (one with
delegated scopes) is never an agent's."""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from shared.services import Services

AGENT_ROLE = "Gates.Agent"


@dataclass(frozen=True)
class AgentCaller:
    client_id: str  # the agent application's client (app) id


class AgentRefused(Exception):
    """Why the caller is not an agent that may call: `forbidden` when the token is valid but not an
    agent's (403), otherwise it is missing or invalid (401)."""

    def __init__(self, reason: str, *, forbidden: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.forbidden = forbidden


def bearer(authorization: str) -> str | None:
    if not authorization.lower().startswith("bearer "):
        return None
    return authorization[7:].strip() or None


def authenticate_agent(services: Services, authorization: str) -> AgentCaller:
    """The agent behind this Authorization header, or `AgentRefused` saying why not."""
    token = bearer(authorization)
    if token is None:
        raise AgentRefused("an Entra bearer token for this API (client credentials, app role "
                           f"{AGENT_ROLE}) is required")
    policy = services.policy
    if services.signing_keys is None or not policy.api_audiences or not policy.issuer:
        raise AgentRefused("agent token validation is not configured")
    try:
        key = services.signing_keys.key_for(token)
        claims = jwt.decode(token, key, algorithms=["RS256"], audience=list(policy.api_audiences),
                            issuer=policy.issuer, options={"require": ["exp", "aud", "iss"]})
    except jwt.InvalidAudienceError:
        raise AgentRefused("the bearer token is for another audience; ask for a token for this API "
                           f"({policy.api_audiences[-1]}/.default)") from None
    except (jwt.PyJWTError, ValueError) as error:
        raise AgentRefused(f"the bearer token is not valid: {error.__class__.__name__}") from None
    if claims.get("scp"):
        raise AgentRefused("a person's token cannot propose plans; an agent calls with its own application token",
                           forbidden=True)
    if AGENT_ROLE not in (claims.get("roles") or []):
        raise AgentRefused(f"the calling application lacks the {AGENT_ROLE} app role", forbidden=True)
    client_id = claims.get("azp") or claims.get("appid")
    if not isinstance(client_id, str) or not client_id:
        raise AgentRefused("the bearer token names no client application (azp)")
    return AgentCaller(client_id.lower())
