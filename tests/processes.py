"""Ending the Amber processes a test started: politely first, for sure in the end."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterable


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
