"""Bad arguments: rejected by both twins, the same way.

The contract: counts are integers >= 1 unless 0 has a meaning
(``failure_threshold=0``); durations and rates are finite and > 0; waits may
be 0 or ``inf``; ratios are in (0, 1]; token counts are finite and >= 0.
Anything else -- negative, NaN, wrong type -- raises ``ValueError`` or
``TypeError`` naming the argument and the value. The compiled and the pure
twin must raise the same exception type with the same message: every case
here is run on ``load("cython")`` and ``load("python")`` and compared.
"""

from __future__ import annotations

import math
import sys
from decimal import Decimal
from fractions import Fraction

import pytest

from resilience import AdaptiveRateLimiter, Fallback, RateLimiter, RetryBudget, _core
from resilience._core import load
from resilience._core._breaker_py import MAX_HALF_OPEN_CALLS
from resilience._core._counters_py import MAX_COUNTERS
from resilience._core._sketch_py import MAX_WINDOW_COUNTS, bucket_range
from resilience._core._window_py import MAX_TIME_SLICES, MAX_WINDOW_CALLS
from resilience.budget import ErrorBudget, LatencyBudget
from resilience.testing import FakeClock

NAN = math.nan
INF = math.inf

# -- the helper ---------------------------------------------------------------------


def outcome(call, ns):
    """``("raised", type, message)``, or ``("returned", value)``."""
    try:
        value = call(ns)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return ("returned", value)


# The twins under test: both, or only the pure one with --no-c-extensions.
IN_USE = ["cython", "python"]


