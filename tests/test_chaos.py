"""Chaos: latency, error and result injection, on purpose and reproducibly.

The contract is docs/architecture.md ("Public API" and its forms table, "Errors",
"Chaos") and the docstrings of resilience/chaos.py. Every expectation below
is worked out by hand from it, or predicted by an independent replay of the
documented draw rule: each call draws one ``random()`` per fault, in order,
from one ``random.Random(seed)`` (for faults without jitter), and a fault
fires when its draw is ``< rate``; latency faults apply first, then the
first error or result fault that fired.

Time is a ``FakeClock`` wherever injected latency is awaited; the one real
wait is a 0.001 s ``asyncio.sleep`` (the async path given a plain ``sleep``),
which is never timed. Every test runs on both twins of the core
(``policy_impl`` for the whole module): chaos keeps no core state itself,
the breakers and retries put around it do.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import sys
import threading
import warnings
from typing import Any

import pytest

import resilience
from resilience import chaos
from resilience.backoff import constant
from resilience.chaos import Chaos, ChaosStats
from resilience.errors import CircuitOpenError, InjectedFault, ResilienceError
from resilience.testing import FakeClock

# Every test runs once on each twin of the core (``policy_impl``): the
# policies built here take their core classes from the twin it selects.
pytestmark = pytest.mark.usefixtures("policy_impl")

ENV = "RESILIENCE_CHAOS"
KINDS = ("latency", "error", "result")
GUARD = 10.0  # seconds: a hang guard for barriers and joins, never an assertion on time


class Boom(Exception):
    """A user-chosen exception to inject."""


def counts(policy: Chaos) -> dict[str, int]:
    """The three documented counters of ``policy.stats``."""
    stats = policy.stats
    assert isinstance(stats, ChaosStats)
    assert stats.name == policy.name
    return {kind: getattr(stats, kind) for kind in KINDS}


def zero() -> dict[str, int]:
    return {"latency": 0, "error": 0, "result": 0}


Real = tuple[str, tuple[Any, ...], dict[str, Any]]


class Spy:
    """A function that records its calls and returns ``("real", args, kwargs)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Real:
        self.calls.append((args, kwargs))
        return ("real", args, kwargs)


