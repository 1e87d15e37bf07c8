"""Child processes started by the local runtime never outlive it, however the Python process ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local_azure.processes import (
    ManagedProcess,
    ProcessFailed,
    free_port,
    live_processes,
    process_exists,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def spawned() -> Iterator[list[ManagedProcess]]:
    children: list[ManagedProcess] = []
    yield children
    for child in children:
        child.stop(timeout=2)


def start(children: list[ManagedProcess], argv: list[str], name: str = "child") -> ManagedProcess:
    child = ManagedProcess(argv, name=name)
    children.append(child)
    return child.start()


def run_parent(tmp_path: Path, body: str) -> tuple[subprocess.Popen[bytes], int]:
    """A separate Python process that starts a sleeping child, writes the child's pid, then runs `body`."""
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from local_azure.processes import ManagedProcess
        child = ManagedProcess({SLEEPER!r}, name="sleeper").start()
        open({str(pid_file)!r}, "w").write(str(child.pid))
    """) + textwrap.dedent(body))
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    if not wait_until(lambda: pid_file.exists() and pid_file.read_text() != ""):
        parent.kill()
        pytest.fail("the parent did not start its child")
    return parent, int(pid_file.read_text())


def test_a_child_dies_when_its_parent_is_killed_with_sigkill(tmp_path: Path) -> None:
    parent, child_pid = run_parent(tmp_path, "time.sleep(600)\n")
    assert process_exists(child_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    assert wait_until(lambda: not process_exists(child_pid)), "the child outlived its SIGKILLed parent"


def test_a_child_is_stopped_when_the_parent_exits_without_stopping_it(tmp_path: Path) -> None:
    parent, child_pid = run_parent(tmp_path, "sys.exit(0)\n")
    assert parent.wait(timeout=20) == 0
    assert not process_exists(child_pid)


def test_a_child_is_stopped_when_the_parent_is_interrupted_with_ctrl_c(tmp_path: Path) -> None:
    parent, child_pid = run_parent(tmp_path, "time.sleep(600)\n")
    parent.send_signal(signal.SIGINT)
    parent.wait(timeout=20)
    assert not process_exists(child_pid)


def test_stop_ends_the_whole_process_group(spawned: list[ManagedProcess], tmp_path: Path) -> None:
    grandchild_pid_file = tmp_path / "grandchild.pid"
    spawner = textwrap.dedent(f"""
        import subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(grandchild_pid_file)!r}, "w").write(str(grandchild.pid))
        time.sleep(600)
    """)
    child = start(spawned, [sys.executable, "-c", spawner])
    assert wait_until(lambda: grandchild_pid_file.exists() and grandchild_pid_file.read_text() != "")
    grandchild_pid = int(grandchild_pid_file.read_text())
    child.stop()
    assert not child.running
    assert wait_until(lambda: not process_exists(grandchild_pid))


def test_stop_kills_a_child_that_ignores_sigterm(spawned: list[ManagedProcess], tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stubborn = (f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"open({str(ready)!r}, 'w').close(); time.sleep(600)")
    child = start(spawned, [sys.executable, "-c", stubborn])
    assert wait_until(ready.exists)
    child.stop(timeout=0.5)
    assert child.returncode == -signal.SIGKILL


def test_a_stopped_child_leaves_the_registry(spawned: list[ManagedProcess]) -> None:
    child = start(spawned, SLEEPER)
    assert child in live_processes()
    child.stop()
    assert child not in live_processes()


def test_a_child_started_from_a_short_lived_thread_outlives_that_thread(spawned: list[ManagedProcess]) -> None:
    started: list[ManagedProcess] = []
    thread = threading.Thread(target=lambda: started.append(start(spawned, SLEEPER)))
    thread.start()
    thread.join(timeout=30)
    assert started, "the thread did not start the child"
    # The parent-death signal would have fired as the thread ended, had the thread forked the child.
    with pytest.raises(subprocess.TimeoutExpired):
        started[0]._process.wait(timeout=0.5)  # type: ignore[union-attr]
    assert started[0].running


def test_the_child_output_goes_to_its_log(spawned: list[ManagedProcess]) -> None:
    talker = "import sys; print('hello out'); print('hello err', file=sys.stderr)"
    child = start(spawned, [sys.executable, "-c", talker])
    assert wait_until(lambda: not child.running)
    assert "hello out" in child.log_tail()
    assert "hello err" in child.log_tail()


def test_waiting_for_a_port_fails_with_the_log_when_the_child_exits(spawned: list[ManagedProcess]) -> None:
    child = start(spawned, [sys.executable, "-c", "import sys; sys.exit('cannot bind: no luck')"])
    with pytest.raises(ProcessFailed, match="cannot bind: no luck"):
        wait_for_port("127.0.0.1", free_port(), timeout=15, process=child)


def test_waiting_for_a_port_times_out_when_nothing_listens() -> None:
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", free_port(), timeout=0.3)


def test_the_port_a_child_picked_is_read_back(spawned: list[ManagedProcess]) -> None:
    server = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
              "print(s.getsockname()[1], flush=True); time.sleep(600)")
    child = start(spawned, [sys.executable, "-c", server])
    port = child.wait_for_listening_port(timeout=15)
    assert child.log_tail().strip() == str(port)
    wait_for_port("127.0.0.1", port, timeout=5)


def test_a_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