@pytest.fixture(autouse=True)
def twins_in_use(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    pure_only = request.config.getoption("--no-c-extensions")
    monkeypatch.setattr(sys.modules[__name__], "IN_USE", ["python"] if pure_only else IN_USE)


def on_both_twins(call):
    """Run ``call(ns)`` on the compiled and the pure twin; they must agree."""
    results = {name: outcome(call, load(name)) for name in IN_USE}
    pure = results["python"]
    compiled = results.get("cython", pure)
    assert compiled == pure, f"compiled twin: {compiled!r}; pure twin: {pure!r}"
    return pure


def rejected_by_both(call, name, value):
    """Both twins raise the same ValueError/TypeError naming ``name`` and ``value``."""
    result = on_both_twins(call)
    assert result[0] == "raised", f"{name}={value!r} was accepted"
    _, kind, message = result
    assert issubclass(kind, (ValueError, TypeError)), (kind, message)
    assert name in message
    assert repr(value) in message


def accepted_by_both(call):
    result = on_both_twins(call)
    assert result[0] == "returned", result
    return result[1]


def ids(value):
    return repr(value)


# Bad values by kind of argument.
BAD_TYPES = ["1", b"1", None, True, False, [1.0], 1 + 0j, Decimal("1")]
POSITIVE_BAD = [0, 0.0, -0.0, -1, -1e-300, -2.5, Fraction(-1, 2), NAN, INF, -INF, *BAD_TYPES]
OPTIONAL_POSITIVE_BAD = [v for v in POSITIVE_BAD if v is not None]
NON_NEGATIVE_FINITE_BAD = [-1, -1e-300, -2.5, Fraction(-1, 2), NAN, INF, -INF, *BAD_TYPES]
NON_NEGATIVE_BAD = [-1, -1e-300, -INF, NAN, *BAD_TYPES]  # waits: inf is allowed
RATIO_BAD = [0, 0.0, -0.5, 1.0000001, 2, NAN, INF, -INF, "0.5", True, False, Decimal("0.5")]
COUNT_BAD = [0, -1, -100, 1.0, 2.5, NAN, True, False, None, "3", Decimal(3)]
COUNT_OR_ZERO_BAD = [-1, -100, 0.0, 1.0, NAN, True, False, None, "3"]
NOW_BAD = [NAN, INF, -INF, "x", "1.0", True, b"1", 1 + 0j]
CLOCK_BAD = ["x", 5, 1.0, True]
CLOCK_READINGS_BAD = [NAN, INF, -INF, "x", None, True, 1 + 0j]


def cases(table):
    """Expand ``(label, call(ns, value), name, bad values)`` rows into parameters."""
    return [
        pytest.param(call, name, value, id=f"{label}-{value!r}")
        for label, call, name, values in table
        for value in values
    ]


# -- TokenBucket ---------------------------------------------------------------------


def bucket(ns):
    return ns.TokenBucket(1.0, 5.0, clock=FakeClock())


BUCKET = [
    ("TokenBucket.rate", lambda ns, v: ns.TokenBucket(v, 5.0, clock=FakeClock()), "rate",
     POSITIVE_BAD),
    ("TokenBucket.capacity", lambda ns, v: ns.TokenBucket(1.0, v, clock=FakeClock()),
     "capacity", POSITIVE_BAD),
    ("TokenBucket.tokens", lambda ns, v: ns.TokenBucket(1.0, 5.0, tokens=v, clock=FakeClock()),
     "tokens", [v for v in NON_NEGATIVE_FINITE_BAD if v is not None] + [5.5, 6]),
    ("TokenBucket.clock", lambda ns, v: ns.TokenBucket(1.0, 5.0, clock=v), "clock", CLOCK_BAD),
    ("try_acquire.tokens", lambda ns, v: bucket(ns).try_acquire(v), "tokens",
     NON_NEGATIVE_FINITE_BAD),
    ("try_acquire.now", lambda ns, v: bucket(ns).try_acquire(1.0, v), "now", NOW_BAD),
    ("wait_time.tokens", lambda ns, v: bucket(ns).wait_time(v), "tokens",
     NON_NEGATIVE_FINITE_BAD),
    ("wait_time.now", lambda ns, v: bucket(ns).wait_time(1.0, now=v), "now", NOW_BAD),
    ("reserve.tokens", lambda ns, v: bucket(ns).reserve(v), "tokens", NON_NEGATIVE_FINITE_BAD),
    ("reserve.max_wait", lambda ns, v: bucket(ns).reserve(1.0, v), "max_wait",
     NON_NEGATIVE_BAD),
    ("reserve.now", lambda ns, v: bucket(ns).reserve(1.0, 1.0, v), "now", NOW_BAD),
    ("refund.tokens", lambda ns, v: bucket(ns).refund(v), "tokens", NON_NEGATIVE_FINITE_BAD),
    ("refund.now", lambda ns, v: bucket(ns).refund(1.0, now=v), "now", NOW_BAD),
    ("set_rate.rate", lambda ns, v: bucket(ns).set_rate(v), "rate", POSITIVE_BAD),
    ("set_rate.now", lambda ns, v: bucket(ns).set_rate(2.0, now=v), "now", NOW_BAD),
    ("tokens_at.now", lambda ns, v: bucket(ns).tokens_at(v), "now", NOW_BAD),
]


@pytest.mark.parametrize(("call", "name", "value"), cases(BUCKET))
def test_token_bucket_rejects(call, name, value):
    rejected_by_both(lambda ns: call(ns, value), name, value)


@pytest.mark.parametrize(
    "method",
    [
        lambda b: b.try_acquire(-1.0),
        lambda b: b.try_acquire(1.0, now=NAN),
        lambda b: b.wait_time(NAN),
        lambda b: b.reserve(1.0, max_wait=-1.0),
        lambda b: b.reserve(1.0, now="x"),
        lambda b: b.refund(INF),
        lambda b: b.set_rate(0.0),
        lambda b: b.set_rate(3.0, now=NAN),
    ],
)
def test_token_bucket_bad_call_changes_nothing(method):
    def call(ns):
        clock = FakeClock()
        b = ns.TokenBucket(2.0, 5.0, tokens=1.0, clock=clock)
        with pytest.raises((ValueError, TypeError)):
            method(b)
        clock.advance(0.5)
        return b.available, b.rate, b.granted, b.rejected

    assert accepted_by_both(call) == (2.0, 2.0, 0, 0)


def test_token_bucket_tokens_over_capacity_names_both():
    def call(ns):
        ns.TokenBucket(1.0, 2.0, tokens=3.0, clock=FakeClock())

    rejected_by_both(call, "tokens", 3.0)
    _, _, message = on_both_twins(call)
    assert "capacity" in message


@pytest.mark.parametrize(
    "call",
    [
        lambda ns: ns.TokenBucket(1.0, 5.0, tokens=0.0, clock=FakeClock()).available,
        lambda ns: ns.TokenBucket(1.0, 5.0, tokens=5, clock=FakeClock()).available,
        lambda ns: ns.TokenBucket(Fraction(1, 2), 5, clock=FakeClock()).rate,
        lambda ns: ns.TokenBucket(1e-300, 1e300, clock=FakeClock()).capacity,
        lambda ns: bucket(ns).try_acquire(0.0),
        lambda ns: bucket(ns).try_acquire(0),
        lambda ns: bucket(ns).wait_time(1e300),
        lambda ns: bucket(ns).reserve(1.0, 0.0),
        lambda ns: bucket(ns).reserve(1.0, INF),
        lambda ns: bucket(ns).reserve(1.0, 0),
        lambda ns: bucket(ns).refund(0.0),
        lambda ns: bucket(ns).tokens_at(-1e300),
        lambda ns: bucket(ns).tokens_at(3),
        lambda ns: bucket(ns).tokens_at(Fraction(1, 4)),
    ],
)
def test_token_bucket_accepts_edge_values(call):
    accepted_by_both(call)


def test_token_bucket_huge_int_rate_is_a_value_error():
    # An int too large for a float is out of range like inf: it must be a
    # ValueError naming the argument, not a bare OverflowError.
    rejected_by_both(lambda ns: ns.TokenBucket(10**400, 5.0, clock=FakeClock()), "rate", 10**400)


def test_token_bucket_huge_int_tokens_is_a_value_error():
    rejected_by_both(lambda ns: bucket(ns).try_acquire(10**400), "tokens", 10**400)


# -- SemaphoreCore -----------------------------------------------------------------------

SEMAPHORE = [
    ("SemaphoreCore.limit", lambda ns, v: ns.SemaphoreCore(v), "limit", COUNT_BAD),
    ("set_limit.limit", lambda ns, v: ns.SemaphoreCore(2).set_limit(v), "limit", COUNT_BAD),
]


@pytest.mark.parametrize(("call", "name", "value"), cases(SEMAPHORE))
def test_semaphore_rejects(call, name, value):
    rejected_by_both(lambda ns: call(ns, value), name, value)


def test_semaphore_bad_set_limit_keeps_the_limit():
    def call(ns):
        sem = ns.SemaphoreCore(2)
        with pytest.raises((ValueError, TypeError)):
            sem.set_limit(0)
        return sem.limit, sem.try_acquire(), sem.try_acquire(), sem.try_acquire()

    assert accepted_by_both(call) == (2, True, True, False)


@pytest.mark.parametrize("limit", [1, 2**31, 2**62])
def test_semaphore_accepts_large_limits(limit):
    assert accepted_by_both(lambda ns: ns.SemaphoreCore(limit).available) == limit


# -- CountWindow and TimeWindow -------------------------------------------------------


def time_window(ns):
    return ns.TimeWindow(10.0, 5, clock=FakeClock())


WINDOWS = [
    ("CountWindow.size", lambda ns, v: ns.CountWindow(v), "size", COUNT_BAD),
    ("TimeWindow.duration", lambda ns, v: ns.TimeWindow(v, 5, clock=FakeClock()), "duration",
     POSITIVE_BAD),
    ("TimeWindow.buckets", lambda ns, v: ns.TimeWindow(10.0, v, clock=FakeClock()), "buckets",
     [v for v in COUNT_BAD if v is not None]),
    ("TimeWindow.clock", lambda ns, v: ns.TimeWindow(10.0, 5, clock=v), "clock", CLOCK_BAD),
    ("TimeWindow.record.now", lambda ns, v: time_window(ns).record(True, now=v), "now", NOW_BAD),
    ("TimeWindow.totals.now", lambda ns, v: time_window(ns).totals(v), "now", NOW_BAD),
]


@pytest.mark.parametrize(("call", "name", "value"), cases(WINDOWS))
def test_windows_reject(call, name, value):
    rejected_by_both(lambda ns: call(ns, value), name, value)


def test_time_window_bad_now_records_nothing():
    def call(ns):
        window = time_window(ns)
        with pytest.raises((ValueError, TypeError)):
            window.record(True, now=NAN)
        return window.totals()

    assert accepted_by_both(call) == (0, 0, 0)


@pytest.mark.parametrize("now", [NAN, "x"])
def test_count_window_now_is_handled_alike(now):
    # A count window does not depend on time; whatever it does with a bad
    # ``now``, both twins must do the same.
    def call(ns):
        window = ns.CountWindow(3)
        window.record(True, now=now)
        return window.totals(now=now)

    on_both_twins(call)


# -- BreakerCore ---------------------------------------------------------------------------


def breaker(ns, **kw):
    kw.setdefault("clock", FakeClock())
    return ns.BreakerCore(**kw)


def open_breaker(ns):
    """A breaker that has tripped: acquire and allow read the time."""
    b = breaker(ns, failure_threshold=1)
    b.record_failure()
    return b


def make(name):
    return lambda ns, v: breaker(ns, **{name: v})


BREAKER = [
    ("failure_threshold", make("failure_threshold"), "failure_threshold", COUNT_OR_ZERO_BAD),
    ("failure_rate", make("failure_rate"), "failure_rate", RATIO_BAD),
    ("slow_call_rate", make("slow_call_rate"), "slow_call_rate", RATIO_BAD),
    ("slow_call_duration", make("slow_call_duration"), "slow_call_duration",
     OPTIONAL_POSITIVE_BAD),
    ("window_duration", make("window_duration"), "window_duration", OPTIONAL_POSITIVE_BAD),
    ("reset_timeout", make("reset_timeout"), "reset_timeout", POSITIVE_BAD),
    ("reset_timeout_max", make("reset_timeout_max"), "reset_timeout_max",
     OPTIONAL_POSITIVE_BAD),
    ("window", make("window"), "window", COUNT_BAD),
    ("minimum_calls", make("minimum_calls"), "minimum_calls", COUNT_BAD),
    ("half_open_calls", make("half_open_calls"), "half_open_calls", COUNT_BAD),
    ("clock", lambda ns, v: ns.BreakerCore(clock=v), "clock", CLOCK_BAD),
    ("listener", make("listener"), "listener", ["x", 5, 1.0]),
    ("record_success.duration", lambda ns, v: breaker(ns).record_success(v), "duration",
     NON_NEGATIVE_FINITE_BAD),
    ("record_failure.duration", lambda ns, v: breaker(ns).record_failure(v), "duration",
     NON_NEGATIVE_FINITE_BAD),
    ("record_success.now", lambda ns, v: breaker(ns).record_success(now=v), "now", NOW_BAD),
    ("record_failure.now", lambda ns, v: breaker(ns).record_failure(now=v), "now", NOW_BAD),
    ("timed record_success.now",
     lambda ns, v: breaker(ns, window_duration=10.0).record_success(now=v), "now", NOW_BAD),
    ("acquire.now (open)", lambda ns, v: open_breaker(ns).acquire(v), "now", NOW_BAD),
    ("allow.now (open)", lambda ns, v: open_breaker(ns).allow(now=v), "now", NOW_BAD),
    ("current_state.now", lambda ns, v: breaker(ns).current_state(v), "now", NOW_BAD),
    ("retry_after.now", lambda ns, v: open_breaker(ns).retry_after(v), "now", NOW_BAD),
    ("window_totals.now", lambda ns, v: breaker(ns).window_totals(v), "now", NOW_BAD),
]


@pytest.mark.parametrize(("call", "name", "value"), cases(BREAKER))
def test_breaker_rejects(call, name, value):
    rejected_by_both(lambda ns: call(ns, value), name, value)


@pytest.mark.parametrize(("timeout", "maximum"), [(30.0, 29.9), (2.0, 1.0), (1.0, 1e-9)])
def test_breaker_reset_timeout_max_below_reset_timeout(timeout, maximum):
    def call(ns):
        breaker(ns, reset_timeout=timeout, reset_timeout_max=maximum)

    rejected_by_both(call, "reset_timeout_max", maximum)
    _, kind, message = on_both_twins(call)
    assert kind is ValueError
    assert "reset_timeout" in message.replace("reset_timeout_max", "")


@pytest.mark.parametrize(
    "kw",
    [
        {"failure_threshold": 0},
        {"failure_threshold": 1},
        {"failure_rate": None, "slow_call_rate": None, "slow_call_duration": None},
        {"failure_rate": 1.0, "slow_call_rate": 1, "slow_call_duration": 1e-9},
        {"failure_rate": 1e-9},
        {"window": 1, "minimum_calls": 1, "half_open_calls": 1},
        {"window_duration": 0.5},
        {"reset_timeout": 5.0, "reset_timeout_max": 5.0},
        {"reset_timeout": 5, "reset_timeout_max": 60},
        {"clock": None},
        {"listener": None},
        {"listener": print},
    ],
    ids=repr,
)
def test_breaker_accepts_edge_values(kw):
    assert accepted_by_both(lambda ns: repr(breaker(ns, **kw))).startswith("<BreakerCore")


def test_breaker_bad_duration_records_nothing():
    def call(ns):
        b = breaker(ns, failure_threshold=1)
        with pytest.raises((ValueError, TypeError)):
            b.record_failure(-1.0)
        return b.total_calls, b.total_failures, b.consecutive_failures, b.window_totals()

    assert accepted_by_both(call) == (0, 0, 0, (0, 0, 0))


@pytest.mark.parametrize("now", [NAN, "x"])
def test_breaker_closed_acquire_handles_now_alike(now):
    # A closed breaker lets calls through without reading the time; whatever
    # it does with a bad ``now``, both twins must do the same.
    on_both_twins(lambda ns: (breaker(ns).acquire(now), breaker(ns).allow(now)))


@pytest.mark.parametrize(
    ("method", "generation"),
    [
        ("record_failure", "0"),
        ("record_failure", 0.5),
        ("record_failure", 2**70),
        ("record_success", -2),
        ("record_success", True),
        ("release", "0"),
        ("record_ignored", 0.5),
    ],
)
def test_breaker_generation_handled_alike(method, generation):
    # A generation token that is not an int from acquire(): both twins must
    # reject it alike (naming it), or apply / ignore the outcome alike.
    def call(ns):
        b = breaker(ns, failure_threshold=1)
        getattr(b, method)(generation=generation)
        return b.current_state(), b.generation, b.total_calls, b.total_ignored

    result = on_both_twins(call)
    if result[0] == "raised":
        _, kind, message = result
        assert issubclass(kind, (ValueError, TypeError)), (kind, message)
        assert "generation" in message


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("limit", lambda ns: ns.SemaphoreCore(2**64).available),
        ("limit", lambda ns: ns.SemaphoreCore(1).set_limit(2**64)),
        ("size", lambda ns: ns.CountWindow(2**64).size),
        ("buckets", lambda ns: ns.TimeWindow(10.0, 2**64, clock=FakeClock()).buckets),
        ("failure_threshold", lambda ns: breaker(ns, failure_threshold=2**64).rejected),
        ("half_open_calls", lambda ns: breaker(ns, half_open_calls=2**64).half_open_probes),
        ("minimum_calls", lambda ns: breaker(ns, minimum_calls=2**64).window_totals()),
        ("window", lambda ns: breaker(ns, window=2**64).window_totals()),
    ],
)
def test_counts_beyond_a_machine_word(name, call):
    # The contract sets no upper bound on counts: a twin may accept a huge
    # one or refuse it, but both must do the same, and a refusal is a
    # ValueError or TypeError naming the argument and the value.
    result = on_both_twins(call)
    if result[0] == "raised":
        _, kind, message = result
        assert issubclass(kind, (ValueError, TypeError)), (kind, message)
        assert name in message
        assert repr(2**64) in message


