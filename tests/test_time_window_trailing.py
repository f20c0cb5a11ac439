"""TimeWindow.add, .trailing and .width, on both twins.

``add(calls, failures=0, slow=0, now=None)`` counts many outcomes at once in
the current slice; ``trailing(seconds, now=None)`` sums the last
``ceil(seconds / width)`` slices, the current one included, at most the
whole window.
"""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.testing import FakeClock


def test_width(impl):
    assert impl.TimeWindow(10.0, 5, clock=FakeClock()).width == 2.0
    assert impl.TimeWindow(30.0, clock=FakeClock()).width == 1.0  # default: 30 slices
    assert impl.TimeWindow(1.0, 3, clock=FakeClock()).width == 1.0 / 3
    assert impl.TimeWindow(3600.0, clock=FakeClock()).width == 36.0  # 100 slices at most
    assert impl.TimeWindow(0.5, clock=FakeClock()).width == 0.05  # 10 slices at least


# -- add -----------------------------------------------------------------------------------


def test_add(impl):
    window = impl.TimeWindow(10.0, 5, clock=FakeClock())
    window.add(5, 2, 1)
    assert window.totals() == (5, 2, 1)
    window.add(3)
    assert window.totals() == (8, 2, 1)
    window.add(4, failures=4)
    window.add(2, slow=2)
    window.add(calls=1, failures=1, slow=1, now=0.5)
    assert window.totals() == (15, 7, 4)
    window.add(0)  # nothing, and no error
    window.add(0, 0, 0)
    assert window.totals() == (15, 7, 4)


def test_add_is_n_records(impl):
    clock = FakeClock()
    added = impl.TimeWindow(10.0, 5, clock=clock)
    recorded = impl.TimeWindow(10.0, 5, clock=clock)
    for step, (calls, failures, slow) in enumerate([(3, 1, 2), (0, 0, 0), (7, 7, 0), (2, 1, 1)]):
        added.add(calls, failures, slow)
        for i in range(calls):
            recorded.record(i < failures, i < slow)
        clock.advance(1.5 * step)
        assert added.totals() == recorded.totals()
        for seconds in (0.5, 2.0, 4.0, 10.0):
            assert added.trailing(seconds) == recorded.trailing(seconds)


def test_add_ages_out_like_records(impl):
    clock = FakeClock()
    window = impl.TimeWindow(10.0, 5, clock=clock)  # 2 s slices
    window.add(10, 3, 2)  # slice [0, 2)
    clock.advance(2.0)
    window.add(4, 1)  # slice [2, 4)
    clock.advance(7.9)  # 9.9: both in
    assert window.totals() == (14, 4, 2)
    clock.advance(0.1)  # 10.0: the first slice is out
    assert window.totals() == (4, 1, 0)
    assert window.trailing(100.0) == (4, 1, 0)
    clock.advance(2.0)
    assert window.totals() == (0, 0, 0)
    assert window.trailing(10.0) == (0, 0, 0)


def test_add_after_a_step_back_counts_at_the_window_time(impl):
    clock = FakeClock(100.0)
    window = impl.TimeWindow(10.0, 10, clock=clock)
    window.add(3, 1, now=50.0)  # a step back of 50 s: the window's time stays 100
    window.add(2, 2, 2, now=-1e9)  # and another
    assert window.totals(now=-1e9) == (5, 3, 2)
    assert window.trailing(1.0, now=-1e9) == (5, 3, 2)  # the current slice alone
    assert window.totals(now=-1e9 + 9.5) == (5, 3, 2)
    assert window.totals(now=-1e9 + 10.0) == (0, 0, 0)  # 10 s later: out


def test_add_large_counts(impl):
    window = impl.TimeWindow(10.0, 5, clock=FakeClock())
    window.add(10**15, 10**12, 10**9)
    window.add(10**15)
    assert window.totals() == (2 * 10**15, 10**12, 10**9)
    assert window.trailing(1.0) == (2 * 10**15, 10**12, 10**9)


# -- trailing ------------------------------------------------------------------------------


