"""Incident response plans: which alerts, which resources, which runbook, which mode, who approves.

The file is versioned (`version`), validated as a whole at start-up, and every mistake names the file,
the entry and the problem.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.core.catalog import ANY_TYPE, Catalog, resource_group_of, resource_type_of, subscription_of
from shared.core.config_fields import no_unknown_keys, strings
from shared.core.errors import ConfigError
from shared.core.guardrails import Guardrails, ScopeRules, parse_guardrails, parse_scope_rules
from shared.core.model import ActionKind, Alert, ApprovalRule, Approver, CommentRule, Mode


@dataclass(frozen=True)
class RunbookStep:
    action: str
    parameters: dict[str, Any] = field(default_factory=dict)
    kind: ActionKind = ActionKind.READ  # from the catalog, resolved when the plans are loaded
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Runbook:
    name: str
    description: str
    steps: tuple[RunbookStep, ...]


@dataclass(frozen=True)
class Filters:
    severities: frozenset[str] = frozenset()
    alert_rules: frozenset[str] = frozenset()
    resource_types: frozenset[str] = frozenset()
    resource_groups: frozenset[str] = frozenset()
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    subscriptions: frozenset[str]
    resource_groups: frozenset[str] = frozenset()  # empty: every group of those subscriptions

    def contains(self, resource_id: str) -> bool:
        if subscription_of(resource_id) not in self.subscriptions:
            return False
        return not self.resource_groups or resource_group_of(resource_id) in self.resource_groups


@dataclass(frozen=True)
class ResponsePlan:
    name: str
    mode: Mode
    filters: Filters
    scope: Scope
    approvers: tuple[Approver, ...]
    notify: tuple[str, ...]
    runbook: Runbook
    approval: ApprovalRule = field(default_factory=ApprovalRule)
    guardrails: ScopeRules = field(default_factory=ScopeRules)  # the plan's own rules, limits and shadow

    def matches(self, alert: Alert, resource_id: str) -> bool:
        f = self.filters
        resource_type = resource_type_of(resource_id).lower()
        # A runbook acts on one resource: a subscription or resource group target (a Service Health
        # alert) never matches, whatever the filters say.
        return (
            bool(resource_type)
            and self.scope.contains(resource_id)
            and (not f.severities or alert.severity in f.severities)
            and (not f.alert_rules or (alert.rule_name or "").lower() in f.alert_rules)
            and (not f.resource_types or resource_type in f.resource_types)
            and (not f.resource_groups or resource_group_of(resource_id) in f.resource_groups)
            and all(alert.custom_properties.get(k) == v for k, v in f.tags.items())
        )


@dataclass(frozen=True)
class AgentPolicy:
    """What one agent (an Entra application, by client id) may propose: which actions, on which
    resources, in which mode, and who decides. An agent not named here can propose nothing."""

    name: str
    client_id: str
    actions: frozenset[str]
    scope: Scope
    mode: Mode
    approvers: tuple[Approver, ...]
    notify: tuple[str, ...] = ()
    guardrails: ScopeRules = field(default_factory=ScopeRules)


@dataclass(frozen=True)
class PlanBook:
    version: int
    plans: tuple[ResponsePlan, ...]
    source: str
    catalog: Catalog
    agents: tuple[AgentPolicy, ...] = ()
    guardrails: Guardrails = field(default_factory=Guardrails)  # the whole app's scope, freezes, shadow

    def match(self, alert: Alert, resource_id: str) -> ResponsePlan | None:
        """The first plan, in file order, that claims this alert on this resource."""
        return next((p for p in self.plans if p.matches(alert, resource_id)), None)


def load_plan_book(path: Path, catalog: Catalog) -> PlanBook:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), "(file)", f"cannot be read: {error.strerror}") from None
    return parse_plan_book(text, str(path), catalog)


def parse_plan_book(text: str, source: str, catalog: Catalog) -> PlanBook:
    """The plans in `text`, checked against the action catalog they name actions from."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ConfigError(source, "(file)", f"is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(source, "(file)", "must be a JSON object with 'version', 'runbooks' and 'plans'")
    version = document.get("version")
    if not isinstance(version, int) or version < 1:
        raise ConfigError(source, "version", "must be a positive whole number, raised with every change")
    runbooks = _runbooks(document.get("runbooks"), source, catalog)
    agents = _agents(document.get("agents", []), source, catalog)
    agent_names = frozenset(a.name.lower() for a in agents)
    guardrails = parse_guardrails(document.get("guardrails"), source, catalog, agent_names)
    raw_plans = document.get("plans")
    if not isinstance(raw_plans, list) or not raw_plans:
        raise ConfigError(source, "plans", "must be a non-empty list")
    plans: list[ResponsePlan] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_plans):
        plan = _plan(raw, f"plans[{i}]", runbooks, source, catalog, agent_names)
        if plan.name in names:
            raise ConfigError(source, f"plans[{i}]", f"name {plan.name!r} is used twice")
        names.add(plan.name)
        plans.append(plan)
    return PlanBook(version=version, plans=tuple(plans), source=source, catalog=catalog, agents=agents,
                    guardrails=guardrails)