# -- clocks that return nonsense ------------------------------------------------------------

CONSTRUCTED_WITH_CLOCK = [
    ("TokenBucket", lambda ns, clock: ns.TokenBucket(1.0, 5.0, clock=clock)),
    ("TimeWindow", lambda ns, clock: ns.TimeWindow(10.0, 5, clock=clock)),
    ("BreakerCore timed", lambda ns, clock: ns.BreakerCore(window_duration=10.0, clock=clock)),
]


@pytest.mark.parametrize("reading", CLOCK_READINGS_BAD, ids=ids)
@pytest.mark.parametrize(
    "construct", [c for _, c in CONSTRUCTED_WITH_CLOCK], ids=[n for n, _ in CONSTRUCTED_WITH_CLOCK]
)
def test_bad_clock_reading_at_construction(construct, reading):
    rejected_by_both(lambda ns: construct(ns, lambda: reading), "clock", reading)


class TurningClock:
    """Reads 0.0 until ``reading`` is set, then returns that."""

    def __init__(self):
        self.reading = 0.0

    def __call__(self):
        return self.reading


USED_WITH_CLOCK = [
    ("TokenBucket.try_acquire", lambda ns, c: ns.TokenBucket(1.0, 5.0, clock=c),
     lambda b: b.try_acquire()),
    ("TokenBucket.available", lambda ns, c: ns.TokenBucket(1.0, 5.0, clock=c),
     lambda b: b.available),
    ("TokenBucket.wait_time", lambda ns, c: ns.TokenBucket(1.0, 5.0, clock=c),
     lambda b: b.wait_time()),
    ("TokenBucket.reserve", lambda ns, c: ns.TokenBucket(1.0, 5.0, clock=c),
     lambda b: b.reserve()),
    ("TokenBucket.refund", lambda ns, c: ns.TokenBucket(1.0, 5.0, clock=c),
     lambda b: b.refund()),
    ("TokenBucket.set_rate", lambda ns, c: ns.TokenBucket(1.0, 5.0, clock=c),
     lambda b: b.set_rate(2.0)),
    ("TimeWindow.record", lambda ns, c: ns.TimeWindow(10.0, 5, clock=c),
     lambda w: w.record(True)),
    ("TimeWindow.totals", lambda ns, c: ns.TimeWindow(10.0, 5, clock=c), lambda w: w.totals()),
    ("BreakerCore.record_failure", lambda ns, c: ns.BreakerCore(clock=c),
     lambda b: b.record_failure()),
    ("BreakerCore.current_state", lambda ns, c: ns.BreakerCore(clock=c),
     lambda b: b.current_state()),
    ("BreakerCore.window_totals timed",
     lambda ns, c: ns.BreakerCore(window_duration=10.0, clock=c), lambda b: b.window_totals()),
]


