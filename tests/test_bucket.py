"""TokenBucket, on both twins (the ``impl`` fixture).

Expectations come from the contract: ``rate`` tokens per second into a bucket
of ``capacity``, starting full; the arithmetic is done by hand or by an exact
(``Fraction``) model. Values in the examples are dyadic (multiples of powers
of two), so the float results are exact and can be compared with ``==``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from resilience.testing import FakeClock


def make(impl, rate=1.0, capacity=10.0, *, tokens=None, start=0.0):
    clock = FakeClock(start)
    return impl.TokenBucket(rate, capacity, tokens=tokens, clock=clock), clock


# -- construction ------------------------------------------------------------


def test_starts_full(impl):
    bucket, _ = make(impl, 2.0, 5.0)
    assert bucket.available == 5.0
    assert bucket.tokens_at() == 5.0
    assert bucket.rate == 2.0
    assert bucket.capacity == 5.0


@pytest.mark.parametrize("tokens", [0.0, 0, 2.5, 5.0])
def test_starts_with_given_tokens(impl, tokens):
    bucket, _ = make(impl, 2.0, 5.0, tokens=tokens)
    assert bucket.available == tokens


def test_int_arguments_are_numbers(impl):
    bucket, clock = make(impl, 2, 4, tokens=0)
    clock.advance(1)
    assert bucket.rate == 2.0
    assert bucket.capacity == 4.0
    assert bucket.available == 2.0


def test_fresh_counters(impl):
    bucket, _ = make(impl)
    assert bucket.granted == 0
    assert bucket.rejected == 0


# -- try_acquire and refill -----------------------------------------------------


def test_grants_while_tokens_last(impl):
    bucket, _ = make(impl, 1.0, 3.0)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.available == 0.0
    assert bucket.granted == 3
    assert bucket.rejected == 1


def test_a_refused_acquire_takes_nothing(impl):
    bucket, _ = make(impl, 1.0, 5.0, tokens=1.5)
    assert not bucket.try_acquire(2.0)
    assert bucket.available == 1.5
    assert bucket.try_acquire(1.5)
    assert bucket.available == 0.0


def test_fractional_acquire(impl):
    bucket, _ = make(impl, 1.0, 5.0)
    assert bucket.try_acquire(2.5)
    assert bucket.available == 2.5
    assert bucket.try_acquire(2.25)
    assert bucket.available == 0.25
    assert not bucket.try_acquire(0.5)
    assert bucket.try_acquire(0.25)
    assert bucket.available == 0.0


def test_zero_tokens_always_granted(impl):
    bucket, _ = make(impl, 1.0, 5.0, tokens=0.0)
    assert bucket.try_acquire(0.0)
    assert bucket.try_acquire(0)
    assert bucket.granted == 2
    assert bucket.available == 0.0


def test_refills_at_rate(impl):
    bucket, clock = make(impl, 2.0, 3.0, tokens=0.0)
    clock.advance(0.25)  # 0.25 s * 2 tokens/s
    assert bucket.available == 0.5
    assert not bucket.try_acquire()
    clock.advance(0.25)
    assert bucket.available == 1.0
    assert bucket.try_acquire()
    assert bucket.available == 0.0


def test_refill_stops_at_capacity(impl):
    bucket, clock = make(impl, 2.0, 3.0, tokens=0.0)
    clock.advance(1.0)
    assert bucket.available == 2.0
    clock.advance(100.0)
    assert bucket.available == 3.0
    assert bucket.try_acquire(3.0)
    assert not bucket.try_acquire(0.125)


def test_fractional_available_and_tokens_at(impl):
    bucket, clock = make(impl, 4.0, 10.0, tokens=0.0)
    clock.advance(0.375)
    assert bucket.available == 1.5  # 0.375 * 4
    assert bucket.tokens_at(0.625) == 2.5  # 0.625 * 4, an explicit time
    assert bucket.tokens_at(10.0) == 10.0  # capped


def test_a_refill_is_not_lost_between_reads(impl):
    # Reading in steps gives the same as reading once: refill is by elapsed time.
    bucket, clock = make(impl, 1.0, 100.0, tokens=0.0)
    for _ in range(8):
        clock.advance(0.125)
        bucket.tokens_at()
    assert bucket.available == 1.0


# -- wait_time -----------------------------------------------------------------------


def test_wait_time_zero_when_available(impl):
    bucket, _ = make(impl, 1.0, 5.0, tokens=2.0)
    assert bucket.wait_time() == 0.0
    assert bucket.wait_time(2.0) == 0.0
    assert bucket.wait_time(0.0) == 0.0


def test_wait_time_exact_when_short(impl):
    bucket, _ = make(impl, 4.0, 10.0, tokens=0.0)
    assert bucket.wait_time() == 0.25  # 1 token at 4/s
    assert bucket.wait_time(3.0) == 0.75
    assert bucket.wait_time(10.0) == 2.5  # the whole capacity


def test_wait_time_counts_tokens_held(impl):
    bucket, _ = make(impl, 2.0, 10.0, tokens=1.5)
    assert bucket.wait_time(4.0) == 1.25  # (4 - 1.5) / 2


def test_wait_time_inf_over_capacity(impl):
    bucket, _ = make(impl, 1.0, 5.0)
    assert bucket.wait_time(5.5) == math.inf  # even when full
    assert bucket.wait_time(5.0) == 0.0


def test_wait_time_takes_nothing_and_counts_nothing(impl):
    bucket, _ = make(impl, 1.0, 5.0, tokens=1.0)
    bucket.wait_time(3.0)
    bucket.wait_time(9.0)
    assert bucket.available == 1.0
    assert bucket.granted == 0
    assert bucket.rejected == 0


def test_waiting_wait_time_then_acquire_succeeds_example(impl):
    bucket, clock = make(impl, 3.0, 10.0, tokens=0.1)
    wait = bucket.wait_time(2.0)
    assert wait > 0.0
    assert not bucket.try_acquire(2.0)
    clock.advance(wait)
    assert bucket.try_acquire(2.0)


@given(
    rate=st.floats(0.01, 1e4),
    capacity=st.floats(1.0, 1e4),  # a bucket holds at least one token
    held=st.floats(0.0, 1.0),
    asked=st.floats(0.0, 1.0),
)
def test_waiting_wait_time_then_acquire_succeeds(impl, rate, capacity, held, asked):
    tokens = min(capacity, capacity * held)
    n = min(capacity, capacity * asked)
    bucket, clock = make(impl, rate, capacity, tokens=tokens)
    wait = bucket.wait_time(n)
    assert 0.0 <= wait < math.inf
    clock.advance(wait)
    assert bucket.try_acquire(n)


@example(start=86400.0, rate=1000.0, held=0.5)  # one day of uptime, 1000 calls/s
@given(
    start=st.floats(1e3, 1e6),
    rate=st.floats(1.0, 1e4),
    held=st.floats(0.0, 0.99),
)
def test_waiting_wait_time_then_acquire_succeeds_late_clock(impl, start, rate, held):
    # A monotonic clock typically reads 1e3..1e6 s; waiting exactly
    # wait_time() must still be enough there.
    bucket, clock = make(impl, rate, 10.0, tokens=held, start=start)
    wait = bucket.wait_time()
    assert wait > 0.0
    clock.advance(wait)
    assert bucket.try_acquire()


@pytest.mark.parametrize("start", [0.0, 86400.0, 1e6])
def test_a_request_short_by_a_measurable_amount_is_refused(impl, start):
    # Rounding slack must stay far below what a caller can notice: 1e-6 of a
    # token short (early clock) or 1e-3 short (after a 0.999 s refill at 1/s).
    bucket, clock = make(impl, 1.0, 10.0, tokens=1.0 - 1e-6, start=start)
    assert not bucket.try_acquire()
    assert bucket.wait_time() > 0.0
    assert bucket.reserve(1.0, max_wait=0.0) == -1.0
    bucket, clock = make(impl, 1.0, 10.0, tokens=0.0, start=start)
    clock.advance(0.999)
    assert not bucket.try_acquire()
    assert bucket.wait_time() > 0.0
    clock.advance(0.001)
    assert bucket.try_acquire()


# -- reserve and refund -----------------------------------------------------------------


def test_reserve_takes_at_once_when_available(impl):
    bucket, _ = make(impl, 1.0, 2.0)
    assert bucket.reserve(1.0) == 0.0
    assert bucket.available == 1.0
    assert bucket.granted == 1


def test_reserve_goes_into_debt_and_returns_the_wait(impl):
    bucket, clock = make(impl, 2.0, 4.0, tokens=1.0)
    assert bucket.reserve(3.0) == 1.0  # (3 - 1) / 2
    assert bucket.available == -2.0
    assert bucket.wait_time() == 1.5  # (1 - -2) / 2: later waiters queue behind
    clock.advance(1.0)
    assert bucket.available == 0.0
    assert bucket.granted == 1
    assert bucket.rejected == 0


def test_reserve_refused_when_the_wait_exceeds_max_wait(impl):
    bucket, _ = make(impl, 2.0, 4.0, tokens=1.0)
    assert bucket.reserve(3.0, max_wait=0.5) == -1.0  # would wait 1.0
    assert bucket.available == 1.0
    assert bucket.granted == 0
    assert bucket.rejected == 1
    assert bucket.reserve(3.0, max_wait=1.0) == 1.0  # a wait equal to max_wait is fine
    assert bucket.available == -2.0


def test_reserve_with_zero_max_wait_is_try_acquire(impl):
    bucket, _ = make(impl, 1.0, 2.0)
    assert bucket.reserve(2.0, max_wait=0.0) == 0.0
    assert bucket.reserve(1.0, max_wait=0.0) == -1.0
    assert bucket.available == 0.0


def test_reserve_over_capacity_takes_nothing(impl):
    # The wait is infinite: the reservation can never be honoured, so it is
    # refused (-1.0) and nothing is taken, even with the default max_wait.
    bucket, _ = make(impl, 1.0, 2.0)
    assert bucket.reserve(3.0) == -1.0
    assert bucket.available == 2.0
    assert bucket.granted == 0


def test_reserve_over_capacity_with_finite_max_wait(impl):
    bucket, _ = make(impl, 1.0, 2.0)
    assert bucket.reserve(3.0, max_wait=1e9) == -1.0
    assert bucket.available == 2.0
    assert bucket.rejected == 1


def test_refund_gives_tokens_back(impl):
    bucket, _ = make(impl, 1.0, 5.0)
    assert bucket.try_acquire(4.0)
    bucket.refund(1.5)
    assert bucket.available == 2.5
    bucket.refund()
    assert bucket.available == 3.5


def test_refund_stops_at_capacity(impl):
    bucket, _ = make(impl, 1.0, 5.0, tokens=4.0)
    bucket.refund(3.0)
    assert bucket.available == 5.0


def test_refund_pays_off_debt(impl):
    bucket, _ = make(impl, 1.0, 4.0, tokens=0.0)
    assert bucket.reserve(3.0) == 3.0
    bucket.refund(3.0)
    assert bucket.available == 0.0
    assert bucket.wait_time() == 1.0


def test_refund_without_a_grant_counts_none(impl):
    bucket, _ = make(impl, 1.0, 4.0, tokens=0.0)
    bucket.refund(1.0)
    assert (bucket.granted, bucket.refunded, bucket.rejected) == (0, 0, 0)


def test_a_refunded_acquisition_is_counted_refunded_and_granted_never_goes_down(impl):
    # A reservation handed back was never used: a limiter whose caller gave up
    # waiting reports it apart. Granted only grows, so exported counts do too.
    bucket, _ = make(impl, 1.0, 4.0, tokens=1.0)
    assert bucket.try_acquire()
    assert bucket.reserve(2.0) == 2.0
    assert (bucket.granted, bucket.refunded) == (2, 0)
    bucket.refund(2.0)
    assert (bucket.granted, bucket.refunded, bucket.rejected) == (2, 1, 0)
    bucket.refund()
    assert (bucket.granted, bucket.refunded, bucket.rejected) == (2, 2, 0)
    bucket.refund()  # more refunds than grants: not counted
    assert (bucket.granted, bucket.refunded, bucket.rejected) == (2, 2, 0)


# -- set_rate ------------------------------------------------------------------------------


def test_set_rate_keeps_tokens_accrued_at_the_old_rate(impl):
    bucket, clock = make(impl, 1.0, 100.0, tokens=0.0)
    clock.advance(2.0)
    bucket.set_rate(10.0)  # 2 tokens accrued at 1/s so far
    assert bucket.rate == 10.0
    clock.advance(1.0)
    assert bucket.available == 12.0  # 2 + 1 * 10, not 3 * 10


def test_set_rate_lower(impl):
    bucket, clock = make(impl, 8.0, 100.0, tokens=0.0)
    clock.advance(0.5)
    bucket.set_rate(0.5)
    clock.advance(2.0)
    assert bucket.available == 5.0  # 0.5 * 8 + 2 * 0.5
    assert bucket.wait_time(6.0) == 2.0  # (6 - 5) / 0.5


def test_set_rate_at_explicit_now(impl):
    bucket, _ = make(impl, 1.0, 100.0, tokens=0.0)
    bucket.set_rate(4.0, now=3.0)
    assert bucket.tokens_at(4.0) == 7.0  # 3 * 1 + 1 * 4


# -- a clock that steps back ------------------------------------------------------------


def test_a_step_back_keeps_the_tokens_and_refills_from_the_earlier_reading(impl):
    bucket, _ = make(impl, 1.0, 10.0, tokens=0.0)
    assert bucket.tokens_at(5.0) == 5.0
    assert bucket.tokens_at(3.0) == 5.0  # no tokens taken back
    assert bucket.tokens_at(4.0) == 6.0  # one second after the step back: one more token
    assert bucket.try_acquire(6.0, now=1.0)
    assert bucket.tokens_at(2.0) == 1.0


def test_a_step_back_does_not_refill_twice(impl):
    bucket, _ = make(impl, 1.0, 10.0, tokens=0.0)
    assert bucket.try_acquire(2.0, now=2.0)
    assert not bucket.try_acquire(1.0, now=0.5)  # what 0..2 brought is spent
    assert bucket.tokens_at(1.0) == 0.5


def test_a_bucket_made_after_a_later_reading_refills_from_the_step_back(impl):
    bucket, _ = make(impl, 1.0, 10.0, tokens=0.0, start=100.0)
    assert not bucket.try_acquire(1.0, now=0.0)
    assert bucket.tokens_at(0.0) == 0.0
    assert bucket.tokens_at(1.0) == 1.0


class SettableClock:
    """A clock set by hand, backwards too. With ``overtake`` set, its next
    reading is taken, then overtaken by another operation's reading before
    it reaches the bucket (as a thread descheduled between the two would be)."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.overtake: Callable[[], None] | None = None

    def __call__(self) -> float:
        reading = self.now
        overtake, self.overtake = self.overtake, None
        if overtake is not None:
            overtake()
        return reading


