"""BreakerCore: the circuit state machine, run on both twins with a FakeClock.

Every expectation below comes from the CircuitBreaker section of docs/architecture.md
and the state diagram in ``_breaker_py``'s docstring.
"""

from __future__ import annotations

import math
import threading
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience._core import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN
from resilience.testing import FakeClock


def make(impl, **kwargs):
    """A breaker on a FakeClock at 0.0 whose listener appends to ``events``."""
    clock = FakeClock()
    events: list[tuple[int, int]] = []
    breaker = impl.BreakerCore(
        clock=clock, listener=lambda old, new: events.append((old, new)), **kwargs
    )
    return breaker, clock, events


def trip_now(breaker) -> None:
    """Trip a breaker built with failure_threshold=1."""
    assert breaker.acquire() >= 0
    breaker.record_failure()
    assert breaker.current_state() == OPEN


# -- the consecutive-failure rule -------------------------------------------


def test_trips_on_failure_threshold_consecutive_failures(impl):
    breaker, _, events = make(impl, failure_threshold=3)
    for expected in (1, 2):
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.consecutive_failures == expected
        assert breaker.state == CLOSED
    assert events == []
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]


def test_a_success_resets_the_consecutive_failure_count(impl):
    breaker, _, events = make(impl, failure_threshold=3)
    for _ in range(4):  # F F S, twice over: never three failures in a row
        breaker.record_failure()
        breaker.record_failure()
        assert breaker.consecutive_failures == 2
        breaker.record_success()
        assert breaker.consecutive_failures == 0
    assert breaker.state == CLOSED
    assert events == []
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]


def test_failure_threshold_zero_turns_the_rule_off(impl):
    breaker, _, events = make(impl, failure_threshold=0)
    for _ in range(500):
        assert breaker.acquire() >= 0
        breaker.record_failure()
    assert breaker.state == CLOSED
    assert breaker.consecutive_failures == 500
    assert events == []


@given(
    threshold=st.integers(min_value=1, max_value=6),
    outcomes=st.lists(st.booleans(), max_size=40),
)
def test_consecutive_rule_matches_a_model(impl, threshold, outcomes):
    breaker, _, events = make(impl, failure_threshold=threshold)
    run = 0
    for failure in outcomes:
        if failure:
            breaker.record_failure()
            run += 1
        else:
            breaker.record_success()
            run = 0
        if run >= threshold:
            assert breaker.state == OPEN
            assert events == [(CLOSED, OPEN)]
            return
        assert breaker.state == CLOSED
        assert breaker.consecutive_failures == run
    assert events == []


# -- rate rules over a count window ---------------------------------------


def test_failure_rate_needs_minimum_calls(impl):
    breaker, _, events = make(
        impl, failure_threshold=0, failure_rate=0.5, window=20, minimum_calls=5
    )
    for _ in range(4):  # a 100% failure rate, but only 4 calls in the window
        breaker.record_failure()
    assert breaker.state == CLOSED
    assert breaker.window_totals() == (4, 4, 0)
    breaker.record_failure()
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]


def test_failure_rate_trips_when_reached_not_before(impl):
    breaker, _, events = make(
        impl, failure_threshold=0, failure_rate=0.5, window=10, minimum_calls=4
    )
    for failure in (True, False, False, False, True):  # 2 of 5 = 0.4
        if failure:
            breaker.record_failure()
        else:
            breaker.record_success()
    assert breaker.window_totals() == (5, 2, 0)
    assert breaker.state == CLOSED
    breaker.record_failure()  # 3 of 6 = 0.5: the rate is reached
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]


def test_minimum_calls_is_capped_at_the_count_window_size(impl):
    breaker, _, events = make(
        impl, failure_threshold=0, failure_rate=1.0, window=4, minimum_calls=10
    )
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_failure()  # the window is full: 4 calls stand for minimum_calls
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]


def test_count_window_keeps_only_the_last_calls(impl):
    breaker, _, events = make(
        impl, failure_threshold=0, failure_rate=0.5, window=4, minimum_calls=4
    )
    for _ in range(8):
        breaker.record_success()
    assert breaker.window_totals() == (4, 0, 0)
    breaker.record_failure()
    assert breaker.window_totals() == (4, 1, 0)
    assert breaker.state == CLOSED
    # 2 failures in 10 calls overall, but 2 of the last 4: the window decides
    breaker.record_failure()
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]


def test_slow_call_rate_counts_calls_at_or_over_slow_call_duration(impl):
    breaker, _, events = make(
        impl,
        failure_threshold=0,
        slow_call_duration=1.0,
        slow_call_rate=0.5,
        window=4,
        minimum_calls=4,
    )
    breaker.record_success(duration=1.0)  # exactly the threshold: slow
    breaker.record_success(duration=0.999)
    breaker.record_success(duration=0.0)
    assert breaker.window_totals() == (3, 0, 1)
    assert breaker.total_slow_calls == 1
    assert breaker.state == CLOSED
    breaker.record_success(duration=5.0)  # 2 slow of 4
    assert breaker.state == OPEN
    assert breaker.total_failures == 0
    assert events == [(CLOSED, OPEN)]