@pytest.mark.parametrize("reading", CLOCK_READINGS_BAD, ids=ids)
@pytest.mark.parametrize(
    ("construct", "use"),
    [(c, u) for _, c, u in USED_WITH_CLOCK],
    ids=[n for n, _, _ in USED_WITH_CLOCK],
)
def test_bad_clock_reading_at_a_call(construct, use, reading):
    def call(ns):
        clock = TurningClock()
        obj = construct(ns, clock)
        clock.reading = reading
        use(obj)

    rejected_by_both(call, "clock", reading)


def test_bad_clock_reading_changes_nothing():
    def call(ns):
        clock = TurningClock()
        b = ns.TokenBucket(1.0, 5.0, tokens=1.0, clock=clock)
        clock.reading = NAN
        with pytest.raises(ValueError):
            b.try_acquire()
        clock.reading = 2.0
        return b.available, b.granted, b.rejected

    assert accepted_by_both(call) == (3.0, 0, 0)


# -- upper bounds where memory follows a setting ------------------------------------------
#
# Each bound is refused with a message that names the argument and states the
# bound; one past it is refused and the bound itself is accepted, alike on both
# twins.

MEMORY_BOUNDS = [
    ("CountWindow.size", lambda ns, v: ns.CountWindow(v).size, "size", MAX_WINDOW_CALLS),
    ("TimeWindow.buckets", lambda ns, v: ns.TimeWindow(1e3, v, clock=FakeClock()).buckets,
     "buckets", MAX_TIME_SLICES),
    ("Counters.size", lambda ns, v: len(ns.Counters(v)), "size", MAX_COUNTERS),
    ("BreakerCore.window", lambda ns, v: ns.BreakerCore(window=v, minimum_calls=v) and v,
     "window", MAX_WINDOW_CALLS),
    ("BreakerCore.half_open_calls",
     lambda ns, v: ns.BreakerCore(half_open_calls=v) and v, "half_open_calls",
     MAX_HALF_OPEN_CALLS),
]


