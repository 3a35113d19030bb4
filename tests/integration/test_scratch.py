"""The sweep of topics and databases that dead test runs left on the shared stack."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from tests import scratch
from tests.stack import Endpoints
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _run_names(run: str, kind: str = "amber_test") -> tuple[str, str]:
    return (scratch.scratch_name(kind, "-", run) + ".events",
            scratch.scratch_name(kind, "_", run))


@pytest.fixture
def live_elsewhere(stack: Endpoints) -> Iterator[str]:
    """A run that is alive on some other host: its lease is held, not by us, and in
    another database of the server (as a bench's, under AMBER_BENCH_ADMIN_URL)."""
    run = secrets.token_hex(4)
    with scratch.fresh_database(stack.database_url) as elsewhere:
        lease = scratch.Lease(elsewhere, run)
        yield run
        lease.close()


def test_only_runs_whose_lease_is_free_are_swept(stack: Endpoints, live_elsewhere: str) -> None:
    # the dead run was a bench (bench/_inline/common.py claim_run): swept alike
    dead, ours, alive = (_run_names(secrets.token_hex(4), "amber_bench"),
                         _run_names(scratch.RUN), _run_names(live_elsewhere, "lg_bench"))
    kept_topics, kept_dbs = [ours[0], alive[0]], [ours[1], alive[1]]
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    admin.create_topics([NewTopic(t, 1, 1) for t in (dead[0], *kept_topics)])
    for db in (dead[1], *kept_dbs):
        scratch.create_database(stack.database_url, db)
    try:
        swept = scratch.sweep(stack.kafka_bootstrap, stack.database_url)

        assert dead[0] in swept.topics and dead[1] in swept.databases
        assert not {*kept_topics, *kept_dbs} & {*swept.topics, *swept.databases}
        wait_until(lambda: dead[0] not in admin.list_topics(), 30, "the dead run's topic to go")
        assert dead[1] not in set(scratch.list_databases(stack.database_url))
        assert set(kept_topics) <= set(admin.list_topics())
        assert set(kept_dbs) <= set(scratch.list_databases(stack.database_url))
    finally:
        scratch.delete_topics(stack.kafka_bootstrap,
                              [t for t in (dead[0], *kept_topics) if t in admin.list_topics()])
        for db in (dead[1], *kept_dbs):
            scratch.drop_database(stack.database_url, db)
        admin.close()
