"""Which scratch names the sweep may drop (tests/scratch.py): only dead runs' of this host."""

from __future__ import annotations

import os
import subprocess

from tests import scratch


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()  # reaped: nothing answers to this pid any more
    return proc.pid


def test_a_dead_runs_names_are_abandoned() -> None:
    dead = _dead_pid()
    assert scratch.abandoned(scratch.topic_prefix(dead) + ".events")
    assert scratch.abandoned(scratch.database_name(dead))


def test_names_of_live_runs_other_hosts_or_no_owner_are_kept() -> None:
    dead_topic = scratch.topic_prefix(_dead_pid())
    other = "0000" if scratch.HOST != "0000" else "ffff"
    assert not scratch.abandoned(scratch.topic_prefix(os.getpid()))
    assert not scratch.abandoned(dead_topic.replace(scratch.HOST, other, 1))
    assert not scratch.abandoned("amber-demo.events")
    assert not scratch.abandoned("amber-test-8d33c79e3ca0.events")  # the old, ownerless form