@pytest.mark.parametrize(
    ("call", "name", "bound"), [pytest.param(c, n, b, id=label) for label, c, n, b in MEMORY_BOUNDS]
)
def test_memory_bounds(call, name, bound):
    assert accepted_by_both(lambda ns: call(ns, bound)) == bound
    rejected_by_both(lambda ns: call(ns, bound + 1), name, bound + 1)
    _, _, message = on_both_twins(lambda ns: call(ns, bound + 1))
    assert f"<= {bound}" in message


@pytest.mark.parametrize("relative_error", [0.5, 0.01, 0.0001])
def test_latency_window_memory_follows_slices_and_relative_error(relative_error):
    per_slice = bucket_range(relative_error)[3]
    most = MAX_WINDOW_COUNTS // per_slice

    def window(buckets):
        return lambda ns: ns.LatencyWindow(1e3, buckets, relative_error, clock=FakeClock()).buckets

    assert accepted_by_both(window(most)) == most
    rejected_by_both(window(most + 1), "buckets", most + 1)
    _, _, message = on_both_twins(window(most + 1))
    assert f"buckets must be <= {most} with relative_error={relative_error!r}" in message


def test_the_default_latency_window_fits_at_the_finest_relative_error():
    assert accepted_by_both(lambda ns: ns.LatencyWindow(60.0, 6, 0.0001).buckets) == 6


