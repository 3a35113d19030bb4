"""Named fault points of the projector: crash at an exact commit boundary, for tests.

Same variable and format as engine.faults: `AMBER_FAULT=<point>[,<point>...]`
makes the process SIGKILL itself — no cleanup, no flush, no rollback, like a
power cut. A point may carry `@N` to fire on its N-th pass instead of the
first (`after_pg_commit@3` dies right after the third commit). Points of the
projector, in the order one batch passes them:

    after_poll              records read and decoded; nothing of this batch written
                            (earlier batches may still be committing on the writer thread)
    after_checkpoints_copy  checkpoints sent inside the open transaction
    before_pg_commit        every row and position sent, transaction still open
    after_pg_commit         committed; not yet noted in memory, progress or logs

Names of other components' points in the same variable are ignored here.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping

from engine.errors import SettingsError

PROJECTOR_POINTS = ("after_poll", "after_checkpoints_copy", "before_pg_commit",
                    "after_pg_commit")
_VARIABLE = "AMBER_FAULT"
log = logging.getLogger("amber.projector")


class FaultPlan:
    """On which pass of which point to die. `FaultPlan()` never fires.

    Read once at start so the hot path costs a dict lookup, not getenv.
    """

    def __init__(self, armed: Mapping[str, int] | None = None) -> None:
        self._armed = dict(armed or {})
        self._hits: dict[str, int] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FaultPlan:
        """Parse AMBER_FAULT; raises SettingsError naming it if a count is malformed."""
        raw = (os.environ if env is None else env).get(_VARIABLE, "")
        armed: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in raw.split(","))):
            point, _, count = item.partition("@")
            if point not in PROJECTOR_POINTS:
                continue
            try:
                armed[point] = int(count) if count else 1
            except ValueError:
                raise SettingsError(_VARIABLE, f"{item!r}: the count after '@' must be an "
                                               "integer") from None
        return cls(armed)

    def hit(self, point: str) -> None:
        """Pass through `point`; kills the process if this is the planned pass."""
        wanted = self._armed.get(point)
        if wanted is None:
            return
        self._hits[point] = self._hits.get(point, 0) + 1
        if self._hits[point] >= wanted:
            log.warning("fault point reached: killing the process",
                        extra={"fault": point, "hit": self._hits[point]})
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