def expected_stair(slices, current=9):
    """Slice k (from 0) holds k + 1 calls, k failures and 1 slow call; the last ``slices``."""
    ks = range(max(0, current - slices + 1), current + 1)
    return (sum(k + 1 for k in ks), sum(ks), len(ks))


@pytest.mark.parametrize(
    ("seconds", "slices"),
    [
        (1e-9, 1),
        (0.5, 1),
        (2.0, 1),
        (2.0000001, 2),
        (3.0, 2),
        (4.0, 2),
        (4.5, 3),
        (10.0, 5),
        (17.9, 9),
        (18.0, 9),
        (18.1, 10),
        (19.99, 10),
        (20.0, 10),
        (21.0, 10),
        (1e9, 10),
        (sys.float_info.max, 10),
        (3, 2),  # an int
    ],
)
def test_trailing_is_the_last_ceil_seconds_over_width_slices(impl, seconds, slices):
    clock = FakeClock()
    window = impl.TimeWindow(20.0, 10, clock=clock)
    for k in range(10):
        window.add(k + 1, k, 1)
        if k < 9:
            clock.advance(2.0)
    # now 18.0: slice 9 is the current one, slices 0 .. 9 are all in the window
    assert clock() == 18.0
    assert window.totals() == (55, 45, 10)
    assert math.ceil(seconds / window.width) == slices or slices == 10
    assert window.trailing(seconds) == expected_stair(slices)
    assert window.trailing(seconds, now=18.0) == expected_stair(slices)
    assert window.trailing(seconds=seconds) == expected_stair(slices)


def test_trailing_position_within_the_current_slice_does_not_matter(impl):
    # whole slices: at 18.0 and at 19.99 the same slices are summed
    clock = FakeClock()
    window = impl.TimeWindow(20.0, 10, clock=clock)
    for k in range(10):
        window.add(k + 1, k, 1)
        if k < 9:
            clock.advance(2.0)
    for now in (18.0, 19.0, 19.99):
        assert window.trailing(4.0, now=now) == expected_stair(2)
    # 20.0: slice 10 starts (empty), slice 0 leaves
    assert window.trailing(4.0, now=20.0) == (10, 9, 1)
    assert window.trailing(100.0) == (54, 45, 9)
    assert window.totals() == (54, 45, 9)


def test_trailing_moves_with_time(impl):
    clock = FakeClock()
    window = impl.TimeWindow(60.0, 6, clock=clock)  # 10 s slices
    window.add(6, 6)  # slice [0, 10)
    assert window.trailing(10.0) == (6, 6, 0)
    clock.advance(10.0)
    assert window.trailing(10.0) == (0, 0, 0)  # a new, empty slice
    assert window.trailing(10.1) == (6, 6, 0)
    assert window.trailing(20.0) == (6, 6, 0)
    clock.advance(40.0)  # 50: slice 5, slice 0 is the oldest still in
    assert window.trailing(50.0) == (0, 0, 0)
    assert window.trailing(60.0) == (6, 6, 0)
    assert window.trailing(59.0) == (6, 6, 0)
    clock.advance(10.0)  # 60: out of the window, whatever is asked
    assert window.trailing(60.0) == (0, 0, 0)
    assert window.trailing(1e6) == (0, 0, 0)
    assert window.totals() == (0, 0, 0)


def test_trailing_after_a_step_back(impl):
    clock = FakeClock(1000.0)
    window = impl.TimeWindow(10.0, 10, clock=clock)
    window.add(1)
    clock.advance(3.0)
    window.add(2, 1)
    assert window.trailing(1.0, now=0.0) == (2, 1, 0)  # a step back: still 1003
    assert window.trailing(4.0, now=-5.0) == (3, 1, 0)  # another
    assert window.trailing(4.0, now=2.0) == (0, 0, 0)  # 7 s later, 1010: [1007, 1011)
    assert window.trailing(8.0, now=2.0) == (2, 1, 0)  # [1003, 1011); 1000 is out
    assert window.totals(now=2.0) == (2, 1, 0)