# -- slices of time windows: at least a microsecond wide -------------------------------------

NARROW_SLICES = [
    # (label, call, the argument blamed, its value, the other one named when it was given)
    ("TimeWindow default 10 slices", lambda ns, v: ns.TimeWindow(v, clock=FakeClock()),
     "duration", [1e-15, 9.9e-6, 5e-324], None),
    ("TimeWindow 100000 slices",
     lambda ns, v: ns.TimeWindow(v, MAX_TIME_SLICES, clock=FakeClock()),
     "duration", [0.09, 1e-3], "buckets"),
    ("LatencyWindow 6 slices", lambda ns, v: ns.LatencyWindow(v, 6, clock=FakeClock()),
     "duration", [1e-9, 5.9e-6], "buckets"),
    ("BreakerCore window_duration", lambda ns, v: ns.BreakerCore(window_duration=v),
     "window_duration", [1e-9, 9.9e-6], None),
]


@pytest.mark.parametrize(
    ("call", "name", "value", "other"),
    [
        pytest.param(call, name, value, other, id=f"{label}-{value!r}")
        for label, call, name, values, other in NARROW_SLICES
        for value in values
    ],
)
def test_slices_narrower_than_a_microsecond_are_refused(call, name, value, other):
    rejected_by_both(lambda ns: call(ns, value), name, value)
    _, _, message = on_both_twins(lambda ns: call(ns, value))
    assert "1e-06 s" in message
    if other is None:
        assert "buckets" not in message  # the window chose the count, not the user
    else:
        assert f"{other}=" in message


