"""Named fault points at commit boundaries, for crash tests.

`AMBER_FAULT=after_node:send_email` (comma-separated for several) makes the
process SIGKILL itself at that point, exactly as a power cut would. Unset in
production; reading one environment variable is the whole cost.
"""

from __future__ import annotations

import os
import signal

_VARIABLE = "AMBER_FAULT"


def fault_point(name: str) -> None:
    """Die here, without cleanup, if AMBER_FAULT names this point."""
    armed = os.environ.get(_VARIABLE)
    if armed and name in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