def test_slow_failures_count_for_both_rates(impl):
    breaker, _, _ = make(
        impl,
        failure_threshold=0,
        failure_rate=1.0,
        slow_call_duration=2.0,
        slow_call_rate=1.0,
        window=10,
        minimum_calls=10,
    )
    breaker.record_failure(duration=2.5)
    breaker.record_success(duration=1.5)
    assert breaker.window_totals() == (2, 1, 1)
    assert (breaker.total_calls, breaker.total_failures, breaker.total_slow_calls) == (2, 1, 1)


def test_calls_are_never_slow_without_slow_call_duration(impl):
    breaker, _, _ = make(impl, failure_threshold=0, failure_rate=1.0, minimum_calls=1)
    for _ in range(20):
        breaker.record_success(duration=1e6)
    assert breaker.window_totals() == (20, 0, 0)
    assert breaker.total_slow_calls == 0
    assert breaker.state == CLOSED


@pytest.mark.parametrize("rate", [0.1, 1.0, 1])
def test_a_slow_call_rate_without_slow_call_duration_is_refused(impl, rate):
    # Silently ignored before: no call is ever slow without a duration.
    with pytest.raises(ValueError) as info:
        impl.BreakerCore(slow_call_rate=rate)
    message = str(info.value)
    assert "slow_call_duration" in message
    assert f"slow_call_rate={rate!r}" in message


@given(
    window=st.integers(min_value=1, max_value=8),
    minimum_calls=st.integers(min_value=1, max_value=10),
    failure_rate=st.sampled_from([None, 0.25, 0.5, 0.6, 0.75, 1.0]),
    slow_call_rate=st.sampled_from([None, 0.25, 0.5, 1.0]),
    calls=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40),
)
def test_count_window_rates_match_a_model(
    impl, window, minimum_calls, failure_rate, slow_call_rate, calls
):
    breaker, _, events = make(
        impl,
        failure_threshold=0,
        failure_rate=failure_rate,
        slow_call_duration=1.0,
        slow_call_rate=slow_call_rate,
        window=window,
        minimum_calls=minimum_calls,
    )
    last: deque[tuple[bool, bool]] = deque(maxlen=window)
    for failure, slow in calls:
        duration = 1.0 if slow else 0.5
        if failure:
            breaker.record_failure(duration=duration)
        else:
            breaker.record_success(duration=duration)
        last.append((failure, slow))
        n = len(last)
        failures = sum(f for f, _ in last)
        slows = sum(s for _, s in last)
        due = n >= min(minimum_calls, window) and (
            (failure_rate is not None and failures / n >= failure_rate)
            or (slow_call_rate is not None and slows / n >= slow_call_rate)
        )
        if due:
            assert breaker.state == OPEN
            assert events == [(CLOSED, OPEN)]
            return
        assert breaker.state == CLOSED
        assert breaker.window_totals() == (n, failures, slows)
    assert events == []


# -- rate rules over a time window ----------------------------------------


def test_time_window_old_calls_age_out(impl):
    breaker, clock, events = make(
        impl, failure_threshold=0, failure_rate=0.5, window_duration=10.0, minimum_calls=3
    )
    clock.advance(0.5)
    breaker.record_failure()
    clock.advance(5.0)  # t = 5.5
    breaker.record_failure()
    clock.advance(4.0)  # t = 9.5: both calls are younger than 10 s
    assert breaker.window_totals() == (2, 2, 0)
    clock.advance(1.1)  # t = 10.6: the call at 0.5 is 10.1 s old
    assert breaker.window_totals() == (1, 1, 0)
    clock.advance(5.0)  # t = 15.6: the call at 5.5 is 10.1 s old
    assert breaker.window_totals() == (0, 0, 0)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_success()
    # 3 failures in 5 calls overall would trip; 1 in 3 inside the window does not
    assert breaker.window_totals() == (3, 1, 0)
    assert breaker.state == CLOSED
    breaker.record_failure()  # 2 of 4
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]


def test_time_window_ignores_window_and_its_cap(impl):
    # window=2 is unused with window_duration, so minimum_calls stays 5
    breaker, _, _ = make(
        impl,
        failure_threshold=0,
        failure_rate=0.5,
        window=2,
        window_duration=60.0,
        minimum_calls=5,
    )
    for n in range(1, 5):
        breaker.record_failure()
        assert breaker.window_totals() == (n, n, 0)
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN


def test_time_window_slow_call_rate(impl):
    breaker, clock, events = make(
        impl,
        failure_threshold=0,
        slow_call_duration=0.5,
        slow_call_rate=1.0,
        window_duration=5.0,
        minimum_calls=2,
    )
    clock.advance(0.5)
    breaker.record_success(duration=0.7)
    clock.advance(1.0)  # t = 1.5
    breaker.record_success(duration=0.1)
    clock.advance(4.3)  # t = 5.8: the fast call at 1.5 is still in, the slow one is out
    breaker.record_success(duration=0.9)
    assert breaker.window_totals() == (2, 0, 1)
    assert breaker.state == CLOSED
    clock.advance(1.0)  # t = 6.8: the fast call is out too
    breaker.record_success(duration=0.5)
    assert breaker.window_totals() == (2, 0, 2)
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]


# -- OPEN -------------------------------------------------------------------


