"""CountWindow and TimeWindow, on both twins (the ``impl`` fixture).

Totals are checked against brute-force models: a list of the last ``size``
outcomes, and a list of records stamped with their slice epoch
``floor(t / width)`` that counts a record while the current epoch is less than
``buckets`` slices past it.
"""

from __future__ import annotations

import math
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.testing import FakeClock

# -- CountWindow -----------------------------------------------------------------


def list_totals(outcomes):
    return (
        len(outcomes),
        sum(1 for failure, _ in outcomes if failure),
        sum(1 for _, slow in outcomes if slow),
    )


def test_count_window_empty(impl):
    window = impl.CountWindow(5)
    assert window.size == 5
    assert window.totals() == (0, 0, 0)


@pytest.mark.parametrize(
    ("failure", "slow", "expected"),
    [
        (False, False, (1, 0, 0)),
        (True, False, (1, 1, 0)),
        (False, True, (1, 0, 1)),
        (True, True, (1, 1, 1)),
    ],
)
def test_count_window_one_record(impl, failure, slow, expected):
    window = impl.CountWindow(5)
    window.record(failure, slow)
    assert window.totals() == expected


def test_count_window_slow_defaults_to_false(impl):
    window = impl.CountWindow(5)
    window.record(True)
    window.record(False)
    assert window.totals() == (2, 1, 0)


def test_count_window_totals_are_a_tuple_of_ints(impl):
    window = impl.CountWindow(3)
    window.record(True, True)
    totals = window.totals()
    assert isinstance(totals, tuple)
    assert all(type(x) is int for x in totals)


def test_count_window_evicts_the_oldest(impl):
    window = impl.CountWindow(3)
    window.record(True, True)
    window.record(False)
    window.record(True)
    assert window.totals() == (3, 2, 1)
    window.record(False)  # evicts the first (failure, slow)
    assert window.totals() == (3, 1, 0)
    window.record(False)  # evicts a success
    assert window.totals() == (3, 1, 0)
    window.record(False, True)  # evicts the failure
    assert window.totals() == (3, 0, 1)


def test_count_window_size_one(impl):
    window = impl.CountWindow(1)
    window.record(True, True)
    assert window.totals() == (1, 1, 1)
    window.record(False)
    assert window.totals() == (1, 0, 0)


def test_count_window_reset(impl):
    window = impl.CountWindow(2)
    window.record(True, True)
    window.record(True, True)
    window.reset()
    assert window.totals() == (0, 0, 0)
    assert window.size == 2
    # After a reset nothing stale is evicted: the window fills afresh.
    window.record(False)
    assert window.totals() == (1, 0, 0)
    window.record(False)
    window.record(False)
    assert window.totals() == (2, 0, 0)


def test_count_window_many_random_records(impl):
    rng = random.Random(20240601)
    for size in (1, 2, 7, 100):
        window = impl.CountWindow(size)
        outcomes = []
        for _ in range(2000):
            outcome = (rng.random() < 0.3, rng.random() < 0.2)
            window.record(*outcome)
            outcomes.append(outcome)
            assert window.totals() == list_totals(outcomes[-size:])


COUNT_OPS = st.lists(
    st.one_of(st.tuples(st.booleans(), st.booleans()), st.just("reset")),
    max_size=200,
)


@given(size=st.integers(1, 12), ops=COUNT_OPS)
def test_count_window_matches_a_list(impl, size, ops):
    window = impl.CountWindow(size)
    outcomes = []
    for op in ops:
        if op == "reset":
            window.reset()
            outcomes = []
        else:
            window.record(*op)
            outcomes.append(op)
        assert window.totals() == list_totals(outcomes[-size:])


def test_count_window_repr_same_on_both_twins(twins):
    texts = set()
    for ns in twins:
        window = ns.CountWindow(4)
        window.record(True, True)
        window.record(False)
        texts.add(repr(window))
    assert len(texts) == 1
    (text,) = texts
    assert "CountWindow" in text


# -- TimeWindow ------------------------------------------------------------------------


class TimeModel:
    """Every record kept with its slice epoch; the window is the last ``buckets`` slices."""

    def __init__(self, duration, buckets, start):
        self.width = duration / buckets
        self.buckets = buckets
        self.epoch = math.floor(start / self.width)
        self.records = []
        self.last = start
        self.offset = 0.0  # the clock's steps back, added to every reading

    def see(self, t):
        # A step back shifts the window's time: what had passed stays passed.
        if t < self.last:
            self.offset += self.last - t
        self.last = t
        self.epoch = max(self.epoch, math.floor((t + self.offset) / self.width))

    def record(self, t, failure, slow):
        self.see(t)
        self.records.append((self.epoch, failure, slow))

    def totals(self, t):
        self.see(t)
        live = [r for r in self.records if self.epoch - r[0] < self.buckets]
        return (
            len(live),
            sum(1 for _, failure, _ in live if failure),
            sum(1 for _, _, slow in live if slow),
        )

    def reset(self):
        self.records = []