@pytest.mark.parametrize(
    "call",
    [
        lambda ns: ns.TimeWindow(1e-5, clock=FakeClock()).width,
        lambda ns: ns.TimeWindow(0.1, MAX_TIME_SLICES, clock=FakeClock()).width,
        lambda ns: ns.LatencyWindow(6e-6, 6, clock=FakeClock()).width,
    ],
)
def test_microsecond_slices_are_accepted(call):
    assert accepted_by_both(call) == pytest.approx(1e-6)


# -- token buckets hold at least one token -------------------------------------------------------


@pytest.mark.parametrize("capacity", [0.5, 0.999999, 1e-300, Fraction(1, 2)], ids=ids)
def test_token_bucket_that_cannot_hold_one_token_is_refused(capacity):
    rejected_by_both(
        lambda ns: ns.TokenBucket(5.0, capacity, clock=FakeClock()), "capacity", capacity
    )


@pytest.mark.parametrize("capacity", [1, 1.0, 1.5])
def test_token_bucket_of_one_token_or_more_is_accepted(capacity):
    assert accepted_by_both(
        lambda ns: ns.TokenBucket(5.0, capacity, clock=FakeClock()).try_acquire()
    )


# -- the policies: the message names the argument the user passed --------------------------------


def on_twin(ns, build):
    """``build()`` with the policies taking their core from the twin ``ns``."""
    saved = _core.SELECTED
    _core.SELECTED = ns
    try:
        return build()
    finally:
        _core.SELECTED = saved


def policy_rejected(build, name, value):
    """Built on either twin, ``build()`` raises alike, naming ``name`` and ``value``."""
    rejected_by_both(lambda ns: on_twin(ns, build), name, value)
    _, _, message = on_both_twins(lambda ns: on_twin(ns, build))
    return message


def policy_accepted(build):
    return accepted_by_both(lambda ns: on_twin(ns, build))


@pytest.mark.parametrize("burst", [0.5, 0.999, 1e-300, 0, -1, NAN, INF, "1"], ids=ids)
@pytest.mark.parametrize("kind", ["RateLimiter", "AdaptiveRateLimiter"])
def test_limiter_burst_below_one_token_is_refused(kind, burst):
    def build():
        if kind == "RateLimiter":
            return RateLimiter(5, burst=burst)
        return AdaptiveRateLimiter(5, burst=burst, min_rate=1, max_rate=10)

    policy_rejected(build, "burst", burst)


