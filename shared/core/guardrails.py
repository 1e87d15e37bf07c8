"""Guardrails operators write: rules that allow, ask or deny an action, change freezes and shadow mode,
evaluated outside the agent, before anything runs.

The order of evaluation, for each step of a plan (the same for alert-driven runs and agents' plans):

1. Every rule of a scope that matches the step is found. Scopes are the whole app (`guardrails.rules`)
   and the plan's own (a response plan's or an agents-policy entry's `rules`). A scope's verdict is the
   most restrictive of its matching rules (deny > ask > allow); the plan's scope falls back to its mode
   when no rule of it matches (a read is allowed in every mode; a write is allowed in an autonomous plan,
   asked in a review plan, denied in a read-only one).
2. The step's verdict is the most restrictive of the scopes' verdicts: a wider scope can only be
   narrowed by a narrower one, never widened, and a deny anywhere always wins. An `allow` in the whole
   app's scope therefore never lets a step run without consent: autonomy is defined only inside a plan.
3. The global ceiling (a setting) caps everything: below `autonomous`, an allowed write is asked.
4. A change freeze covering the resource turns an allowed write into an ask.
5. (In the shell) a blast-radius limit met turns an allowed run into an ask.

A fact that cannot be known (a target's tags ARM would not show, a parameter a step does not carry) makes
a deny or ask rule that tests it match, and an allow rule not match: an unknown never loosens anything.

A run is denied when any step is; it asks consent when any step asks; otherwise it runs without a
person's consent (autonomously when it writes). Every verdict names the rule, limit or freeze behind it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from shared.core.catalog import Catalog, resource_group_of, resource_type_of, subscription_of
from shared.core.config_fields import no_unknown_keys, strings
from shared.core.errors import ConfigError
from shared.core.limits import BlastRadius, narrowest, parse_blast_radius
from shared.core.model import ActionKind, Mode


class Effect(IntEnum):
    """Ordered by how much they restrict: the larger always wins."""

    ALLOW = 0
    ASK = 1
    DENY = 2

    @property
    def word(self) -> str:
        return self.name.lower()

    @staticmethod
    def parse(value: Any) -> Effect | None:
        return {"allow": Effect.ALLOW, "ask": Effect.ASK, "deny": Effect.DENY}.get(str(value).lower())


_OPERATORS = ("gt", "ge", "lt", "le", "eq", "ne", "in", "notIn")


@dataclass(frozen=True)
class Bound:
    """A test of one parameter: `{"gt": 20}`, `{"in": ["PrimaryNode"]}`; every operator given must hold."""

    tests: tuple[tuple[str, Any], ...]

    def holds(self, value: Any) -> bool | None:
        """Whether `value` passes; None when it cannot be compared (absent, or of another type)."""
        if value is None:
            return None
        for operator, expected in self.tests:
            outcome = _compare(operator, value, expected)
            if outcome is None:
                return None
            if not outcome:
                return False
        return True


def _compare(operator: str, value: Any, expected: Any) -> bool | None:
    if operator in ("in", "notIn"):
        found = value in expected
        return found if operator == "in" else not found
    if operator in ("eq", "ne"):
        return bool(value == expected) if operator == "eq" else bool(value != expected)
    numeric = (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric) or not isinstance(expected, numeric):
        return None
    return bool({"gt": value > expected, "ge": value >= expected, "lt": value < expected,
                 "le": value <= expected}[operator])


@dataclass(frozen=True)
class Facts:
    """What a decision is taken on, besides the step itself."""

    resource_id: str
    severity: str | None = None
    alert_rule: str | None = None
    agent: str | None = None  # the agents-policy entry's name, for a plan an agent brought
    tags: Mapping[str, str] | None = None  # the target's tags; None when they could not be read
    # An alert's run: its severity and rule, when absent, are unknown. An agent's plan has neither: a rule
    # on them does not apply to it (as a rule on agents does not apply to an alert's run).
    from_alert: bool = True


@dataclass(frozen=True)
class StepToDecide:
    action: str
    kind: ActionKind
    parameters: Mapping[str, Any] = field(default_factory=dict)
    risk: str = ""  # the catalog's: low, medium, high
    # The parameters the action's schema defines; a rule's test of another parameter does not apply to it.
    defines: frozenset[str] | None = None  # None: not known, every test applies

    @staticmethod
    def of(catalog: Catalog, action: str, parameters: Mapping[str, Any]) -> StepToDecide:
        spec = catalog[action]
        return StepToDecide(action, spec.kind, parameters, spec.risk,
                            frozenset(spec.parameters.get("properties", {})))


@dataclass(frozen=True)
class Rule:
    name: str
    effect: Effect
    scope: str  # "global", "plan <name>", "agents policy <name>": where the rule was written
    actions: tuple[str, ...] = ()  # names or patterns ("vm.*"); empty: every action
    kinds: frozenset[ActionKind] = frozenset()
    risks: frozenset[str] = frozenset()  # the catalog's risk of the action: low, medium, high
    parameters: Mapping[str, Bound] = field(default_factory=dict)
    subscriptions: frozenset[str] = frozenset()
    resource_groups: frozenset[str] = frozenset()
    resource_types: frozenset[str] = frozenset()
    tags: Mapping[str, str] = field(default_factory=dict)  # "*" for any value
    severities: frozenset[str] = frozenset()
    alert_rules: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    reason: str = ""

    @property
    def needs_tags(self) -> bool:
        return bool(self.tags)

    def matches(self, step: StepToDecide, facts: Facts) -> bool:
        if step.defines is not None and any(p not in step.defines for p in self.parameters):
            return False  # a test of a parameter the action does not have is about other actions
        if not facts.from_alert and (self.severities or self.alert_rules):
            return False
        known = [
            not self.actions or any(fnmatch.fnmatchcase(step.action, pattern) for pattern in self.actions),
            not self.kinds or step.kind in self.kinds,
            not self.risks or step.risk in self.risks,
            not self.subscriptions or subscription_of(facts.resource_id) in self.subscriptions,
            not self.resource_groups or resource_group_of(facts.resource_id) in self.resource_groups,
            not self.resource_types or resource_type_of(facts.resource_id).lower() in self.resource_types,
            not self.agents or (facts.agent or "").lower() in self.agents,
        ]
        if not all(known):
            return False
        unknowns = [self._tags_hold(facts.tags), self._one_of(self.severities, facts.severity),
                    self._one_of(self.alert_rules, facts.alert_rule.lower() if facts.alert_rule else None)]
        unknowns += [b.holds(step.parameters.get(p)) for p, b in self.parameters.items()]
        if any(u is False for u in unknowns):
            return False
        if any(u is None for u in unknowns):
            return self.effect is not Effect.ALLOW  # an unknown never loosens
        return True

    @staticmethod
    def _one_of(wanted: frozenset[str], value: str | None) -> bool | None:
        if not wanted:
            return True
        return None if value is None else value in wanted

    def _tags_hold(self, tags: Mapping[str, str] | None) -> bool | None:
        if not self.tags:
            return True
        if tags is None:
            return None
        lowered = {k.lower(): v for k, v in tags.items()}
        return all(k.lower() in lowered and (v == "*" or lowered[k.lower()] == v) for k, v in self.tags.items())


@dataclass(frozen=True)
class Freeze:
    """A calendar window in which nothing runs autonomously (within its resource groups, if it names any)."""

    name: str
    start: dt.datetime
    end: dt.datetime
    reason: str = ""
    resource_groups: frozenset[str] = frozenset()

    def covers(self, resource_id: str, now: dt.datetime) -> bool:
        return self.start <= now < self.end and (
            not self.resource_groups or resource_group_of(resource_id) in self.resource_groups)


@dataclass(frozen=True)
class ScopeRules:
    """One scope's guardrails: its rules, limits and whether it runs in shadow."""

    rules: tuple[Rule, ...] = ()
    limits: BlastRadius = field(default_factory=BlastRadius)
    shadow: bool = False


