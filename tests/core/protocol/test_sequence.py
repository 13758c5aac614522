"""SequenceCounter reserves ahead off the caller's thread, yet never hands out an unstored seq."""

from __future__ import annotations

import threading
import time

from core.protocol import SequenceCounter


def test_every_seq_is_below_a_durable_reservation_when_handed_out() -> None:
    stored: list[int] = []
    lock = threading.Lock()

    def store(value: int) -> None:
        time.sleep(0.0005)  # a slow disk: the read-ahead often lands late
        with lock:
            stored.append(value)

    counter = SequenceCounter(load=lambda: None, store=store, block=50, clock_floor=False)
    last = 0
    for _ in range(2000):
        value = counter.next()
        assert value > last
        last = value
        with lock:
            assert value < max(stored)  # a crash now restarts above every seq handed out
    # The stored reservation never moves down, whatever order the writers finished in.
    assert stored == sorted(stored)
    # A restart from the stored value never reuses a seq.
    restarted = SequenceCounter(load=lambda: max(stored), store=store, clock_floor=False)
    assert restarted.next() > last


def test_read_ahead_keeps_most_stores_off_the_callers_thread() -> None:
    callers: list[str] = []

    def store(value: int) -> None:
        callers.append(threading.current_thread().name)

    counter = SequenceCounter(load=lambda: None, store=store, block=1000, clock_floor=False)
    for _ in range(20_000):
        counter.next()
        time.sleep(0)  # let the reserving thread run, as an event loop would
    time.sleep(0.05)
    on_caller = [name for name in callers if name != "seq-reserve"]
    assert len(callers) >= 20
    assert len(on_caller) <= 2  # the first reservation, and at most one late read-ahead