def default_buckets(duration):
    # The contract: one-second slices, at least 10 and at most 100 of them.
    return min(100, max(10, math.ceil(duration)))


def test_time_window_properties(impl):
    window = impl.TimeWindow(12.0, 4, clock=FakeClock())
    assert window.duration == 12.0
    assert window.buckets == 4
    assert window.totals() == (0, 0, 0)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(0.5, 10), (1.0, 10), (9.5, 10), (10.0, 10), (10.5, 11), (30.0, 30), (99.2, 100),
     (100.0, 100), (100.5, 100), (3600.0, 100)],
)
def test_time_window_default_buckets(impl, duration, expected):
    assert expected == default_buckets(duration)
    window = impl.TimeWindow(duration, clock=FakeClock())
    assert window.buckets == expected
    window = impl.TimeWindow(duration, None, clock=FakeClock())
    assert window.buckets == expected


def test_time_window_one_second_slices_by_default(impl):
    clock = FakeClock()
    window = impl.TimeWindow(30.0, clock=clock)
    window.record(True)
    clock.advance(0.5)
    window.record(False, True)  # same slice [0, 1)
    clock.advance(0.5)
    window.record(False)  # slice [1, 2)
    assert window.totals() == (3, 1, 1)
    assert window.totals(now=29.75) == (3, 1, 1)
    assert window.totals(now=30.0) == (1, 0, 0)  # slice [0, 1) has left the window
    assert window.totals(now=31.0) == (0, 0, 0)


def test_time_window_slices_age_out(impl):
    clock = FakeClock()
    window = impl.TimeWindow(10.0, 5, clock=clock)  # slices 2 s wide
    window.record(True)  # slice 0: [0, 2)
    clock.advance(3.0)
    window.record(False, True)  # slice 1: [2, 4)
    clock.advance(6.5)  # 9.5: slice 4, both still in
    assert window.totals() == (2, 1, 1)
    clock.advance(0.5)  # 10.0: slice 5, slice 0 is out
    assert window.totals() == (1, 0, 1)
    clock.advance(1.5)  # 11.5: still slice 5
    assert window.totals() == (1, 0, 1)
    clock.advance(0.5)  # 12.0: slice 6, slice 1 is out
    assert window.totals() == (0, 0, 0)


def test_time_window_a_jump_longer_than_the_window_empties_it(impl):
    clock = FakeClock()
    window = impl.TimeWindow(4.0, 4, clock=clock)
    for _ in range(5):
        window.record(True, True)
        clock.advance(0.5)
    clock.advance(1000.0)
    assert window.totals() == (0, 0, 0)
    window.record(False)
    assert window.totals() == (1, 0, 0)


def test_time_window_a_jump_far_into_the_future_empties_it(impl):
    clock = FakeClock()
    window = impl.TimeWindow(1.0, 10, clock=clock)
    window.record(True)
    clock.advance(1e19)  # a finite time, however far
    assert window.totals() == (0, 0, 0)


@pytest.mark.parametrize("start", [0.0, 1e9, 2e12, -2e12])
def test_time_window_of_microsecond_slices_expires_however_far_the_clock(impl, start):
    # Slice numbers are clamped at +-2**61 to fit a C int64; past the clamp
    # a window stops expiring. Slices are at least a microsecond wide, so the
    # clamp is 2.3e12 s of clock away (a 1e-15 s slice reached it in 2305 s).
    clock = FakeClock(start)
    window = impl.TimeWindow(1e-5, 10, clock=clock)  # the narrowest slices accepted
    assert window.width == pytest.approx(1e-6)
    window.record(True)
    assert window.totals() == (1, 1, 0)
    clock.advance(1.0)  # at 2e12 a float steps by 2.4e-4 s: a whole second is exact enough
    assert window.totals() == (0, 0, 0)


def test_time_window_a_step_back_of_the_clock_keeps_what_had_passed(impl):
    clock = FakeClock(100.0)
    window = impl.TimeWindow(10.0, 10, clock=clock)
    window.record(True)  # the slice [100, 101)
    clock.advance(5.0)
    window.record(False)  # 105
    clock.set(5.0)  # the clock is set back by 100 s: the window's time stays 105
    assert window.totals() == (2, 1, 0)
    clock.advance(4.5)  # 109.5
    assert window.totals() == (2, 1, 0)
    clock.advance(0.5)  # 110: [100, 101) is out, 5 s after the step back, not 105
    assert window.totals() == (1, 0, 0)
    clock.advance(5.0)  # 115: so is [105, 106)
    assert window.totals() == (0, 0, 0)


