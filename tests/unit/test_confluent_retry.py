"""Which librdkafka errors the confluent adapter waits out, and which it reports at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.stack import require_confluent

require_confluent(module=True)

from confluent_kafka import KafkaError, KafkaException  # noqa: E402

from engine.errors import EventLogError  # noqa: E402
from engine.eventlog_confluent import _retrying  # noqa: E402


def _failing_then(code: int, failures: int) -> tuple[list[int], Callable[[float], str]]:
    calls: list[int] = []

    def call(timeout_s: float) -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise KafkaException(KafkaError(code))
        return "done"

    return calls, call


@pytest.mark.parametrize("code", [KafkaError.UNKNOWN_LEADER_EPOCH,
                                  KafkaError.FENCED_LEADER_EPOCH,
                                  KafkaError.LEADER_NOT_AVAILABLE,
                                  KafkaError._TRANSPORT])
def test_a_leader_or_broker_not_ready_yet_is_retried(code: int) -> None:
    calls, call = _failing_then(code, failures=2)

    assert _retrying(call, timeout_s=5, doing="testing") == "done"
    assert len(calls) == 3


def test_a_real_failure_is_reported_at_once() -> None:
    calls, call = _failing_then(KafkaError.TOPIC_AUTHORIZATION_FAILED, failures=1)

    with pytest.raises(EventLogError, match="TOPIC_AUTHORIZATION_FAILED"):
        _retrying(call, timeout_s=5, doing="testing")
    assert len(calls) == 1