@dataclass(frozen=True)
class Guardrails:
    """The whole app's scope, the freezes, and shadow mode for everything."""

    rules: tuple[Rule, ...] = ()
    limits: BlastRadius = field(default_factory=BlastRadius)
    freezes: tuple[Freeze, ...] = ()
    shadow: bool = False

    def needs_tags(self, plan: ScopeRules) -> bool:
        return any(r.needs_tags for r in (*self.rules, *plan.rules))




@dataclass(frozen=True)
class StepVerdict:
    index: int
    action: str
    effect: Effect
    decided_by: str  # "rule cap-capacity (global)", "plan vm-not-responding's review mode", ...
    reason: str


@dataclass(frozen=True)
class Verdict:
    """What the guardrails decided for a plan, and why, before anything ran."""

    effect: Effect
    decided_by: str
    reason: str
    steps: tuple[StepVerdict, ...]
    shadow: bool = False
    shadow_by: str = ""
    freeze: str = ""
    limit: str = ""
    limits: BlastRadius = field(default_factory=BlastRadius)
    writes: tuple[int, ...] = ()  # the indexes of the plan's write steps

    @property
    def autonomous(self) -> bool:
        """Allowed, with at least one write: it acts with consent implicit (what limits count)."""
        return self.effect is Effect.ALLOW and bool(self.writes)

    def asked_for(self, limit: str, decided_by: str) -> Verdict:
        """The same plan asking a person, because `limit` was met (a blast-radius limit)."""
        return replace(self, effect=Effect.ASK, decided_by=decided_by, limit=limit,
                       reason=f"{limit} is met: consent is asked instead of acting autonomously")

    def as_record(self) -> dict[str, Any]:
        return {
            "effect": self.effect.word, "decided_by": self.decided_by, "reason": self.reason,
            "shadow": self.shadow, "shadow_by": self.shadow_by, "freeze": self.freeze, "limit": self.limit,
            "steps": [{"step": s.index, "action": s.action, "effect": s.effect.word, "decided_by": s.decided_by,
                       "reason": s.reason} for s in self.steps],
        }


