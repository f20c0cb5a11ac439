"""Error and latency budgets (resilience.budget), on both twins of the core.

Most tests use ``slo = 0.96875``: ``1 - slo`` is 1/32, a power of two, so the
burn rates of simple traffic are exact floats (9 bad in 20 is 14.4, 3 in 16
is 6.0, 1 in 32 is 1.0) and "at or above the threshold" can be tested at the
threshold itself.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import random
import sys
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilience.budget import (
    ALERT_RULES,
    AlertRule,
    BurnAlert,
    ErrorBudget,
    ErrorBudgetStats,
    LatencyBudget,
    LatencyBudgetStats,
)
from resilience.testing import FakeClock

SLO = 0.96875  # 1 - SLO == 1/32
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
PAGE_FAST, PAGE_SLOW, TICKET = ALERT_RULES


def budget(clock, slo=SLO, **kwargs):
    return ErrorBudget(slo, clock=clock, **kwargs)


def firing(b):
    return [(a.severity, a.long_window, a.short_window, a.burn_rate) for a in b.alerts()]


def key(rule):
    return (rule.severity, rule.long_window, rule.short_window, rule.burn_rate)


def test_runs_on_the_twin_under_test(policy_impl):
    b = ErrorBudget(0.99, clock=FakeClock())
    assert all(type(ring) is policy_impl.TimeWindow for ring in (b._fine, b._coarse))
    lb = LatencyBudget(1.0, window=60.0, clock=FakeClock())
    assert type(lb._slices) is policy_impl.LatencyWindow
    assert type(LatencyBudget(1.0)._sketch) is policy_impl.LatencySketch


# -- ErrorBudget formulas ------------------------------------------------------------------


def test_an_empty_budget(policy_impl):
    b = budget(FakeClock())
    assert b.remaining == 1.0
    assert b.burn_rate(300) == 0.0
    assert b.burn_rate(30 * DAY) == 0.0
    assert b.exhausted is False
    assert b.alerts() == []
    assert b.slo == SLO
    assert b.window == 30 * DAY
    assert b.rules == ALERT_RULES
    assert b.name is None


@pytest.mark.parametrize(
    ("good", "bad", "remaining"),
    [
        (1000, 0, 1.0),
        (990, 10, 0.68),  # 1% bad spends 32% of a 1/32 budget
        (31, 1, 0.0),  # exactly spent
        (63, 1, 0.5),
        (0, 5, -31.0),  # all bad: 32 times the budget
        (1, 1, -15.0),
    ],
)
def test_remaining(policy_impl, good, bad, remaining):
    clock = FakeClock()
    b = budget(clock)
    if good:
        b.record(True, good)
    if bad:
        b.record(False, bad)
    assert b.remaining == pytest.approx(remaining, abs=1e-12)
    assert b.remaining == 1.0 - (bad / (good + bad)) / (1.0 - SLO)
    assert b.exhausted is (remaining <= 0.0)
    assert b.stats.remaining == b.remaining


def test_remaining_with_a_common_slo(policy_impl):
    b = ErrorBudget(0.999, clock=FakeClock())
    b.record(True, 9995)
    b.record(False, 5)
    assert b.remaining == pytest.approx(0.5)
    b.record(False, 5)
    assert b.remaining == pytest.approx(1 - (10 / 10005) / 0.001)
    assert not b.exhausted
    b.record(False, 5)
    assert b.exhausted


def test_burn_rate(policy_impl):
    clock = FakeClock()
    b = budget(clock)
    b.record(True, 90)
    b.record(False, 10)  # 10% bad: burns 3.2 times the sustainable rate
    assert b.burn_rate(60) == 0.1 / (1 / 32)
    assert b.burn_rate(60) == pytest.approx(3.2)
    clock.advance(10 * MINUTE)
    assert b.burn_rate(300) == 0.0  # the last five minutes saw nothing
    b.record(True, 100)
    assert b.burn_rate(300) == 0.0
    assert b.burn_rate(3600) == pytest.approx(10 / 200 * 32)
    assert b.remaining == pytest.approx(1 - 10 / 200 * 32)
    assert b.burn_rate(1e9) == b.burn_rate(30 * DAY)  # at most the whole window


def test_record_defaults_and_truthiness(policy_impl):
    b = budget(FakeClock())
    b.record(True)
    b.record(1)
    b.record(0)
    b.record(None, n=2)
    assert b.stats.total == 5
    assert b.stats.bad == 3


# -- days of traffic -----------------------------------------------------------------------


@pytest.mark.parametrize("days", [3, 30])
def test_days_of_traffic_minute_by_minute(policy_impl, days):
    clock = FakeClock()
    b = budget(clock)
    minutes = int(days * DAY / MINUTE)
    # What a record costs as the window turns over is a speed claim: the
    # benchmark "ErrorBudget.record(), a minute apart" measures it.
    for _ in range(minutes):
        b.record(True, 99)
        b.record(False)
        clock.advance(MINUTE)
    stats = b.stats
    # the clock stands at the end of the last minute: for 30 days, the first
    # hour has just left the window
    left = 60 if days == 30 else 0
    assert stats.total == 100 * (minutes - left)
    assert stats.bad == minutes - left
    assert b.remaining == 1.0 - 0.01 / (1 / 32)
    for seconds in (300, 3600, 21600, 259200, 30 * DAY):
        assert b.burn_rate(seconds) == 0.01 / (1 / 32)
    assert b.alerts() == []


def test_a_month_of_steady_failure_exhausts_and_tickets(policy_impl):
    clock = FakeClock()
    b = budget(clock)
    log = []
    b.on_exhausted(log.append)
    for _ in range(30 * 24):
        # 1/32 bad: burn rate 1, the budget spent exactly over the window; the
        # failures come first each hour, so it never recovers in between
        b.record(False, 2)
        b.record(True, 62)
        clock.advance(HOUR)
    assert log == [b]  # on the first hour, and once
    assert b.remaining == 0.0
    assert b.exhausted
    assert firing(b) == [key(TICKET)]


# -- alert rules ---------------------------------------------------------------------------


def test_the_workbook_rules():
    workbook = (
        AlertRule("page", 3600.0, 300.0, 14.4),
        AlertRule("page", 21600.0, 1800.0, 6.0),
        AlertRule("ticket", 259200.0, 21600.0, 1.0),
    )
    assert workbook == ALERT_RULES
    assert issubclass(BurnAlert, AlertRule)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAGE_FAST.burn_rate = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("bad", "total", "expected"),
    [
        (9, 20, [PAGE_FAST, PAGE_SLOW, TICKET]),  # 14.4: exactly the fast page's rate
        (9, 21, [PAGE_SLOW, TICKET]),  # 13.7
        (3, 16, [PAGE_SLOW, TICKET]),  # 6.0: exactly the slow page's rate
        (3, 17, [TICKET]),  # 5.6
        (1, 32, [TICKET]),  # 1.0: exactly the ticket's rate
        (1, 33, []),  # 0.97
        (0, 10, []),
        (5, 5, [PAGE_FAST, PAGE_SLOW, TICKET]),  # 32
    ],
)
def test_a_rule_fires_at_or_above_its_rate(policy_impl, bad, total, expected):
    clock = FakeClock(1000.0)
    b = budget(clock)
    if total > bad:
        b.record(True, total - bad)
    if bad:
        b.record(False, bad)
    rate = bad / total / (1 / 32)
    alerts = b.alerts()
    assert [key(a) for a in alerts] == [key(rule) for rule in expected]  # in rule order
    for alert in alerts:
        assert isinstance(alert, BurnAlert)
        assert alert.long_burn_rate == rate
        assert alert.short_burn_rate == rate
        assert alert.long_burn_rate >= alert.burn_rate


@pytest.mark.parametrize("rule", ALERT_RULES, ids=["page-1h", "page-6h", "ticket-3d"])
def test_the_short_window_alone_does_not_fire(policy_impl, rule):
    clock = FakeClock()
    b = budget(clock, rules=(rule,))
    b.record(True, 1000)  # good traffic early in the long window
    clock.advance(rule.long_window / 2)  # out of the short window, in the long one
    b.record(True, 20 - 9)
    b.record(False, 9)  # 14.4 over the short window
    assert b.burn_rate(rule.short_window) == 14.4
    assert b.burn_rate(rule.long_window) == pytest.approx(9 / 1020 * 32)
    assert b.burn_rate(rule.long_window) < rule.burn_rate
    assert b.alerts() == []
    # the same burst with nothing before it fires
    fresh = budget(FakeClock(), rules=(rule,))
    fresh.record(True, 11)
    fresh.record(False, 9)
    assert [key(a) for a in fresh.alerts()] == [key(rule)]


@pytest.mark.parametrize("rule", ALERT_RULES, ids=["page-1h", "page-6h", "ticket-3d"])
def test_the_long_window_alone_does_not_fire(policy_impl, rule):
    clock = FakeClock()
    b = budget(clock, rules=(rule,))
    b.record(False, 100)  # a burst of failures early in the long window
    clock.advance(rule.long_window / 2)
    b.record(True, 100)  # and a clean short window
    assert b.burn_rate(rule.long_window) == 16.0
    assert b.burn_rate(rule.short_window) == 0.0
    assert b.alerts() == []
    # failures in the short window at the rate make it fire
    b.record(False, 100)
    short = b.burn_rate(rule.short_window)
    assert short >= rule.burn_rate
    assert [key(a) for a in b.alerts()] == [key(rule)]


def test_a_page_stops_once_the_short_window_is_clean(policy_impl):
    clock = FakeClock()
    b = budget(clock, rules=(PAGE_FAST,))
    history = {}
    for minute in range(200):
        if 120 <= minute < 150:
            b.record(False, 100)  # half an hour of total failure
        else:
            b.record(True, 100)
        history[minute] = (bool(b.alerts()), b.burn_rate(3600), b.burn_rate(300))
        clock.advance(MINUTE)
    assert not any(history[m][0] for m in range(146))
    # minute 145: the short window burns at 32, the hour at 26/60 * 32 = 13.9
    assert history[145] == (False, 26 / 60 * 32, 32.0)
    # minute 146: 27 bad minutes in the hour, 14.4 exactly
    assert history[146] == (True, 14.4, 32.0)
    assert all(history[m][0] for m in range(146, 152))
    # the burn stopped after minute 149; at 151 the five minutes 147 .. 151 hold
    # three bad ones (19.2), at 152 two (12.8): the page stops though the hour
    # still burns at 16
    assert history[151] == (True, 16.0, 3 / 5 * 32)
    assert history[152] == (False, 16.0, 2 / 5 * 32)
    assert history[154] == (False, 16.0, 0.0)  # the short window is clean
    assert not any(history[m][0] for m in range(152, 200))


def test_alerts_with_custom_rules(policy_impl):
    rule = AlertRule("warn", 120.0, 60.0, 2.0)
    b = budget(FakeClock(), rules=[rule])
    assert b.rules == (rule,)
    b.record(True, 15)
    b.record(False, 1)  # 1/16: burn rate 2
    (alert,) = b.alerts()
    assert alert == BurnAlert("warn", 120.0, 60.0, 2.0, long_burn_rate=2.0, short_burn_rate=2.0)
    assert budget(FakeClock(), rules=()).alerts() == []


# -- on_exhausted --------------------------------------------------------------------------


def test_on_exhausted_fires_once_per_exhaustion(policy_impl):
    clock = FakeClock()
    b = budget(clock, window=HOUR)
    log = []

    @b.on_exhausted
    def listener(which):
        log.append((which, which.remaining))

    assert callable(listener)
    b.record(True, 31)
    assert log == []
    b.record(False)  # 1 in 32: exactly spent
    assert log == [(b, 0.0)]
    b.record(False, 10)
    b.record(True)
    b.record(False)
    assert len(log) == 1  # still exhausted: no new call
    b.record(True, 10_000)  # recovered by good traffic
    assert not b.exhausted
    b.record(False, 1000)
    assert len(log) == 2
    assert log[1][0] is b
    assert log[1][1] <= 0.0


def test_on_exhausted_again_after_the_window_forgets(policy_impl):
    clock = FakeClock()
    b = budget(clock, window=HOUR)
    log = []
    b.on_exhausted(log.append)
    b.record(False)
    assert log == [b]
    clock.advance(2 * HOUR)  # the failure has left the window
    assert b.remaining == 1.0
    assert not b.exhausted
    b.record(False)  # this record exhausts the budget again
    assert b.exhausted
    assert log == [b, b]


def test_on_exhausted_after_reset(policy_impl):
    b = budget(FakeClock())
    log = []
    b.on_exhausted(log.append)
    b.record(False)
    b.reset()
    assert b.remaining == 1.0
    assert b.stats.total == 0
    b.record(False)
    assert log == [b, b]


def test_a_raising_callback_is_logged_not_propagated(policy_impl, caplog):
    caplog.set_level(logging.DEBUG, logger="resilience")
    b = budget(FakeClock())
    calls = []

    def broken(_):
        calls.append("broken")
        raise RuntimeError("listener bug")

    b.on_exhausted(broken)
    b.on_exhausted(lambda _: calls.append("after"))
    b.record(False)  # does not raise
    assert calls == ["broken", "after"]
    assert b.stats.bad == 1
    # the listener's failure, not the exhaustion the budget logs too
    logged = [r for r in caplog.records if r.name == "resilience" and r.exc_info]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert logged[0].exc_info[0] is RuntimeError


def test_on_exhausted_rejects_non_callables(policy_impl):
    b = budget(FakeClock())
    with pytest.raises(TypeError, match="callback must be callable"):
        b.on_exhausted(5)


# -- windows and rings ---------------------------------------------------------------------


def test_fine_ring_has_minute_precision(policy_impl):
    clock = FakeClock()
    b = budget(clock)
    b.record(False)
    clock.advance(299.5)  # minute 4: five minute-slices (0 .. 4) hold it
    assert b.burn_rate(300) == 32.0
    clock.advance(0.5)  # minute 5: slices 1 .. 5
    assert b.burn_rate(300) == 0.0
    assert b.burn_rate(301) == 32.0  # six slices
    assert b.burn_rate(61) == 0.0
    clock.advance(6 * HOUR - 300 - 0.5)
    assert b.burn_rate(6 * HOUR) == 32.0  # 360 minutes, the whole fine ring
    clock.advance(0.5)
    assert b.burn_rate(6 * HOUR) == 0.0


def test_coarse_ring_has_hour_precision(policy_impl):
    clock = FakeClock()
    b = budget(clock)
    b.record(False)
    clock.advance(6 * HOUR)
    assert b.burn_rate(6 * HOUR) == 0.0  # fine: the minute is six hours old
    # beyond six hours, whole hours: seven hour-slices, 0 .. 6, still hold it
    assert b.burn_rate(6 * HOUR + 1) == 32.0
    clock.advance(HOUR - 0.5)
    assert b.burn_rate(6 * HOUR + 1) == 32.0  # 6.99 h old, in hour-slice 0
    clock.advance(0.5)
    assert b.burn_rate(6 * HOUR + 1) == 0.0
    assert b.burn_rate(7 * HOUR + 1) == 32.0
    assert b.remaining == -31.0
    clock.advance(30 * DAY - 7 * HOUR - 0.5)
    assert b.remaining == -31.0
    clock.advance(0.5)  # 30 days: hour-slice 0 leaves the window
    assert b.remaining == 1.0
    assert b.burn_rate(30 * DAY) == 0.0


def test_a_window_shorter_than_six_hours(policy_impl):
    clock = FakeClock()
    b = budget(clock, window=1800.0)  # 60 slices of 30 s
    assert b._coarse is None
    assert b._fine.buckets == 60
    assert b._fine.width == 30.0
    b.record(False)
    clock.advance(29.5)
    assert b.burn_rate(30) == 32.0
    clock.advance(0.5)
    assert b.burn_rate(30) == 0.0
    assert b.burn_rate(60) == 32.0
    assert b.burn_rate(3 * DAY) == 32.0  # capped at the window
    clock.advance(1800 - 30 - 0.5)
    assert b.remaining == -31.0
    clock.advance(0.5)
    assert b.remaining == 1.0
    assert firing(b) == []


@pytest.mark.parametrize(
    ("window", "fine"),
    [
        (100.0, (60, 100 / 60)),
        (3600.0, (60, 60.0)),
        (5000.0, (84, 5000 / 84)),
        (6 * HOUR, (360, 60.0)),
    ],
)
def test_short_windows_use_one_fine_ring(policy_impl, window, fine):
    b = budget(FakeClock(), window=window)
    assert b._coarse is None
    assert (b._fine.buckets, b._fine.width) == fine
    assert b._fine.width <= MINUTE
    assert b._fine.duration == window


@pytest.mark.parametrize(
    ("window", "coarse"),
    [
        (6 * HOUR + 1, (7, (6 * HOUR + 1) / 7)),
        (6.5 * HOUR, (7, 6.5 * HOUR / 7)),
        (DAY, (24, HOUR)),
        (7 * DAY, (168, HOUR)),
        (30 * DAY, (720, HOUR)),
    ],
)
def test_long_windows_add_a_coarse_ring(policy_impl, window, coarse):
    b = budget(FakeClock(), window=window)
    assert (b._fine.buckets, b._fine.width, b._fine.duration) == (360, 60.0, 6 * HOUR)
    assert b._coarse is not None
    assert (b._coarse.buckets, b._coarse.width) == coarse
    assert b._coarse.width <= HOUR
    assert b._coarse.duration == window


def test_a_one_day_window(policy_impl):
    clock = FakeClock()
    b = budget(clock, window=DAY)
    b.record(False)
    clock.advance(HOUR - 0.5)
    assert b.burn_rate(HOUR) == 32.0  # fine: minute 59
    clock.advance(0.5)
    assert b.burn_rate(HOUR) == 0.0
    assert b.burn_rate(12 * HOUR) == 32.0  # coarse: twelve hour-slices
    clock.advance(11 * HOUR - 0.5)
    assert b.burn_rate(12 * HOUR) == 32.0
    clock.advance(0.5)
    assert b.burn_rate(12 * HOUR) == 0.0
    assert b.remaining == -31.0
    clock.advance(12 * HOUR - 0.5)
    assert b.remaining == -31.0
    clock.advance(0.5)
    assert b.remaining == 1.0


def test_time_going_backwards_counts_as_now(policy_impl):
    clock = FakeClock(10 * HOUR)
    b = budget(clock)
    b.record(True, 31)
    clock._now = 0.0  # a clock that jumped back
    b.record(False)
    assert b.remaining == 0.0
    assert b.burn_rate(60) == 1.0


# -- memory and stats ----------------------------------------------------------------------


def test_memory_of_a_default_budget_compiled(twins, monkeypatch):
    from resilience import _core

    monkeypatch.setattr(_core, "SELECTED", twins[0])
    b = ErrorBudget(0.999)
    # two rings of (calls, failures, slow) in 8-byte counters:
    # 360 one-minute slices + 720 one-hour slices
    rings = 3 * 8 * (360 + 720)
    assert rings == 25_920
    size = sys.getsizeof(b)
    assert rings < size < rings + 1024  # 26,168 bytes here
    b.record(True, 10**6)
    assert sys.getsizeof(b) == size


@pytest.mark.parametrize("kind", ["cython", "python"])
def test_memory_of_a_default_budget_traced(twins, monkeypatch, kind):
    from resilience import _core

    monkeypatch.setattr(_core, "SELECTED", twins[0] if kind == "cython" else twins[1])
    ErrorBudget(0.999)  # anything allocated once, on first use
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        budgets = [ErrorBudget(0.999) for _ in range(20)]
        each = (tracemalloc.get_traced_memory()[0] - before) / len(budgets)
    finally:
        tracemalloc.stop()
    # about 26.5 KB each on both twins here
    assert 25_920 < each < 32 * 1024


def test_error_budget_stats(policy_impl):
    clock = FakeClock()
    b = budget(clock, name="checkout")
    b.record(True, 60)
    b.record(False, 4)
    stats = b.stats
    assert isinstance(stats, ErrorBudgetStats)
    assert stats == ErrorBudgetStats(
        name="checkout",
        slo=SLO,
        window=30 * DAY,
        total=64,
        bad=4,
        remaining=1.0 - (4 / 64) * 32,
        exhausted=True,
    )
    assert dataclasses.asdict(stats)["remaining"] == -1.0
    assert "checkout" in repr(b)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "kind", "fragment"),
    [
        ({"slo": 0}, ValueError, "slo"),
        ({"slo": 0.0}, ValueError, "slo"),
        ({"slo": 1}, ValueError, "slo must be in (0, 1), got 1"),
        ({"slo": 1.0}, ValueError, "slo must be in (0, 1), got 1.0"),
        ({"slo": 1.5}, ValueError, "slo"),
        ({"slo": -0.5}, ValueError, "slo"),
        ({"slo": math.nan}, ValueError, "slo must not be NaN"),
        ({"slo": math.inf}, ValueError, "slo"),
        ({"slo": True}, TypeError, "slo"),
        ({"slo": "0.99"}, TypeError, "slo"),
        ({"slo": 0.99, "window": 0}, ValueError, "window"),
        ({"slo": 0.99, "window": -1.0}, ValueError, "window"),
        ({"slo": 0.99, "window": math.inf}, ValueError, "window must be a finite number > 0"),
        ({"slo": 0.99, "window": math.nan}, ValueError, "window must not be NaN"),
        ({"slo": 0.99, "window": "30d"}, TypeError, "window"),
        ({"slo": 0.99, "rules": None}, TypeError, "rules"),
        ({"slo": 0.99, "rules": 5}, TypeError, "rules"),
        ({"slo": 0.99, "rules": [("page", 3600, 300, 14.4)]}, TypeError, "rules"),
        ({"slo": 0.99, "rules": "page"}, TypeError, "rules"),
        ({"slo": 0.99, "rules": [AlertRule("x", 0.0, 1.0, 1.0)]}, ValueError, "long_window"),
        ({"slo": 0.99, "rules": [AlertRule("x", 1.0, -1.0, 1.0)]}, ValueError, "short_window"),
        ({"slo": 0.99, "rules": [AlertRule("x", 1.0, 1.0, math.nan)]}, ValueError, "burn_rate"),
        ({"slo": 0.99, "name": 5}, TypeError, "name"),
        ({"slo": 0.99, "clock": "monotonic"}, TypeError, "clock"),
    ],
)
def test_error_budget_bad_construction(policy_impl, kwargs, kind, fragment):
    with pytest.raises(kind) as raised:
        ErrorBudget(**kwargs)
    assert type(raised.value) is kind
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("n", "kind", "fragment"),
    [
        (0, ValueError, "n must be an integer >= 1, got 0"),
        (-1, ValueError, "n must be an integer >= 1, got -1"),
        (1.0, TypeError, "n must be an integer, got 1.0"),
        (True, TypeError, "n must be an integer, got True"),
        ("1", TypeError, "n must be an integer"),
    ],
)
def test_error_budget_bad_record(policy_impl, n, kind, fragment):
    b = budget(FakeClock())
    b.record(True)
    with pytest.raises(kind, match=fragment):
        b.record(False, n)
    assert b.stats.total == 1  # nothing recorded


@pytest.mark.parametrize(
    ("seconds", "kind"),
    [
        (0, ValueError),
        (-60.0, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
        ("1h", TypeError),
    ],
)
def test_error_budget_bad_burn_rate(policy_impl, seconds, kind):
    with pytest.raises(kind, match=r"^seconds"):
        budget(FakeClock()).burn_rate(seconds)


# -- LatencyBudget -------------------------------------------------------------------------


def exact(data, q):
    ordered = sorted(data)
    return ordered[math.floor(q * (len(ordered) - 1))]


# policy_impl only swaps the core module for the test: the same for every example
FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@FIXTURE_OK
@given(
    data=st.lists(st.floats(1e-6, 100.0), min_size=1, max_size=300),
    q=st.floats(0.0, 1.0),
    a=st.sampled_from([0.01, 0.05, 0.001]),
)
def test_latency_quantile_within_relative_error(policy_impl, data, q, a):
    lb = LatencyBudget(1.0, relative_error=a)
    for value in data:
        lb.record(value)
    assert lb.relative_error == a
    assert lb.count == len(data)
    true = exact(data, q)
    assert abs(lb.quantile(q) - true) <= a * true * (1 + 1e-12)


@FIXTURE_OK
@given(
    data=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=100),
    threshold=st.floats(1e-3, 10.0),
    target=st.sampled_from([0.5, 0.9, 0.99, 0.999, 1.0, 0.0]),
)
def test_latency_exhausted_iff_target_quantile_above_threshold(
    policy_impl, data, threshold, target
):
    lb = LatencyBudget(threshold, quantile=target)
    for value in data:
        lb.record(value)
    observed = lb.quantile(target)
    assert lb.exhausted is (observed > threshold)
    assert lb.stats.exhausted is lb.exhausted
    assert lb.stats.observed == observed


def test_latency_exhausted_at_p99(policy_impl):
    lb = LatencyBudget(0.5)
    assert lb.target_quantile == 0.99
    assert lb.exhausted is False  # nothing recorded
    for _ in range(99):
        lb.record(0.1)
    lb.record(5.0)
    # 100 values: p99 is rank floor(0.99 * 99) = 98, a fast one
    assert lb.quantile(0.99) == pytest.approx(0.1, rel=0.01)
    assert not lb.exhausted
    lb.record(5.0)
    lb.record(5.0)
    # 102 values: rank floor(0.99 * 101) = 99, the first slow one
    assert lb.quantile(0.99) == pytest.approx(5.0, rel=0.01)
    assert lb.exhausted


def test_latency_threshold_is_strict(policy_impl):
    lb = LatencyBudget(1.0, quantile=0.5)
    lb.record(1.0)  # one value: answered exactly (clamped to min and max)
    assert lb.quantile(0.5) == 1.0
    assert not lb.exhausted
    assert LatencyBudget(0.999, quantile=0.5).exhausted is False
    over = LatencyBudget(0.999, quantile=0.5)
    over.record(1.0)
    assert over.exhausted


def test_latency_windowed_forgets_old_slices(policy_impl):
    clock = FakeClock()
    # 10 s slices; the target is the maximum
    lb = LatencyBudget(1.0, quantile=1.0, window=60.0, buckets=6, clock=clock)
    lb.record(5.0)  # slice [0, 10)
    clock.advance(10.0)
    lb.record(0.2)  # slice [10, 20)
    assert lb.count == 2
    assert lb.exhausted
    clock.advance(49.5)  # 59.5: six slices, both in
    assert lb.count == 2
    clock.advance(0.5)  # 60: the slice [0, 10) has left
    assert lb.count == 1
    assert lb.quantile(1.0) == 0.2
    assert not lb.exhausted
    clock.advance(10.0)  # 70: everything has left
    assert lb.count == 0
    assert math.isnan(lb.quantile(0.5))
    assert not lb.exhausted
    lb.record(3.0)
    assert lb.count == 1
    assert lb.quantile(0.5) == 3.0


def test_latency_windowed_after_a_long_gap(policy_impl):
    clock = FakeClock(5.0)
    lb = LatencyBudget(1.0, window=60.0, clock=clock)
    for _ in range(10):
        lb.record(2.0)
    clock.advance(6000.0 + 3.0)  # the same slot of the ring, 100 windows later
    assert lb.count == 0
    lb.record(0.5)
    assert lb.count == 1
    assert lb.quantile(1.0) == 0.5


def test_latency_windowed_time_keeps_its_course_through_a_step_back(policy_impl):
    clock = FakeClock(100.0)
    lb = LatencyBudget(1.0, window=60.0, buckets=6, clock=clock)
    lb.record(0.5)  # slice [100, 110)
    clock.set(0.0)  # the clock is set back by 100 s: the budget's time stays 100
    lb.record(2.0)  # counted at 100
    assert lb.count == 2
    assert lb.quantile(1.0) == pytest.approx(2.0, rel=0.01)
    clock.set(59.5)  # 159.5: the slices from 100 to 160, both still in
    assert lb.count == 2
    clock.set(60.0)  # 160: 60 s after the first record, not 160
    assert lb.count == 0  # both left together: the late record was counted at 100
    clock.set(50.0)
    assert lb.count == 0  # another step back does not bring them back


def test_latency_unwindowed_keeps_everything(policy_impl):
    clock = FakeClock()
    lb = LatencyBudget(1.0, clock=clock)
    lb.record(3.0)
    clock.advance(1e9)
    assert lb.count == 1
    assert lb.window is None


def test_latency_count_and_properties(policy_impl):
    lb = LatencyBudget(
        0.25, quantile=0.9, relative_error=0.05, window=30.0, name="search", clock=FakeClock()
    )
    assert (lb.threshold, lb.target_quantile, lb.relative_error, lb.window, lb.name) == (
        0.25,
        0.9,
        0.05,
        30.0,
        "search",
    )
    assert lb.count == 0
    for i in range(25):
        lb.record(i / 100)
    assert lb.count == 25
    assert "search" in repr(lb)


def test_latency_stats(policy_impl):
    lb = LatencyBudget(0.3, quantile=0.5, name="api", clock=FakeClock())
    stats = lb.stats
    assert isinstance(stats, LatencyBudgetStats)
    assert stats == LatencyBudgetStats(
        name="api", threshold=0.3, target_quantile=0.5, observed=None, count=0, exhausted=False
    )
    for value in (0.1, 0.2, 0.4, 0.8, 1.6):
        lb.record(value)
    stats = lb.stats
    assert stats.count == 5
    assert stats.observed == lb.quantile(0.5)
    assert stats.observed == pytest.approx(0.4, rel=0.01)
    assert stats.exhausted is True
    assert type(stats.count) is int
    assert type(stats.observed) is float


def test_latency_budget_on_large_random_data(policy_impl):
    rng = random.Random(7)
    data = [rng.lognormvariate(-3.0, 1.0) for _ in range(20_000)]
    lb = LatencyBudget(0.2, quantile=0.99)
    for value in data:
        lb.record(value)
    for q in (0.5, 0.9, 0.99, 0.999):
        assert lb.quantile(q) == pytest.approx(exact(data, q), rel=0.01)
    assert lb.exhausted is (lb.quantile(0.99) > 0.2)


@pytest.mark.parametrize(
    ("kwargs", "kind", "fragment"),
    [
        ({"threshold": 0}, ValueError, "threshold"),
        ({"threshold": -1.0}, ValueError, "threshold"),
        ({"threshold": math.nan}, ValueError, "threshold"),
        ({"threshold": math.inf}, ValueError, "threshold"),
        ({"threshold": True}, TypeError, "threshold"),
        ({"threshold": "1s"}, TypeError, "threshold"),
        ({"threshold": 1.0, "quantile": -0.01}, ValueError, "quantile"),
        ({"threshold": 1.0, "quantile": 1.01}, ValueError, "quantile"),
        ({"threshold": 1.0, "quantile": math.nan}, ValueError, "quantile"),
        ({"threshold": 1.0, "quantile": "p99"}, TypeError, "quantile"),
        ({"threshold": 1.0, "relative_error": 0}, ValueError, "relative_error"),
        ({"threshold": 1.0, "relative_error": 0.6}, ValueError, "relative_error"),
        ({"threshold": 1.0, "relative_error": math.nan}, ValueError, "relative_error"),
        ({"threshold": 1.0, "window": 0}, ValueError, "window"),
        ({"threshold": 1.0, "window": math.inf}, ValueError, "window"),
        ({"threshold": 1.0, "window": math.nan}, ValueError, "window"),
        ({"threshold": 1.0, "window": 60.0, "buckets": 0}, ValueError, "buckets"),
        ({"threshold": 1.0, "window": 60.0, "buckets": True}, TypeError, "buckets"),
        ({"threshold": 1.0, "window": 60.0, "buckets": 2.0}, TypeError, "buckets"),
        ({"threshold": 1.0, "name": 1}, TypeError, "name"),
        ({"threshold": 1.0, "clock": 1}, TypeError, "clock"),
    ],
)
def test_latency_budget_bad_construction(policy_impl, kwargs, kind, fragment):
    with pytest.raises(kind) as raised:
        LatencyBudget(**kwargs)
    assert type(raised.value) is kind
    assert str(raised.value).startswith(fragment)


@pytest.mark.parametrize("buckets", [0, -1, True, "6"])
def test_latency_budget_checks_buckets_without_a_window(policy_impl, buckets):
    # unused without a window, but checked like every other argument
    with pytest.raises((ValueError, TypeError), match=r"^buckets"):
        LatencyBudget(1.0, buckets=buckets)


@pytest.mark.parametrize("window", [None, 60.0])
@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (-0.001, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
        ("0.1", TypeError),
        (None, TypeError),
    ],
)
def test_latency_budget_bad_record(policy_impl, window, value, kind):
    lb = LatencyBudget(1.0, window=window, clock=FakeClock())
    lb.record(0.5)
    with pytest.raises(kind, match=r"^value"):
        lb.record(value)
    assert lb.count == 1


@pytest.mark.parametrize(
    ("q", "kind"), [(-0.5, ValueError), (2, ValueError), (math.nan, ValueError), ("0.5", TypeError)]
)
def test_latency_budget_bad_quantile(policy_impl, q, kind):
    lb = LatencyBudget(1.0)
    lb.record(0.5)
    with pytest.raises(kind, match=r"^q "):
        lb.quantile(q)


@pytest.mark.parametrize(
    "make",
    [
        lambda clock: ErrorBudget(0.99, clock=clock).record(True),
        lambda clock: LatencyBudget(1.0, window=60.0, clock=clock).record(0.1),
    ],
)
def test_a_clock_reading_nan_is_named_as_the_clock(policy_impl, make):
    with pytest.raises(ValueError, match=r"clock\(\)"):
        make(lambda: math.nan)


def test_burn_rates_are_read_at_one_moment_and_match_burn_rate(policy_impl):
    clock = FakeClock()
    budget = ErrorBudget(0.99, clock=clock)
    budget.record(True, 90)
    clock.advance(1800)
    budget.record(False, 10)
    rates = budget.burn_rates(300, 3600)
    assert rates == (budget.burn_rate(300), budget.burn_rate(3600))
    assert rates == pytest.approx((100.0, 10.0))
    with pytest.raises(ValueError, match="seconds"):
        budget.burn_rates(300, -1)
