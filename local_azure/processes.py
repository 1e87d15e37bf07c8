"""Child processes that cannot outlive the Python process that started them.

Each child gets its own process group (so `stop()` reaches anything it spawned) and, on Linux,
`PR_SET_PDEATHSIG`: the kernel sends it SIGTERM when its parent dies, even by SIGKILL, when no Python
code runs. A registry stops every live child at interpreter exit (normal exit, Ctrl-C, an exception).

One trap: the death signal fires when the *thread* that forked the child ends, not the process. A
child started from a short-lived thread would die with that thread, so children are forked from the
main thread or from one spawner thread that lives as long as the process.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import queue
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from local_azure.lifecycle import Startable

PR_SET_PDEATHSIG = 1
DEFAULT_STOP_TIMEOUT = 10.0

# Loaded before any fork: resolving a library inside the forked child could take locks held by other threads.
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class ProcessFailed(RuntimeError):
    """A child exited or never became ready; the message carries the tail of its log."""


def _die_with_parent(parent_pid: int, death_signal: signal.Signals) -> Callable[[], None]:
    def in_child() -> None:
        _LIBC.prctl(PR_SET_PDEATHSIG, death_signal)
        # The parent may have died between fork and prctl; then nobody will ever send the signal.
        if os.getppid() != parent_pid:
            os._exit(1)

    return in_child


class ManagedProcess(Startable):
    """A child in its own process group that dies with this process; output goes to `log_path`.

    `stop_signal` is what asks the child to shut down cleanly (and what it gets when this process dies):
    SIGTERM by default; Azurite, for one, saves its data only on SIGINT.
    """

    def __init__(self, argv: Sequence[str], *, name: str, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, log_path: Path | None = None,
                 stop_signal: signal.Signals = signal.SIGTERM) -> None:
        self.argv = list(argv)
        self.name = name
        self.stop_signal = stop_signal
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self._own_log = log_path is None
        self.log_path = log_path or Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    # ----- lifecycle ----------------------------------------------------------------------------
    def start(self) -> ManagedProcess:
        if self._process is not None:
            raise RuntimeError(f"{self.name} is already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._process = _spawn(self)
        _REGISTRY.add(self)
        return self

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """`stop_signal` to the whole group, then SIGKILL if it is still there after `timeout`."""
        process = self._process
        if process is None:
            return
        try:
            _terminate_group(process, self.stop_signal, timeout)
        finally:
            _REGISTRY.discard(self)
            if self._own_log:
                with contextlib.suppress(OSError):
                    self.log_path.unlink()

    def kill(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """SIGKILL to the whole group, with no warning: a process that dies, not one that stops."""
        process = self._process
        if process is None:
            return
        try:
            _terminate_group(process, signal.SIGKILL, timeout)
        finally:
            _REGISTRY.discard(self)

    # ----- state --------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-max_chars:]

    def fail(self, reason: str) -> ProcessFailed:
        """An exception that says what went wrong and shows what the child wrote."""
        tail = self.log_tail().strip()
        return ProcessFailed(f"{self.name}: {reason}" + (f"\n--- {self.name} log ---\n{tail}" if tail else ""))

    def wait_for_listening_port(self, timeout: float = 30.0) -> int:
        """The first TCP port this child listens on: how to learn the port it picked when given port 0."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise self.fail(f"exited with code {self.returncode} before listening")
            ports = listening_ports(self.pid)
            if ports:
                return min(ports)
            time.sleep(0.02)
        raise self.fail(f"did not listen within {timeout:.0f} s")

    def _popen(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(  # noqa: S603 - argv is built by this package, never by a shell
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid(), self.stop_signal),  # noqa: PLW1509 - prctl has no other way in
            )


def _terminate_group(process: subprocess.Popen[bytes], stop_signal: signal.Signals, timeout: float) -> None:
    # The group id is the child's pid (start_new_session); it outlives the leader while members remain.
    group = process.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, stop_signal)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    # Also when the leader has exited: members it left behind still hold the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


# ----- spawning from a thread that lives as long as the process ---------------------------------------

class _Spawner:
    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[ManagedProcess, queue.Queue[object]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def spawn(self, child: ManagedProcess) -> subprocess.Popen[bytes]:
        if threading.current_thread() is threading.main_thread():
            return child._popen()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="local-azure-spawner", daemon=True)
                self._thread.start()
        reply: queue.Queue[object] = queue.Queue(maxsize=1)
        self._requests.put((child, reply))
        outcome = reply.get(timeout=60)
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, subprocess.Popen)
        return outcome

    def _serve(self) -> None:
        while True:
            child, reply = self._requests.get()
            try:
                reply.put(child._popen())
            except BaseException as error:  # handed back to the caller's thread
                reply.put(error)


_SPAWNER = _Spawner()


def _spawn(child: ManagedProcess) -> subprocess.Popen[bytes]:
    return _SPAWNER.spawn(child)


# ----- registry: nothing outlives the interpreter -----------------------------------------------------

class _Registry:
    def __init__(self) -> None:
        self._live: dict[int, ManagedProcess] = {}
        self._lock = threading.Lock()

    def add(self, child: ManagedProcess) -> None:
        with self._lock:
            self._live[id(child)] = child

    def discard(self, child: ManagedProcess) -> None:
        with self._lock:
            self._live.pop(id(child), None)

    def live(self) -> list[ManagedProcess]:
        with self._lock:
            return list(self._live.values())

    def stop_all(self) -> None:
        # Newest first: a later child may depend on an earlier one (the host on Azurite), never the reverse.
        for child in reversed(self.live()):
            with contextlib.suppress(Exception):
                child.stop(timeout=5.0)


_REGISTRY = _Registry()
atexit.register(_REGISTRY.stop_all)


def live_processes() -> list[ManagedProcess]:
    """Children started here and not yet stopped."""
    return _REGISTRY.live()


def stop_all() -> None:
    _REGISTRY.stop_all()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks and atexit run (Python's default just dies).

    Only from the main thread, and only when nobody else has claimed SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        def raise_exit(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, raise_exit)


# ----- ports ------------------------------------------------------------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now. Another process may take it before you bind: prefer port 0 where you can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 30.0, process: ManagedProcess | None = None) -> None:
    """Return once `host:port` accepts a connection; fail early (with its log) if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(host, port):
            return
        if process is not None and not process.running:
            raise process.fail(f"exited with code {process.returncode} before accepting connections on {port}")
        time.sleep(0.02)
    if process is not None:
        raise process.fail(f"did not accept connections on {host}:{port} within {timeout:.0f} s")
    raise TimeoutError(f"{host}:{port} did not accept connections within {timeout:.0f} s")


_TCP_LISTEN = "0A"


def listening_ports(pid: int) -> set[int]:
    """TCP ports a process listens on, from /proc: the socket inodes among its file descriptors."""
    inodes: set[str] = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        return set()
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _TCP_LISTEN and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def process_exists(pid: int) -> bool:
    """True while `pid` is alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
