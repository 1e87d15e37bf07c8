"""Who may do what: the signed-in person as App Service Authentication describes them, the app roles,
and the rule that names who may decide a request."""

from __future__ import annotations

from dataclasses import dataclass

from shared.core.model import Actor, Request

APPROVER_ROLE = "Gates.Approver"
READER_ROLE = "Gates.Reader"
ADMIN_ROLE = "Gates.Admin"  # operates the guardrails: the kill switch, shadow replays; decides no request


@dataclass(frozen=True)
class Principal:
    """A signed-in person, as App Service Authentication describes them."""

    object_id: str
    name: str  # the sign-in name (UPN), which plans name approvers by
    roles: frozenset[str]
    display_name: str = ""

    @property
    def actor(self) -> Actor:
        return Actor.person(self.object_id, self.name)


def can_read(principal: Principal) -> bool:
    return bool({READER_ROLE, APPROVER_ROLE} & principal.roles)


def is_admin(principal: Principal) -> bool:
    return ADMIN_ROLE in principal.roles


def is_authorised(principal: Principal, request: Request) -> bool:
    """An approver holds the app role and is named by the plan (by object id or sign-in name)."""
    if APPROVER_ROLE not in principal.roles:
        return False
    return any(a.matches(principal.object_id, principal.name) for a in request.approvers)
