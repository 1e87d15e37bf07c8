"""App Service Authentication settings, read from the `properties` of ARM's `authsettingsV2` resource.

`${NAME}` placeholders are filled from the host's settings, so one file serves every environment
(the Entra stand-in's issuer locally, login.microsoftonline.com elsewhere).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_azure.host.settings import parse_timespan

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
UNAUTHENTICATED_ACTIONS = ("RedirectToLoginPage", "Return401", "Return403", "AllowAnonymous")


class AuthSettingsError(ValueError):
    """The settings file is malformed, or names a setting the host does not have."""


def _fill(value: Any, lookup: Callable[[str], str | None], where: Path) -> Any:
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            found = lookup(match[1])
            if found is None:
                raise AuthSettingsError(f"{where}: placeholder ${{{match[1]}}} names a setting the host does not have")
            return found
        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, list):
        return [_fill(item, lookup, where) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, lookup, where) for key, item in value.items()}
    return value


def _section(document: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    current: Any = document
    for key in path:
        current = current.get(key, {}) if isinstance(current, Mapping) else {}
    return current if isinstance(current, Mapping) else {}


@dataclass(frozen=True)
class AuthSettings:
    enabled: bool
    require_authentication: bool
    unauthenticated_action: str
    excluded_paths: tuple[str, ...]
    issuer: str
    client_id: str
    client_secret: str | None
    login_parameters: dict[str, str]
    allowed_audiences: tuple[str, ...]
    token_store: bool
    session_lifetime_seconds: float

    @classmethod
    def load(cls, path: Path, lookup: Callable[[str], str | None]) -> AuthSettings:
        raw = json.loads(path.read_text(encoding="utf-8"))
        document = raw.get("properties", raw)  # a whole ARM resource, or its properties
        enabled = bool(_section(document, "platform").get("enabled", False))
        if not enabled:
            return cls.disabled()
        document = _fill(document, lookup, path)
        validation = _section(document, "globalValidation")
        aad = _section(document, "identityProviders", "azureActiveDirectory")
        if not aad.get("enabled", True):
            raise AuthSettingsError(f"{path}: only the azureActiveDirectory provider is supported, and it is disabled")
        registration = _section(aad, "registration")
        issuer = str(registration.get("openIdIssuer", "")).rstrip("/")
        client_id = str(registration.get("clientId", ""))
        if not issuer or not client_id:
            raise AuthSettingsError(f"{path}: azureActiveDirectory.registration needs openIdIssuer and clientId")
        secret_setting = registration.get("clientSecretSettingName")
        client_secret = lookup(str(secret_setting)) if secret_setting else None
        if secret_setting and client_secret is None:
            raise AuthSettingsError(f"{path}: clientSecretSettingName {secret_setting!r} is not a host setting")
        action = str(validation.get("unauthenticatedClientAction", "RedirectToLoginPage"))
        if action not in UNAUTHENTICATED_ACTIONS:
            raise AuthSettingsError(
                f"{path}: unauthenticatedClientAction {action!r} is not one of {UNAUTHENTICATED_ACTIONS}")
        parameters: dict[str, str] = {}
        for entry in _section(aad, "login").get("loginParameters", []) or []:
            name, _, value = str(entry).partition("=")
            parameters[name.strip()] = value.strip()
        audiences = tuple(str(audience) for audience in _section(aad, "validation").get("allowedAudiences", []) or [])
        login = _section(document, "login")
        lifetime = _section(login, "cookieExpiration").get("timeToExpiration", "08:00:00")
        return cls(
            enabled=True,
            require_authentication=bool(validation.get("requireAuthentication", False)),
            unauthenticated_action=action,
            excluded_paths=tuple(str(excluded) for excluded in validation.get("excludedPaths", []) or []),
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            login_parameters=parameters,
            # Easy Auth always accepts the client id as an audience besides those listed.
            allowed_audiences=(*audiences, client_id) if client_id not in audiences else audiences,
            token_store=bool(_section(login, "tokenStore").get("enabled", False)),
            session_lifetime_seconds=parse_timespan(str(lifetime)),
        )

    @classmethod
    def disabled(cls) -> AuthSettings:
        return cls(False, False, "AllowAnonymous", (), "", "", None, {}, (), False, 0.0)

    def is_excluded(self, path: str) -> bool:
        # Excluded paths match exactly or as a prefix ending at a segment boundary.
        return any(path == excluded.rstrip("/") or path.startswith(excluded.rstrip("/") + "/")
                   for excluded in self.excluded_paths)

    @property
    def scope(self) -> str:
        return self.login_parameters.get("scope", "openid profile email")
