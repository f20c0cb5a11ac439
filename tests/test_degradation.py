"""DegradationManager: levels, triggers, falling one step per recovery, manual mode, features.

Every expectation comes from docs/architecture.md ("Degradation", "Argument ranges") and
the docstrings of ``resilience.degradation``, worked out by hand. Every
manager runs on a ``FakeClock``, so nothing here waits or times anything.
Every test runs on both twins of the core (``policy_impl`` for the whole
module): the manager's shed counters are the core's ``Counters``.

The falling rule, as the tests read it: the level rises at once to the highest
level a firing trigger asks for; it falls one step at a time, and a step down
needs ``recovery`` seconds since the last evaluation at which a trigger asked
for the level being left (or more) or the level moved. So from ``critical``
with the trigger gone at t=0 and ``recovery=10``: critical until an
evaluation at t >= 10, degraded from then (say t=s1), normal from an
evaluation at t >= s1 + 10.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from resilience import DegradationManager
from resilience.testing import FakeClock

# Every test runs once on each twin of the core (``policy_impl``): the
# policies built here take their core classes from the twin it selects.
pytestmark = pytest.mark.usefixtures("policy_impl")

LEVELS = ("normal", "degraded", "critical")
FIVE = ("green", "blue", "yellow", "orange", "red")
GUARD = 30.0  # seconds: a deadlock guard for barriers and joins, never an assertion on time


# -- helpers ---------------------------------------------------------------------


class Flag:
    """A trigger predicate: returns ``.on`` and counts its calls."""

    def __init__(self, on: bool = False) -> None:
        self.on = on
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.on


class Boom(Exception):
    """What the raising predicates and callbacks raise."""


def manager(**kwargs: Any) -> tuple[DegradationManager, FakeClock]:
    clock = FakeClock()
    return DegradationManager(clock=clock, **kwargs), clock


def at(clock: FakeClock, t: float) -> None:
    """Move the clock to the absolute time ``t`` (never backwards)."""
    assert t >= clock()
    clock.advance(t - clock())


def halves(start: float, stop: float) -> list[float]:
    """start, start + 0.5, ... up to and including stop (exact binary floats)."""
    return [start + 0.5 * i for i in range(int((stop - start) * 2) + 1)]


def at_critical(**kwargs: Any) -> tuple[DegradationManager, FakeClock, Flag]:
    """A manager (recovery 10) driven to critical by a read at t=0; its trigger then stops."""
    mgr, clock = manager(recovery=10.0, **kwargs)
    flag = Flag(on=True)
    mgr.trigger_when(flag, "critical")
    assert mgr.level == "critical"
    flag.on = False
    return mgr, clock, flag


# -- levels ----------------------------------------------------------------------


def test_default_levels_and_start_at_the_first():
    mgr, _ = manager()
    assert tuple(mgr.levels) == LEVELS
    assert mgr.level == "normal"


def test_custom_five_levels_start_at_the_first_and_are_all_reachable():
    mgr, _ = manager(levels=list(FIVE), check_interval=0)
    assert tuple(mgr.levels) == FIVE
    assert mgr.level == "green"
    for name in FIVE:
        mgr.set_level(name)
        assert mgr.level == name


def test_levels_may_be_any_iterable_of_names():
    mgr, _ = manager(levels=(name for name in FIVE))
    assert tuple(mgr.levels) == FIVE
    assert mgr.level == "green"


def test_a_single_level_is_the_level_forever():
    mgr, clock = manager(levels=["only"], recovery=1.0, check_interval=0)
    changes: list[tuple[str, str]] = []
    mgr.on_change(lambda old, new: changes.append((old, new)))
    mgr.trigger_when(Flag(on=True), "only")
    calls = []

    @mgr.feature("f", off_at="only", fallback=lambda: "fallback")
    def f() -> str:
        calls.append(1)
        return "real"

    assert tuple(mgr.levels) == ("only",)
    assert mgr.level == "only"
    clock.advance(100.0)
    assert mgr.evaluate() == "only"
    mgr.set_level("only")
    mgr.auto()
    assert mgr.level == "only"
    # off_at is the only level, and the level is always at or above it
    assert mgr.is_enabled("f") is False
    assert f() == "fallback"
    assert calls == []
    assert changes == []


# -- rising ----------------------------------------------------------------------


@pytest.mark.parametrize("check_interval", [0, 1.0, 1000.0])
def test_a_trigger_for_critical_makes_the_first_read_critical(check_interval):
    mgr, _ = manager(check_interval=check_interval)
    changes: list[tuple[str, str]] = []
    mgr.on_change(lambda old, new: changes.append((old, new)))
    mgr.trigger_when(Flag(on=True), "critical")
    assert mgr.level == "critical"
    # straight up: one change, not two steps
    assert changes == [("normal", "critical")]


@pytest.mark.parametrize(
    ("triggers", "expected"),
    [
        ([("degraded", True), ("critical", True)], "critical"),
        ([("critical", True), ("degraded", True)], "critical"),
        ([("critical", False), ("degraded", True)], "degraded"),
        ([("degraded", True), ("critical", False)], "degraded"),
        ([("degraded", False), ("critical", False)], "normal"),
        ([("degraded", True), ("critical", False), ("degraded", True)], "degraded"),
        ([("critical", False), ("degraded", False), ("critical", True)], "critical"),
    ],
)
def test_the_highest_level_any_firing_trigger_asks_for_wins(triggers, expected):
    mgr, _ = manager(check_interval=0)
    for level, on in triggers:
        mgr.trigger_when(Flag(on=on), level)
    assert mgr.level == expected


def test_the_highest_firing_trigger_wins_among_five_levels():
    mgr, _ = manager(levels=FIVE, check_interval=0)
    blue, orange, yellow, red = Flag(True), Flag(True), Flag(True), Flag(False)
    mgr.trigger_when(blue, "blue")
    mgr.trigger_when(orange, "orange")
    mgr.trigger_when(yellow, "yellow")
    mgr.trigger_when(red, "red")
    assert mgr.level == "orange"
    red.on = True
    assert mgr.level == "red"


def test_triggers_are_evaluated_at_most_once_per_check_interval():
    mgr, clock = manager(check_interval=5.0)
    crit, deg = Flag(), Flag()
    mgr.trigger_when(crit, "critical")
    mgr.trigger_when(deg, "degraded")

    # the first read evaluates; neither fires, so each must be asked, once
    assert mgr.level == "normal"
    assert (crit.calls, deg.calls) == (1, 1)

    # reads within the interval do not call the predicates
    for t in (0.0, 1.0, 2.5, 4.75):
        at(clock, t)
        assert mgr.level == "normal"
    assert (crit.calls, deg.calls) == (1, 1)

    # after the interval, one evaluation for however many reads
    at(clock, 6.0)
    for _ in range(5):
        assert mgr.level == "normal"
    assert (crit.calls, deg.calls) == (2, 2)

    # and again only after another interval
    at(clock, 10.5)
    assert mgr.level == "normal"
    assert (crit.calls, deg.calls) == (2, 2)
    at(clock, 12.0)
    assert mgr.level == "normal"
    assert (crit.calls, deg.calls) == (3, 3)


def test_with_a_firing_trigger_each_predicate_is_called_at_most_once_per_evaluation():
    mgr, clock = manager(check_interval=5.0)
    crit, deg = Flag(on=True), Flag(on=True)
    mgr.trigger_when(crit, "critical")
    mgr.trigger_when(deg, "degraded")
    assert mgr.level == "critical"
    assert mgr.level == "critical"
    assert crit.calls == 1  # the only way to learn that critical is asked for
    assert deg.calls <= 1
    before = deg.calls

    at(clock, 3.0)
    assert mgr.level == "critical"
    assert (crit.calls, deg.calls) == (1, before)

    at(clock, 7.0)
    assert mgr.level == "critical"
    assert mgr.level == "critical"
    assert crit.calls == 2
    assert deg.calls <= before + 1


def test_feature_calls_and_is_enabled_within_the_interval_do_not_evaluate():
    mgr, clock = manager(check_interval=5.0)
    flag = Flag()
    mgr.trigger_when(flag, "critical")

    @mgr.feature("f", off_at="critical")
    def f() -> str:
        return "real"

    assert f() == "real"
    assert flag.calls == 1
    flag.on = True
    at(clock, 2.0)
    assert f() == "real"  # not re-evaluated yet: still normal
    assert mgr.is_enabled("f") is True
    assert mgr.level == "normal"
    assert flag.calls == 1
    at(clock, 5.5)
    assert f() is None  # evaluated: critical, the feature is off
    assert flag.calls == 2
    assert mgr.level == "critical"
    assert mgr.is_enabled("f") is False
    assert flag.calls == 2


def test_check_interval_zero_evaluates_on_every_read():
    mgr, _ = manager(check_interval=0)
    flag = Flag()
    mgr.trigger_when(flag, "degraded")
    for n in range(1, 6):
        assert mgr.level == "normal"
        assert flag.calls == n
    flag.on = True
    assert mgr.level == "degraded"  # same instant: no interval to wait for
    assert flag.calls == 6


def test_evaluate_forces_an_evaluation_and_returns_the_level():
    mgr, clock = manager(check_interval=5.0)
    flag = Flag()
    mgr.trigger_when(flag, "critical")
    assert mgr.level == "normal"
    assert flag.calls == 1
    flag.on = True
    at(clock, 1.0)
    assert mgr.level == "normal"  # within the interval: not evaluated
    assert flag.calls == 1
    assert mgr.evaluate() == "critical"
    assert flag.calls == 2
    assert mgr.level == "critical"
    assert mgr.evaluate() == "critical"
    assert flag.calls == 3


def test_a_rise_during_the_quiet_period_is_at_once():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    crit, deg = Flag(), Flag(on=True)
    mgr.trigger_when(crit, "critical")
    mgr.trigger_when(deg, "degraded")
    assert mgr.level == "degraded"
    deg.on = False
    at(clock, 4.0)
    assert mgr.level == "degraded"
    crit.on = True
    assert mgr.level == "critical"


# -- falling ---------------------------------------------------------------------


@pytest.mark.parametrize("check_interval", [0, 1.0])
def test_falls_one_step_per_recovery_with_frequent_reads(check_interval):
    mgr, clock, _ = at_critical(check_interval=check_interval)
    seen = {}
    for t in halves(0.0, 30.0):
        at(clock, t)
        seen[t] = mgr.level
    expected = {
        t: "critical" if t < 10 else "degraded" if t < 20 else "normal" for t in halves(0.0, 30.0)
    }
    assert seen == expected


def test_falls_one_step_per_recovery_through_evaluate():
    mgr, clock, _ = at_critical(check_interval=1000.0)
    at(clock, 9.75)
    assert mgr.evaluate() == "critical"
    at(clock, 10.0)
    assert mgr.evaluate() == "degraded"
    at(clock, 19.75)
    assert mgr.evaluate() == "degraded"
    at(clock, 20.0)
    assert mgr.evaluate() == "normal"


def test_sparse_evaluations_take_one_step_each_and_restart_the_quiet_period():
    mgr, clock, _ = at_critical(check_interval=1.0)
    at(clock, 25.0)  # 25 s quiet, but only one step per evaluation
    assert mgr.level == "degraded"
    at(clock, 34.0)  # the step at 25 restarted the quiet period
    assert mgr.level == "degraded"
    at(clock, 35.0)  # 1 s after the evaluation at 34: due, and 10 s after the step
    assert mgr.level == "normal"


def test_a_very_late_read_still_takes_one_step_only():
    mgr, clock, _ = at_critical(check_interval=0)
    at(clock, 1000.0)
    assert mgr.level == "degraded"
    assert mgr.level == "degraded"
    at(clock, 1009.5)
    assert mgr.level == "degraded"
    at(clock, 1010.0)
    assert mgr.level == "normal"


def test_a_trigger_firing_again_for_the_current_level_restarts_the_quiet_period():
    mgr, clock, flag = at_critical(check_interval=0)
    at(clock, 6.0)
    flag.on = True
    assert mgr.level == "critical"  # evaluated while firing: quiet restarts at 6
    flag.on = False
    at(clock, 10.0)
    assert mgr.level == "critical"
    at(clock, 15.5)
    assert mgr.level == "critical"
    at(clock, 16.0)
    assert mgr.level == "degraded"
    at(clock, 25.5)
    assert mgr.level == "degraded"
    at(clock, 26.0)
    assert mgr.level == "normal"


def test_a_trigger_for_the_level_reached_restarts_the_quiet_period_after_a_step():
    mgr, clock, _ = at_critical(check_interval=0)
    deg = Flag()
    mgr.trigger_when(deg, "degraded")
    at(clock, 10.0)
    assert mgr.level == "degraded"
    at(clock, 15.0)
    deg.on = True
    assert mgr.level == "degraded"  # asked for at 15: normal no earlier than 25
    deg.on = False
    at(clock, 20.0)
    assert mgr.level == "degraded"
    at(clock, 24.5)
    assert mgr.level == "degraded"
    at(clock, 25.0)
    assert mgr.level == "normal"


def test_a_trigger_for_a_lower_level_holds_the_level_at_least_there():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    crit, deg = Flag(on=True), Flag(on=True)
    mgr.trigger_when(crit, "critical")
    mgr.trigger_when(deg, "degraded")
    assert mgr.level == "critical"
    crit.on = False
    at(clock, 9.5)
    assert mgr.level == "critical"
    at(clock, 10.0)
    assert mgr.level == "degraded"
    for t in (20.0, 30.0, 55.0, 100.0):
        at(clock, t)
        assert mgr.level == "degraded"
    deg.on = False  # last asked for at the evaluation at t=100
    at(clock, 109.5)
    assert mgr.level == "degraded"
    at(clock, 110.0)
    assert mgr.level == "normal"


def test_falling_k_levels_takes_k_recoveries():
    mgr, clock = manager(levels=FIVE, recovery=10.0, check_interval=0)
    changes: list[tuple[str, str]] = []
    mgr.on_change(lambda old, new: changes.append((old, new)))
    red = Flag(on=True)
    mgr.trigger_when(red, "red")
    assert mgr.level == "red"
    red.on = False
    seen = {}
    for t in range(51):
        at(clock, float(t))
        seen[t] = mgr.level
    # index 4 - floor(t / 10), bottoming out at green from t = 40
    expected = {t: FIVE[max(0, 4 - t // 10)] for t in range(51)}
    assert seen == expected
    assert changes == [
        ("green", "red"),
        ("red", "orange"),
        ("orange", "yellow"),
        ("yellow", "blue"),
        ("blue", "green"),
    ]


def logged_here(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The errors the library logged from this test's thread: a thread left by
    another test (a health checker, a timeout's worker) may log meanwhile."""
    here = threading.get_ident()
    return [
        r for r in caplog.records if r.name == "resilience" and r.exc_info and r.thread == here
    ]