class ASpy:
    """The async twin of ``Spy``: counts the coroutines started and awaited."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> Real:
        self.calls.append((args, kwargs))
        await asyncio.sleep(0)
        return ("real", args, kwargs)


def replay(seed: int, rates: list[float], calls: int) -> list[list[bool]]:
    """Which faults fire on each call: one ``random()`` per fault per call, ``< rate``."""
    rng = random.Random(seed)
    return [[rng.random() < rate for rate in rates] for _ in range(calls)]


# --------------------------------------------------------------------------
# On and off
# --------------------------------------------------------------------------


def test_off_by_default_calls_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    policy = Chaos(chaos.error(), chaos.result("fake"), chaos.latency(5.0))
    assert policy.enabled is False
    fn = Spy()
    assert policy.call(fn, 1, k=2) == ("real", (1,), {"k": 2})
    assert fn.calls == [((1,), {"k": 2})]
    assert counts(policy) == zero()


def test_enabled_true_injects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    policy = Chaos(chaos.error(), enabled=True)
    assert policy.enabled is True
    fn = Spy()
    with pytest.raises(InjectedFault):
        policy.call(fn)
    assert fn.calls == []
    assert counts(policy) == {"latency": 0, "error": 1, "result": 0}


@pytest.mark.parametrize(
    "value", ["1", "true", "TRUE", "True", "yes", "YES", "Yes", "on", "ON", "oN"]
)
def test_env_var_true_values_enable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV, value)
    policy = Chaos(chaos.result("fake"))  # enabled=None: read the variable
    assert policy.enabled is True
    fn = Spy()
    assert policy.call(fn) == "fake"
    assert fn.calls == []
    policy_explicit_none = Chaos(chaos.result("fake"), enabled=None)
    assert policy_explicit_none.enabled is True


@pytest.mark.parametrize(
    "value", ["0", "false", "FALSE", "no", "off", "", "2", "y", "t", "enabled", "truee", "onn"]
)
def test_env_var_other_values_leave_it_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV, value)
    policy = Chaos(chaos.result("fake"))
    assert policy.enabled is False
    fn = Spy()
    assert policy.call(fn) == ("real", (), {})
    assert len(fn.calls) == 1


def test_env_var_unset_leaves_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert Chaos(chaos.error(), enabled=None).enabled is False


def test_enabled_false_wins_over_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "1")
    policy = Chaos(chaos.error(), enabled=False)
    assert policy.enabled is False
    fn = Spy()
    assert policy.call(fn) == ("real", (), {})
    assert len(fn.calls) == 1
    assert counts(policy) == zero()


def test_enabled_true_wins_over_a_false_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "0")
    policy = Chaos(chaos.result("fake"), enabled=True)
    assert policy.call(Spy()) == "fake"


def test_enabled_can_be_switched_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    policy = Chaos(chaos.result("fake"))
    fn = Spy()
    assert policy.call(fn) == ("real", (), {})
    policy.enabled = True
    assert policy.call(fn) == "fake"
    assert policy.call(fn) == "fake"
    policy.enabled = False
    assert policy.call(fn) == ("real", (), {})
    assert len(fn.calls) == 2
    assert counts(policy) == {"latency": 0, "error": 0, "result": 2}


def test_switching_on_at_run_time_affects_decorated_functions() -> None:
    policy = Chaos(chaos.error(), enabled=False)

    @policy
    def f(x: int) -> int:
        return x * 2

    assert f(4) == 8
    policy.enabled = True
    with pytest.raises(InjectedFault):
        f(4)
    policy.enabled = False
    assert f(5) == 10


def test_off_async_awaits_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    clock = FakeClock()
    policy = Chaos(chaos.latency(3.0), chaos.error(), sleep=clock.asleep)
    fn = ASpy()
    assert asyncio.run(policy.acall(fn, 1, k=2)) == ("real", (1,), {"k": 2})
    assert fn.calls == [((1,), {"k": 2})]
    assert clock() == 0.0
    assert counts(policy) == zero()


# --------------------------------------------------------------------------
# Each fault
# --------------------------------------------------------------------------


def test_latency_delays_by_exactly_seconds_then_calls() -> None:
    clock = FakeClock(100.0)
    policy = Chaos(chaos.latency(2.5), enabled=True, sleep=clock.sleep)
    seen: list[float] = []

    def fn(x: int) -> int:
        seen.append(clock())
        return x + 1

    assert policy.call(fn, 1) == 2
    assert seen == [102.5]  # the delay came before the call
    assert clock() == 102.5
    assert policy.call(fn, 2) == 3
    assert seen == [102.5, 105.0]
    assert counts(policy) == {"latency": 2, "error": 0, "result": 0}


def test_latency_with_jitter_stays_within_seconds_plus_minus_jitter() -> None:
    clock = FakeClock()
    policy = Chaos(chaos.latency(1.0, jitter=0.5), enabled=True, seed=11, sleep=clock.sleep)
    delays = []
    for _ in range(200):
        before = clock()
        assert policy.call(lambda: "ok") == "ok"
        delays.append(clock() - before)
    assert all(0.5 <= d <= 1.5 for d in delays), [d for d in delays if not 0.5 <= d <= 1.5]
    # uniform(-0.5, 0.5): 200 draws are (very likely) not all equal, and land on both sides of 1.0
    assert len(set(delays)) > 100
    assert any(d < 1.0 for d in delays) and any(d > 1.0 for d in delays)
    assert counts(policy)["latency"] == 200


def test_latency_with_jitter_larger_than_seconds_is_floored_at_zero() -> None:
    clock = FakeClock()
    # FakeClock.sleep raises ValueError on a negative wait, so a negative delay would show.
    policy = Chaos(chaos.latency(0.2, jitter=1.0), enabled=True, seed=5, sleep=clock.sleep)
    delays = []
    for _ in range(200):
        before = clock()
        policy.call(lambda: None)
        delays.append(clock() - before)
    assert all(0.0 <= d <= 1.2 for d in delays)
    # extra < -0.2 has probability 0.4 per call: some delays are floored to exactly 0 ...
    assert delays.count(0.0) > 20
    # ... and the others are spread over (0, 1.2], not all at one value
    assert len({d for d in delays if d > 0.0}) > 50


def test_error_with_a_class_raises_it_and_does_not_call() -> None:
    policy = Chaos(chaos.error(Boom), enabled=True)
    fn = Spy()
    with pytest.raises(Boom):
        policy.call(fn)
    with pytest.raises(Boom):
        policy.call(fn, 1, x=2)
    assert fn.calls == []
    assert counts(policy) == {"latency": 0, "error": 2, "result": 0}


def test_error_default_is_injected_fault_a_resilience_error() -> None:
    assert issubclass(InjectedFault, ResilienceError)
    assert resilience.errors.InjectedFault is InjectedFault
    policy = Chaos(chaos.error(), enabled=True)
    fn = Spy()
    with pytest.raises(InjectedFault) as info:
        policy.call(fn)
    assert type(info.value) is InjectedFault
    assert fn.calls == []


def test_error_with_an_instance_raises_that_same_instance() -> None:
    instance = Boom("the one")
    policy = Chaos(chaos.error(instance), enabled=True)
    fn = Spy()
    for _ in range(3):
        with pytest.raises(Boom) as info:
            policy.call(fn)
        assert info.value is instance
    assert fn.calls == []


def test_error_with_a_factory_calls_it_each_time() -> None:
    made: list[Boom] = []

    def factory() -> Boom:
        exc = Boom(f"number {len(made)}")
        made.append(exc)
        return exc

    policy = Chaos(chaos.error(factory), enabled=True)
    assert made == []  # building the fault does not call the factory
    fn = Spy()
    raised = []
    for _ in range(4):
        with pytest.raises(Boom) as info:
            policy.call(fn)
        raised.append(info.value)
    assert len(made) == 4
    assert all(r is m for r, m in zip(raised, made, strict=True))
    assert fn.calls == []


def test_error_factory_is_not_called_when_the_fault_does_not_fire() -> None:
    made: list[Boom] = []

    def factory() -> Boom:
        made.append(Boom())
        return made[-1]

    policy = Chaos(chaos.error(factory, rate=0.0), enabled=True)
    assert policy.call(lambda: 7) == 7
    assert made == []


def test_result_returns_value_without_calling() -> None:
    sentinel = object()
    policy = Chaos(chaos.result(sentinel), enabled=True)
    fn = Spy()
    assert policy.call(fn, 1, a=2) is sentinel
    assert fn.calls == []
    assert counts(policy) == {"latency": 0, "error": 0, "result": 1}


def test_result_none_is_a_value() -> None:
    policy = Chaos(chaos.result(None), enabled=True)
    fn = Spy()
    assert policy.call(fn) is None
    assert fn.calls == []


# --------------------------------------------------------------------------
# Ordering
# --------------------------------------------------------------------------


def test_first_of_error_and_result_wins_result_first() -> None:
    policy = Chaos(chaos.result("r"), chaos.error(), enabled=True)
    fn = Spy()
    assert policy.call(fn) == "r"
    assert fn.calls == []
    assert counts(policy) == {"latency": 0, "error": 0, "result": 1}


def test_first_of_error_and_result_wins_error_first() -> None:
    policy = Chaos(chaos.error(Boom), chaos.result("r"), enabled=True)
    with pytest.raises(Boom):
        policy.call(Spy())
    assert counts(policy) == {"latency": 0, "error": 1, "result": 0}


def test_first_error_fault_wins_over_a_later_error_fault() -> None:
    policy = Chaos(chaos.error(Boom), chaos.error(KeyError), enabled=True)
    with pytest.raises(Boom):
        policy.call(Spy())
    assert counts(policy)["error"] == 1


def test_a_fault_that_does_not_fire_gives_way_to_the_next() -> None:
    policy = Chaos(chaos.error(rate=0.0), chaos.result("r"), enabled=True)
    assert policy.call(Spy()) == "r"
    assert counts(policy) == {"latency": 0, "error": 0, "result": 1}


def test_latency_applies_first_even_when_listed_after_the_error() -> None:
    clock = FakeClock()
    policy = Chaos(chaos.error(Boom), chaos.latency(2.0), enabled=True, sleep=clock.sleep)
    fn = Spy()
    with pytest.raises(Boom):
        policy.call(fn)
    assert clock() == 2.0
    assert fn.calls == []
    assert counts(policy) == {"latency": 1, "error": 1, "result": 0}


def test_latency_then_result() -> None:
    clock = FakeClock()
    policy = Chaos(chaos.result("r"), chaos.latency(1.5), enabled=True, sleep=clock.sleep)
    assert policy.call(Spy()) == "r"
    assert clock() == 1.5
    assert counts(policy) == {"latency": 1, "error": 0, "result": 1}


def test_every_fired_latency_fault_applies() -> None:
    clock = FakeClock()
    policy = Chaos(chaos.latency(1.0), chaos.latency(0.5), enabled=True, sleep=clock.sleep)
    fn = Spy()
    policy.call(fn)
    assert clock() == 1.5
    assert len(fn.calls) == 1
    assert counts(policy) == {"latency": 2, "error": 0, "result": 0}


SEEDED_FAULTS = [
    ("latency", 1.0, 0.3),
    ("error", InjectedFault, 0.25),
    ("result", "R", 0.5),
    ("latency", 2.0, 0.6),
    ("error", Boom, 0.4),
]


def seeded_faults() -> list[Any]:
    faults = []
    for kind, arg, rate in SEEDED_FAULTS:
        if kind == "latency":
            faults.append(chaos.latency(arg, rate=rate))
        elif kind == "error":
            faults.append(chaos.error(arg, rate=rate))
        else:
            faults.append(chaos.result(arg, rate=rate))
    return faults


def build(seed: int, clock: FakeClock) -> Chaos:
    return Chaos(*seeded_faults(), enabled=True, seed=seed, sleep=clock.sleep)


def run(policy: Chaos, clock: FakeClock, calls: int) -> list[tuple[float, Any]]:
    """(delay, outcome) per call; outcome is ("called", i), ("value", v) or ("raised", type)."""
    out: list[tuple[float, Any]] = []
    for i in range(calls):
        before = clock()
        try:
            outcome: Any = ("value", policy.call(lambda i=i: ("called", i)))
            if outcome[1] == ("called", i):
                outcome = ("called", i)
        except Exception as exc:
            outcome = ("raised", type(exc))
        out.append((clock() - before, outcome))
    return out


def predict(seed: int, calls: int) -> tuple[list[tuple[float, Any]], dict[str, int]]:
    """The same calls worked out from a replay of the draw rule."""
    fired_per_call = replay(seed, [rate for _, _, rate in SEEDED_FAULTS], calls)
    expected: list[tuple[float, Any]] = []
    stats = zero()
    for i, fired in enumerate(fired_per_call):
        delay = 0.0
        outcome: Any = ("called", i)
        chosen = False
        for (kind, arg, _), hit in zip(SEEDED_FAULTS, fired, strict=True):
            if not hit:
                continue
            if kind == "latency":
                delay += arg
                stats["latency"] += 1
            elif not chosen:
                chosen = True
                stats[kind] += 1
                outcome = ("raised", arg) if kind == "error" else ("value", arg)
        expected.append((delay, outcome))
    return expected, stats


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_seeded_draws_follow_the_replayed_rule_call_by_call(seed: int) -> None:
    clock = FakeClock()
    policy = build(seed, clock)
    actual = run(policy, clock, 200)
    expected, stats = predict(seed, 200)
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert got == want, f"call {i}: got {got}, replay predicts {want}"
    assert counts(policy) == stats
    # every kind of outcome occurred, so the comparison exercised each branch
    kinds = {o[0] if o[0] != "raised" else o for _, o in expected}
    assert {"called", "value", ("raised", InjectedFault), ("raised", Boom)} <= kinds
    assert any(d == 3.0 for d, _ in expected) and any(d == 0.0 for d, _ in expected)


def test_seeded_async_draws_follow_the_replayed_rule() -> None:
    seed = 7
    clock = FakeClock()
    policy = Chaos(*seeded_faults(), enabled=True, seed=seed, sleep=clock.asleep)
    expected, stats = predict(seed, 200)

    async def main() -> list[tuple[float, Any]]:
        out: list[tuple[float, Any]] = []
        for i in range(200):
            before = clock()

            async def fn(i: int = i) -> tuple[str, int]:
                return ("called", i)

            try:
                value = await policy.acall(fn)
                outcome: Any = value if value == ("called", i) else ("value", value)
            except Exception as exc:
                outcome = ("raised", type(exc))
            out.append((clock() - before, outcome))
        return out

    actual = asyncio.run(main())
    assert actual == expected
    assert counts(policy) == stats


def test_same_seed_same_sequence_different_seed_different_sequence() -> None:
    clock_a, clock_b, clock_c = FakeClock(), FakeClock(), FakeClock()
    a = run(build(123, clock_a), clock_a, 200)
    b = run(build(123, clock_b), clock_b, 200)
    c = run(build(124, clock_c), clock_c, 200)
    assert a == b
    assert clock_a() == clock_b()
    assert a != c  # 200 calls of 5 draws each: equal only by a vanishing chance


def test_draw_rule_with_rates_zero_and_one_in_the_mix() -> None:
    # rate=1 always fires, rate=0 never does, and each still takes its draw
    clock = FakeClock()
    rates = [0.0, 0.5, 1.0, 0.5]
    policy = Chaos(
        chaos.error(rate=0.0),
        chaos.result("A", rate=0.5),
        chaos.latency(1.0, rate=1.0),
        chaos.result("B", rate=0.5),
        enabled=True,
        seed=99,
        sleep=clock.sleep,
    )
    got = [policy.call(lambda: "fn") for _ in range(200)]
    want = []
    for fired in replay(99, rates, 200):
        assert fired[0] is False and fired[2] is True
        want.append("A" if fired[1] else "B" if fired[3] else "fn")
    assert got == want
    assert clock() == 200.0
    assert counts(policy) == {
        "latency": 200,
        "error": 0,
        "result": sum(w != "fn" for w in want),
    }
    assert {"A", "B", "fn"} <= set(want)


# --------------------------------------------------------------------------
# Rates and argument checks
# --------------------------------------------------------------------------


def test_rate_zero_never_fires() -> None:
    clock = FakeClock()
    policy = Chaos(
        chaos.latency(1.0, rate=0.0),
        chaos.error(rate=0.0),
        chaos.result("r", rate=0.0),
        enabled=True,
        seed=3,
        sleep=clock.sleep,
    )
    fn = Spy()
    for i in range(500):
        assert policy.call(fn, i) == ("real", (i,), {})
    assert len(fn.calls) == 500
    assert clock() == 0.0
    assert counts(policy) == zero()


def test_rate_zero_never_fires_without_a_seed() -> None:
    policy = Chaos(chaos.error(rate=0), enabled=True)  # an int rate is a number too
    fn = Spy()
    for _ in range(300):
        policy.call(fn)
    assert len(fn.calls) == 300


def test_rate_one_always_fires() -> None:
    clock = FakeClock()
    policy = Chaos(
        chaos.latency(0.5, rate=1.0), chaos.result("r", rate=1), enabled=True, sleep=clock.sleep
    )
    fn = Spy()
    for _ in range(500):
        assert policy.call(fn) == "r"
    assert fn.calls == []
    assert clock() == 250.0
    assert counts(policy) == {"latency": 500, "error": 0, "result": 500}


@pytest.mark.parametrize(
    "make",
    [
        lambda rate: chaos.latency(1.0, rate=rate),
        lambda rate: chaos.error(rate=rate),
        lambda rate: chaos.result("r", rate=rate),
    ],
    ids=["latency", "error", "result"],
)
@pytest.mark.parametrize(
    ("rate", "kind"),
    [
        (-0.1, ValueError),
        (1.5, ValueError),
        (math.nan, ValueError),
        ("x", TypeError),
        (None, TypeError),
    ],
)
def test_bad_rate_is_rejected_naming_rate(make: Any, rate: Any, kind: type[Exception]) -> None:
    with pytest.raises(kind, match="rate") as info:
        make(rate)
    assert repr(rate) in str(info.value)


@pytest.mark.parametrize("argument", ["seconds", "jitter"])
@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (-1.0, ValueError),
        (-0.001, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("1", TypeError),
    ],
)
def test_bad_seconds_or_jitter_is_rejected_naming_it(
    argument: str, value: Any, kind: type[Exception]
) -> None:
    kwargs: dict[str, Any] = {"seconds": 1.0, "jitter": 0.0}
    kwargs[argument] = value
    seconds = kwargs.pop("seconds")
    with pytest.raises(kind, match=argument) as info:
        chaos.latency(seconds, **kwargs)
    assert repr(value) in str(info.value)


def test_zero_seconds_and_zero_jitter_are_valid() -> None:
    clock = FakeClock()
    policy = Chaos(
        chaos.latency(0.0, jitter=0.0), chaos.latency(0, jitter=0), enabled=True, sleep=clock.sleep
    )
    assert policy.call(lambda: 1) == 1
    assert clock() == 0.0


@pytest.mark.parametrize("exc", [42, "x", 1.5, None, int, object])
def test_error_of_a_non_exception_is_a_type_error(exc: Any) -> None:
    with pytest.raises(TypeError):
        chaos.error(exc)


@pytest.mark.parametrize(
    "bad",
    [42, "latency", None, InjectedFault, InjectedFault(), lambda: 1, (chaos.error(),)],
    ids=["int", "str", "None", "exception-class", "exception", "lambda", "tuple-of-faults"],
)
def test_chaos_of_a_non_fault_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError):
        Chaos(bad)
    with pytest.raises(TypeError):
        Chaos(chaos.error(), bad)


@pytest.mark.parametrize("enabled", [1, 0, "yes", "", 1.0])
def test_non_bool_enabled_is_a_type_error(enabled: Any) -> None:
    with pytest.raises(TypeError, match="enabled"):
        Chaos(chaos.error(), enabled=enabled)


@pytest.mark.parametrize("seed", [1.5, "1", True, False, b"1", [1]])
def test_non_int_seed_is_a_type_error(seed: Any) -> None:
    with pytest.raises(TypeError, match="seed"):
        Chaos(chaos.error(), seed=seed)


def test_int_and_none_seeds_are_valid() -> None:
    for seed in (None, 0, -5, 2**70):
        policy = Chaos(chaos.result("r", rate=0.5), enabled=True, seed=seed)
        policy.call(lambda: None)


@pytest.mark.parametrize("argument", ["sleep", "clock"])
@pytest.mark.parametrize("value", [42, "now", 1.0])
def test_non_callable_sleep_or_clock_is_a_type_error(argument: str, value: Any) -> None:
    with pytest.raises(TypeError, match=argument):
        Chaos(chaos.error(), **{argument: value})


def test_clock_and_name_are_accepted() -> None:
    clock = FakeClock()
    policy = Chaos(chaos.result("r"), enabled=True, clock=clock, name="chaos-1")
    assert policy.name == "chaos-1"
    assert policy.call(lambda: 1) == "r"


def test_no_faults_is_a_plain_call() -> None:
    policy = Chaos(enabled=True)
    fn = Spy()
    assert policy.call(fn, 3) == ("real", (3,), {})
    assert counts(policy) == zero()


# --------------------------------------------------------------------------
# Stats
# --------------------------------------------------------------------------


def test_stats_exact_for_a_scripted_run() -> None:
    clock = FakeClock()
    assert counts(Chaos()) == zero()
    lat_err = Chaos(chaos.latency(1.0), chaos.error(), enabled=True, sleep=clock.sleep)
    for _ in range(3):
        with pytest.raises(InjectedFault):
            lat_err.call(Spy())
    assert counts(lat_err) == {"latency": 3, "error": 3, "result": 0}
    assert clock() == 3.0

    policy = Chaos(
        chaos.result("r"), chaos.error(), chaos.latency(0.25), enabled=True, sleep=clock.sleep
    )
    for _ in range(4):
        assert policy.call(Spy()) == "r"
    assert counts(policy) == {"latency": 4, "error": 0, "result": 4}
    policy.enabled = False
    for _ in range(5):
        policy.call(Spy())
    assert counts(policy) == {"latency": 4, "error": 0, "result": 4}
    policy.enabled = True
    policy.call(Spy())
    assert counts(policy) == {"latency": 5, "error": 0, "result": 5}
    assert clock() == 3.0 + 5 * 0.25


def test_stats_is_a_snapshot_not_mutated_by_later_calls() -> None:
    policy = Chaos(chaos.result("r"), enabled=True)
    before = policy.stats
    policy.call(Spy())
    assert before.result == 0
    assert policy.stats.result == 1


# --------------------------------------------------------------------------
# Forms
# --------------------------------------------------------------------------


def test_decorator_on_def_keeps_metadata_and_injects() -> None:
    policy = Chaos(chaos.result("fake", rate=1.0), enabled=False)

    def greet(name: str, *, punct: str = "!") -> str:
        """Say hello."""
        return f"hello {name}{punct}"

    wrapped = policy(greet)
    assert wrapped.__name__ == "greet"
    assert wrapped.__doc__ == "Say hello."
    assert wrapped.__qualname__ == greet.__qualname__
    assert wrapped.__wrapped__ is greet  # type: ignore[attr-defined]
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped("bob", punct="?") == "hello bob?"
    policy.enabled = True
    assert wrapped("bob", punct="?") == "fake"


def test_decorator_on_async_def_keeps_metadata_and_injects() -> None:
    clock = FakeClock()
    policy = Chaos(chaos.latency(4.0), enabled=True, sleep=clock.asleep)
    fn_calls: list[float] = []

    async def fetch(x: int, *, y: int = 0) -> int:
        """Fetch it."""
        fn_calls.append(clock())
        await asyncio.sleep(0)
        return x + y

    wrapped = policy(fetch)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch it."
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
    assert asyncio.run(wrapped(2, y=3)) == 5
    assert fn_calls == [4.0]  # the injected delay came first, on the FakeClock
    assert clock() == 4.0
    assert counts(policy)["latency"] == 1


def test_async_decorator_error_and_result() -> None:
    spy = ASpy()

    async def fn(*args: Any, **kwargs: Any) -> Real:
        return await spy(*args, **kwargs)

    raising = Chaos(chaos.error(Boom), enabled=True)(fn)
    returning = Chaos(chaos.result("r"), enabled=True)(fn)
    assert inspect.iscoroutinefunction(raising) and inspect.iscoroutinefunction(returning)

    async def main() -> None:
        with pytest.raises(Boom):
            await raising(1)
        assert await returning(1, k=2) == "r"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        asyncio.run(main())
    assert spy.calls == []


def test_call_and_acall_pass_args_and_kwargs() -> None:
    policy = Chaos(chaos.latency(0.5), enabled=True, sleep=FakeClock().sleep)
    assert policy.call(Spy(), 1, 2, a=3) == ("real", (1, 2), {"a": 3})
    clock = FakeClock()
    apolicy = Chaos(chaos.latency(0.5), enabled=True, sleep=clock.asleep)
    assert asyncio.run(apolicy.acall(ASpy(), 1, 2, a=3)) == ("real", (1, 2), {"a": 3})
    assert clock() == 0.5


def test_decorated_methods_bind_self() -> None:
    clock = FakeClock()
    policy = Chaos(chaos.latency(1.0), enabled=True, sleep=clock.sleep)
    apolicy = Chaos(chaos.latency(2.0), enabled=True, sleep=clock.asleep)

    class Service:
        def __init__(self, base: int) -> None:
            self.base = base

        @policy
        def add(self, x: int, *, y: int = 0) -> int:
            return self.base + x + y

        @apolicy
        async def aadd(self, x: int) -> int:
            return self.base + x

    svc = Service(10)
    assert svc.add(1, y=2) == 13
    assert Service.add(svc, 5) == 15
    assert asyncio.run(svc.aadd(7)) == 17
    assert clock() == 1.0 + 1.0 + 2.0
    policy.enabled = False
    assert svc.add(1) == 11

    faked = Chaos(chaos.result("fake"), enabled=True)

    class Other:
        @faked
        def get(self) -> str:
            return "real"

    assert Other().get() == "fake"


def test_async_uses_the_coroutine_sleep_for_injected_latency() -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def asleep(seconds: float) -> None:
        slept.append(seconds)
        await clock.asleep(seconds)

    policy = Chaos(chaos.latency(30.0), chaos.latency(0.5), enabled=True, sleep=asleep)
    fn = ASpy()
    assert asyncio.run(policy.acall(fn, "x")) == ("real", ("x",), {})
    assert sum(slept) == 30.5
    assert clock() == 30.5
    assert len(fn.calls) == 1


def test_async_with_a_plain_sleep_does_not_call_it() -> None:
    clock = FakeClock()
    plain_calls: list[float] = []

    def plain_sleep(seconds: float) -> None:
        plain_calls.append(seconds)
        clock.sleep(seconds)

    policy = Chaos(chaos.latency(0.001), enabled=True, sleep=plain_sleep)
    fn = ASpy()
    assert asyncio.run(policy.acall(fn)) == ("real", (), {})
    assert plain_calls == []
    assert clock() == 0.0
    assert len(fn.calls) == 1
    assert counts(policy)["latency"] == 1


def test_sync_with_a_coroutine_sleep_does_not_call_it() -> None:
    # sleep= a coroutine function is for async calls; a sync call must not
    # create (and drop) a coroutine from it. The delay is tiny and real.
    clock = FakeClock()
    started: list[float] = []

    async def asleep(seconds: float) -> None:
        started.append(seconds)
        await clock.asleep(seconds)

    policy = Chaos(chaos.latency(0.001), enabled=True, sleep=asleep)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert policy.call(lambda: "ok") == "ok"
    assert started == []
    assert clock() == 0.0


def test_chaos_has_no_with_form() -> None:
    policy = Chaos(chaos.error(), enabled=True)
    with pytest.raises((TypeError, AttributeError)), policy:  # type: ignore[attr-defined]
        pass
    with pytest.raises(TypeError), resilience.Pipeline(policy):
        pass


# --------------------------------------------------------------------------
# Inside a Pipeline
# --------------------------------------------------------------------------


def test_pipeline_retry_retries_injected_faults_then_reraises() -> None:
    clock = FakeClock()
    inner = Chaos(chaos.error(rate=1.0), enabled=True)
    pipeline = resilience.Pipeline(
        resilience.Retry(3, sleep=clock.sleep, clock=clock, backoff=constant(1.0)),
        inner,
    )
    fn = Spy()
    with pytest.raises(InjectedFault):
        pipeline.call(fn, 1)
    assert fn.calls == []
    assert counts(inner) == {"latency": 0, "error": 3, "result": 0}
    assert clock() == 2.0  # two waits of 1.0 between three attempts

    @pipeline
    def g() -> str:
        return "never"

    with pytest.raises(InjectedFault):
        g()
    assert counts(inner)["error"] == 6
    assert clock() == 4.0


def test_pipeline_retry_recovers_when_a_later_attempt_is_not_injected() -> None:
    seed, calls, rate = 31, 60, 0.5
    clock = FakeClock()
    inner = Chaos(chaos.error(rate=rate), enabled=True, seed=seed)
    pipeline = resilience.Pipeline(
        resilience.Retry(3, sleep=clock.sleep, clock=clock, backoff=constant(1.0)), inner
    )
    # Replay: each attempt draws one number; the call succeeds at the first
    # attempt whose draw is >= rate, and fails after three injected errors.
    rng = random.Random(seed)
    want: list[str] = []
    injected = 0
    waits = 0
    for _ in range(calls):
        outcome = "failed"
        for attempt in range(3):
            if attempt:
                waits += 1
            if rng.random() < rate:
                injected += 1
            else:
                outcome = "ok"
                break
        want.append(outcome)
    got = []
    fn = Spy()
    for _ in range(calls):
        try:
            pipeline.call(fn)
            got.append("ok")
        except InjectedFault:
            got.append("failed")
    assert got == want
    assert "failed" in want and "ok" in want
    assert counts(inner)["error"] == injected
    assert len(fn.calls) == want.count("ok")
    assert clock() == float(waits)


def test_pipeline_retry_async() -> None:
    clock = FakeClock()
    inner = Chaos(chaos.error(rate=1.0), chaos.latency(0.5), enabled=True, sleep=clock.asleep)
    pipeline = resilience.Pipeline(
        resilience.Retry(3, sleep=clock.asleep, clock=clock, backoff=constant(1.0)), inner
    )
    fn = ASpy()
    with pytest.raises(InjectedFault):
        asyncio.run(pipeline.acall(fn))
    assert fn.calls == []
    assert counts(inner) == {"latency": 3, "error": 3, "result": 0}
    assert clock() == 3 * 0.5 + 2 * 1.0


def test_pipeline_breaker_counts_injected_errors_as_failures(policy_impl: Any) -> None:
    clock = FakeClock()
    breaker = resilience.CircuitBreaker(failure_threshold=3, reset_timeout=10.0, clock=clock)
    inner = Chaos(chaos.error(), enabled=True)
    pipeline = resilience.Pipeline(breaker, inner)
    fn = Spy()
    for _ in range(3):
        with pytest.raises(InjectedFault):
            pipeline.call(fn)
    assert breaker.state == resilience.CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        pipeline.call(fn)
    assert counts(inner)["error"] == 3  # the open breaker did not reach chaos
    stats = breaker.stats
    assert stats.total_failures == 3
    assert stats.rejected == 1
    assert fn.calls == []


def test_pipeline_breaker_counts_injected_results_as_successes(policy_impl: Any) -> None:
    clock = FakeClock()
    breaker = resilience.CircuitBreaker(failure_threshold=2, clock=clock)
    inner = Chaos(chaos.result("fake"), enabled=True)
    pipeline = resilience.Pipeline(breaker, inner)
    for _ in range(5):
        assert pipeline.call(Spy()) == "fake"
    assert breaker.state == resilience.CircuitState.CLOSED
    assert breaker.stats.total_failures == 0
    assert breaker.stats.total_calls == 5


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------


def test_threads_stats_add_up_to_what_was_injected() -> None:
    threads_n, per_thread, seed = 8, 250, 2024
    rates = [0.3, 0.2, 0.3]
    local = threading.local()

    def spy_sleep(seconds: float) -> None:
        assert seconds == 0.5
        local.slept += 1

    policy = Chaos(
        chaos.latency(0.5, rate=rates[0]),
        chaos.error(rate=rates[1]),
        chaos.result("R", rate=rates[2]),
        enabled=True,
        seed=seed,
        sleep=spy_sleep,
    )
    barrier = threading.Barrier(threads_n, timeout=GUARD)
    results: list[dict[str, int]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            local.slept = 0
            mine = {"latency": 0, "error": 0, "result": 0, "called": 0}
            barrier.wait()
            for i in range(per_thread):
                try:
                    value = policy.call(lambda i=i: ("called", i))
                except InjectedFault:
                    mine["error"] += 1
                    continue
                if value == "R":
                    mine["result"] += 1
                else:
                    assert value == ("called", i)
                    mine["called"] += 1
            mine["latency"] = local.slept
            with lock:
                results.append(mine)
        except BaseException as exc:
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, to interleave the calls
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(GUARD)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert len(results) == threads_n
    assert all(r["error"] + r["result"] + r["called"] == per_thread for r in results)
    kinds = ("latency", "error", "result", "called")
    totals = {kind: sum(r[kind] for r in results) for kind in kinds}
    assert counts(policy) == {k: totals[k] for k in KINDS}

    # Each call takes its draws together from the one seeded generator, so the
    # totals are those of the same 2000 calls made one after another.
    want = zero()
    for lat, err, res in replay(seed, rates, threads_n * per_thread):
        want["latency"] += lat
        if err:
            want["error"] += 1
        elif res:
            want["result"] += 1
    assert totals["latency"] == want["latency"]
    assert totals["error"] == want["error"]
    assert totals["result"] == want["result"]


def test_exported_from_the_package() -> None:
    assert resilience.Chaos is Chaos
    assert resilience.chaos.latency is chaos.latency
