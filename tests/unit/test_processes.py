"""Processes a test starts die with the test run, even one killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.processes import spawn
from tests.stack import ROOT
from tests.waiting import wait_until

_PARENT = """
import time
from tests.processes import spawn
child = spawn(["sleep", "60"])
print(child.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone too: it only waits for its (new) parent to reap it
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] == "Z"


def _command(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as comm:
        return comm.read().strip()


def test_a_spawned_process_dies_when_its_test_run_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    # setpriv sets the signal, then execs: until the child runs `sleep`, it may not have
    wait_until(lambda: _command(child) == "sleep", 10, f"process {child} to exec sleep")

    parent.send_signal(signal.SIGKILL)
    parent.wait(10)

    wait_until(lambda: _gone(child), 10, f"process {child} to end with its parent")


def test_spawn_is_popen() -> None:
    proc = spawn([sys.executable, "-c", "print('hello')"], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == "hello\n"
