"""The composition root's product: the ports the gates talk through, built once per process, and the
policy they decide by (plans, ceiling, deadlines, links), fixed at start-up."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.core.model import Mode
from shared.core.pause import LIFTED, KillSwitch
from shared.core.plans import PlanBook
from shared.core.requests import Timeouts
from shared.ports import (
    AlertStatusStore,
    Clock,
    CorrelationStore,
    LimitStore,
    MessageBus,
    Notifier,
    RejectedAlertStore,
    ResourceManager,
    RunStore,
    Sealer,
    SigningKeys,
    SwitchStore,
    TokenBroker,
)
from shared.run_memory import RememberedRuns
from shared.telemetry import AuditSink


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Policy:
    """What the decisions go by, read from settings and the plan file at start-up; never changes."""

    plans: PlanBook
    ceiling: Mode
    timeouts: Timeouts
    cooldown: dt.timedelta
    public_base_url: str
    form_key: bytes = field(repr=False)
    max_message_bytes: int = 256 * 1024  # the Service Bus tier's; no alert larger than its queue takes
    webhook_audience: str | None = None
    issuer: str | None = None
    # The audiences an agent's token for this API may carry: the app's client id and its api:// URI.
    api_audiences: tuple[str, ...] = ()
    shadow: bool = False  # GATES_SHADOW_MODE: every plan in shadow mode
    # The kill switch as the app setting GATES_KILL_SWITCH holds it (read at start-up); an admin's throw
    # is in the switch store, read before every ARM call.
    kill_switch: KillSwitch = LIFTED


@dataclass
class Services:
    runs: RunStore
    correlations: CorrelationStore
    rejected_alerts: RejectedAlertStore
    alert_status: AlertStatusStore
    limits: LimitStore  # blast-radius counters, shared by every instance
    bus: MessageBus
    arm: ResourceManager
    tokens: TokenBroker
    notifier: Notifier
    sealer: Sealer
    policy: Policy
    switches: SwitchStore
    clock: Clock = field(default_factory=SystemClock)
    ids: Callable[[], str] = new_id
    audit_sink: AuditSink | None = None
    signing_keys: SigningKeys | None = None  # Entra's token signing keys, for agents' bearer tokens
    # Whether this process has compared the GATES_KILL_SWITCH setting with the store (and audited a change):
    # done with its first read of the switch, so that costs no request of its own.
    switch_setting_noted: bool = False
    # The runs the plan stage created or read in this process: a repeat of one is recorded in one request.
    recent_runs: RememberedRuns = field(default_factory=RememberedRuns)


class ServicesProvider:
    """Builds the services on first use, so importing the app needs no connection; tests give it a
    factory of fakes."""

    def __init__(self, factory: Callable[[], Services]) -> None:
        self._factory = factory
        self._services: Services | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Services:
        if self._services is None:
            with self._lock:
                if self._services is None:
                    self._services = self._factory()
        return self._services
