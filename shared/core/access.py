"""Credentials asked only of people who can use them: a person's effective permissions at the resource
(what ARM's `Microsoft.Authorization/permissions` read answers with their exchanged token) against every
permission a step needs. Matching follows Azure RBAC: an action is allowed when some entry's `actions`
match it and that entry's `notActions` do not; `*` matches any run of characters, case-insensitively."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from shared.core.authority import Principal
from shared.core.catalog import ActionSpec
from shared.core.change import Change, ChangeBuilder
from shared.core.model import ActionKind, Run

PERMISSIONS_API_VERSION = "2022-04-01"

# The read a grant is checked with; not a catalog action (the agent never runs it), the gate does.
PERMISSIONS_READ = ActionSpec(
    name="authorization.permissions", kind=ActionKind.READ, permissions=("Microsoft.Authorization/permissions/read",),
    resource_type="*", method="GET", path_suffix="/providers/Microsoft.Authorization/permissions",
    api_version=PERMISSIONS_API_VERSION, description="read the signed-in person's permissions at the resource",
    impact="reads only")


def missing_permissions(entries: Iterable[Mapping[str, Any]], needed: Iterable[str]) -> list[str]:
    """The permissions in `needed` that no entry allows (in the order given)."""
    listed = list(entries)
    return [p for p in needed if not any(_allows(e, p) for e in listed)]


def entries_of(body: Mapping[str, Any] | None) -> list[Mapping[str, Any]] | None:
    """The permission entries of ARM's answer, or None when it is not one."""
    value = (body or {}).get("value")
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        return None
    return value


def grant_refused(run: Run, request_id: str, principal: Principal, missing: list[str], now: dt.datetime) -> Change:
    """The audit line of a grant refused before anything was attempted; the request stays open."""
    b = ChangeBuilder(run, now)
    b.log("credential_grant_refused", principal.actor,
          f"{principal.name} offered credentials but lacks {', '.join(missing)} at the resource; the request "
          "stays open for the other approvers", request_id=request_id, missing=missing)
    return b.build()


def _allows(entry: Mapping[str, Any], permission: str) -> bool:
    actions = [str(a) for a in entry.get("actions", []) or []]
    not_actions = [str(a) for a in entry.get("notActions", []) or []]
    return any(_matches(a, permission) for a in actions) and not any(_matches(n, permission) for n in not_actions)


def _matches(pattern: str, action: str) -> bool:
    return _compiled(pattern).fullmatch(action) is not None


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)