@pytest.mark.parametrize("rate", [0.5, 1e-300], ids=ids)
def test_limiter_rate_below_one_without_burst_blames_the_rate(rate):
    # The burst defaults to the rate: the user passed no burst, so the
    # message is about the rate, and says how to get a usable bucket.
    message = policy_rejected(lambda: RateLimiter(rate), "rate", rate)
    assert message.startswith("rate must be >= 1 when burst is not given")
    assert "burst=1" in message


def test_limiter_rate_below_one_with_a_burst_is_accepted():
    def build():
        limiter = RateLimiter(0.5, burst=1, clock=FakeClock())
        return limiter.rate, limiter.stats.burst, limiter.try_acquire(), limiter.try_acquire()

    assert policy_accepted(build) == (0.5, 1.0, True, False)


@pytest.mark.parametrize(
    ("build", "name", "value"),
    [
        # rate / per overflows or underflows: the message names per (and rate).
        (lambda: RateLimiter(10, per=1e-320), "per", 1e-320),
        (lambda: RateLimiter(10, per=5e-324), "per", 5e-324),
        (lambda: RateLimiter(1e-300, per=1e300, burst=1), "per", 1e300),
        (lambda: AdaptiveRateLimiter(10, per=1e-320, min_rate=1, max_rate=20), "per", 1e-320),
        # the adaptive rate moves between min_rate and max_rate: both must fit
        (lambda: AdaptiveRateLimiter(1, per=1e-10, min_rate=1, max_rate=1e308), "max_rate",
         1e308),
        (lambda: AdaptiveRateLimiter(1, per=1e300, min_rate=1e-300, max_rate=2, burst=1),
         "min_rate", 1e-300),
    ],
)
def test_limiter_tokens_per_second_out_of_range_names_what_was_passed(build, name, value):
    message = policy_rejected(build, name, value)
    assert "got inf" not in message  # a derived value the user did not pass


def test_adaptive_limiter_min_rate_above_max_rate_blames_them():
    message = policy_rejected(
        lambda: AdaptiveRateLimiter(10, min_rate=20, max_rate=5), "min_rate", 20
    )
    assert message == "min_rate must be <= max_rate (5), got 20"


def test_adaptive_limiter_rate_outside_its_bounds_blames_the_rate():
    message = policy_rejected(lambda: AdaptiveRateLimiter(30, min_rate=1, max_rate=20), "rate", 30)
    assert message.startswith("rate must be within")


@pytest.mark.parametrize("handler", [3, None, "fallback"], ids=ids)
def test_fallback_handler_must_be_callable_and_says_only_that(handler):
    message = policy_rejected(lambda: Fallback(handler), "handler", handler)
    assert message == f"handler must be callable, got {handler!r}"


@pytest.mark.parametrize("window", [1e12, 1e308, 366 * 86400.0 + 1], ids=ids)
def test_error_budget_window_above_366_days_is_refused(window):
    message = policy_rejected(lambda: ErrorBudget(0.99, window=window), "window", window)
    assert "31622400.0" in message


@pytest.mark.parametrize("window", [5.9e-5, 1e-9, 5e-324], ids=ids)
def test_error_budget_window_with_slices_under_a_microsecond_is_refused(window):
    message = policy_rejected(lambda: ErrorBudget(0.99, window=window), "window", window)
    assert "1e-06 s" in message
    assert "duration" not in message  # the core window's argument, not the user's


@pytest.mark.parametrize("window", [6e-5, 366 * 86400.0])
def test_error_budget_window_bounds_are_accepted(window):
    assert policy_accepted(lambda: ErrorBudget(0.99, window=window, clock=FakeClock()).window) == (
        window
    )


def test_latency_budget_narrow_slices_name_window_and_buckets():
    message = policy_rejected(lambda: LatencyBudget(1.0, window=1e-3, buckets=1001), "window", 1e-3)
    assert "buckets=1001" in message
    assert "duration" not in message


def test_latency_budget_memory_names_buckets_and_relative_error():
    message = policy_rejected(
        lambda: LatencyBudget(1.0, window=60.0, buckets=7, relative_error=0.0001), "buckets", 7
    )
    assert "relative_error=0.0001" in message


def test_retry_budget_narrow_slices_name_ttl():
    message = policy_rejected(lambda: RetryBudget(ttl=1e-9), "ttl", 1e-9)
    assert "duration" not in message
