"""Calling a user function as the Python worker does, and the one log line per invocation.

The worker passes the trigger under the trigger's `name`, an `Out` for each output binding, and a
`context` when the function asks for one; a coroutine function runs on an event loop. The runtime
then logs `Executed 'Functions.<name>' (Succeeded|Failed, Id=..., Duration=...ms)`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import azure.functions as func
from azure.functions import _abc as functions_abc

from local_azure.host.discovery import Binding, FunctionSpec

LOG = logging.getLogger("local_azure.host")
T = TypeVar("T")

# Output binding values go here once the function has succeeded: (binding, value) -> None.
OutputSink = Callable[[Binding, Any], None]


class Out(func.Out[T], Generic[T]):
    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


class _TraceContext(functions_abc.TraceContext):
    def __init__(self, invocation_id: str) -> None:
        # W3C traceparent: one trace per invocation is what the runtime starts for a trigger without one.
        self._parent = f"00-{uuid.uuid4().hex}-{invocation_id.replace('-', '')[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(functions_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> functions_abc.RpcException:
        raise AttributeError("no retry policy: the local host never retries an invocation itself")


class InvocationContext(functions_abc.Context):
    _thread_local = threading.local

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace = _TraceContext(invocation_id)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> functions_abc.RetryContext:
        return _RetryContext()


@dataclass(frozen=True)
class Invocation:
    invocation_id: str
    return_value: Any


class Invoker:
    """Runs one function: arguments in, outputs out, one log line, the exception re-raised to the trigger."""

    def __init__(self, spec: FunctionSpec, project_dir: str, output_sink: OutputSink) -> None:
        self.spec = spec
        self._project_dir = project_dir
        self._output_sink = output_sink
        self._parameters = inspect.signature(spec.user_function).parameters

    def invoke(self, trigger_value: Any) -> Invocation:
        invocation_id = str(uuid.uuid4())
        started = time.perf_counter()
        outputs = {binding.name: (binding, Out[Any]()) for binding in self.spec.outputs if binding.name != "$return"}
        arguments: dict[str, Any] = {self.spec.trigger.name: trigger_value}
        arguments.update({name: out for name, (_, out) in outputs.items()})
        if "context" in self._parameters and "context" not in arguments:
            arguments["context"] = InvocationContext(invocation_id, self.spec.name, self._project_dir)
        try:
            result = self.spec.user_function(**arguments)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
            for binding, out in outputs.values():
                if out.get() is not None:
                    self._output_sink(binding, out.get())
            for binding in self.spec.outputs:
                if binding.name == "$return" and binding.type != "http" and result is not None:
                    self._output_sink(binding, result)
        except BaseException as error:
            self._log(invocation_id, started, f"Failed, {type(error).__name__}")
            raise
        self._log(invocation_id, started, "Succeeded")
        return Invocation(invocation_id, result)

    def _log(self, invocation_id: str, started: float, outcome: str) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        LOG.info("Executed 'Functions.%s' (%s, Id=%s, Duration=%.0fms) trigger=%s",
                 self.spec.name, outcome, invocation_id, duration_ms, self.spec.trigger_type)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
