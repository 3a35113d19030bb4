"""fold_batch: every record lands in exactly one place, as the acceptance rule says."""

from __future__ import annotations

import random
from collections.abc import Sequence

from engine.acceptance import Rejection, accepted_history
from engine.eventlog import Delivery, Position, decode_delivery, encode_event
from engine.eventlog_memory import InMemoryEventLog
from engine.events import Event
from engine.ledger import ThreadView, rebuild
from projector.batch import fold_batch
from projector.rows import event_row
from projector.runner import ViewCache
from tests.eventbuild import chain
from tests.factories import ThreadWriter, interleaved, many_threads, resealed, rival


def _deliveries(events: Sequence[Event], partition: int = 0, start: int = 0) -> list[Delivery]:
    return [decode_delivery(Position(partition, start + i), e.thread_id.encode(), encode_event(e),
                            partitions=None)  # made-up placements
            for i, e in enumerate(events)]


def _nothing(thread_id: str) -> ThreadView | None:
    return None


def test_accepted_rejected_and_dead_letters_partition_the_records() -> None:
    w = ThreadWriter("t")
    w.start()
    w.step()
    loser = rival(w)
    w.step()
    records = _deliveries([*w.events, loser, w.events[1]])
    garbage = decode_delivery(Position(0, len(records)), b"t", b"garbage", partitions=None)
    batch = fold_batch([*records, garbage], _nothing)
    assert batch.checkpoints == [event_row(e, Position(0, i)) for i, e in enumerate(w.events)]
    assert [(row[1], reason) for row, reason in batch.rejected] == [
        (2, Rejection.STALE_SEQ), (1, Rejection.STALE_SEQ)]
    assert [d.position for d in batch.dead_letters] == [Position(0, 5)]
    assert "not Avro" in batch.dead_letters[0].error
    assert batch.records == 6
    assert batch.positions == {0: 6}
    assert batch.views == {"t": rebuild(w.events)}


def test_known_views_continue_and_batch_views_win() -> None:
    w = ThreadWriter("t")
    w.start()
    w.step()
    w.step()
    committed = rebuild(w.events[:2])
    seen: list[str] = []

    def known(thread_id: str) -> ThreadView | None:
        seen.append(thread_id)
        return committed

    batch = fold_batch(_deliveries(w.events[2:], start=2), known)
    assert batch.views["t"] == rebuild(w.events)
    assert seen == ["t"]  # asked once; then the batch's own view is used


def test_positions_are_next_offsets_per_partition() -> None:
    a = _deliveries([ThreadWriter("a").start()], partition=3, start=7)
    b = _deliveries([ThreadWriter("b").start()], partition=5, start=0)
    assert fold_batch([*a, *b], _nothing).positions == {3: 8, 5: 1}


def test_event_with_nul_text_is_dead_lettered_not_altered() -> None:
    w = ThreadWriter("nul")
    w.start()
    bad = resealed(rival(w), node="a\x00b")
    batch = fold_batch(_deliveries([*w.events, bad]), _nothing)
    assert len(batch.checkpoints) == 1 and batch.rejected == []
    [dead] = batch.dead_letters
    assert "NUL" in dead.error and "'node'" in dead.error and dead.raw == encode_event(bad)


def test_integrity_errors_are_reported_once_per_thread() -> None:
    w = ThreadWriter("liar")
    w.start()
    lie = resealed(w.step(), state_hash="0" * 64)
    after = ThreadWriter("liar")
    after.state, after.head = w.state, type(w.head)(lie.seq, lie.hash)
    more = after.step()
    batch = fold_batch(_deliveries([w.events[0], lie, more]), _nothing)
    assert batch.integrity_errors == ["liar"]
    assert batch.views["liar"].integrity_error is not None


def test_matches_the_reference_acceptance_on_a_shuffled_noisy_log() -> None:
    rng = random.Random(7)
    threads = many_threads(20, 12)
    noise = [rng.choice(t) for t in threads for _ in range(3)]  # retried, stale appends
    log = interleaved(threads)
    for event in noise:
        log.insert(rng.randrange(len(log) + 1), event)
    batch = fold_batch(_deliveries(log), _nothing)
    for events in threads:
        tid = events[0].thread_id
        reference = accepted_history([e for e in log if e.thread_id == tid])
        mine = [r for r in batch.checkpoints if r[0] == tid]
        # Offsets aside (a retried copy may come first), the same events are accepted.
        assert [r[:-2] for r in mine] == [event_row(e, Position(0, 0))[:-2]
                                         for e in reference.accepted]
        assert batch.views[tid] == rebuild(reference.accepted)


def test_view_cache_evicts_least_recently_used() -> None:
    views = [rebuild([ThreadWriter(f"c{i}").start()]) for i in range(3)]
    cache = ViewCache(2)
    cache.put_all(v for v in views[:2] if v is not None)
    assert cache.get("c0") is not None  # c0 is now the most recent
    cache.put_all([v for v in views[2:] if v is not None])
    assert cache.get("c1") is None and cache.get("c0") is not None and cache.get("c2") is not None


def test_an_event_off_its_threads_partition_is_a_dead_letter_in_any_read_order() -> None:
    """Else the projector's answer would hang on which partition it happened to read first."""
    log = InMemoryEventLog(partitions=2)
    events = chain("t", 3)
    log.append(events[:2])
    stray = next(k for k in (f"x{i}" for i in range(100))
                 if log.partition_of(k) != log.partition_of("t"))
    log.append_raw(stray, encode_event(events[2]))  # t's seq 2, under another thread's key

    folds = [fold_batch([d for p in order for d in log.read(p)], _nothing)
             for order in ([0, 1], [1, 0])]

    for batch in folds:
        assert batch.views["t"].head.seq == 1
        assert [d.key for d in batch.dead_letters] == [stray]
        assert "belongs on partition" in batch.dead_letters[0].error