def test_time_window_a_step_back_does_not_bring_records_back(impl):
    clock = FakeClock()
    window = impl.TimeWindow(10.0, 10, clock=clock)
    window.record(True)
    assert window.totals(now=20.0) == (0, 0, 0)
    assert window.totals(now=5.0) == (0, 0, 0)  # a step back of 15 s: still 20
    window.record(False, now=5.0)  # counts at 20
    assert window.totals(now=14.5) == (1, 0, 0)  # 29.5
    assert window.totals(now=15.0) == (0, 0, 0)  # 30


def test_time_window_explicit_now_without_a_clock(impl):
    window = impl.TimeWindow(10.0, 10)
    base = float(math.ceil(time.monotonic()) + 1000)  # well past the construction reading
    window.record(True, now=base)
    window.record(False, now=base + 4.0)
    assert window.totals(now=base + 9.5) == (2, 1, 0)
    assert window.totals(now=base + 10.0) == (1, 0, 0)
    assert window.totals(now=base + 14.0) == (0, 0, 0)


def test_time_window_negative_times(impl):
    clock = FakeClock(-7.5)
    window = impl.TimeWindow(4.0, 4, clock=clock)
    window.record(True)  # slice [-8, -7)
    clock.advance(1.0)
    window.record(False)  # slice [-7, -6)
    assert window.totals() == (2, 1, 0)
    assert window.totals(now=-4.5) == (2, 1, 0)  # slice [-5, -4): 3 slices on
    assert window.totals(now=-4.0) == (1, 0, 0)
    assert window.totals(now=-3.0) == (0, 0, 0)


def test_time_window_reset(impl):
    clock = FakeClock()
    window = impl.TimeWindow(10.0, 5, clock=clock)
    window.record(True, True)
    clock.advance(2.0)
    window.record(True)
    window.reset()
    assert window.totals() == (0, 0, 0)
    window.record(False)
    assert window.totals() == (1, 0, 0)
    clock.advance(8.0)  # 10: the slice [2, 4) is still in (buckets [2, 12))
    assert window.totals() == (1, 0, 0)
    clock.advance(2.0)  # 12: out, and nothing negative from before the reset
    assert window.totals() == (0, 0, 0)
    assert window.buckets == 5


def test_time_window_repr_same_on_both_twins(twins):
    texts = set()
    for ns in twins:
        window = ns.TimeWindow(10.0, 5, clock=FakeClock())
        window.record(True, True)
        texts.add(repr(window))
    assert len(texts) == 1
    (text,) = texts
    assert "TimeWindow" in text


TIME_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0.0, 3.0)),  # times the duration
        st.tuples(st.just("record"), st.booleans(), st.booleans(), st.none()),
        st.tuples(st.just("record"), st.booleans(), st.booleans(), st.floats(0.0, 2.0)),
        st.tuples(st.just("totals"), st.none()),
        st.tuples(st.just("totals"), st.floats(0.0, 2.0)),
        st.tuples(st.just("reset")),
    ),
    max_size=80,
)


@given(
    duration=st.one_of(st.sampled_from([1.0, 2.5, 10.0, 60.0]), st.floats(0.1, 200.0)),
    buckets=st.one_of(st.none(), st.integers(1, 20)),
    start=st.floats(-1e4, 1e4),
    ops=TIME_OPS,
)
def test_time_window_matches_a_model(impl, duration, buckets, start, ops):
    clock = FakeClock(start)
    window = impl.TimeWindow(duration, buckets, clock=clock)
    n = default_buckets(duration) if buckets is None else buckets
    assert window.buckets == n
    model = TimeModel(duration, n, start)
    for op in ops:
        kind = op[0]
        if kind == "advance":
            clock.advance(op[1] * duration)
            continue
        if kind == "reset":
            window.reset()
            model.reset()
            continue
        back = op[-1]
        # None: read the clock; otherwise an explicit time, up to twice the
        # window in the past (a past reading counts as the latest one).
        now = None if back is None else clock() - back * duration
        t = clock() if now is None else now
        if kind == "record":
            window.record(op[1], op[2], now=now)
            model.record(t, op[1], op[2])
        assert window.totals(now=now) == model.totals(t)
    assert window.totals() == model.totals(clock())