def test_open_rejects_until_reset_timeout_then_half_open(impl):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    trip_now(breaker)
    assert breaker.acquire() == -1
    assert breaker.allow() is False
    assert breaker.rejected == 2
    clock.advance(9.5)
    assert breaker.acquire() == -1
    assert breaker.rejected == 3
    assert breaker.current_state() == OPEN
    assert events == [(CLOSED, OPEN)]
    clock.advance(0.5)  # reset_timeout has passed
    token = breaker.acquire()
    assert token >= 0
    assert breaker.rejected == 3
    assert breaker.current_state() == HALF_OPEN
    assert breaker.half_open_probes == 1
    assert events == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_open_records_change_nothing(impl):
    breaker, _, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    trip_now(breaker)
    breaker.record_success()
    breaker.record_success()
    breaker.release()
    assert breaker.current_state() == OPEN
    assert breaker.retry_after() == 10.0
    assert events == [(CLOSED, OPEN)]
    assert breaker.total_calls == 3


def test_current_state_applies_the_due_move(impl):
    breaker, _, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    trip_now(breaker)
    assert breaker.current_state(now=9.0) == OPEN
    assert events == [(CLOSED, OPEN)]
    assert breaker.current_state(now=10.5) == HALF_OPEN
    assert events == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    assert breaker.current_state(now=11.0) == HALF_OPEN
    assert breaker.rejected == 0
    assert events == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_state_property_reads_the_clock_and_applies_the_move(impl):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=3.0)
    trip_now(breaker)
    clock.advance(2.0)
    assert breaker.state == OPEN
    clock.advance(1.0)
    assert breaker.state == HALF_OPEN
    assert breaker.state == HALF_OPEN
    assert events == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    assert breaker.half_open_probes == 0
    assert breaker.acquire() >= 0  # the probe permit is still free


def test_acquire_at_retry_after_zero_is_let_through(impl):
    breaker, clock, _ = make(impl, failure_threshold=1, reset_timeout=4.0)
    trip_now(breaker)
    clock.advance(1.0)
    assert breaker.retry_after() == pytest.approx(3.0)
    assert breaker.acquire() == -1
    clock.advance(3.0)
    assert breaker.retry_after() == 0.0
    assert breaker.acquire() >= 0


# -- HALF_OPEN ------------------------------------------------------------------


def to_half_open(impl, **kwargs):
    """A breaker tripped at t=0 (reset_timeout 10) and moved to HALF_OPEN at t=10."""
    kwargs.setdefault("failure_threshold", 1)
    kwargs.setdefault("reset_timeout", 10.0)
    breaker, clock, events = make(impl, **kwargs)
    trip_now(breaker)
    clock.advance(10.0)
    assert breaker.current_state() == HALF_OPEN
    assert events == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    events.clear()
    return breaker, clock, events


@pytest.mark.parametrize("half_open_calls", [1, 2, 5])
def test_half_open_admits_exactly_half_open_calls_probes(impl, half_open_calls):
    breaker, _, events = to_half_open(impl, half_open_calls=half_open_calls)
    tokens = [breaker.acquire() for _ in range(half_open_calls)]
    assert all(token >= 0 for token in tokens)
    assert breaker.half_open_probes == half_open_calls
    rejected = breaker.rejected
    assert breaker.acquire() == -1
    assert breaker.allow() is False
    assert breaker.rejected == rejected + 2
    assert breaker.current_state() == HALF_OPEN
    assert events == []


def test_half_open_successes_close_with_a_fresh_window(impl):
    breaker, _, events = make(
        impl,
        failure_threshold=0,
        failure_rate=0.5,
        window=10,
        minimum_calls=4,
        reset_timeout=10.0,
        half_open_calls=3,
    )
    breaker.record_success()
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state == OPEN
    assert breaker.window_totals() == (4, 3, 0)
    breaker.current_state(now=10.0)
    tokens = [breaker.acquire() for _ in range(3)]
    breaker.record_success(generation=tokens[0])
    breaker.record_success(generation=tokens[1])
    assert breaker.state == HALF_OPEN
    breaker.record_success(generation=tokens[2])
    assert breaker.state == CLOSED
    assert breaker.window_totals() == (0, 0, 0)
    assert breaker.consecutive_failures == 0
    assert events == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    # the fresh window needs minimum_calls again before the rate rule applies
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN


def test_any_probe_failure_reopens(impl):
    breaker, _, events = to_half_open(impl, half_open_calls=3)
    first, second, third = (breaker.acquire() for _ in range(3))
    breaker.record_success(generation=first)
    breaker.record_failure(generation=second)
    assert breaker.state == OPEN
    assert events == [(HALF_OPEN, OPEN)]
    assert breaker.acquire() == -1
    # the third probe's outcome belongs to the half-open period that ended
    breaker.record_success(generation=third)
    assert breaker.state == OPEN
    assert events == [(HALF_OPEN, OPEN)]


