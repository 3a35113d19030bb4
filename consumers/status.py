"""Health and lag of the projector and the worker groups, read from Kafka and PostgreSQL.

Nothing is stored for this: the projector's positions live in its tables and
the workers' committed offsets and members in Kafka's group coordinator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, TopicPartition

from engine.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStatus:
    group: str
    kind: str  # "projector" or "workers"
    members: int | None
    lag: dict[int, int]

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


def _lag(ends: dict[int, int], positions: dict[int, int]) -> dict[int, int]:
    return {p: max(0, end - positions.get(p, 0)) for p, end in sorted(ends.items())}


def worker_groups(settings: Settings, ends: dict[int, int]) -> list[GroupStatus]:
    """Every consumer group named `<prefix>.workers.*`, with members and lag."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="amber-status")
    try:
        prefix = f"{settings.topic_prefix}.workers."
        names = sorted(g["group_id"] for g in admin.list_groups()
                       if str(g["group_id"]).startswith(prefix))
        described = admin.describe_groups(names) if names else {}
        tps = [TopicPartition(settings.events_topic, p) for p in ends]
        offsets = admin.list_group_offsets({n: tps for n in names}) if names else {}
        out = []
        for name in names:
            committed = {tp.partition: max(om.offset, 0)  # -1: nothing committed yet
                         for tp, om in offsets.get(name, {}).items()}
            members = len(described.get(name, {}).get("members", []))
            out.append(GroupStatus(group=name, kind="workers", members=members,
                                   lag=_lag(ends, committed)))
        return out
    finally:
        admin.close()


def projector_group(settings: Settings, ends: dict[int, int], group: str) -> GroupStatus:
    from projector.reader import PostgresProjectionReader

    reader = PostgresProjectionReader(settings.database_url, topic=settings.events_topic,
                                      group=group)
    try:
        return GroupStatus(group=group, kind="projector", members=None,
                           lag=_lag(ends, reader.projected_offsets()))
    finally:
        reader.close()


def as_json(ends: dict[int, int], groups: list[GroupStatus]) -> dict[str, Any]:
    return {"end_offsets": {str(p): o for p, o in ends.items()},
            "events": sum(ends.values()),
            "groups": [{"group": g.group, "kind": g.kind, "members": g.members,
                        "lag": g.total_lag,
                        "lag_by_partition": {str(p): v for p, v in g.lag.items()}}
                       for g in groups]}