def test_a_large_step_back_of_the_clock_does_not_stop_the_refill(impl):
    clock = SettableClock(1e6)
    bucket = impl.TokenBucket(2.0, 4.0, tokens=0.0, clock=clock)
    clock.now = 0.0  # the clock is set back by 11 days
    assert bucket.available == 0.0
    clock.now = 1.0
    assert bucket.available == 2.0  # not 11 days of nothing
    assert bucket.wait_time(4.0) == 1.0


def test_a_stale_reading_is_not_a_step_back(impl):
    """A reading another operation's later reading overtook counts as no time
    passing; moving the refill time back to it would refill the gap twice."""
    clock = SettableClock(10.0)
    bucket = impl.TokenBucket(1.0, 100.0, tokens=0.0, clock=clock)

    def later_operation() -> None:
        clock.now = 15.0
        assert bucket.available == 5.0

    clock.overtake = later_operation
    assert bucket.available == 5.0  # read 10.0, overtaken by the reading 15.0
    clock.now = 16.0
    assert bucket.available == 6.0  # refilled from 15, not from 10 (11.0)


def test_explicit_now_without_a_clock(impl):
    # Past the monotonic reading taken at construction, by far more than the
    # bucket needs to fill: the result does not depend on how long this takes.
    bucket = impl.TokenBucket(1.0, 5.0, tokens=0.0)
    base = float(math.ceil(time.monotonic()) + 1000)
    assert bucket.tokens_at(base) == 5.0
    assert bucket.try_acquire(5.0, now=base)
    assert not bucket.try_acquire(1.0, now=base)
    assert bucket.wait_time(2.0, now=base) == 2.0
    assert bucket.tokens_at(base + 1.5) == 1.5
    assert bucket.reserve(2.0, now=base + 1.5) == 0.5
    assert (bucket.granted, bucket.rejected) == (2, 1)


