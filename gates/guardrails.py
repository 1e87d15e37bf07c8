"""The guardrails' shell: the facts a verdict needs that only Azure knows (a target's tags, the agent's
permissions for a shadow run), and the blast-radius limits, claimed with conditional writes so that
several instances never act more often than a limit allows."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from gates.limits import reserve
from shared.core.access import PERMISSIONS_READ, entries_of, missing_permissions
from shared.core.arm_outcomes import OutcomeKind
from shared.core.catalog import ActionSpec, Catalog, resource_type_of
from shared.core.guardrails import Verdict
from shared.core.limits import claims_for
from shared.core.model import ActionKind
from shared.services import Services

logger = logging.getLogger("sre_gates")


def resource_tags(services: Services, catalog: Catalog, resource_id: str) -> Mapping[str, str] | None:
    """The target's tags, read with the agent's identity through the catalog's plain read of its type;
    None when they cannot be read (then a rule on tags restricts and never loosens)."""
    read = _plain_read(catalog, resource_type_of(resource_id))
    if read is None:
        return None
    outcome = services.arm.perform(read, resource_id, {}, services.tokens.agent_credential())
    if outcome.kind is not OutcomeKind.SUCCEEDED or not isinstance(outcome.body, dict):
        logger.info("tags of %s not readable (%s %s): tag rules restrict", resource_id, outcome.status, outcome.code)
        return None
    tags = outcome.body.get("tags") or {}
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else None


def _plain_read(catalog: Catalog, resource_type: str) -> ActionSpec | None:
    return next((catalog[n] for n in catalog if catalog[n].kind is ActionKind.READ and catalog[n].method == "GET"
                 and catalog[n].path_suffix == "" and not catalog[n].subscription_scope
                 and catalog[n].resource_type.lower() == resource_type.lower()), None)


def agent_missing_permissions(services: Services, resource_id: str,
                              permissions: Sequence[Sequence[str]]) -> dict[int, list[str]] | None:
    """For each step (by index), the permissions the agent's identity lacks at the resource: what a shadow
    run reports as "credentials would be asked". A read of ARM's permissions API, which changes nothing;
    None when it cannot be read."""
    outcome = services.arm.perform(PERMISSIONS_READ, resource_id, {}, services.tokens.agent_credential())
    entries = entries_of(outcome.body) if outcome.kind is OutcomeKind.SUCCEEDED else None
    if entries is None:
        logger.info("the agent's permissions at %s not readable (%s %s)", resource_id, outcome.status, outcome.code)
        return None
    return {i: missing_permissions(entries, tuple(needed)) for i, needed in enumerate(permissions)}


def within_limits(services: Services, verdict: Verdict, run_id: str, resource_id: str, alert_rule: str | None,
                  now: dt.datetime) -> Verdict:
    """`verdict`, or, when acting autonomously would exceed a blast-radius limit, the same plan asking
    consent and naming the limit. Places are taken per run (a redelivery takes none again); an asked run
    takes none. A shadow run counts in counters of its own (`shadow|...`), never the real ones, so that what
    shadow mode reports includes the limits it would have met (a shadow run is never in flight, though:
    runs-in-flight limits are not simulated)."""
    if not verdict.autonomous:
        return verdict
    claims = claims_for(verdict.limits, run_id, resource_id, alert_rule, verdict.writes)
    if verdict.shadow:
        # per source of shadow: a replay's counters are its own (and count by when its alerts fired)
        claims = [replace(c, key=f"shadow|{verdict.shadow_by}|{c.key}") for c in claims]
    met = reserve(services, claims, now)
    if met is None:
        return verdict
    return verdict.asked_for(met.limit, f"limit {met.kind}")
