"""Starting the Amber processes a test needs; ending them politely first, for sure in the end."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Not tests.stack's ROOT: that module imports pytest, and benches import this one.
ROOT = Path(__file__).resolve().parents[1]
AMBER = [sys.executable, "-m", "consumers"]  # the `amber` command of this checkout

# setpriv (util-linux) execs the command with a parent-death signal set: no code
# runs between fork and exec in this multithreaded process, unlike a preexec_fn.
_DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []


def spawn(args: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen, but the child gets SIGTERM when the thread that started it ends.

    Tests start their processes from the main thread, so in practice: when the
    test run dies. A run killed outright never reaches its teardown; its
    projectors and workers would otherwise outlive it, polling topics that are gone.
    """
    return subprocess.Popen([*_DIE_WITH_PARENT, *args], **popen)


@contextlib.contextmanager
def amber_services(env: dict[str, str], *commands: list[str],
                   ) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`amber db migrate`, then each `amber` command (e.g. ["projector"]) running,
    output discarded, until the block ends."""
    subprocess.run([*AMBER, "db", "migrate"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    procs = [spawn([*AMBER, *command], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL) for command in commands]
    try:
        yield procs
    finally:
        terminate(procs)


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