def test_reads_the_clock_when_now_is_omitted(impl):
    bucket, clock = make(impl, 2.0, 10.0, tokens=0.0, start=50.0)
    clock.advance(1.5)
    assert bucket.available == 3.0
    assert bucket.try_acquire(3.0)
    assert not bucket.try_acquire(0.5)


# -- counters and repr -----------------------------------------------------------------


def test_counters(impl):
    bucket, clock = make(impl, 1.0, 2.0)
    bucket.try_acquire()  # granted
    bucket.try_acquire()  # granted
    bucket.try_acquire()  # rejected
    bucket.reserve(1.0, max_wait=0.5)  # rejected: would wait 1.0
    bucket.reserve(1.0, max_wait=1.0)  # granted, into debt
    bucket.wait_time()
    bucket.refund(0.5)  # handed back: refunded, still counted granted
    clock.advance(10.0)
    bucket.try_acquire(2.0)  # granted
    assert (bucket.granted, bucket.refunded, bucket.rejected) == (4, 1, 2)


def test_repr(impl):
    bucket, _ = make(impl, 3.5, 7.0, tokens=1.25)
    text = repr(bucket)
    assert "TokenBucket" in text
    assert "3.5" in text
    assert "7.0" in text
    assert "1.25" in text


def test_repr_same_on_both_twins(twins):
    texts = {repr(ns.TokenBucket(3.5, 7.0, tokens=1.25, clock=FakeClock())) for ns in twins}
    assert len(texts) == 1