def mode_effect(mode: Mode, kind: ActionKind) -> Effect:
    """What a plan's mode says of a step, with no rule to say otherwise (the seed's tables)."""
    if kind is ActionKind.READ:
        return Effect.ALLOW
    return {Mode.AUTONOMOUS: Effect.ALLOW, Mode.REVIEW: Effect.ASK, Mode.READ_ONLY: Effect.DENY}[mode]


def decide(
    guardrails: Guardrails,
    plan: ScopeRules,
    plan_label: str,
    mode: Mode,
    steps: Sequence[StepToDecide],
    facts: Facts,
    ceiling: Mode,
    now: dt.datetime,
    app_shadow: bool = False,
) -> Verdict:
    """The guardrails' verdict on a plan of `steps` (see the module's order of evaluation)."""
    verdicts = tuple(
        _step_verdict(i, s, guardrails, plan, plan_label, mode, facts, ceiling, now) for i, s in enumerate(steps))
    kinds = {i: s.kind for i, s in enumerate(steps)}
    worst = max((v.effect for v in verdicts), default=Effect.ALLOW)
    deciding = next((v for v in verdicts if v.effect is worst and (worst is not Effect.ALLOW or kinds[v.index]
                                                                  is ActionKind.WRITE)), None)
    if deciding is None:
        decided_by, reason = f"{plan_label}'s mode", "reads only: no consent is asked"
    else:
        decided_by, reason = deciding.decided_by, f"step {deciding.index + 1} ({deciding.action}): {deciding.reason}"
    freeze = next((f for f in guardrails.freezes if f.covers(facts.resource_id, now)), None)
    shadow_by = ("the app's shadow setting" if app_shadow else "the guardrails' shadow mode" if guardrails.shadow
                 else f"{plan_label}'s shadow mode" if plan.shadow else "")
    return Verdict(
        effect=worst, decided_by=decided_by, reason=reason, steps=verdicts, shadow=bool(shadow_by),
        shadow_by=shadow_by,
        freeze=freeze.name if freeze is not None and any(v.decided_by.startswith("freeze") for v in verdicts) else "",
        limits=narrowest(guardrails.limits, plan.limits),
        writes=tuple(i for i, kind in kinds.items() if kind is ActionKind.WRITE))


