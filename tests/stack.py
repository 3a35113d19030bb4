"""Where the real Kafka and PostgreSQL for the tests come from.

Order: AMBER_KAFKA_BOOTSTRAP / AMBER_DATABASE_URL when set; else testcontainers
when a Docker engine answers; else the native stack (`compose/stack up`).
With CI=true a service that cannot be had fails the run; it is never skipped.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_confluent(*, module: bool = False) -> None:
    """Go on only with confluent-kafka installed: fail in CI (the `test` extra has it), else skip.

    `module`: called at a test module's top level, where a skip skips the module.
    """
    if importlib.util.find_spec("confluent_kafka") is not None:
        return
    if IN_CI:
        pytest.fail("confluent-kafka is not installed in CI (it is in the `test` extra)",
                    pytrace=False)
    pytest.skip("confluent-kafka not installed: pip install -e '.[fast]'",
                allow_module_level=module)


@dataclass(frozen=True, slots=True)
class Endpoints:
    kafka_bootstrap: str
    database_url: str
    source: str


class StackUnavailableError(Exception):
    pass


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


def _from_testcontainers() -> Endpoints:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    kafka = KafkaContainer("apache/kafka:4.3.1").with_kraft()
    kafka.start()
    pg = PostgresContainer("postgres:15", username="amber", password="amber", dbname="amber")
    pg.start()
    url = pg.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
    return Endpoints(kafka.get_bootstrap_server(), url, "testcontainers")


def _from_native_stack() -> Endpoints:
    run = subprocess.run([str(ROOT / "compose" / "stack"), "up"], capture_output=True,
                         text=True, timeout=600, check=False)
    if run.returncode != 0:
        raise StackUnavailableError(f"compose/stack up failed:\n{run.stderr[-3000:]}")
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", run.stdout, re.MULTILINE))
    return Endpoints(exports["AMBER_KAFKA_BOOTSTRAP"], exports["AMBER_DATABASE_URL"], "native")


def resolve() -> Endpoints:
    """Endpoints of a running stack, starting one if needed."""
    kafka, pg = os.environ.get("AMBER_KAFKA_BOOTSTRAP"), os.environ.get("AMBER_DATABASE_URL")
    if kafka and pg:
        return Endpoints(kafka, pg, "environment")
    if _docker_answers():
        return _from_testcontainers()
    return _from_native_stack()
