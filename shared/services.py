"""The composition root's product: every port the gates need, built once per process."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.core.model import Mode
from shared.core.plans import PlanBook
from shared.core.workflow import Timeouts
from shared.ports import (
    Clock,
    CorrelationStore,
    MessageBus,
    Notifier,
    RejectedAlertStore,
    ResourceManager,
    RunStore,
    Sealer,
    TokenBroker,
)
from shared.telemetry import AuditSink


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Services:
    runs: RunStore
    correlations: CorrelationStore
    rejected_alerts: RejectedAlertStore
    bus: MessageBus
    arm: ResourceManager
    tokens: TokenBroker
    notifier: Notifier
    sealer: Sealer
    plans: PlanBook
    ceiling: Mode
    timeouts: Timeouts
    cooldown: dt.timedelta
    public_base_url: str
    form_key: bytes
    clock: Clock = field(default_factory=SystemClock)
    ids: Callable[[], str] = new_id
    audit_sink: AuditSink | None = None
    webhook_audience: str | None = None
    jwks_uri: str | None = None
    issuer: str | None = None


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