def _step_verdict(index: int, step: StepToDecide, guardrails: Guardrails, plan: ScopeRules, plan_label: str,
                  mode: Mode, facts: Facts, ceiling: Mode, now: dt.datetime) -> StepVerdict:
    def strictest(rules: Sequence[Rule]) -> Rule | None:
        matching = [r for r in rules if r.matches(step, facts)]
        return max(matching, key=lambda r: r.effect, default=None)

    candidates: list[tuple[Effect, str, str]] = []
    wide = strictest(guardrails.rules)
    if wide is not None and wide.effect is not Effect.ALLOW:  # the app's allow never widens a plan
        candidates.append((wide.effect, f"rule {wide.name} (global)", _rule_reason(wide)))
    narrow = strictest(plan.rules)
    if narrow is not None:
        candidates.append((narrow.effect, f"rule {narrow.name} ({plan_label})", _rule_reason(narrow)))
    else:
        candidates.append((mode_effect(mode, step.kind), f"{plan_label}'s {mode.value} mode",
                           _mode_reason(mode, step.kind)))
    # The first of the strictest: the app's rule before the plan's, so a global deny is named as such.
    effect, decided_by, reason = max(candidates, key=lambda c: c[0])
    if effect is Effect.ALLOW and step.kind is ActionKind.WRITE:
        freeze = next((f for f in guardrails.freezes if f.covers(facts.resource_id, now)), None)
        if ceiling is not Mode.AUTONOMOUS:
            effect, decided_by = Effect.ASK, "the global autonomy ceiling"
            reason = f"the ceiling is {ceiling.value}: consent is asked before any write"
        elif freeze is not None:
            effect, decided_by = Effect.ASK, f"freeze {freeze.name}"
            reason = (f"change freeze {freeze.name} until {freeze.end.isoformat()}"
                      + (f" ({freeze.reason})" if freeze.reason else "") + ": consent is asked")
    return StepVerdict(index, step.action, effect, decided_by, reason)


def _rule_reason(rule: Rule) -> str:
    said = {Effect.ALLOW: "allowed without consent", Effect.ASK: "consent is asked", Effect.DENY: "denied"}
    return f"{said[rule.effect]} by rule {rule.name}" + (f": {rule.reason}" if rule.reason else "")


def _mode_reason(mode: Mode, kind: ActionKind) -> str:
    if kind is ActionKind.READ:
        return "a read: no consent is asked"
    return {Mode.AUTONOMOUS: "autonomous mode inside the plan: consent is implicit",
            Mode.REVIEW: "review mode: consent is asked",
            Mode.READ_ONLY: "a read-only plan never writes"}[mode]


# ---- the plan file's guardrails ------------------------------------------------------------------------

_RULE_KEYS = {"name", "effect", "actions", "kinds", "risks", "parameters", "subscriptions", "resourceGroups",
              "resourceTypes", "tags", "severities", "alertRules", "agents", "reason"}