def test_a_predicate_that_raises_is_logged_and_counts_as_not_firing(caplog):
    caplog.set_level(logging.DEBUG, logger="resilience")
    mgr, clock = manager(recovery=10.0, check_interval=0)
    state = {"raise": False}
    error = Boom("predicate broke")

    def flaky() -> bool:
        if state["raise"]:
            raise error
        return True

    deg = Flag()
    mgr.trigger_when(flaky, "critical")
    mgr.trigger_when(deg, "degraded")
    assert mgr.level == "critical"
    state["raise"] = True
    assert mgr.level == "critical"  # not firing now, but the quiet period has not run
    logged = logged_here(caplog)
    assert logged
    assert logged[-1].exc_info[1] is error

    # not firing: it falls as if the trigger had stopped
    at(clock, 10.0)
    assert mgr.level == "degraded"
    # a raising predicate does not stop the other triggers
    deg.on = True
    at(clock, 30.0)
    assert mgr.level == "degraded"
    deg.on = False
    at(clock, 40.0)
    assert mgr.level == "normal"


def test_a_raising_predicate_alone_never_raises_the_level(caplog):
    caplog.set_level(logging.DEBUG, logger="resilience")
    mgr, _ = manager(check_interval=0)

    def broken() -> bool:
        raise Boom("no")

    mgr.trigger_when(broken, "critical")
    assert mgr.level == "normal"
    assert mgr.evaluate() == "normal"
    assert any(isinstance(r.exc_info[1], Boom) for r in logged_here(caplog))