# -- an exact model -----------------------------------------------------------------------

# Rates are powers of two and times, token counts and capacities multiples of
# 1/8, so every float the bucket computes is exact and the model can use
# Fractions and compare with ==.
EIGHTHS = st.integers(0, 48).map(lambda k: k / 8)
RATES = st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
MAX_WAITS = st.sampled_from([0.0, 0.5, 1.0, 3.0, math.inf])

OPS = st.one_of(
    st.tuples(st.just("advance"), EIGHTHS),
    st.tuples(st.just("try_acquire"), EIGHTHS),
    st.tuples(st.just("wait_time"), EIGHTHS),
    st.tuples(st.just("reserve"), EIGHTHS, MAX_WAITS),
    st.tuples(st.just("refund"), EIGHTHS),
    st.tuples(st.just("set_rate"), RATES),
    st.tuples(st.just("past"), EIGHTHS),
)


class BucketModel:
    def __init__(self, rate, capacity, tokens, now):
        self.rate = Fraction(rate)
        self.capacity = Fraction(capacity)
        self.tokens = Fraction(tokens)
        self.last = Fraction(now)
        self.granted = 0
        self.refunded = 0
        self.rejected = 0

    def refill(self, now):
        now = Fraction(now)
        if now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now  # a step back moves the last refill with it

    def wait(self, n):
        if n > self.capacity:
            return math.inf
        if self.tokens >= n:
            return Fraction(0)
        return (n - self.tokens) / self.rate