def _agents(raw: Any, source: str, catalog: Catalog) -> tuple[AgentPolicy, ...]:
    if not isinstance(raw, list):
        raise ConfigError(source, "agents", "must be a list of agent policies")
    every_name = frozenset(str(item["name"]).lower() for item in raw if isinstance(item, dict) and item.get("name"))
    agents: list[AgentPolicy] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ConfigError(source, f"agents[{i}]", "must be an object with a 'name'")
        entry = f"agents[{item['name']}]"
        no_unknown_keys(item, _AGENT_KEYS, entry, source)
        if item["name"] in names:
            raise ConfigError(source, entry, "is named twice")
        names.add(item["name"])
        client_id = item.get("clientId")
        if not isinstance(client_id, str) or not _GUID.match(client_id):
            raise ConfigError(source, f"{entry}.clientId", "must be the agent application's client id (a GUID)")
        actions = strings(item.get("actions", []), f"{entry}.actions", source)
        if not actions:
            raise ConfigError(source, f"{entry}.actions", "must name at least one action")
        unknown = [a for a in actions if a not in catalog]
        if unknown:
            raise ConfigError(source, f"{entry}.actions",
                              f"unknown actions {unknown}; known: {', '.join(sorted(catalog))} (from {catalog.source})")
        try:
            mode = Mode(item.get("mode", Mode.REVIEW.value))
        except ValueError:
            raise ConfigError(source, f"{entry}.mode",
                              f"{item.get('mode')!r} is not review, autonomous or read-only") from None
        if mode is Mode.READ_ONLY and any(catalog[a].kind is ActionKind.WRITE for a in actions):
            raise ConfigError(source, entry, "is read-only but allows write actions")
        approvers = _approvers(item.get("approvers", []), f"{entry}.approvers", source)
        if not approvers:
            raise ConfigError(source, f"{entry}.approvers", "must name who is asked for consent or credentials")
        agents.append(AgentPolicy(
            name=item["name"], client_id=client_id.lower(), actions=frozenset(actions),
            scope=_scope(item.get("scope"), entry, source), mode=mode, approvers=approvers,
            notify=_addresses(item.get("notify", []), f"{entry}.notify", source),
            guardrails=parse_scope_rules(item, entry, f"agents policy {item['name']}", source, catalog,
                                         every_name)))
    return tuple(agents)


def _runbooks(raw: Any, source: str, catalog: Catalog) -> dict[str, Runbook]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(source, "runbooks", "must be an object of named runbooks")
    books: dict[str, Runbook] = {}
    for name, body in raw.items():
        entry = f"runbooks.{name}"
        if not isinstance(body, dict) or not isinstance(body.get("steps"), list) or not body["steps"]:
            raise ConfigError(source, entry, "must have a non-empty 'steps' list")
        steps: list[RunbookStep] = []
        for j, step in enumerate(body["steps"]):
            step_entry = f"{entry}.steps[{j}]"
            if not isinstance(step, dict) or not isinstance(step.get("action"), str):
                raise ConfigError(source, step_entry, "must be an object with an 'action'")
            spec = catalog.get(step["action"])
            if spec is None:
                raise ConfigError(source, step_entry, f"unknown action {step['action']!r}; known: "
                                                      f"{', '.join(sorted(catalog))} (from {catalog.source})")
            parameters = step.get("parameters", {})
            if not isinstance(parameters, dict):
                raise ConfigError(source, step_entry, "'parameters' must be an object")
            problems = spec.problems(parameters)
            if problems:
                raise ConfigError(source, f"{step_entry}.parameters", f"action {spec.name}: {'; '.join(problems)}")
            steps.append(RunbookStep(spec.name, parameters, spec.kind, spec.permissions))
        books[name] = Runbook(name, str(body.get("description", "")), tuple(steps))
    return books