# -- manual ----------------------------------------------------------------------


def test_set_level_holds_a_higher_level_whatever_the_triggers_say():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    mgr.trigger_when(Flag(on=False), "degraded")
    mgr.set_level("critical")
    for t in (0.0, 10.0, 20.0, 500.0):
        at(clock, t)
        assert mgr.level == "critical"
        assert mgr.evaluate() == "critical"


def test_set_level_holds_a_lower_level_whatever_the_triggers_say():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    crit = Flag(on=True)
    mgr.trigger_when(crit, "critical")
    assert mgr.level == "critical"
    mgr.set_level("normal")
    assert mgr.level == "normal"
    for t in (1.0, 10.0, 100.0):
        at(clock, t)
        assert mgr.level == "normal"
        assert mgr.evaluate() == "normal"


def test_the_next_set_level_replaces_the_manual_level():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    mgr.trigger_when(Flag(on=True), "critical")
    mgr.set_level("degraded")
    assert mgr.level == "degraded"
    mgr.set_level("normal")
    assert mgr.level == "normal"
    at(clock, 50.0)
    assert mgr.level == "normal"


def test_after_auto_a_firing_trigger_rises_at_once():
    mgr, clock = manager(recovery=10.0)  # default check_interval
    crit = Flag(on=True)
    mgr.trigger_when(crit, "critical")
    mgr.set_level("normal")
    assert mgr.level == "normal"  # evaluated at t=0, held by hand
    at(clock, 2.0)  # past the check interval
    mgr.auto()
    assert mgr.level == "critical"