@pytest.mark.parametrize("with_generation", [True, False])
def test_release_of_a_probe_lets_another_in(impl, with_generation):
    breaker, _, events = to_half_open(impl, half_open_calls=1)
    token = breaker.acquire()
    assert token >= 0
    assert breaker.acquire() == -1
    if with_generation:
        breaker.release(token)
    else:
        breaker.release()
    assert breaker.half_open_probes == 0
    assert breaker.state == HALF_OPEN
    again = breaker.acquire()
    assert again >= 0
    assert breaker.acquire() == -1
    breaker.record_success(generation=again)
    assert breaker.state == CLOSED
    assert events == [(HALF_OPEN, CLOSED)]


def test_a_lost_probe_is_taken_back_after_the_open_duration(impl):
    breaker, clock, events = to_half_open(impl, half_open_calls=1)
    lost = breaker.acquire()  # t = 10, never recorded nor released
    assert lost >= 0
    clock.advance(9.0)
    assert breaker.acquire() == -1
    assert breaker.retry_after() == pytest.approx(1.0)
    clock.advance(1.0)  # the probe has been out for the open duration (10 s)
    probe = breaker.acquire()
    assert probe >= 0
    assert breaker.half_open_probes == 1
    calls = breaker.total_calls
    breaker.record_success(generation=lost)  # late: ignored
    assert breaker.state == HALF_OPEN
    assert breaker.half_open_probes == 1
    assert breaker.total_calls == calls + 1
    breaker.record_failure(generation=lost)  # late: ignored as well
    assert breaker.state == HALF_OPEN
    assert breaker.total_failures == 2  # the trip and the late failure
    assert events == []
    breaker.record_success(generation=probe)
    assert breaker.state == CLOSED
    assert events == [(HALF_OPEN, CLOSED)]


def test_a_lost_probe_is_held_for_the_current_grown_open_duration(impl):
    breaker, clock, events = make(
        impl, failure_threshold=1, reset_timeout=10.0, reset_timeout_max=100.0
    )
    trip_now(breaker)  # first trip: 10 s
    clock.advance(10.0)
    breaker.record_failure(generation=breaker.acquire())  # second trip at t=10: 20 s
    assert breaker.open_duration == 20.0
    clock.advance(20.0)  # t = 30
    lost = breaker.acquire()
    assert lost >= 0
    clock.advance(10.0)  # t = 40: longer than reset_timeout, shorter than the open duration
    assert breaker.acquire() == -1
    assert breaker.retry_after() == pytest.approx(10.0)
    clock.advance(10.0)  # t = 50
    probe = breaker.acquire()
    assert probe >= 0
    breaker.release(lost)  # late: must not give back the new probe's permit
    assert breaker.half_open_probes == 1
    assert breaker.acquire() == -1
    breaker.record_success(generation=probe)
    assert breaker.state == CLOSED
    assert events[-1] == (HALF_OPEN, CLOSED)


def test_each_lost_probe_is_taken_back_after_the_open_duration(impl):
    # Probes issued at different times: the first one, out for the whole
    # open duration, is taken back even while the second is still young.
    breaker, clock, _ = to_half_open(impl, half_open_calls=2)
    first = breaker.acquire()  # t = 10
    clock.advance(5.0)
    second = breaker.acquire()  # t = 15
    assert first >= 0
    assert second >= 0
    assert breaker.acquire() == -1
    clock.advance(5.0)  # t = 20: the first probe has been out 10 s
    assert breaker.acquire() >= 0


def test_a_lost_probe_is_taken_back_while_other_probes_come_and_go(impl):
    # One probe is lost at t=10; other calls keep taking the second permit
    # and releasing it. The lost one must still be taken back after 10 s,
    # leaving both permits free.
    breaker, clock, _ = to_half_open(impl, half_open_calls=2)
    assert breaker.acquire() >= 0  # lost
    for _ in range(15):
        clock.advance(1.0)
        token = breaker.acquire()
        assert token >= 0
        breaker.release(token)
    # t = 25: the lost probe has been out 15 s, longer than the open duration
    assert breaker.acquire() >= 0
    assert breaker.acquire() >= 0


# -- generations ------------------------------------------------------------------


def test_an_outcome_from_an_older_generation_changes_nothing(impl):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    old = breaker.acquire()  # a slow call that started while CLOSED
    trip_now(breaker)
    clock.advance(10.0)
    probe = breaker.acquire()
    assert probe >= 0
    assert probe != old
    breaker.record_failure(generation=old)  # would reopen if it counted
    assert breaker.state == HALF_OPEN
    breaker.record_success(generation=old)  # would close if it counted
    assert breaker.state == HALF_OPEN
    assert breaker.half_open_probes == 1
    assert breaker.total_calls == 3
    assert breaker.total_failures == 2
    assert events == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    breaker.record_success(generation=probe)
    assert breaker.state == CLOSED


def test_an_old_generation_does_not_count_in_the_new_closed_period(impl):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    old = breaker.acquire()
    trip_now(breaker)
    clock.advance(10.0)
    breaker.record_success(generation=breaker.acquire())
    assert breaker.state == CLOSED
    breaker.record_failure(generation=old)
    assert breaker.state == CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.window_totals() == (0, 0, 0)
    assert breaker.total_failures == 2
    breaker.release(old)
    breaker.record_ignored(old)
    assert breaker.total_ignored == 1
    assert events == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_the_current_generation_counts(impl):
    breaker, _, events = make(impl, failure_threshold=2)
    token = breaker.acquire()
    assert token == breaker.generation
    breaker.record_failure(generation=token)
    breaker.record_failure(generation=breaker.acquire())
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]