def parse_guardrails(raw: Any, source: str, catalog: Catalog, agent_names: frozenset[str]) -> Guardrails:
    """`{"shadow": false, "rules": [...], "limits": {...}, "freezes": [...]}` (all optional)."""
    entry = "guardrails"
    if raw is None:
        return Guardrails()
    if not isinstance(raw, dict):
        raise ConfigError(source, entry, "must be an object with 'rules', 'limits', 'freezes' and 'shadow'")
    no_unknown_keys(raw, {"rules", "limits", "freezes", "shadow"}, entry, source)
    scope = parse_scope_rules(raw, entry, "global", source, catalog, agent_names)
    return Guardrails(rules=scope.rules, limits=scope.limits, shadow=scope.shadow,
                      freezes=_freezes(raw.get("freezes", []), f"{entry}.freezes", source))


def parse_scope_rules(raw: Mapping[str, Any], entry: str, scope: str, source: str, catalog: Catalog,
                      agent_names: frozenset[str]) -> ScopeRules:
    """The `rules`, `limits` and `shadow` of one scope (the whole app, a plan, an agents-policy entry)."""
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        raise ConfigError(source, f"{entry}.rules", "must be a list of rules")
    rules: list[Rule] = []
    for i, item in enumerate(rules_raw):
        rule = _rule(item, f"{entry}.rules[{i}]", scope, source, catalog, agent_names)
        if any(r.name == rule.name for r in rules):
            raise ConfigError(source, f"{entry}.rules[{i}]", f"rule name {rule.name!r} is used twice")
        rules.append(rule)
    shadow = raw.get("shadow", False)
    if not isinstance(shadow, bool):
        raise ConfigError(source, f"{entry}.shadow", "must be true or false")
    limits = parse_blast_radius(raw.get("limits", {}), f"{entry}.limits", source)
    return ScopeRules(rules=tuple(rules), limits=limits, shadow=shadow)


def _rule(raw: Any, entry: str, scope: str, source: str, catalog: Catalog, agent_names: frozenset[str]) -> Rule:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ConfigError(source, entry, "must be an object with a 'name' and an 'effect'")
    entry = f"{entry.rsplit('[', 1)[0]}[{raw['name']}]"
    no_unknown_keys(raw, _RULE_KEYS, entry, source)
    effect = Effect.parse(raw.get("effect"))
    if effect is None:
        raise ConfigError(source, f"{entry}.effect", f"{raw.get('effect')!r} is not allow, ask or deny")
    actions = tuple(strings(raw.get("actions", []), f"{entry}.actions", source))
    for pattern in actions:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in catalog):
            raise ConfigError(source, f"{entry}.actions",
                              f"{pattern!r} names no action of the catalog ({catalog.source})")
    try:
        kinds = frozenset(ActionKind(k) for k in strings(raw.get("kinds", []), f"{entry}.kinds", source))
    except ValueError:
        raise ConfigError(source, f"{entry}.kinds", "must list 'read' and/or 'write'") from None
    parameters = _parameters(raw.get("parameters", {}), f"{entry}.parameters", actions, source, catalog)
    risks = frozenset(strings(raw.get("risks", []), f"{entry}.risks", source))
    known_risks = {catalog[name].risk for name in catalog}
    if risks - known_risks:
        raise ConfigError(source, f"{entry}.risks", f"{sorted(risks - known_risks)} are not risks the catalog uses "
                                                    f"({', '.join(sorted(known_risks))})")
    tags = raw.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise ConfigError(source, f"{entry}.tags", "must be an object of tag name to value ('*': any value)")
    agents = frozenset(a.lower() for a in strings(raw.get("agents", []), f"{entry}.agents", source))
    unknown_agents = sorted(agents - agent_names)
    if unknown_agents:
        raise ConfigError(source, f"{entry}.agents", f"{unknown_agents} are not named under 'agents'")
    reason = raw.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 300:
        raise ConfigError(source, f"{entry}.reason", "must be a short text")
    return Rule(
        name=raw["name"], effect=effect, scope=scope, actions=actions, kinds=kinds, risks=risks,
        parameters=parameters,
        subscriptions=_lowered(raw, "subscriptions", entry, source),
        resource_groups=_lowered(raw, "resourceGroups", entry, source),
        resource_types=_lowered(raw, "resourceTypes", entry, source), tags=dict(tags),
        severities=_severities(raw, entry, source),
        alert_rules=_lowered(raw, "alertRules", entry, source), agents=agents, reason=reason)


