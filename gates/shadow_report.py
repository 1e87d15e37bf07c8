"""What shadow mode would have done over a period, per response plan or agents policy: read from the run
index's summaries alone (no run is loaded), so a report costs one index read per page of runs.

An operator reads it to decide whether a plan can leave shadow mode: a plan whose every run would have
acted autonomously with the agent's own permissions is named a candidate."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.ports import RunSummary

MAX_PERIOD = dt.timedelta(days=31)
MAX_RUNS = 5000  # shadow runs one report reads; a busier period is refused, to be asked in parts

WOULD = ("denied", "asked", "autonomous", "reads")  # what a shadow run would have done, in the report's order


class ReportRefused(ValueError):
    """A report that cannot be answered as asked; the message says what to ask instead."""


def period(since_text: str | None, until_text: str | None, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[since, until) from ISO 8601 texts: `until` defaults to now (included), `since` to a day before
    `until`; at most `MAX_PERIOD` long."""
    until = _instant(until_text, "until") if until_text else now + dt.timedelta(seconds=1)
    since = _instant(since_text, "since") if since_text else until - dt.timedelta(days=1)
    if until <= since:
        raise ReportRefused("until must be after since")
    if until - since > MAX_PERIOD:
        raise ReportRefused(f"the period is {until - since}; at most {MAX_PERIOD.days} days are reported at once: "
                            "ask for shorter periods")
    return since, until


def _instant(text: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportRefused(f"{name} must be an ISO 8601 time, e.g. 2026-11-24T00:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def would(summary: RunSummary) -> str:
    """What the shadow run would have done: denied, asked consent, acted autonomously, or run its reads."""
    if summary.effect == "deny":
        return "denied"
    if summary.effect == "ask":
        return "asked"
    return "autonomous" if summary.writes else "reads"


def scope_of(summary: RunSummary) -> str:
    """"plan restart-vm" or "agents policy agent-review": what the run's plan came from."""
    if summary.alert_rule.startswith("agent:"):
        return f"agents policy {summary.plan_name}"
    return f"plan {summary.plan_name}" if summary.plan_name else "no plan"


@dataclass
class ScopeReport:
    scope: str
    runs: int = 0
    resources: set[str] = field(default_factory=set)
    would: Counter[str] = field(default_factory=Counter)
    rules: Counter[tuple[str, str]] = field(default_factory=Counter)  # (would, decided_by) -> runs
    credentials: Counter[str] = field(default_factory=Counter)  # needed / not needed / unknown
    first: dt.datetime | None = None
    last: dt.datetime | None = None

    def add(self, summary: RunSummary) -> None:
        done = would(summary)
        self.runs += 1
        self.resources.add(summary.resource_id.lower())
        self.would[done] += 1
        self.rules[(done, summary.decided_by)] += 1
        if done != "denied":
            self.credentials[summary.credentials or "unknown"] += 1
        self.first = min(self.first or summary.created_at, summary.created_at)
        self.last = max(self.last or summary.created_at, summary.created_at)

    @property
    def suggestion(self) -> str:
        if self.runs and self.would["autonomous"] == self.runs and self.credentials["not needed"] == self.runs:
            return ("candidate to leave shadow mode: every run would have acted autonomously with the agent's "
                    "own permissions")
        if self.would["denied"] == self.runs:
            return "every run would have been denied: the plan never acts as written"
        return ""

    def as_record(self) -> dict[str, Any]:
        return {
            "scope": self.scope, "shadow_runs": self.runs, "resources": len(self.resources),
            "would": {w: self.would[w] for w in WOULD},
            "decided_by": [{"would": w, "decided_by": by, "runs": n}
                           for (w, by), n in sorted(self.rules.items(), key=lambda item: (-item[1], item[0]))],
            "credentials": {"needed": self.credentials["needed"], "not_needed": self.credentials["not needed"],
                            "unknown": self.credentials["unknown"]},
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "suggestion": self.suggestion,
        }


@dataclass(frozen=True)
class ShadowReport:
    since: dt.datetime
    until: dt.datetime
    replay: str
    scopes: tuple[ScopeReport, ...]

    @property
    def runs(self) -> int:
        return sum(s.runs for s in self.scopes)

    def as_record(self) -> dict[str, Any]:
        totals: Counter[str] = Counter()
        for scope in self.scopes:
            totals.update(scope.would)
        return {"since": self.since.isoformat(), "until": self.until.isoformat(), "replay": self.replay or None,
                "shadow_runs": self.runs, "would": {w: totals[w] for w in WOULD},
                "scopes": [s.as_record() for s in self.scopes]}


def shadow_report(summaries: Iterable[RunSummary], since: dt.datetime, until: dt.datetime,
                  replay: str = "") -> ShadowReport:
    """The report over the shadow runs started in [since, until): a real alert's shadow runs, or only the
    runs of `replay`. A run indexed twice (changed again after it ended) counts once."""
    seen: set[str] = set()
    scopes: dict[str, ScopeReport] = {}
    for summary in summaries:
        if summary.run_id in seen or summary.replay != replay or not since <= summary.created_at < until:
            continue
        seen.add(summary.run_id)
        scope = scope_of(summary)
        scopes.setdefault(scope, ScopeReport(scope)).add(summary)
    return ShadowReport(since, until, replay, tuple(sorted(scopes.values(), key=lambda s: s.scope)))