def test_after_auto_the_level_falls_one_step_per_recovery_from_the_manual_level():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    mgr.trigger_when(Flag(on=False), "critical")
    mgr.set_level("critical")
    mgr.auto()
    seen = {t: None for t in halves(0.0, 25.0)}
    for t in seen:
        at(clock, t)
        seen[t] = mgr.level
    assert seen == {
        t: "critical" if t < 10 else "degraded" if t < 20 else "normal" for t in halves(0.0, 25.0)
    }


def test_after_a_late_auto_the_fall_starts_from_the_auto():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    mgr.set_level("critical")
    at(clock, 30.0)
    assert mgr.level == "critical"
    mgr.auto()
    assert mgr.level == "critical"
    at(clock, 39.5)
    assert mgr.level == "critical"
    at(clock, 40.0)
    assert mgr.level == "degraded"
    at(clock, 49.5)
    assert mgr.level == "degraded"
    at(clock, 50.0)
    assert mgr.level == "normal"


def test_after_auto_a_trigger_at_the_manual_level_holds_it():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    deg = Flag(on=True)
    mgr.trigger_when(deg, "degraded")
    mgr.set_level("degraded")
    mgr.auto()
    for t in (5.0, 10.0, 40.0):
        at(clock, t)
        assert mgr.level == "degraded"


def test_set_level_of_an_unknown_name_is_a_value_error_naming_it():
    mgr, _ = manager()
    mgr.set_level("degraded")
    with pytest.raises(ValueError, match="'bogus'"):
        mgr.set_level("bogus")
    assert mgr.level == "degraded"


# -- features --------------------------------------------------------------------


def test_a_sync_feature_keeps_the_function_metadata():
    mgr, _ = manager()

    def search(query: str) -> str:
        """Search the catalogue."""
        return query

    wrapped = mgr.feature("search", off_at="degraded")(search)
    assert wrapped.__name__ == "search"
    assert wrapped.__qualname__ == search.__qualname__
    assert wrapped.__doc__ == "Search the catalogue."
    assert wrapped.__wrapped__ is search
    assert not inspect.iscoroutinefunction(wrapped)


def test_an_async_feature_keeps_the_metadata_and_stays_a_coroutine_function():
    mgr, _ = manager()

    async def recommend(user: str) -> str:
        """Recommend things."""
        return user

    wrapped = mgr.feature("recommend", off_at="degraded")(recommend)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "recommend"
    assert wrapped.__qualname__ == recommend.__qualname__
    assert wrapped.__doc__ == "Recommend things."
    assert wrapped.__wrapped__ is recommend