@given(
    rate=RATES,
    capacity=st.integers(8, 32).map(lambda k: k / 8),  # at least one token
    fill=st.floats(0.0, 1.0),
    start=st.integers(0, 8000).map(lambda k: k / 8),
    ops=st.lists(OPS, max_size=40),
)
def test_matches_an_exact_model(impl, rate, capacity, fill, start, ops):
    tokens = math.floor(capacity * fill * 8) / 8
    clock = FakeClock(start)
    bucket = impl.TokenBucket(rate, capacity, tokens=tokens, clock=clock)
    model = BucketModel(rate, capacity, tokens, start)
    for op in ops:
        kind = op[0]
        now = clock()
        if kind == "advance":
            clock.advance(op[1])
            continue
        if kind == "past":  # a reading from before the latest one
            model.refill(now - op[1])
            assert bucket.tokens_at(now - op[1]) == model.tokens
            continue
        model.refill(now)
        if kind == "try_acquire":
            n = Fraction(op[1])
            expected = model.tokens >= n
            if expected:
                model.tokens -= n
                model.granted += 1
            else:
                model.rejected += 1
            assert bucket.try_acquire(op[1]) is expected
        elif kind == "wait_time":
            assert bucket.wait_time(op[1]) == model.wait(Fraction(op[1]))
        elif kind == "reserve":
            asked = min(op[1], capacity)  # over capacity: test_reserve_over_capacity_*
            n = Fraction(asked)
            wait = model.wait(n)
            if wait > op[2]:
                model.rejected += 1
                expected = -1.0
            else:
                model.tokens -= n
                model.granted += 1
                expected = wait
            assert bucket.reserve(asked, max_wait=op[2]) == expected
        elif kind == "refund":
            model.tokens = min(model.capacity, model.tokens + Fraction(op[1]))
            model.refunded = min(model.granted, model.refunded + 1)
            bucket.refund(op[1])
        elif kind == "set_rate":
            model.rate = Fraction(op[1])
            bucket.set_rate(op[1])
            assert bucket.rate == op[1]
        assert bucket.available == model.tokens
        assert (bucket.granted, bucket.refunded, bucket.rejected) == (
            model.granted,
            model.refunded,
            model.rejected,
        )