def test_trailing_after_a_long_jump(impl):
    clock = FakeClock()
    window = impl.TimeWindow(5.0, 5, clock=clock)
    window.add(100, 50, 25)
    clock.advance(1e12)
    assert window.trailing(5.0) == (0, 0, 0)
    assert window.trailing(1.0) == (0, 0, 0)
    window.add(1)
    assert window.trailing(1.0) == (1, 0, 0)


def test_trailing_with_negative_times(impl):
    clock = FakeClock(-10.5)
    window = impl.TimeWindow(4.0, 4, clock=clock)
    window.add(1, 1)  # slice [-11, -10)
    clock.advance(1.0)
    window.add(2)  # slice [-10, -9)
    assert window.trailing(1.0) == (2, 0, 0)
    assert window.trailing(2.0) == (3, 1, 0)
    assert window.trailing(1.5, now=-7.5) == (0, 0, 0)  # slices [-9, -7)
    assert window.trailing(3.0) == (2, 0, 0)  # slices [-10, -7)


def test_trailing_after_reset(impl):
    clock = FakeClock()
    window = impl.TimeWindow(10.0, 5, clock=clock)
    window.add(5, 5, 5)
    clock.advance(2.0)
    window.add(1)
    window.reset()
    assert window.trailing(10.0) == (0, 0, 0)
    assert window.trailing(2.0) == (0, 0, 0)


class Model:
    """Every add kept with its slice; trailing is a filter over the slices."""

    def __init__(self, duration, buckets, start):
        self.width = duration / buckets
        self.buckets = buckets
        self.epoch = math.floor(start / self.width)
        self.last = start
        self.offset = 0.0  # the clock's steps back, added to every reading
        self.adds = []

    def see(self, t):
        # A step back shifts the window's time: what had passed stays passed.
        if t < self.last:
            self.offset += self.last - t
        self.last = t
        self.epoch = max(self.epoch, math.floor((t + self.offset) / self.width))

    def add(self, t, calls, failures, slow):
        self.see(t)
        self.adds.append((self.epoch, calls, failures, slow))

    def trailing(self, t, seconds):
        self.see(t)
        slices = min(self.buckets, math.ceil(seconds / self.width))
        live = [a for a in self.adds if self.epoch - a[0] < slices]
        return tuple(sum(a[i] for a in live) for i in (1, 2, 3))


@st.composite
def adds(draw):
    calls = draw(st.integers(0, 20))
    return ("add", calls, draw(st.integers(0, calls)), draw(st.integers(0, calls)))


OPS = st.lists(
    st.one_of(
        adds(),
        st.tuples(st.just("advance"), st.floats(0.0, 1.5)),  # times the duration
        st.tuples(st.just("back"), st.floats(0.0, 2.0)),  # a now in the past
        st.tuples(st.just("trailing"), st.floats(0.001, 1.2)),  # times the duration
    ),
    max_size=60,
)


@given(
    duration=st.sampled_from([1.0, 10.0, 60.0, 3600.0]) | st.floats(0.1, 500.0),
    buckets=st.integers(1, 30),
    start=st.floats(-1e4, 1e4),
    ops=OPS,
)
def test_add_and_trailing_match_a_model(impl, duration, buckets, start, ops):
    clock = FakeClock(start)
    window = impl.TimeWindow(duration, buckets, clock=clock)
    model = Model(duration, buckets, start)
    now = None
    for op in ops:
        if op[0] == "advance":
            clock.advance(op[1] * duration)
            now = None
        elif op[0] == "back":
            now = clock() - op[1] * duration
        elif op[0] == "add":
            window.add(*op[1:], now=now)
            model.add(clock() if now is None else now, *op[1:])
        else:
            seconds = op[1] * duration
            t = clock() if now is None else now
            assert window.trailing(seconds, now=now) == model.trailing(t, seconds)
        t = clock() if now is None else now
        assert window.totals(now=now) == model.trailing(t, duration)
        assert window.trailing(duration, now=now) == model.trailing(t, duration)


# -- bad input -----------------------------------------------------------------------------