def test_a_sync_feature_runs_while_on_and_returns_the_fallback_while_off():
    mgr, _ = manager(check_interval=0)
    flag = Flag()
    mgr.trigger_when(flag, "degraded")
    calls: list[tuple[Any, ...]] = []
    fallback_calls: list[tuple[Any, ...]] = []

    def fallback(*args: Any, **kwargs: Any) -> str:
        fallback_calls.append((args, kwargs))
        return "cached"

    @mgr.feature("search", off_at="degraded", fallback=fallback)
    def search(query: str, *, limit: int = 10) -> str:
        calls.append((query, limit))
        return f"results for {query}"

    assert search("a", limit=3) == "results for a"
    assert calls == [("a", 3)]
    flag.on = True  # the call itself evaluates the triggers
    assert search("b", limit=5) == "cached"
    assert search("c") == "cached"
    assert calls == [("a", 3)]
    assert fallback_calls == [(("b",), {"limit": 5}), (("c",), {})]


def test_a_feature_is_off_at_any_level_at_or_above_off_at():
    mgr, _ = manager(check_interval=0)
    calls = []

    @mgr.feature("f", off_at="degraded", fallback=lambda: "fallback")
    def f() -> str:
        calls.append(1)
        return "real"

    mgr.set_level("critical")
    assert f() == "fallback"
    mgr.set_level("degraded")
    assert f() == "fallback"
    assert calls == []
    mgr.set_level("normal")
    assert f() == "real"
    assert calls == [1]


def test_a_sync_feature_without_a_fallback_returns_none_while_off():
    mgr, _ = manager(check_interval=0)
    calls = []

    @mgr.feature("f", off_at="critical")
    def f(x: int) -> int:
        calls.append(x)
        return x * 2

    assert f(2) == 4
    mgr.set_level("critical")
    assert f(3) is None
    assert calls == [2]


def test_a_feature_comes_back_when_the_level_falls_below_off_at():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    crit = Flag(on=True)
    mgr.trigger_when(crit, "critical")

    @mgr.feature("heavy", off_at="critical", fallback=lambda: "off")
    def heavy() -> str:
        return "on"

    @mgr.feature("light", off_at="degraded", fallback=lambda: "off")
    def light() -> str:
        return "on"

    assert (heavy(), light()) == ("off", "off")
    crit.on = False
    at(clock, 9.5)
    assert (heavy(), light()) == ("off", "off")
    at(clock, 10.0)  # degraded now
    assert (heavy(), light()) == ("on", "off")
    at(clock, 19.5)
    assert (heavy(), light()) == ("on", "off")
    at(clock, 20.0)  # normal
    assert (heavy(), light()) == ("on", "on")


def test_is_enabled_agrees_with_the_level():
    mgr, _ = manager(check_interval=0)
    for off_at in LEVELS:
        mgr.feature(f"off-at-{off_at}", off_at=off_at)(lambda: None)
    expected = {
        "normal": (False, True, True),
        "degraded": (False, False, True),
        "critical": (False, False, False),
    }
    for level in ("critical", "normal", "degraded", "normal"):
        mgr.set_level(level)
        got = tuple(mgr.is_enabled(f"off-at-{off_at}") for off_at in LEVELS)
        assert got == expected[level]


def test_is_enabled_follows_the_triggers():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    flag = Flag()
    mgr.trigger_when(flag, "degraded")
    mgr.feature("f", off_at="degraded")(lambda: None)
    assert mgr.is_enabled("f") is True
    flag.on = True
    assert mgr.is_enabled("f") is False
    flag.on = False
    at(clock, 9.5)
    assert mgr.is_enabled("f") is False
    at(clock, 10.0)
    assert mgr.is_enabled("f") is True


def test_is_enabled_of_an_unknown_feature_is_a_key_error():
    mgr, _ = manager()
    mgr.feature("known", off_at="critical")(lambda: None)
    with pytest.raises(KeyError, match="unknown"):
        mgr.is_enabled("unknown")


def test_a_feature_with_an_unknown_off_at_level_is_a_value_error():
    mgr, _ = manager()
    with pytest.raises(ValueError, match="'panic'"):
        mgr.feature("f", off_at="panic")


def test_a_feature_on_a_method_gets_self_and_passes_it_to_the_fallback():
    mgr, _ = manager(check_interval=0)

    class Service:
        def __init__(self, name: str) -> None:
            self.name = name

        @mgr.feature("describe", off_at="degraded", fallback=lambda self, x: f"{self.name}:fb:{x}")
        def describe(self, x: int) -> str:
            return f"{self.name}:{x}"

    svc = Service("svc")
    assert svc.describe(1) == "svc:1"
    mgr.set_level("degraded")
    assert svc.describe(2) == "svc:fb:2"


def test_an_async_feature_runs_while_on_and_awaits_an_async_fallback_while_off():
    mgr, _ = manager(check_interval=0)
    flag = Flag()
    mgr.trigger_when(flag, "degraded")
    calls: list[tuple[Any, ...]] = []

    async def fallback(*args: Any, **kwargs: Any) -> tuple[str, Any, Any]:
        await asyncio.sleep(0)
        return ("fallback", args, kwargs)

    @mgr.feature("recommend", off_at="degraded", fallback=fallback)
    async def recommend(user: str, *, count: int = 3) -> str:
        calls.append((user, count))
        await asyncio.sleep(0)
        return f"{count} for {user}"

    async def scenario() -> list[Any]:
        out = [await recommend("ann", count=2)]
        flag.on = True
        out.append(await recommend("bob", count=5))
        return out

    assert asyncio.run(scenario()) == ["2 for ann", ("fallback", ("bob",), {"count": 5})]
    assert calls == [("ann", 2)]


