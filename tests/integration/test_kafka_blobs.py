"""Facts of the Kafka blob store alone (the contract is tests/contracts/test_blobstore.py)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.blobs import BlobRef, digest_of
from engine.blobstore_kafka import KafkaBlobStore
from engine.errors import BlobError, EventLogError
from engine.eventlog_kafka import create_topic

pytestmark = pytest.mark.integration


def _store(stack: Any, topic: str) -> KafkaBlobStore:
    return KafkaBlobStore(bootstrap=stack.kafka_bootstrap, topic=topic, partitions=12,
                          timeout_s=20)


def test_a_blob_topic_with_fewer_partitions_than_the_events_is_refused(
        stack: Any, topic_prefix: str) -> None:
    topic = f"{topic_prefix}.blobs"
    create_topic({"bootstrap_servers": stack.kafka_bootstrap}, topic, 2, 20)
    store = _store(stack, topic)
    try:
        with pytest.raises(EventLogError, match="2 partitions, fewer than the events"):
            store.put(5, digest_of(b"x"), b"x")
    finally:
        store.close()


def test_reading_from_a_blob_topic_that_does_not_exist_names_the_blob(
        stack: Any, topic_prefix: str) -> None:
    """A BlobError (the step fails, verify names it), not the LogUnavailableError a fetch
    retried until its deadline would end in (a worker would then retry it forever)."""
    store = _store(stack, f"{topic_prefix}.blobs")
    ref = BlobRef(digest_of(b"x"), 1, 3, (0,))
    try:
        with pytest.raises(BlobError, match="no such topic"):
            store.get(ref)
    finally:
        store.close()