# -- the twins compute the same floats -------------------------------------------------

ANY_OPS = st.lists(
    st.tuples(
        st.sampled_from(["advance", "try_acquire", "wait_time", "reserve", "refund", "set_rate"]),
        st.floats(0.0, 50.0),
        st.floats(0.0, 5.0),
    ),
    max_size=30,
)


@given(
    rate=st.floats(0.01, 1000.0),
    capacity=st.floats(1.0, 100.0),  # a bucket holds at least one token
    start=st.floats(0.0, 1e6),
    ops=ANY_OPS,
)
def test_twins_compute_the_same_floats(twins, rate, capacity, start, ops):
    def run(ns):
        clock = FakeClock(start)
        bucket = ns.TokenBucket(rate, capacity, clock=clock)
        results = []
        for kind, x, y in ops:
            if kind == "advance":
                clock.advance(y)
                continue
            if kind == "reserve":
                n = min(x, capacity)
                result = bucket.reserve(n, max_wait=y)
            elif kind == "set_rate":
                result = bucket.set_rate(max(x, 0.01))
            else:
                result = getattr(bucket, kind)(x)
            results.append((kind, result, bucket.available))
        return results, bucket.granted, bucket.refunded, bucket.rejected, repr(bucket)

    compiled, pure = twins
    assert run(compiled) == run(pure)