@pytest.mark.parametrize("two_step", [True, False])
def test_two_step_outcomes_apply_to_the_current_state(impl, two_step):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    token = breaker.acquire()  # the permit of a call started while CLOSED
    assert breaker.allow()
    trip_now(breaker)
    clock.advance(10.0)
    assert breaker.state == HALF_OPEN
    # the call finishes now: without a generation it counts as a probe success
    if two_step:
        breaker.record_success()
        assert breaker.state == CLOSED
        assert events[-1] == (HALF_OPEN, CLOSED)
    else:
        breaker.record_success(generation=token)
        assert breaker.state == HALF_OPEN
        assert events[-1] == (OPEN, HALF_OPEN)


def test_two_step_failure_in_half_open_reopens(impl):
    breaker, _, events = to_half_open(impl, half_open_calls=2)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN
    assert events == [(HALF_OPEN, OPEN)]


# -- growing open time --------------------------------------------------------


def test_open_time_doubles_per_trip_in_a_row_up_to_the_cap(impl):
    breaker, clock, _ = make(impl, failure_threshold=1, reset_timeout=1.0, reset_timeout_max=5.0)
    trip_now(breaker)
    expected = [min(1.0 * 2 ** (k - 1), 5.0) for k in range(1, 7)]
    assert expected == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    for k, duration in enumerate(expected, start=1):
        assert breaker.open_duration == duration, f"trip {k}"
        assert breaker.retry_after() == duration
        clock.advance(duration / 2)
        assert breaker.retry_after() == pytest.approx(duration / 2)
        assert breaker.acquire() == -1
        clock.advance(duration / 2)
        assert breaker.retry_after() == 0.0
        probe = breaker.acquire()
        assert probe >= 0
        breaker.record_failure(generation=probe)  # the next trip in a row
        assert breaker.state == OPEN
    assert breaker.open_duration == 5.0


def test_closing_resets_the_open_time(impl):
    breaker, clock, _ = make(impl, failure_threshold=1, reset_timeout=2.0, reset_timeout_max=60.0)
    trip_now(breaker)
    for _ in range(2):
        clock.advance(breaker.open_duration)
        breaker.record_failure(generation=breaker.acquire())
    assert breaker.open_duration == 8.0
    clock.advance(8.0)
    breaker.record_success(generation=breaker.acquire())
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN
    assert breaker.open_duration == 2.0
    assert breaker.retry_after() == 2.0


def test_reset_resets_the_open_time(impl):
    breaker, clock, _ = make(impl, failure_threshold=1, reset_timeout=2.0, reset_timeout_max=60.0)
    trip_now(breaker)
    clock.advance(2.0)
    breaker.record_failure(generation=breaker.acquire())
    assert breaker.open_duration == 4.0
    breaker.reset()
    breaker.record_failure()
    assert breaker.state == OPEN
    assert breaker.open_duration == 2.0


def test_without_reset_timeout_max_the_open_time_stays(impl):
    breaker, clock, _ = make(impl, failure_threshold=1, reset_timeout=3.0)
    trip_now(breaker)
    for _ in range(4):
        assert breaker.open_duration == 3.0
        assert breaker.retry_after() == 3.0
        clock.advance(3.0)
        breaker.record_failure(generation=breaker.acquire())
        assert breaker.state == OPEN
    assert breaker.open_duration == 3.0


# -- retry_after --------------------------------------------------------------------


def test_retry_after_in_each_state(impl):
    breaker, clock, _ = make(impl, failure_threshold=1, reset_timeout=10.0)
    assert breaker.retry_after() == 0.0  # CLOSED
    trip_now(breaker)
    assert breaker.retry_after() == 10.0  # OPEN, just tripped
    clock.advance(4.0)
    assert breaker.retry_after() == pytest.approx(6.0)
    assert breaker.retry_after(now=7.5) == pytest.approx(2.5)
    clock.advance(6.0)
    assert breaker.retry_after() == 0.0
    assert breaker.state == HALF_OPEN
    assert breaker.retry_after() == 0.0  # a probe permit is free
    breaker.acquire()
    assert breaker.retry_after() == 10.0  # every permit out: until it is taken back
    clock.advance(3.0)
    assert breaker.retry_after() == pytest.approx(7.0)
    breaker.force_open()
    assert breaker.retry_after() == math.inf
    clock.advance(1e6)
    assert breaker.retry_after() == math.inf
    breaker.disable()
    assert breaker.retry_after() == 0.0
    breaker.reset()
    assert breaker.retry_after() == 0.0


# -- manual control ---------------------------------------------------------------


def test_force_open_rejects_until_reset(impl):
    breaker, clock, events = make(impl, reset_timeout=1.0)
    breaker.force_open()
    assert events == [(CLOSED, FORCED_OPEN)]
    assert breaker.state == FORCED_OPEN
    assert breaker.acquire() == -1
    assert breaker.allow() is False
    assert breaker.rejected == 2
    clock.advance(1000.0)  # no reset_timeout applies
    assert breaker.state == FORCED_OPEN
    assert breaker.acquire() == -1
    breaker.record_success()
    assert breaker.state == FORCED_OPEN
    breaker.reset()
    assert breaker.state == CLOSED
    assert breaker.acquire() >= 0
    assert events == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]