class Ready:
    """An awaitable that is not a coroutine."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Iterator[Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        return self.value


def _coroutine_result(*args: Any, **kwargs: Any) -> Any:
    async def later() -> Any:
        return ("from coroutine", args, kwargs)

    return later()


@pytest.mark.parametrize(
    ("fallback", "expected"),
    [
        (lambda *a, **kw: ("plain", a, kw), ("plain", (7,), {"k": "v"})),
        (_coroutine_result, ("from coroutine", (7,), {"k": "v"})),
        (lambda *a, **kw: Ready(("ready", a, kw)), ("ready", (7,), {"k": "v"})),
        (None, None),
    ],
    ids=["plain-value", "sync-returning-coroutine", "custom-awaitable", "no-fallback"],
)
def test_an_async_feature_awaits_an_awaitable_fallback_result_and_returns_a_plain_one(
    fallback, expected
):
    mgr, _ = manager(check_interval=0)
    calls = []

    @mgr.feature("f", off_at="critical", fallback=fallback)
    async def f(x: int, *, k: str) -> str:
        calls.append(x)
        return "real"

    mgr.set_level("critical")
    assert asyncio.run(f(7, k="v")) == expected
    assert calls == []
    mgr.set_level("degraded")
    assert asyncio.run(f(8, k="v")) == "real"
    assert calls == [8]


def test_an_async_feature_call_evaluates_the_triggers():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    flag = Flag()
    mgr.trigger_when(flag, "critical")

    @mgr.feature("f", off_at="critical", fallback=lambda: "fb")
    async def f() -> str:
        return "real"

    assert asyncio.run(f()) == "real"
    flag.on = True
    assert asyncio.run(f()) == "fb"
    assert flag.calls == 2
    flag.on = False
    at(clock, 10.0)
    assert asyncio.run(f()) == "real"


# -- on_change -------------------------------------------------------------------


def test_on_change_sees_every_change_and_nothing_else():
    mgr, clock = manager(recovery=10.0, check_interval=0)
    changes: list[tuple[str, str]] = []
    mgr.on_change(lambda old, new: changes.append((old, new)))
    crit = Flag()
    mgr.trigger_when(crit, "critical")

    assert mgr.level == "normal"
    assert changes == []
    crit.on = True
    for _ in range(3):
        assert mgr.level == "critical"
        mgr.evaluate()
    assert changes == [("normal", "critical")]
    crit.on = False
    for t in halves(0.5, 25.0):
        at(clock, t)
        mgr.evaluate()
    assert changes == [
        ("normal", "critical"),
        ("critical", "degraded"),
        ("degraded", "normal"),
    ]

    mgr.set_level("degraded")
    mgr.set_level("degraded")  # no change
    mgr.set_level("critical")
    mgr.set_level("normal")
    mgr.evaluate()
    assert changes[3:] == [
        ("normal", "degraded"),
        ("degraded", "critical"),
        ("critical", "normal"),
    ]
    mgr.auto()  # no trigger fires: nothing changes
    assert mgr.level == "normal"
    assert len(changes) == 6
    crit.on = True
    assert mgr.level == "critical"
    assert changes[6:] == [("normal", "critical")]
    assert all(isinstance(old, str) and isinstance(new, str) for old, new in changes)


def test_on_change_is_not_called_when_set_level_and_auto_change_nothing():
    mgr, clock = manager(check_interval=0)
    changes: list[tuple[str, str]] = []
    mgr.on_change(lambda old, new: changes.append((old, new)))
    mgr.trigger_when(Flag(on=True), "degraded")
    assert mgr.level == "degraded"
    mgr.set_level("degraded")
    mgr.auto()
    assert mgr.level == "degraded"
    clock.advance(100.0)
    assert mgr.level == "degraded"
    assert changes == [("normal", "degraded")]


def test_a_raising_callback_is_logged_and_the_others_still_run(caplog):
    caplog.set_level(logging.DEBUG, logger="resilience")
    mgr, _ = manager(check_interval=0)
    error = Boom("listener broke")
    seen: list[tuple[str, str]] = []

    def bad(old: str, new: str) -> None:
        raise error

    mgr.on_change(bad)
    mgr.on_change(lambda old, new: seen.append((old, new)))
    mgr.trigger_when(Flag(on=True), "critical")
    assert mgr.level == "critical"
    assert seen == [("normal", "critical")]
    logged = logged_here(caplog)
    assert len(logged) == 1
    assert logged[0].exc_info[1] is error

    mgr.set_level("normal")  # manual changes notify the same way
    assert seen == [("normal", "critical"), ("critical", "normal")]
    assert len(logged_here(caplog)) == 2


def test_on_change_returns_the_callback_and_rejects_a_non_callable():
    mgr, _ = manager()

    def cb(old: str, new: str) -> None:
        pass

    assert mgr.on_change(cb) is cb
    with pytest.raises(TypeError, match="callback"):
        mgr.on_change(42)  # type: ignore[arg-type]


# -- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "levels",
    [[], (), "normal", ("a", "b", "a"), ["x", "x"], ("a", 1), (None,), ["ok", b"bytes"]],
    ids=["empty-list", "empty-tuple", "str", "duplicates", "duplicates-2", "int", "none", "bytes"],
)
def test_bad_levels_are_rejected_naming_the_argument(levels):
    with pytest.raises((TypeError, ValueError)) as info:
        DegradationManager(levels, clock=FakeClock())
    assert "levels" in str(info.value)
    assert repr(levels) in str(info.value)


@pytest.mark.parametrize("levels", [5, None, 2.5])
def test_a_non_iterable_levels_is_rejected_naming_the_argument(levels):
    with pytest.raises((TypeError, ValueError)) as info:
        DegradationManager(levels, clock=FakeClock())
    assert "levels" in str(info.value)


@pytest.mark.parametrize(
    "recovery", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, "10", None, True]
)
def test_bad_recovery_is_rejected_naming_the_argument_and_value(recovery):
    with pytest.raises((TypeError, ValueError)) as info:
        DegradationManager(recovery=recovery, clock=FakeClock())
    assert "recovery" in str(info.value)
    assert repr(recovery) in str(info.value)


@pytest.mark.parametrize("check_interval", [-1, -0.001, math.nan, math.inf, "1", None])
def test_bad_check_interval_is_rejected_naming_the_argument_and_value(check_interval):
    with pytest.raises((TypeError, ValueError)) as info:
        DegradationManager(check_interval=check_interval, clock=FakeClock())
    assert "check_interval" in str(info.value)
    assert repr(check_interval) in str(info.value)


@pytest.mark.parametrize("clock", [5, "monotonic", 1.5])
def test_a_non_callable_clock_is_rejected_naming_the_argument(clock):
    with pytest.raises(TypeError) as info:
        DegradationManager(clock=clock)
    assert "clock" in str(info.value)
    assert repr(clock) in str(info.value)


def test_good_edge_values_are_accepted():
    mgr, _ = manager(recovery=1e-9, check_interval=0)
    assert mgr.level == "normal"
    mgr, _ = manager(recovery=3, check_interval=2)  # ints are fine
    assert mgr.level == "normal"


@pytest.mark.parametrize("predicate", [None, True, "always", 3])
def test_trigger_when_rejects_a_non_callable_predicate(predicate):
    mgr, _ = manager()
    with pytest.raises(TypeError) as info:
        mgr.trigger_when(predicate, "critical")
    assert "predicate" in str(info.value)
    assert mgr.level == "normal"


@pytest.mark.parametrize("level", ["panic", "Critical", ""])
def test_trigger_when_rejects_an_unknown_level(level):
    mgr, _ = manager(check_interval=0)
    flag = Flag(on=True)
    with pytest.raises(ValueError) as info:
        mgr.trigger_when(flag, level)
    assert "level" in str(info.value)
    assert repr(level) in str(info.value)
    assert mgr.level == "normal"  # nothing was registered
    assert flag.calls == 0


@pytest.mark.parametrize("fallback", ["cached", 0, [1]])
def test_feature_rejects_a_non_callable_fallback(fallback):
    mgr, _ = manager()
    with pytest.raises(TypeError) as info:
        mgr.feature("f", off_at="degraded", fallback=fallback)
    assert "fallback" in str(info.value)


# -- threads ---------------------------------------------------------------------


def test_threads_reading_and_calling_while_triggers_flip(frequent_switches):
    clock = FakeClock()
    mgr = DegradationManager(recovery=1.0, check_interval=0, clock=clock)
    crit = Flag()
    deg = Flag()
    mgr.trigger_when(crit, "critical")
    mgr.trigger_when(deg, "degraded")
    changes: list[tuple[str, str]] = []
    mgr.on_change(lambda old, new: changes.append((old, new)))

    @mgr.feature("f", off_at="degraded", fallback=lambda i: ("fb", i))
    def f(i: int) -> tuple[str, int]:
        return ("real", i)

    readers = 8
    steps = 100
    start = threading.Barrier(readers + 1, timeout=GUARD)
    stop = threading.Event()
    errors: list[BaseException] = []
    observed: list[set[str]] = [set() for _ in range(readers)]
    results_ok = [True] * readers
    # pacing: at a few chosen steps the writer waits until every reader has run
    # one whole round that began after that step's flip (a round notes the step
    # it began in). A reader that has run its round waits there too: one that
    # looped on would keep taking the manager's lock ahead of a reader woken
    # to take it, and on a loaded machine starve it for seconds.
    paced = {step for step in range(1, steps + 1) if step % 20 in (1, 8, 15)}
    current_step = [0]
    pace = threading.Barrier(readers + 1, timeout=GUARD)
    reported = [0] * readers
    rounds = [0] * readers

    def reader(k: int) -> None:
        try:
            start.wait()
            i = 0
            while not stop.is_set():
                step = current_step[0]
                observed[k].add(mgr.level)
                result = f(i)
                if result not in (("real", i), ("fb", i)):
                    results_ok[k] = False
                mgr.is_enabled("f")
                i += 1
                rounds[k] = i
                if reported[k] != step:
                    reported[k] = step
                    pace.wait()
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        try:
            start.wait()
            for step in range(1, steps + 1):
                # every 20 steps (5 s): critical is asked for at steps 0-1, degraded
                # at step 7; recovery is 1 s (4 steps), so the level goes up and down
                crit.on = step % 20 < 2
                deg.on = step % 20 == 7
                clock.advance(0.25)
                if step % 50 == 0:
                    mgr.evaluate()
                if step in paced:
                    current_step[0] = step
                    pace.wait()  # every reader has run a round since the flip
        except BaseException as exc:
            errors.append(exc)
            pace.abort()  # a failed writer must not leave the readers waiting
        finally:
            stop.set()

    threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(readers)]
    threads.append(threading.Thread(target=writer, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert all(results_ok)
    assert min(rounds) >= len(paced)
    for seen in observed:
        assert seen <= set(LEVELS)
        # each ran a whole round while critical was asked for (paced step 1), and
        # nothing can step down before the clock moves again
        assert "critical" in seen
    assert all(old in LEVELS and new in LEVELS and old != new for old, new in changes)

    # settle: with the critical trigger on, one evaluation puts it at critical
    crit.on, deg.on = True, False
    assert mgr.evaluate() == "critical"
    assert mgr.level == "critical"
    crit.on = False
    clock.advance(0.5)
    assert mgr.evaluate() == "critical"
    clock.advance(0.5)
    assert mgr.evaluate() == "degraded"
    clock.advance(0.75)
    assert mgr.level == "degraded"
    clock.advance(0.25)
    assert mgr.level == "normal"
    assert mgr.is_enabled("f") is True
    assert f(-1) == ("real", -1)


class PausingClock:
    """A FakeClock whose next reading, once armed, is held back until released.

    It stands for a thread preempted right after reading the clock: the value
    is taken, then the thread waits before it can use it.
    """

    def __init__(self) -> None:
        self.fake = FakeClock()
        self.armed = False
        self.reached = threading.Event()
        self.resume = threading.Event()

    def __call__(self) -> float:
        value = self.fake()
        if self.armed:
            self.armed = False
            self.reached.set()
            assert self.resume.wait(timeout=10.0)  # deadlock guard only
        return value


def test_an_evaluation_that_read_the_clock_earlier_does_not_move_the_quiet_period_back():
    """docs/architecture.md, "Time": each object "reads its clock before it touches its
    state, and clamps the reading so that time never runs backwards for one object".
    Evaluation A reads t=1, is held back while evaluation B runs at t=5 with the
    trigger firing, then A applies its t=1. The last evaluation at which a trigger
    asked for ``degraded`` was B at t=5, so the step down needs t >= 15.
    """
    clock = PausingClock()
    mgr = DegradationManager(recovery=10.0, check_interval=1000.0, clock=clock)
    deg = Flag(on=True)
    mgr.trigger_when(deg, "degraded")
    assert mgr.evaluate() == "degraded"  # t=0

    clock.fake.advance(1.0)
    clock.armed = True
    errors: list[BaseException] = []

    def evaluate_a() -> None:
        try:
            mgr.evaluate()
        except BaseException as exc:
            errors.append(exc)

    a = threading.Thread(target=evaluate_a, daemon=True)
    a.start()
    assert clock.reached.wait(timeout=10.0)  # A has read t=1 and is held
    clock.fake.advance(4.0)
    assert mgr.evaluate() == "degraded"  # B at t=5, the trigger firing
    clock.resume.set()
    a.join(timeout=10.0)
    assert not a.is_alive()
    assert errors == []

    deg.on = False
    clock.fake.advance(6.0)  # t=11: only 6 s after B
    assert mgr.evaluate() == "degraded"
    clock.fake.advance(4.0)  # t=15
    assert mgr.evaluate() == "normal"


def test_an_evaluation_overtaken_by_a_newer_one_changes_nothing():
    """Evaluation A sees the critical trigger firing and is held back; the
    trigger stops and evaluation B, later, steps the level down. A's view is
    out of date: applying it would push the level back up with no trigger
    firing (the flapping the manager exists to prevent)."""
    clock = PausingClock()
    mgr = DegradationManager(recovery=10.0, check_interval=1000.0, clock=clock)
    crit = Flag(on=True)
    mgr.trigger_when(crit, "critical")
    changes: list[tuple[str, str]] = []
    mgr.on_change(lambda old, new: changes.append((old, new)))
    assert mgr.evaluate() == "critical"  # t=0

    clock.armed = True
    a = threading.Thread(target=mgr.evaluate, daemon=True)
    a.start()
    assert clock.reached.wait(timeout=10.0)  # A saw the trigger firing, then read t=0
    crit.on = False
    clock.fake.advance(10.0)
    assert mgr.evaluate() == "degraded"  # B at t=10: one step down
    clock.resume.set()
    a.join(timeout=10.0)
    assert not a.is_alive()
    assert mgr.evaluate() == "degraded"
    assert changes == [("normal", "critical"), ("critical", "degraded")]
