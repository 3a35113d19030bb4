"""Starting the Amber processes a test needs; ending them politely first, for sure in the end."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

_PR_SET_PDEATHSIG = 1


def spawn(args: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen, but the child gets SIGTERM when this process dies.

    A test run killed outright never reaches its teardown; its projectors and
    workers would otherwise outlive it, polling topics that are gone.
    """
    return subprocess.Popen(args, preexec_fn=_die_with_parent, **popen)


def _die_with_parent() -> None:
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def free_port() -> int:
    """A loopback port nothing listens on (a dead broker's, or one for a server to take)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def terminate(procs: Iterable[subprocess.Popen[bytes]], timeout_s: float = 20) -> None:
    """SIGTERM every live process, then SIGKILL whichever has not exited by the timeout."""
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    for p in alive:
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