def test_force_open_from_open_and_half_open(impl):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=5.0)
    trip_now(breaker)
    breaker.force_open()
    clock.advance(5.0)
    assert breaker.state == FORCED_OPEN
    assert breaker.acquire() == -1
    breaker.reset()
    trip_now(breaker)
    clock.advance(5.0)
    probe = breaker.acquire()
    breaker.force_open()
    breaker.record_success(generation=probe)
    assert breaker.state == FORCED_OPEN
    assert events == [
        (CLOSED, OPEN),
        (OPEN, FORCED_OPEN),
        (FORCED_OPEN, CLOSED),
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, FORCED_OPEN),
    ]


def test_disabled_permits_everything_and_never_trips(impl):
    breaker, _, events = make(
        impl,
        failure_threshold=1,
        failure_rate=0.1,
        slow_call_duration=0.1,
        slow_call_rate=0.1,
        window=5,
        minimum_calls=1,
    )
    breaker.disable()
    assert events == [(CLOSED, DISABLED)]
    for _ in range(200):
        token = breaker.acquire()
        assert token >= 0
        breaker.record_failure(duration=10.0, generation=token)
    assert breaker.allow() is True
    assert breaker.state == DISABLED
    assert breaker.rejected == 0
    assert breaker.total_failures == 200
    assert events == [(CLOSED, DISABLED)]
    breaker.reset()
    assert breaker.state == CLOSED
    assert events == [(CLOSED, DISABLED), (DISABLED, CLOSED)]
    breaker.record_failure()
    assert breaker.state == OPEN


def test_disable_from_open_permits_at_once(impl):
    breaker, _, events = make(impl, failure_threshold=1, reset_timeout=100.0)
    trip_now(breaker)
    breaker.disable()
    assert breaker.acquire() >= 0
    assert breaker.state == DISABLED
    assert events == [(CLOSED, OPEN), (OPEN, DISABLED)]


def test_reset_from_open_closes_with_a_fresh_window(impl):
    breaker, _, events = make(impl, failure_threshold=3, reset_timeout=100.0)
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state == OPEN
    breaker.reset()
    assert breaker.state == CLOSED
    assert breaker.acquire() >= 0
    assert breaker.window_totals() == (0, 0, 0)
    assert breaker.consecutive_failures == 0
    assert events == [(CLOSED, OPEN), (OPEN, CLOSED)]
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED  # the count restarted


def test_repeated_manual_calls_notify_once(impl):
    breaker, _, events = make(impl)
    breaker.reset()  # already CLOSED: no change
    breaker.reset()
    assert events == []
    breaker.force_open()
    breaker.force_open()
    assert events == [(CLOSED, FORCED_OPEN)]
    breaker.disable()
    breaker.disable()
    assert events == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, DISABLED)]
    breaker.reset()
    breaker.reset()
    assert events == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, DISABLED), (DISABLED, CLOSED)]


# -- holds ------------------------------------------------------------------------------


def test_a_hold_refuses_every_permit_and_reads_forced_open(impl):
    breaker, clock, events = make(impl, failure_threshold=2)
    breaker.record_failure()
    generation = breaker.generation
    breaker.hold("db")
    assert breaker.holds == frozenset({"db"})
    assert breaker.state == FORCED_OPEN
    assert events == [(CLOSED, FORCED_OPEN)]
    for _ in range(3):
        assert breaker.acquire() == -1
        assert breaker.allow() is False
    clock.advance(1e6)  # no timer ends a hold
    assert breaker.retry_after() is None  # it ends when its holder lifts it
    assert breaker.state == FORCED_OPEN
    assert breaker.rejected == 6
    breaker.lift_hold("db")
    assert breaker.holds == frozenset()
    assert events == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]
    # CLOSED as it was left, not reset: same generation, the failure still counts.
    assert breaker.state == CLOSED
    assert breaker.generation == generation
    assert breaker.acquire() == generation
    assert breaker.consecutive_failures == 1
    assert breaker.window_totals() == (1, 1, 0)
    breaker.record_failure()
    assert breaker.state == OPEN


def test_the_breaker_stays_held_until_every_holder_lifts_its_hold(impl):
    breaker, _, events = make(impl)
    breaker.hold("db")
    breaker.hold("cache")
    breaker.hold("db")  # the same holder again: still one hold
    assert breaker.holds == frozenset({"db", "cache"})
    breaker.lift_hold("db")
    assert breaker.holds == frozenset({"cache"})
    assert breaker.state == FORCED_OPEN
    assert breaker.acquire() == -1
    breaker.lift_hold("db")  # not held any more: nothing
    breaker.lift_hold("queue")  # never held: nothing
    assert breaker.state == FORCED_OPEN
    breaker.lift_hold("cache")
    assert breaker.state == CLOSED
    assert breaker.acquire() >= 0
    assert events == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]


