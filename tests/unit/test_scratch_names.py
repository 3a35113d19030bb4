"""Which names the sweep of tests/scratch.py may ever consider: only scratch names."""

from __future__ import annotations

import pytest

from tests import scratch


def test_scratch_names_carry_their_run() -> None:
    assert scratch.owner(scratch.topic_prefix() + ".events") == scratch.RUN
    assert scratch.owner(scratch.database_name("0badcafe")) == "0badcafe"


@pytest.mark.parametrize("kind", scratch.KINDS)
def test_bench_and_test_names_of_every_kind_carry_their_run(kind: str) -> None:
    assert scratch.owner(scratch.scratch_name(kind, run="0badcafe")) == "0badcafe"
    assert scratch.owner(scratch.scratch_name(kind, "-") + ".events") == scratch.RUN


def test_other_names_have_no_owner() -> None:
    assert scratch.owner("amber-demo.events") is None
    assert scratch.owner("amber_bench_1234abcd") is None  # the old, ownerless bench form
    assert scratch.owner("amber-test-8d33c79e3ca0.events") is None  # the old test form
    assert scratch.owner("amber_prod_r0badcafe_1234abcd") is None  # not a scratch kind
    assert scratch.owner("amber.events") is None
