"""Which names the sweep of tests/scratch.py may ever consider: only scratch names."""

from __future__ import annotations

from tests import scratch


def test_scratch_names_carry_their_run() -> None:
    assert scratch.owner(scratch.topic_prefix() + ".events") == scratch.RUN
    assert scratch.owner(scratch.database_name("0badcafe")) == "0badcafe"


def test_other_names_have_no_owner() -> None:
    assert scratch.owner("amber-demo.events") is None
    assert scratch.owner("amber_bench_1234abcd") is None
    assert scratch.owner("amber-test-8d33c79e3ca0.events") is None  # the old, ownerless form