BAD_ADDS = [
    ((3, 4), {}, ValueError, "failures must be <= calls (3), got 4"),
    ((3, 0, 4), {}, ValueError, "slow must be <= calls (3), got 4"),
    ((0, 1), {}, ValueError, "failures must be <= calls (0), got 1"),
    ((-1,), {}, ValueError, "calls must be an integer >= 0, got -1"),
    ((2, -1), {}, ValueError, "failures must be an integer >= 0, got -1"),
    ((2, 0, -1), {}, ValueError, "slow must be an integer >= 0, got -1"),
    ((True,), {}, TypeError, "calls must be an integer, got True"),
    ((2, True), {}, TypeError, "failures must be an integer, got True"),
    ((2, 0, False), {}, TypeError, "slow must be an integer, got False"),
    ((2.0,), {}, TypeError, "calls must be an integer, got 2.0"),
    (("2",), {}, TypeError, "calls must be an integer, got '2'"),
    ((None,), {}, TypeError, "calls must be an integer, got None"),
    ((sys.maxsize + 1,), {}, ValueError, "calls must be an integer <="),
    ((1,), {"now": math.nan}, ValueError, "now must not be NaN"),
    ((1,), {"now": math.inf}, ValueError, "now must be finite"),
    ((1,), {"now": "soon"}, TypeError, "now must be a real number"),
]
BAD_SECONDS = [
    (0, ValueError, "seconds must be a finite number > 0, got 0"),
    (0.0, ValueError, "seconds must be a finite number > 0, got 0.0"),
    (-1.0, ValueError, "seconds must be a finite number > 0, got -1.0"),
    (-0.0, ValueError, "seconds must be a finite number > 0, got -0.0"),
    (math.nan, ValueError, "seconds must not be NaN, got nan"),
    (math.inf, ValueError, "seconds must be a finite number > 0, got inf"),
    (-math.inf, ValueError, "seconds must be a finite number > 0, got -inf"),
    (True, TypeError, "seconds must be a real number, got True"),
    ("60", TypeError, "seconds must be a real number, got '60'"),
    (None, TypeError, "seconds must be a real number, got None"),
]


def loaded(ns):
    window = ns.TimeWindow(10.0, 5, clock=FakeClock())
    window.add(2, 1, 1)
    return window


@pytest.mark.parametrize(("args", "kwargs", "kind", "message"), BAD_ADDS)
def test_bad_add(impl, args, kwargs, kind, message):
    window = loaded(impl)
    with pytest.raises(kind) as raised:
        window.add(*args, **kwargs)
    assert type(raised.value) is kind
    assert str(raised.value).startswith(message)
    assert window.totals() == (2, 1, 1)  # unchanged


@pytest.mark.parametrize(("seconds", "kind", "message"), BAD_SECONDS)
def test_bad_trailing(impl, seconds, kind, message):
    window = loaded(impl)
    with pytest.raises(kind) as raised:
        window.trailing(seconds)
    assert type(raised.value) is kind
    assert str(raised.value) == message


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf, "x", True])
def test_bad_trailing_now(impl, now):
    window = loaded(impl)
    with pytest.raises((ValueError, TypeError), match=r"^now must"):
        window.trailing(1.0, now=now)


def test_bad_input_same_on_both_twins(twins):
    def messages(ns):
        out = []
        window = loaded(ns)
        for args, kwargs, _, _ in BAD_ADDS:
            try:
                window.add(*args, **kwargs)
            except (TypeError, ValueError) as exc:
                out.append((type(exc), str(exc)))
        for seconds, _, _ in BAD_SECONDS:
            try:
                window.trailing(seconds)
            except (TypeError, ValueError) as exc:
                out.append((type(exc), str(exc)))
        return out

    compiled, pure = (messages(ns) for ns in twins)
    assert len(compiled) == len(BAD_ADDS) + len(BAD_SECONDS)
    assert compiled == pure


def test_totals_beyond_int64_are_refused_by_both_twins(impl):
    window = impl.TimeWindow(10.0, clock=FakeClock())
    window.add(sys.maxsize, 5)
    with pytest.raises(OverflowError, match="cannot count more than"):
        window.add(1)
    assert window.totals() == (sys.maxsize, 5, 0)  # unchanged by the refused add
