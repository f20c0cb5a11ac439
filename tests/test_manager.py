"""ResilienceManager: get-or-create by name, config dicts, add, snapshot, policies.

Every expectation comes from docs/architecture.md ("Composition, registry, metrics")
and the docstrings of ``resilience.manager``: the same name
returns the same object; asking again with no settings or the same ones
returns it, with different ones is a ``ValueError``; configured policies are
made when the manager is; ``snapshot()`` is JSON data keyed by kind then
name. Each test asks for ``policy_impl`` and builds its manager inside, so
the policies it makes run once on each twin.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from enum import Enum
from typing import Any

import pytest

from resilience import backoff
from resilience.breaker import CircuitBreaker, CircuitState
from resilience.budget import ErrorBudget, LatencyBudget
from resilience.bulkhead import Bulkhead
from resilience.errors import CircuitOpenError
from resilience.health import HealthCheck, HealthStatus
from resilience.manager import ResilienceManager, jsonable
from resilience.pipeline import Pipeline
from resilience.ratelimit import RateLimiter
from resilience.retry import Retry
from resilience.testing import FakeClock

GUARD = 10.0  # seconds: a deadlock guard for thread joins, never an assertion on time

# kind -> (manager method, class, settings that make one, other settings)
KINDS: dict[str, tuple[str, type[Any], dict[str, Any], dict[str, Any]]] = {
    "circuit_breakers": (
        "circuit_breaker", CircuitBreaker, {"failure_threshold": 3}, {"failure_threshold": 4}
    ),
    "rate_limiters": ("rate_limiter", RateLimiter, {"rate": 10.0}, {"rate": 20.0}),
    "bulkheads": ("bulkhead", Bulkhead, {"max_concurrent": 2}, {"max_concurrent": 3}),
    "retries": ("retry", Retry, {"attempts": 2}, {"attempts": 5}),
    "error_budgets": ("error_budget", ErrorBudget, {"slo": 0.99}, {"slo": 0.999}),
    "latency_budgets": ("latency_budget", LatencyBudget, {"threshold": 0.5}, {"threshold": 0.25}),
}
ALL_KINDS = [*KINDS, "health_checks"]


class Boom(Exception):
    """The failure the protected functions raise."""


def boom() -> None:
    raise Boom("down")


def get(manager: ResilienceManager, kind: str, name: str, **settings: Any) -> Any:
    return getattr(manager, KINDS[kind][0])(name, **settings)


def check(name: str = "db", status: bool = True) -> HealthCheck:
    return HealthCheck(name, lambda: status, failure_threshold=1, timeout=GUARD)


# -- get-or-create ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_name_returns_the_same_object(policy_impl, kind):
    _, cls, settings, _ = KINDS[kind]
    manager = ResilienceManager()
    first = get(manager, kind, "a", **settings)
    assert type(first) is cls or isinstance(first, cls)
    assert first.name == "a"
    assert get(manager, kind, "a") is first  # no settings: whatever it was made with
    assert get(manager, kind, "a", **settings) is first  # the same settings
    assert get(manager, kind, "b", **settings) is not first
    assert manager.policies(kind) == {"a": first, "b": get(manager, kind, "b")}


@pytest.mark.parametrize("kind", KINDS)
def test_different_settings_for_a_name_are_a_value_error(policy_impl, kind):
    _, _, settings, other = KINDS[kind]
    manager = ResilienceManager()
    first = get(manager, kind, "a", **settings)
    with pytest.raises(ValueError, match="'a'"):
        get(manager, kind, "a", **other)
    assert get(manager, kind, "a") is first  # still there, unchanged


def test_the_settings_given_are_the_ones_used(policy_impl):
    clock = FakeClock()
    manager = ResilienceManager(clock=clock)
    breaker = manager.circuit_breaker("b", failure_threshold=2, reset_timeout=7.0)
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(boom)
    assert info.value.retry_after == pytest.approx(7.0)
    bulkhead = manager.bulkhead("pool", max_concurrent=2, max_queue=0)
    assert bulkhead.try_acquire() and bulkhead.try_acquire()
    assert not bulkhead.try_acquire()


def test_settings_are_compared_with_equality(policy_impl):
    manager = ResilienceManager()
    limiter = manager.rate_limiter("api", rate=10, per=1.0)
    assert manager.rate_limiter("api", rate=10.0, per=1) is limiter  # 10 == 10.0
    retry = manager.retry("r", backoff=backoff.constant(0.5))
    assert manager.retry("r", backoff=backoff.constant(0.5)) is retry  # equal backoffs
    with pytest.raises(ValueError):
        manager.retry("r", backoff=backoff.constant(0.6))


def test_the_same_name_in_two_kinds_is_two_objects(policy_impl):
    manager = ResilienceManager()
    breaker = manager.circuit_breaker("payments")
    bulkhead = manager.bulkhead("payments", max_concurrent=1)
    assert isinstance(breaker, CircuitBreaker) and isinstance(bulkhead, Bulkhead)
    assert manager.circuit_breaker("payments") is breaker


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_bad_name_is_a_type_error(policy_impl, name):
    manager = ResilienceManager()
    with pytest.raises(TypeError, match="name"):
        manager.circuit_breaker(name)
    assert manager.policies("circuit_breakers") == {}


def test_a_bad_setting_raises_the_constructors_error_and_registers_nothing(policy_impl):
    manager = ResilienceManager()
    with pytest.raises(ValueError, match="failure_threshold"):
        manager.circuit_breaker("b", failure_threshold=-1)
    with pytest.raises(TypeError):
        manager.circuit_breaker("b", no_such_setting=1)
    assert manager.policies("circuit_breakers") == {}
    assert manager.circuit_breaker("b", failure_threshold=1).name == "b"  # the name is free


def test_concurrent_get_or_create_from_many_threads_makes_one_object(policy_impl):
    manager = ResilienceManager()
    threads = 16
    start = threading.Barrier(threads)
    got: list[Any] = [None] * threads

    def work(i: int) -> None:
        start.wait(GUARD)
        for _ in range(20):
            got[i] = (
                manager.circuit_breaker("shared", failure_threshold=3),
                manager.bulkhead(f"pool{_ % 3}", max_concurrent=2),
            )

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(GUARD)
    breakers = {id(pair[0]) for pair in got}
    assert len(breakers) == 1
    assert got[0][0] is manager.circuit_breaker("shared")
    assert set(manager.policies("bulkheads")) == {"pool0", "pool1", "pool2"}


# -- config ----------------------------------------------------------------------------


def full_config() -> dict[str, Any]:
    return {
        "circuit_breakers": {"payments": {"failure_threshold": 2, "reset_timeout": 5.0}},
        "rate_limiters": {"api": {"rate": 3, "per": 1.0}},
        "bulkheads": {"pool": {"max_concurrent": 1, "max_queue": 0}},
        "retries": {"fetch": {"attempts": 2}},
        "error_budgets": {"availability": {"slo": 0.9, "window": 600.0}},
        "latency_budgets": {"p99": {"threshold": 0.2}},
    }


def test_configured_policies_are_made_at_once(policy_impl):
    manager = ResilienceManager(full_config())
    made = manager.policies()
    assert {kind: set(named) for kind, named in made.items() if named} == {
        "circuit_breakers": {"payments"},
        "rate_limiters": {"api"},
        "bulkheads": {"pool"},
        "retries": {"fetch"},
        "error_budgets": {"availability"},
        "latency_budgets": {"p99"},
    }
    assert isinstance(made["circuit_breakers"]["payments"], CircuitBreaker)
    assert manager.circuit_breaker("payments") is made["circuit_breakers"]["payments"]
    assert manager.rate_limiter("api") is made["rate_limiters"]["api"]
    assert manager.bulkhead("pool").name == "pool"


def test_configured_settings_are_used(policy_impl):
    manager = ResilienceManager(full_config(), clock=FakeClock())
    breaker = manager.circuit_breaker("payments")
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is CircuitState.OPEN
    limiter = manager.rate_limiter("api")
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    budget = manager.error_budget("availability")
    assert (budget.slo, budget.window) == (0.9, 600.0)
    assert manager.latency_budget("p99").threshold == 0.2


def test_code_settings_agreeing_with_the_config_return_the_configured_object(policy_impl):
    manager = ResilienceManager(full_config())
    breaker = manager.policies("circuit_breakers")["payments"]
    assert manager.circuit_breaker("payments", failure_threshold=2) is breaker
    assert manager.circuit_breaker("payments", failure_threshold=2, reset_timeout=5.0) is breaker


def test_code_settings_conflicting_with_the_config_are_a_value_error(policy_impl):
    manager = ResilienceManager(full_config())
    with pytest.raises(ValueError, match="failure_threshold") as info:
        manager.circuit_breaker("payments", failure_threshold=3)
    assert "payments" in str(info.value)
    # Settings the config did not give are other settings too: the object exists.
    with pytest.raises(ValueError, match="payments"):
        manager.circuit_breaker("payments", failure_threshold=2, half_open_calls=2)


def test_a_config_may_be_empty_or_none(policy_impl):
    for config in (None, {}, {"circuit_breakers": {}}):
        manager = ResilienceManager(config)
        assert all(named == {} for named in manager.policies().values())


@pytest.mark.parametrize("kind", ["circuit_breaker", "breakers", "health_checks", ""])
def test_an_unknown_config_kind_is_a_value_error_naming_it(policy_impl, kind):
    with pytest.raises(ValueError, match=repr(kind)):
        ResilienceManager({kind: {}})


@pytest.mark.parametrize(
    "config",
    [
        [("circuit_breakers", {})],
        "circuit_breakers",
        {"circuit_breakers": [("payments", {})]},
        {"circuit_breakers": {"payments": [("failure_threshold", 2)]}},
        {"circuit_breakers": {"payments": None}},
    ],
)
def test_a_config_that_is_not_mappings_is_a_type_error(policy_impl, config):
    with pytest.raises(TypeError, match="config"):
        ResilienceManager(config)


@pytest.mark.parametrize(
    ("config", "error", "culprit"),
    [
        ({"circuit_breakers": {"p": {"failure_threshold": -1}}}, ValueError, "failure_threshold"),
        ({"rate_limiters": {"api": {"rate": 0}}}, ValueError, "rate"),
        ({"bulkheads": {"pool": {"max_concurrent": 1.5}}}, TypeError, "max_concurrent"),
        ({"retries": {"r": {"attempts": 0}}}, ValueError, "attempts"),
        ({"error_budgets": {"e": {"slo": 1.0}}}, ValueError, "slo"),
        ({"latency_budgets": {"l": {"threshold": math.nan}}}, ValueError, "threshold"),
        ({"circuit_breakers": {"p": {"no_such_setting": 1}}}, TypeError, "no_such_setting"),
        ({"rate_limiters": {"api": {}}}, TypeError, "rate"),  # a required argument missing
    ],
)
def test_bad_settings_fail_at_manager_construction(policy_impl, config, error, culprit):
    with pytest.raises(error, match=culprit):
        ResilienceManager(config)


def test_a_configured_name_must_be_a_str(policy_impl):
    with pytest.raises(TypeError, match="name"):
        ResilienceManager({"circuit_breakers": {1: {}}})


# -- backoff given as a dict -------------------------------------------------------------


def test_a_backoff_dict_in_the_config_makes_that_backoff(policy_impl):
    clock = FakeClock()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    manager = ResilienceManager(
        {
            "retries": {
                "fetch": {
                    "attempts": 4,
                    "backoff": {"kind": "exponential", "initial": 0.5, "multiplier": 2.0,
                                "max": 1.5, "jitter": None},
                    "sleep": sleep,
                },
                "poll": {"attempts": 3, "backoff": {"kind": "constant", "delay": 2.0},
                         "sleep": sleep},
            }
        },
        clock=clock,
    )
    with pytest.raises(Boom):
        manager.retry("fetch").call(boom)
    assert waits == [0.5, 1.0, 1.5]
    waits.clear()
    with pytest.raises(Boom):
        manager.retry("poll").call(boom)
    assert waits == [2.0, 2.0]
    assert clock() == pytest.approx(7.0)


def test_a_backoff_dict_from_code_works_and_compares_equal(policy_impl):
    waits: list[float] = []
    manager = ResilienceManager()
    spec = {"kind": "linear", "initial": 1.0, "step": 1.0, "max": 2.5}
    retry = manager.retry("r", attempts=4, backoff=spec, sleep=waits.append)
    assert manager.retry("r", attempts=4, backoff=dict(spec), sleep=waits.append) is retry
    with pytest.raises(ValueError):
        manager.retry("r", attempts=4, backoff={**spec, "max": 3.0}, sleep=waits.append)
    with pytest.raises(Boom):
        retry.call(boom)
    assert waits == [1.0, 2.0, 2.5]


@pytest.mark.parametrize("spec", [{"kind": "wobbly"}, {"delay": 1.0}, {"kind": None},
                                  {"kind": "__name__"}, {"kind": 3}])
def test_a_bad_backoff_kind_is_a_value_error_at_construction(policy_impl, spec):
    with pytest.raises(ValueError, match="backoff kind"):
        ResilienceManager({"retries": {"r": {"backoff": spec}}})


def test_bad_backoff_arguments_raise_the_backoff_functions_error(policy_impl):
    with pytest.raises(ValueError, match="delay"):
        ResilienceManager({"retries": {"r": {"backoff": {"kind": "constant", "delay": -1.0}}}})


# -- the clock -----------------------------------------------------------------------------


def test_the_managers_clock_drives_its_breakers(policy_impl):
    clock = FakeClock(50.0)
    manager = ResilienceManager(clock=clock)
    breaker = manager.circuit_breaker("b", failure_threshold=1, reset_timeout=10.0)
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN
    clock.advance(9.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: "ok")
    assert info.value.retry_after == pytest.approx(1.0)
    clock.advance(1.0)  # the fake clock alone lets the probe through
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_the_managers_clock_drives_limiters_and_budgets(policy_impl):
    clock = FakeClock()
    manager = ResilienceManager(
        {"error_budgets": {"e": {"slo": 0.9, "window": 60.0}}}, clock=clock
    )
    limiter = manager.rate_limiter("api", rate=1.0, per=10.0)
    assert limiter.try_acquire() and not limiter.try_acquire()
    clock.advance(10.0)
    assert limiter.try_acquire()
    budget = manager.error_budget("e")
    budget.record(False)
    assert budget.remaining < 0
    clock.advance(3600.0)  # far past the window
    assert budget.remaining == 1.0


def test_a_clock_in_the_settings_wins_over_the_managers(policy_impl):
    managers_clock, own_clock = FakeClock(), FakeClock()
    manager = ResilienceManager(clock=managers_clock)
    breaker = manager.circuit_breaker("b", failure_threshold=1, reset_timeout=10.0,
                                      clock=own_clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    managers_clock.advance(100.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "ok")
    own_clock.advance(10.0)
    assert breaker.call(lambda: "ok") == "ok"


@pytest.mark.parametrize("clock", [3.0, "monotonic"])
def test_a_clock_that_is_not_callable_is_a_type_error(policy_impl, clock):
    with pytest.raises(TypeError, match="clock"):
        ResilienceManager(clock=clock)


# -- add -------------------------------------------------------------------------------------


def test_add_registers_a_health_check(policy_impl):
    manager = ResilienceManager()
    db = check("db")
    assert manager.add(db) is db
    assert manager.policies("health_checks") == {"db": db}
    assert manager.add(db) is db  # the same object again is fine
    with pytest.raises(ValueError, match="'db'"):
        manager.add(check("db"))
    assert manager.policies("health_checks") == {"db": db}


def test_add_registers_a_named_policy_for_get(policy_impl):
    manager = ResilienceManager()
    breaker = CircuitBreaker("payments", failure_threshold=1)
    budget = ErrorBudget(0.99, name="availability")
    assert manager.add(breaker) is breaker
    manager.add(budget)
    assert manager.circuit_breaker("payments") is breaker
    assert manager.error_budget("availability") is budget
    with pytest.raises(ValueError, match="payments"):
        manager.add(CircuitBreaker("payments"))
    with pytest.raises(ValueError, match="payments"):
        manager.circuit_breaker("payments", failure_threshold=3)  # made elsewhere, differently


def test_add_of_a_name_taken_by_a_made_policy_is_a_value_error(policy_impl):
    manager = ResilienceManager({"bulkheads": {"pool": {"max_concurrent": 2}}})
    with pytest.raises(ValueError, match="pool"):
        manager.add(Bulkhead(2, name="pool"))
    made = manager.rate_limiter("api", rate=5.0)
    with pytest.raises(ValueError, match="api"):
        manager.add(RateLimiter(5.0, name="api"))
    assert manager.rate_limiter("api") is made


def test_add_of_an_unnamed_policy_is_a_value_error(policy_impl):
    manager = ResilienceManager()
    with pytest.raises(ValueError, match="named"):
        manager.add(CircuitBreaker())
    assert manager.policies("circuit_breakers") == {}


@pytest.mark.parametrize("thing", [object(), "payments", Pipeline(), None])
def test_add_of_something_else_is_a_type_error(policy_impl, thing):
    manager = ResilienceManager()
    with pytest.raises(TypeError, match="policy"):
        manager.add(thing)


# -- pipeline and policies -----------------------------------------------------------------


def test_pipeline_composes_the_managers_policies(policy_impl):
    clock = FakeClock()
    manager = ResilienceManager(clock=clock)
    breaker = manager.circuit_breaker("b", failure_threshold=1)
    limiter = manager.rate_limiter("l", rate=2.0)
    pipeline = manager.pipeline(limiter, breaker)
    assert isinstance(pipeline, Pipeline)
    assert pipeline.policies == (limiter, breaker)
    with pytest.raises(Boom):
        pipeline.call(boom)
    assert breaker.state is CircuitState.OPEN
    assert limiter.stats.allowed == 1


def test_policies_of_one_kind_and_of_all(policy_impl):
    manager = ResilienceManager(full_config())
    db = manager.add(check("db"))
    everything = manager.policies()
    assert list(everything) == ALL_KINDS
    assert everything["health_checks"] == {"db": db}
    for kind in KINDS:
        assert manager.policies(kind) == everything[kind]
    # A copy: changing it registers nothing.
    everything["circuit_breakers"]["ghost"] = object()
    manager.policies("bulkheads")["ghost"] = object()
    assert "ghost" not in manager.policies("circuit_breakers")
    assert "ghost" not in manager.policies("bulkheads")


@pytest.mark.parametrize("kind", ["circuit_breaker", "breakers", "", 3])
def test_policies_of_an_unknown_kind_is_a_value_error(policy_impl, kind):
    with pytest.raises(ValueError, match="kind"):
        ResilienceManager().policies(kind)


# -- snapshot ----------------------------------------------------------------------------------


def test_snapshot_is_json_keyed_by_kind_then_name_and_matches_the_stats(policy_impl):
    clock = FakeClock()
    manager = ResilienceManager(full_config(), clock=clock)
    breaker = manager.circuit_breaker("payments")
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    with pytest.raises(CircuitOpenError):
        breaker.call(boom)
    pool = manager.bulkhead("wide", max_concurrent=4, max_queue=2, max_wait=math.inf)
    pool.try_acquire()
    limiter = manager.rate_limiter("api")
    for _ in range(4):
        limiter.try_acquire()
    budget = manager.error_budget("availability")
    budget.record(True, 8)
    budget.record(False, 2)
    manager.latency_budget("p99").record(0.1)
    db = check("db")
    db.run()
    manager.add(db)

    snapshot = manager.snapshot()
    text = json.dumps(snapshot, allow_nan=False)
    assert json.loads(text) == snapshot  # plain JSON data, nothing lost
    assert list(snapshot) == ALL_KINDS
    assert set(snapshot["bulkheads"]) == {"pool", "wide"}

    for kind, named in manager.policies().items():
        assert set(snapshot[kind]) == set(named)
        for name, policy in named.items():
            if kind == "health_checks":
                continue
            expected = dataclasses.asdict(policy.stats)
            assert set(snapshot[kind][name]) == set(expected), (kind, name)
            for field, value in expected.items():
                if isinstance(value, Enum):
                    value = value.value
                assert snapshot[kind][name][field] == value, (kind, name, field)

    assert snapshot["circuit_breakers"]["payments"]["state"] == "OPEN"
    assert snapshot["circuit_breakers"]["payments"]["rejected"] == 1
    assert snapshot["circuit_breakers"]["payments"]["total_failures"] == 2
    assert snapshot["bulkheads"]["wide"]["active"] == 1
    assert snapshot["rate_limiters"]["api"]["allowed"] == 3
    assert snapshot["rate_limiters"]["api"]["rejected"] == 1
    assert snapshot["error_budgets"]["availability"]["bad"] == 2
    assert snapshot["error_budgets"]["availability"]["remaining"] == pytest.approx(-1.0)
    assert snapshot["latency_budgets"]["p99"]["count"] == 1
    assert snapshot["health_checks"]["db"]["status"] == "UP"
    assert snapshot["health_checks"]["db"]["error"] is None


def test_snapshot_of_a_down_health_check_and_an_empty_latency_budget(policy_impl):
    manager = ResilienceManager()
    down = manager.add(check("cache", status=False))
    assert down.run() is HealthStatus.DOWN
    manager.add(check("fresh"))
    manager.latency_budget("p50", threshold=0.1, quantile=0.5)
    snapshot = manager.snapshot()
    json.dumps(snapshot, allow_nan=False)
    assert snapshot["health_checks"]["cache"]["status"] == "DOWN"
    fresh = manager.policies("health_checks")["fresh"]
    assert snapshot["health_checks"]["fresh"] == {
        "status": "UNKNOWN",
        "error": None,
        "duration": None,
        "since": fresh.since,
    }  # the entry HealthChecker.report shows for it
    assert snapshot["latency_budgets"]["p50"]["observed"] is None
    assert snapshot["latency_budgets"]["p50"]["count"] == 0


def test_snapshot_of_an_empty_manager(policy_impl):
    assert ResilienceManager().snapshot() == {kind: {} for kind in ALL_KINDS}


def test_jsonable_makes_plain_json_data():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        state: CircuitState
        rate: float

    @dataclasses.dataclass
    class Outer:
        name: str | None
        inner: Inner
        waits: tuple[float, ...]
        by_state: dict[Any, float]

    value = Outer(
        name=None,
        inner=Inner(CircuitState.HALF_OPEN, math.inf),
        waits=(1.0, -math.inf, math.nan, 2),
        by_state={CircuitState.OPEN: 0.5, 3: math.nan},
    )
    data = jsonable(value)
    assert data == {
        "name": None,
        "inner": {"state": "HALF_OPEN", "rate": None},
        "waits": [1.0, None, None, 2],
        "by_state": {"OPEN": 0.5, "3": None},
    }
    json.dumps(data, allow_nan=False)
    assert jsonable(HealthStatus.DEGRADED) == "DEGRADED"
    assert jsonable(True) is True


# -- bugs found and fixed --


def test_add_of_a_policy_the_manager_made_keeps_its_settings(policy_impl):
    manager = ResilienceManager()
    breaker = manager.circuit_breaker("a", failure_threshold=3)
    assert manager.add(breaker) is breaker
    assert manager.circuit_breaker("a", failure_threshold=3) is breaker


@pytest.mark.parametrize("kind", ["Backoff", "Jitter"])
def test_a_backoff_kind_that_is_not_a_function_is_a_value_error(policy_impl, kind):
    with pytest.raises(ValueError, match="backoff kind"):
        ResilienceManager({"retries": {"r": {"backoff": {"kind": kind}}}})


def test_the_manager_is_importable_from_resilience():
    from resilience import ResilienceManager as Exported

    assert Exported is ResilienceManager


def test_the_manager_gives_its_sleep_to_policies_that_wait(policy_impl):
    clock = FakeClock()
    manager = ResilienceManager(clock=clock, sleep=clock.sleep)
    retry = manager.retry("r", attempts=3, backoff={"kind": "constant", "delay": 5.0})
    calls = []

    def flaky() -> str:
        calls.append(clock())
        if len(calls) < 3:
            raise ConnectionError
        return "ok"

    assert retry.call(flaky) == "ok"
    assert calls == [0.0, 5.0, 10.0]  # the fake clock's sleep moved it


def test_asking_again_with_a_default_it_was_made_with_returns_it(policy_impl):
    manager = ResilienceManager()
    breaker = manager.circuit_breaker("b", failure_threshold=3)
    assert manager.circuit_breaker("b", reset_timeout=30.0) is breaker  # the default
    with pytest.raises(ValueError, match=r"reset_timeout=31\.0"):
        manager.circuit_breaker("b", reset_timeout=31.0)
    with pytest.raises(ValueError, match="no_such_setting"):
        manager.circuit_breaker("b", no_such_setting=1)


def test_a_policy_registered_with_add_is_asked_for_without_settings(policy_impl):
    manager = ResilienceManager()
    breaker = manager.add(CircuitBreaker("outside", failure_threshold=2))
    assert manager.circuit_breaker("outside") is breaker
    with pytest.raises(ValueError, match="add"):
        manager.circuit_breaker("outside", failure_threshold=2)


def test_asking_again_for_a_bulkhead_with_a_default_returns_it(policy_impl):
    manager = ResilienceManager()
    bulkhead = manager.bulkhead("db", max_concurrent=5)
    assert manager.bulkhead("db", max_concurrent=5, max_queue=0) is bulkhead
    with pytest.raises(ValueError, match="max_queue=1"):
        manager.bulkhead("db", max_queue=1)