def test_lifting_the_last_hold_leaves_an_open_breaker_open_with_its_timer(impl):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    trip_now(breaker)
    clock.advance(4.0)
    breaker.hold("db")
    clock.advance(3.0)
    breaker.lift_hold("db")
    assert breaker.state == OPEN  # not CLOSED: traffic opened it
    assert breaker.retry_after() == pytest.approx(3.0)  # its timer ran on beneath the hold
    assert breaker.acquire() == -1
    clock.advance(3.0)
    assert breaker.acquire() >= 0  # the probe, after the open time as ever
    assert events == [
        (CLOSED, OPEN),
        (OPEN, FORCED_OPEN),
        (FORCED_OPEN, OPEN),
        (OPEN, HALF_OPEN),
    ]


def test_an_open_time_that_ends_under_a_hold_gives_a_probe_once_lifted(impl):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    trip_now(breaker)
    breaker.hold("db")
    clock.advance(60.0)
    assert breaker.state == FORCED_OPEN  # no HALF_OPEN beneath a hold
    assert breaker.acquire() == -1
    breaker.lift_hold("db")
    assert breaker.retry_after() == 0.0
    probe = breaker.acquire()  # half-open: one probe, not straight to CLOSED
    assert probe >= 0
    assert breaker.state == HALF_OPEN
    assert breaker.acquire() == -1
    breaker.record_success(generation=probe)
    assert breaker.state == CLOSED
    assert events == [
        (CLOSED, OPEN),
        (OPEN, FORCED_OPEN),
        (FORCED_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


def test_holds_are_apart_from_force_open(impl):
    breaker, _, events = make(impl)
    breaker.force_open()
    breaker.hold("db")
    breaker.lift_hold("db")
    assert breaker.state == FORCED_OPEN  # the operator's force_open stands
    assert breaker.retry_after() == math.inf
    assert events == [(CLOSED, FORCED_OPEN)]  # the state read never changed
    breaker.hold("db")
    breaker.reset()  # the operator closes it beneath the hold
    assert breaker.state == FORCED_OPEN
    assert breaker.acquire() == -1
    assert breaker.holds == frozenset({"db"})
    breaker.force_open()
    breaker.lift_hold("db")
    assert breaker.state == FORCED_OPEN
    breaker.hold("db")
    breaker.disable()
    assert breaker.acquire() == -1  # a hold refuses a disabled breaker too
    breaker.lift_hold("db")
    assert breaker.state == DISABLED
    assert breaker.acquire() >= 0
    assert events == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, DISABLED)]


def test_calls_let_through_before_a_hold_still_count(impl):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    token = breaker.acquire()
    breaker.hold("db")
    clock.advance(2.0)
    breaker.record_failure(generation=token)  # trips the breaker beneath the hold
    assert breaker.state == FORCED_OPEN
    assert events == [(CLOSED, FORCED_OPEN)]  # no change of the state read
    breaker.lift_hold("db")
    assert breaker.state == OPEN
    assert breaker.retry_after() == pytest.approx(10.0)  # opened when the failure came
    assert events == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, OPEN)]


def test_a_probe_out_before_a_hold_still_answers(impl):
    breaker, clock, events = make(impl, failure_threshold=1, reset_timeout=10.0)
    trip_now(breaker)
    clock.advance(10.0)
    probe = breaker.acquire()
    breaker.hold("db")
    assert breaker.half_open_probes == 1
    breaker.record_success(generation=probe)  # closes the breaker beneath the hold
    assert breaker.state == FORCED_OPEN
    breaker.lift_hold("db")
    assert breaker.state == CLOSED
    assert events[-2:] == [(HALF_OPEN, FORCED_OPEN), (FORCED_OPEN, CLOSED)]


@pytest.mark.parametrize(
    ("name", "error"), [(None, TypeError), (3, TypeError), (b"db", TypeError), ("", ValueError)]
)
@pytest.mark.parametrize("method", ["hold", "lift_hold"])
def test_a_hold_needs_a_non_empty_str_name(impl, method, name, error):
    breaker, _, events = make(impl)
    with pytest.raises(error) as info:
        getattr(breaker, method)(name)
    assert str(info.value) == f"name must be a non-empty str, got {name!r}"
    assert breaker.holds == frozenset()
    assert breaker.state == CLOSED
    assert events == []


def test_repr_shows_the_state_beneath_and_the_holds(impl):
    breaker, _, _ = make(impl, failure_threshold=1)
    trip_now(breaker)
    breaker.hold("db")
    breaker.hold("cache")
    text = repr(breaker)
    assert "state=OPEN" in text
    assert "holds=['cache', 'db']" in text
    breaker.lift_hold("db")
    breaker.lift_hold("cache")
    assert "holds" not in repr(breaker)


def test_holds_from_many_threads(impl):
    """Each thread's own hold refuses every permit while it is on; the last lift frees it."""
    breaker, _, _ = make(impl)
    rounds = 300
    start = threading.Barrier(4, timeout=10.0)  # a deadlock guard, never a timing assertion
    broken: list[str] = []

    def holder(name: str) -> None:
        start.wait()
        for _ in range(rounds):
            breaker.hold(name)
            if breaker.acquire() != -1 or breaker.state != FORCED_OPEN:
                broken.append(name)
            breaker.lift_hold(name)

    workers = [
        threading.Thread(target=holder, args=(f"check-{i}",), daemon=True) for i in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10.0)
        assert not worker.is_alive(), "a holder deadlocked"
    assert broken == []
    assert breaker.holds == frozenset()
    assert breaker.state == CLOSED
    assert breaker.acquire() >= 0