SEVERITIES = ("Sev0", "Sev1", "Sev2", "Sev3", "Sev4")


def _severities(raw: Mapping[str, Any], entry: str, source: str) -> frozenset[str]:
    given = strings(raw.get("severities", []), f"{entry}.severities", source)
    wrong = [s for s in given if s not in SEVERITIES]
    if wrong:
        raise ConfigError(source, f"{entry}.severities", f"{wrong} are not alert severities ({', '.join(SEVERITIES)})")
    return frozenset(given)


def _parameters(raw: Any, entry: str, actions: tuple[str, ...], source: str,
                catalog: Catalog) -> dict[str, Bound]:
    if not isinstance(raw, dict):
        raise ConfigError(source, entry, 'must be an object of parameter name to test, e.g. {"capacity": {"gt": 20}}')
    if raw and not actions:
        raise ConfigError(source, entry, "tests parameters, so the rule must name its 'actions'")
    named = [catalog[name] for name in catalog if any(fnmatch.fnmatchcase(name, p) for p in actions)]
    bounds: dict[str, Bound] = {}
    for name, test in raw.items():
        if not any(name in spec.parameters.get("properties", {}) for spec in named):
            raise ConfigError(source, f"{entry}.{name}", f"is not a parameter of {sorted(s.name for s in named)}")
        if not isinstance(test, dict) or not test:
            raise ConfigError(source, f"{entry}.{name}", f"must be an object of tests: {', '.join(_OPERATORS)}")
        for operator, value in test.items():
            if operator not in _OPERATORS:
                raise ConfigError(source, f"{entry}.{name}.{operator}", f"is not one of {', '.join(_OPERATORS)}")
            if operator in ("in", "notIn") and not isinstance(value, list):
                raise ConfigError(source, f"{entry}.{name}.{operator}", "must be a list of values")
            if operator in ("gt", "ge", "lt", "le") and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ConfigError(source, f"{entry}.{name}.{operator}", "must be a number")
        bounds[name] = Bound(tuple(test.items()))
    return bounds


def _freezes(raw: Any, entry: str, source: str) -> tuple[Freeze, ...]:
    if not isinstance(raw, list):
        raise ConfigError(source, entry, "must be a list of calendar windows")
    freezes: list[Freeze] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ConfigError(source, f"{entry}[{i}]", "must be an object with a 'name', a 'start' and an 'end'")
        where = f"{entry}[{item['name']}]"
        no_unknown_keys(item, {"name", "start", "end", "reason", "resourceGroups"}, where, source)
        start, end = _instant(item.get("start"), f"{where}.start", source), _instant(item.get("end"), f"{where}.end",
                                                                                       source)
        if end <= start:
            raise ConfigError(source, where, "ends before it starts")
        reason = item.get("reason", "")
        if not isinstance(reason, str):
            raise ConfigError(source, f"{where}.reason", "must be a text")
        freezes.append(Freeze(item["name"], start, end, reason, _lowered(item, "resourceGroups", where, source)))
    return tuple(freezes)


def _instant(raw: Any, entry: str, source: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(str(raw))
    except ValueError:
        raise ConfigError(source, entry, "must be a date and time, e.g. 2026-12-24T00:00:00Z") from None
    if value.tzinfo is None:
        raise ConfigError(source, entry, "must say its time zone (e.g. Z or +01:00)")
    return value.astimezone(dt.UTC)


def _lowered(raw: Mapping[str, Any], key: str, entry: str, source: str) -> frozenset[str]:
    return frozenset(s.lower() for s in strings(raw.get(key, []), f"{entry}.{key}", source))