def _plan(raw: Any, entry: str, runbooks: dict[str, Runbook], source: str, catalog: Catalog,
          agent_names: frozenset[str]) -> ResponsePlan:
    if not isinstance(raw, dict):
        raise ConfigError(source, entry, "must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(source, entry, "needs a 'name'")
    entry = f"plans[{name}]"
    no_unknown_keys(raw, _PLAN_KEYS, entry, source)
    try:
        mode = Mode(raw.get("mode", Mode.REVIEW.value))
    except ValueError:
        raise ConfigError(source, entry, f"mode {raw.get('mode')!r} is not review, autonomous or read-only") from None
    runbook = runbooks.get(str(raw.get("runbook")))
    if runbook is None:
        raise ConfigError(source, entry, f"runbook {raw.get('runbook')!r} is not defined under 'runbooks'")
    filters = _filters(raw.get("filters", {}), entry, source)
    scope = _scope(raw.get("scope"), entry, source)
    approvers = _approvers(raw.get("approvers", []), f"{entry}.approvers", source)
    notify = _addresses(raw.get("notify", []), f"{entry}.notify", source)
    kinds = {s.kind for s in runbook.steps}
    if mode is Mode.READ_ONLY and ActionKind.WRITE in kinds:
        raise ConfigError(source, entry, f"is read-only but runbook {runbook.name!r} has write actions")
    if mode is Mode.REVIEW and ActionKind.WRITE in kinds and not approvers:
        raise ConfigError(source, entry, "asks for consent to write actions but names no approvers")
    # Credentials can be needed in every mode, so someone must be there to be asked.
    if not approvers:
        raise ConfigError(source, entry, "names no approvers to ask for consent or credentials")
    # Actions for any type ('*': resource health, metrics, activity log) go with every type.
    action_types = {catalog[s.action].resource_type.lower() for s in runbook.steps} - {ANY_TYPE}
    if len(action_types) > 1:
        raise ConfigError(source, f"runbooks.{runbook.name}", f"mixes resource types {sorted(action_types)}")
    if action_types and filters.resource_types != action_types:
        raise ConfigError(source, f"{entry}.filters.resourceTypes",
                          f"must be {sorted(action_types)}, the type runbook {runbook.name!r} acts on")
    if not filters.resource_types:
        raise ConfigError(source, f"{entry}.filters.resourceTypes", "must name the resource type the plan acts on")
    approval = _approval(raw.get("approval", {}), f"{entry}.approval", approvers, source)
    # Rules naming agents never match an alert's run; a plan's rules may still name them harmlessly.
    guardrails = parse_scope_rules(raw, entry, f"plan {name}", source, catalog, agent_names)
    return ResponsePlan(name, mode, filters, scope, approvers, notify, runbook, approval, guardrails)


def _approval(raw: Any, entry: str, approvers: tuple[Approver, ...], source: str) -> ApprovalRule:
    """`{"quorum": 2, "comment": "to-deny", "remindAt": 0.5, "escalateTo": [...]}`: N distinct approvers for
    consent, when a reason is due, when to remind, and whom to ask too if nobody has decided by then."""
    if not isinstance(raw, dict):
        raise ConfigError(source, entry, "must be an object")
    unknown = sorted(set(raw) - {"quorum", "comment", "remindAt", "escalateTo"})
    if unknown:
        raise ConfigError(source, entry, f"has unknown settings {unknown}")
    quorum = raw.get("quorum", 1)
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= max(1, len(approvers)):
        raise ConfigError(source, f"{entry}.quorum",
                          f"must be a whole number from 1 to the {len(approvers)} approver(s) the plan names")
    try:
        comment = CommentRule(raw.get("comment", CommentRule.OPTIONAL.value))
    except ValueError:
        raise ConfigError(source, f"{entry}.comment",
                          f"must be one of {[c.value for c in CommentRule]}") from None
    remind_at = raw.get("remindAt")
    if remind_at is not None and (isinstance(remind_at, bool) or not isinstance(remind_at, int | float)
                                  or not 0 < remind_at < 1):
        raise ConfigError(source, f"{entry}.remindAt", "must be a fraction of the deadline, between 0 and 1")
    escalate_to = _approvers(raw.get("escalateTo", []), f"{entry}.escalateTo", source)
    if escalate_to and remind_at is None:
        raise ConfigError(source, f"{entry}.escalateTo", "escalation happens at the reminder: set remindAt too")
    return ApprovalRule(quorum=quorum, comment=comment,
                        remind_at=float(remind_at) if remind_at is not None else None, escalate_to=escalate_to)


def _filters(raw: Any, entry: str, source: str) -> Filters:
    if not isinstance(raw, dict):
        raise ConfigError(source, f"{entry}.filters", "must be an object")
    tags = raw.get("tags", {})
    if not isinstance(tags, dict):
        raise ConfigError(source, f"{entry}.filters.tags", "must be an object of tag name to value")
    return Filters(
        severities=frozenset(strings(raw.get("severities", []), f"{entry}.filters.severities", source)),
        alert_rules=frozenset(s.lower() for s in strings(raw.get("alertRules", []), f"{entry}.filters.alertRules",
                                                            source)),
        resource_types=frozenset(s.lower() for s in strings(raw.get("resourceTypes", []),
                                                               f"{entry}.filters.resourceTypes", source)),
        resource_groups=frozenset(s.lower() for s in strings(raw.get("resourceGroups", []),
                                                                f"{entry}.filters.resourceGroups", source)),
        tags={str(k): str(v) for k, v in tags.items()},
    )


def _scope(raw: Any, entry: str, source: str) -> Scope:
    if not isinstance(raw, dict):
        raise ConfigError(source, f"{entry}.scope",
                          "is required: the subscriptions (and resource groups) it may act in")
    subscriptions = strings(raw.get("subscriptions", []), f"{entry}.scope.subscriptions", source)
    if not subscriptions:
        raise ConfigError(source, f"{entry}.scope.subscriptions", "must name at least one subscription")
    groups = strings(raw.get("resourceGroups", []), f"{entry}.scope.resourceGroups", source)
    return Scope(frozenset(s.lower() for s in subscriptions), frozenset(g.lower() for g in groups))


_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_PLAN_KEYS = {"name", "description", "mode", "filters", "scope", "approvers", "notify", "runbook", "approval",
              "rules", "limits", "shadow"}
_AGENT_KEYS = {"name", "description", "clientId", "actions", "mode", "scope", "approvers", "notify", "rules",
               "limits", "shadow"}


def _approvers(raw: Any, entry: str, source: str) -> tuple[Approver, ...]:
    """Each approver is a sign-in name, or {"upn": ..., "objectId": ...}: with an object id, only that
    Entra object may decide, whatever name it signs in with later."""
    if not isinstance(raw, list):
        raise ConfigError(source, entry, "must be a list")
    approvers: list[Approver] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            (upn,) = _addresses([item], f"{entry}[{i}]", source)
            approvers.append(Approver(upn))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("upn"), str):
            raise ConfigError(source, f"{entry}[{i}]", 'must be a sign-in name or {"upn": ..., "objectId": ...}')
        (upn,) = _addresses([item["upn"]], f"{entry}[{i}].upn", source)
        object_id = item.get("objectId")
        if object_id is not None and (not isinstance(object_id, str) or not _GUID.match(object_id)):
            raise ConfigError(source, f"{entry}[{i}].objectId", "must be an Entra object id (a GUID)")
        approvers.append(Approver(upn, object_id.lower() if object_id else None))
    return tuple(approvers)


def _addresses(raw: Any, entry: str, source: str) -> tuple[str, ...]:
    values = strings(raw, entry, source)
    for value in values:
        if "@" not in value:
            raise ConfigError(source, entry, f"{value!r} is not a user principal name or e-mail address")
    return tuple(v.lower() for v in values)