# -- ignored outcomes and counters --------------------------------------------------


def test_record_ignored_counts_and_releases(impl):
    breaker, _, events = to_half_open(impl, half_open_calls=1)
    token = breaker.acquire()
    assert breaker.acquire() == -1
    calls = breaker.total_calls
    breaker.record_ignored(token)
    assert breaker.total_ignored == 1
    assert breaker.total_calls == calls
    assert breaker.half_open_probes == 0
    assert breaker.state == HALF_OPEN
    assert breaker.acquire() >= 0
    breaker.record_ignored()  # two-step form
    assert breaker.total_ignored == 2
    assert breaker.half_open_probes == 0
    assert events == []


def test_record_ignored_is_neither_success_nor_failure(impl):
    breaker, _, events = make(impl, failure_threshold=2)
    breaker.record_failure()
    breaker.record_ignored()  # does not reset the consecutive count
    assert breaker.consecutive_failures == 1
    assert breaker.window_totals() == (1, 1, 0)
    breaker.record_failure()
    assert breaker.state == OPEN
    assert events == [(CLOSED, OPEN)]
    assert breaker.total_ignored == 1


def test_lifetime_counters(impl):
    breaker, clock, _ = make(impl, failure_threshold=2, slow_call_duration=1.0, reset_timeout=10.0)
    assert (breaker.total_calls, breaker.total_failures, breaker.total_slow_calls) == (0, 0, 0)
    assert (breaker.rejected, breaker.total_ignored) == (0, 0)
    breaker.record_success(duration=2.0)  # slow
    breaker.record_failure()
    breaker.record_ignored()
    breaker.record_failure(duration=1.0)  # slow, trips
    assert breaker.state == OPEN
    for _ in range(3):
        assert breaker.acquire() == -1
    breaker.record_success()  # while OPEN: counted, changes nothing
    clock.advance(10.0)
    probe = breaker.acquire()
    assert breaker.acquire() == -1
    breaker.record_success(generation=probe)
    assert breaker.state == CLOSED
    assert breaker.window_totals() == (0, 0, 0)
    assert breaker.total_calls == 5
    assert breaker.total_failures == 2
    assert breaker.total_slow_calls == 2
    assert breaker.total_ignored == 1
    assert breaker.rejected == 4


# -- the listener -------------------------------------------------------------------


def test_listener_is_called_once_per_change(impl):
    breaker, clock, events = make(impl, failure_threshold=2, reset_timeout=5.0)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_failure()  # already OPEN
    for _ in range(5):
        breaker.acquire()
        breaker.current_state()
    clock.advance(5.0)
    for _ in range(3):
        assert breaker.state == HALF_OPEN
    probe = breaker.acquire()
    breaker.acquire()
    breaker.record_failure(generation=probe)
    breaker.record_failure()  # OPEN again: nothing to change
    clock.advance(5.0)
    breaker.record_success(generation=breaker.acquire())
    breaker.record_success()
    breaker.reset()
    assert events == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


def test_listener_runs_outside_the_lock(impl):
    clock = FakeClock()
    seen: list[tuple[int, int, int, int, float]] = []
    holder: list = []

    def listener(old, new):
        breaker = holder[0]
        # re-entering the breaker from the listener must not deadlock
        token = breaker.acquire()
        seen.append((old, new, breaker.state, token, breaker.retry_after()))
        breaker.window_totals()

    breaker = impl.BreakerCore(
        failure_threshold=1, reset_timeout=10.0, half_open_calls=1, clock=clock, listener=listener
    )
    holder.append(breaker)

    def scenario():
        breaker.record_failure()  # CLOSED -> OPEN
        clock.advance(10.0)
        probe = breaker.acquire()  # OPEN -> HALF_OPEN; the listener takes no second probe
        breaker.record_success(generation=probe)  # HALF_OPEN -> CLOSED
        breaker.force_open()
        breaker.disable()
        breaker.reset()

    worker = threading.Thread(target=scenario, daemon=True)
    worker.start()
    worker.join(timeout=10.0)
    assert not worker.is_alive(), "the listener deadlocked the breaker"
    assert [(old, new, state) for old, new, state, _, _ in seen] == [
        (CLOSED, OPEN, OPEN),
        (OPEN, HALF_OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED, CLOSED),
        (CLOSED, FORCED_OPEN, FORCED_OPEN),
        (FORCED_OPEN, DISABLED, DISABLED),
        (DISABLED, CLOSED, CLOSED),
    ]
    tokens = [token for _, _, _, token, _ in seen]
    assert tokens[0] == -1  # OPEN rejects
    assert tokens[1] == -1  # the only probe permit was taken by the call that moved it
    assert tokens[2] >= 0
    assert tokens[3] == -1
    assert tokens[4] >= 0
    assert tokens[5] >= 0
    assert seen[0][4] == 10.0
    assert seen[3][4] == math.inf
