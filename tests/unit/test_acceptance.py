"""The acceptance rule: single writer per thread, enforced by every reader.

Example tests pin each rejection reason; the hypothesis tests build logs the way
a broker would hold them when writers race, retry and linger as zombies, and
show that the accepted history never forks and every reader agrees on it.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.acceptance import Head, History, Rejection, accepted_history, judge
from engine.chain import GENESIS_HASH
from engine.delta import set_op
from engine.eventlog_memory import InMemoryEventLog
from engine.events import Event
from tests.eventbuild import chain, step

THREAD = "thread-race"


def _alternative(prev: Event | None, *, writer: int, seq: int) -> Event:
    """What writer `writer` appends at `seq`, chained after `prev` (None: genesis)."""
    event, _ = step(prev, {}, [set_op("by", writer), set_op("seq", seq)], thread_id=THREAD,
                    node=f"writer-{writer}")
    return event


def test_a_valid_chain_is_accepted_whole() -> None:
    events = chain("t", 6)

    history = accepted_history(events)

    assert history.accepted == events
    assert history.rejected == []
    assert history.head == Head(5, events[-1].hash)


def test_the_empty_thread_head_is_before_seq_zero_at_the_genesis_hash() -> None:
    assert Head() == Head(-1, GENESIS_HASH)
    assert accepted_history([]).head == Head()


def test_each_rejection_reason() -> None:
    a0, a1, a2 = chain("t", 3)
    b1 = chain("t", 2, writer="other")[1]  # seq 1 of another history
    racer = dataclasses.replace(_alternative(a0, writer=9, seq=1), thread_id="t")
    head = Head(a1.seq, a1.hash)

    assert judge(head, a1) is Rejection.DUPLICATE
    assert judge(head, a0) is Rejection.STALE_SEQ
    assert judge(head, racer) is Rejection.STALE_SEQ
    assert judge(Head(a0.seq, a0.hash), b1) is Rejection.BAD_PREV_HASH
    assert judge(Head(a0.seq, a0.hash), a2) is Rejection.GAP
    assert judge(head, dataclasses.replace(a2, node="forged")) is Rejection.BAD_HASH
    assert judge(head, a2) is None


def test_a_forged_first_event_is_rejected_and_the_genuine_one_still_wins() -> None:
    genuine = chain("t", 2)
    forged = dataclasses.replace(genuine[0], delta='[{"field":"x","op":"set","value":1}]')

    history = accepted_history([forged, *genuine])

    assert history.accepted == genuine
    assert history.rejected == [(forged, Rejection.BAD_HASH)]


# ---------------------------------------------------------------- property tests


@dataclass(frozen=True)
class RacedLog:
    """A log as the broker holds it, and what the rule must make of it."""

    log: list[Event]  # in log order
    winners: list[Event]  # the first valid event at each seq, by construction


@st.composite
def raced_logs(draw: st.DrawFn) -> RacedLog:
    """Rounds of racing writers at seq 0..n-1, with noise appended between rounds.

    In round k every racer chains to the winner of round k-1 (they all saw the
    same head); their appends land in a shuffled order and the first valid one
    wins. Also: forged racers (valid-looking but with a bad hash) and, between
    rounds, duplicates (re-sends of any earlier record), stale appends (a zombie
    writing an old seq, chained like a legitimate retry) and orphans (a writer
    that lost round k and, unaware, appends seq k+1 after its own event).
    """
    rounds = draw(st.integers(min_value=1, max_value=8))
    log: list[Event] = []
    winners: list[Event] = []
    for seq in range(rounds):
        prev = winners[-1] if winners else None
        racers = [_alternative(prev, writer=w, seq=seq)
                  for w in range(draw(st.integers(min_value=1, max_value=3)))]
        if draw(st.booleans()):  # a racer whose contents were altered after sealing
            racers.append(dataclasses.replace(racers[0], node="forged"))
        order = draw(st.permutations(racers))
        log += order
        winners.append(next(e for e in order if e.node != "forged"))
        losers = [e for e in racers if e is not winners[-1] and e.node != "forged"]
        for kind in draw(st.lists(st.sampled_from(["dup", "stale", "orphan"]), max_size=3)):
            if kind == "dup":
                log.append(draw(st.sampled_from(log)))
            elif kind == "orphan" and losers:
                log.append(_alternative(draw(st.sampled_from(losers)), writer=200 + seq,
                                        seq=seq + 1))
            elif kind == "stale":
                old = draw(st.integers(min_value=0, max_value=seq))
                log.append(_alternative(winners[old - 1] if old else None, writer=100 + seq,
                                        seq=old))
    return RacedLog(log=log, winners=winners)


def _summary(history: History) -> tuple[list[str], list[tuple[str, str]]]:
    return ([e.hash for e in history.accepted],
            [(e.hash, str(reason)) for e, reason in history.rejected])


@settings(max_examples=300)
@given(raced_logs())
def test_the_accepted_history_never_forks(raced: RacedLog) -> None:
    history = accepted_history(raced.log)
    accepted = history.accepted

    assert [e.seq for e in accepted] == list(range(len(accepted)))
    assert accepted[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(accepted))
    assert len(accepted) + len(history.rejected) == len(raced.log)


@settings(max_examples=300)
@given(raced_logs())
def test_the_first_valid_event_at_each_seq_in_log_order_wins(raced: RacedLog) -> None:
    history = accepted_history(raced.log)

    assert history.accepted == raced.winners
    for seq, winner in enumerate(history.accepted):
        contenders = [e for e in raced.log if e.seq == seq and e.prev_hash == winner.prev_hash
                      and e.node != "forged"]
        assert contenders[0] is winner


@settings(max_examples=200)
@given(raced_logs())
def test_duplicates_never_change_the_accepted_history(raced: RacedLog) -> None:
    first_copies = list(dict.fromkeys(raced.log))  # every record once, first occurrence

    with_dups = accepted_history(raced.log)
    without = accepted_history(first_copies)
    resent_all = accepted_history([*raced.log, *raced.log])

    assert with_dups.accepted == without.accepted
    assert resent_all.accepted == with_dups.accepted
    assert len(with_dups.rejected) == len(without.rejected) + len(raced.log) - len(first_copies)


@settings(max_examples=100)
@given(raced_logs())
def test_two_readers_of_the_same_log_derive_identical_histories(raced: RacedLog) -> None:
    # Each reader decodes the bytes itself, as two processes reading the topic would.
    log = InMemoryEventLog(partitions=4)
    log.append(raced.log)

    reader_a = accepted_history(d.event for d in log.read_thread(THREAD) if d.event)
    reader_b = accepted_history(d.event for d in log.read_thread(THREAD) if d.event)

    assert _summary(reader_a) == _summary(reader_b) == _summary(accepted_history(raced.log))
