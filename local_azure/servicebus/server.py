"""`ServiceBusStandIn`: the broker on its own reactor thread, with start/stop and test inspection."""

from __future__ import annotations

import dataclasses
import threading

from proton.reactor import Container

from local_azure.lifecycle import Startable

from .config import QueueSource, load_queues
from .endpoint import STANDARD_MAX_MESSAGE_BYTES, TICK_SECONDS, Broker
from .entity import DEAD_LETTER_SUFFIX, Entity, State

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0
SAS_KEY_NAME = "RootManageSharedAccessKey"
SAS_KEY_VALUE = "SAS_KEY_VALUE"  # the emulator's well-known development key; any key is accepted


class ServiceBusStandIn(Startable):
    """An AMQP 1.0 Service Bus namespace on 127.0.0.1 for the real `azure-servicebus` SDK.

    `queues` is a path to an emulator-style Config.json, a parsed one, or a list of queue definitions
    (`QueueSettings` or emulator queue dicts). Messages live in memory and vanish on `stop()`.
    `max_message_bytes` is the namespace tier's limit (256 KB Standard, the default; 1 MB to 100 MB
    Premium): a larger message or batch is refused as the service refuses it.
    """

    def __init__(self, queues: QueueSource, host: str = "127.0.0.1", port: int = 0,
                 max_message_bytes: int = STANDARD_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        self.host = host
        self.max_message_bytes = max_message_bytes
        self._broker = Broker(load_queues(queues), host, port, max_message_bytes)
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> ServiceBusStandIn:
        """Returns once the endpoint listens; `port` then holds the bound port."""
        if self._thread is not None:
            raise RuntimeError("already started")
        container = Container(self._broker)
        self._thread = threading.Thread(target=self._run, args=(container,), name="servicebus-stand-in", daemon=True)
        self._thread.start()
        if not self._broker.listening.wait(START_TIMEOUT_SECONDS):
            self.stop()
            raise TimeoutError("the Service Bus stand-in did not start listening")
        if self._broker.failure is not None:
            self.stop()
            raise OSError(f"the Service Bus stand-in could not listen on {self.host}: {self._broker.failure}")
        return self

    def _run(self, container: Container) -> None:
        try:
            container.run()
        except BaseException as error:  # surfaced through start() when it happens before listening
            self._broker.failure = error
            self._broker.listening.set()
            raise

    def stop(self) -> None:
        """Stops within a tick or two; never waits longer than a few seconds."""
        thread = self._thread
        if thread is None:
            return
        self._broker.stop_requested.set()
        thread.join(STOP_TIMEOUT_SECONDS + TICK_SECONDS)
        self._thread = None

    def wait(self) -> None:
        """Block until the reactor ends (the CLI's foreground mode)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    # ---- addressing ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._broker.port

    @property
    def connection_string(self) -> str:
        """The development connection string; the SDK keeps the port because of `UseDevelopmentEmulator`."""
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0") else self.host
        return (f"Endpoint=sb://{host}:{self.port};SharedAccessKeyName={SAS_KEY_NAME};"
                f"SharedAccessKey={SAS_KEY_VALUE};UseDevelopmentEmulator=true")

    # ---- management (tests) --------------------------------------------------------------------
    def set_lock_duration(self, queue: str, seconds: float) -> float:
        """Change a queue's LockDuration, as a queue update through management does; locks taken from
        now on last `seconds`. Returns the previous value."""
        with self._broker.lock:
            entity = self._entity(queue)
            previous = entity.settings.lock_duration_seconds
            entity.settings = dataclasses.replace(entity.settings, lock_duration_seconds=seconds)
            return previous

    # ---- faults (tests) ------------------------------------------------------------------------
    def hold_sends(self, queue: str) -> None:
        """Messages sent to `queue` from now on get no outcome: each sender waits mid-send, as on a
        stalled link. Meant for a sender that is then killed; its messages never arrive."""
        with self._broker.lock:
            self._entity(queue)
            self._broker.held_sends.add(queue.lower())

    def held_count(self) -> int:
        """Messages that senders are stuck sending because of `hold_sends`."""
        with self._broker.lock:
            return len(self._broker.held_deliveries)

    def stop_holding(self) -> None:
        """Sends go through again; the messages held so far are dropped (their senders are gone)."""
        with self._broker.lock:
            self._broker.held_sends.clear()
            self._broker.held_deliveries.clear()

    # ---- inspection (tests) --------------------------------------------------------------------
    def _entity(self, path: str) -> Entity:
        entity = self._broker.entities.get(path.lower())
        if entity is None:
            raise KeyError(f"no queue {path!r}")
        return entity

    @property
    def queue_names(self) -> list[str]:
        return [e.path for e in self._broker.entities.values() if not e.is_dead_letter_queue]

    def queue_depth(self, name: str) -> int:
        """Messages in the queue in any state: available, locked, scheduled or deferred."""
        with self._broker.lock:
            return self._entity(name).depth()

    def active_count(self, name: str) -> int:
        """Messages a receiver could get now."""
        with self._broker.lock:
            return self._entity(name).count(State.AVAILABLE)

    def scheduled_count(self, name: str) -> int:
        with self._broker.lock:
            return self._entity(name).count(State.SCHEDULED)

    def dead_letter_depth(self, name: str) -> int:
        with self._broker.lock:
            return self._entity(name + DEAD_LETTER_SUFFIX).depth()
