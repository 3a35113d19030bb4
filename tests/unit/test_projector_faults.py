"""Fault points: parsed from AMBER_FAULT like the engine's, and they really kill."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from engine.errors import SettingsError
from projector.faults import FaultPlan


def test_unset_or_foreign_points_never_fire() -> None:
    for raw in ("", "after_append", "after_node:send_email, before_append"):
        plan = FaultPlan.from_env({"AMBER_FAULT": raw})
        for point in ("after_poll", "before_pg_commit", "after_pg_commit"):
            plan.hit(point)  # still alive


def test_a_bad_count_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="AMBER_FAULT"):
        FaultPlan.from_env({"AMBER_FAULT": "after_pg_commit@x"})


@pytest.mark.parametrize(("raw", "passes_survived"), [
    ("after_pg_commit", 0), ("after_node:x,after_pg_commit@3", 2)])
def test_the_planned_pass_is_killed(raw: str, passes_survived: int) -> None:
    code = ("import sys; from projector.faults import FaultPlan\n"
            f"plan = FaultPlan.from_env({{'AMBER_FAULT': {raw!r}}})\n"
            "for i in range(5):\n"
            "    plan.hit('after_poll'); plan.hit('after_pg_commit')\n"
            "    print(i, flush=True)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == -signal.SIGKILL
    assert run.stdout.split() == [str(i) for i in range(passes_survived)]
