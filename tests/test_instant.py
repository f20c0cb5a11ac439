"""``resilience.testing.instant()`` / ``set_testing``: the default sleeps are skipped,
chaos stays off unless asked, and every attempt and decision is as in production.

The sleep hook's ``time.sleep`` and ``asyncio.sleep`` are replaced by
recorders (``sleeps``) that note each delay and return at once: a test proves
both that production mode reaches the default sleep with the wait it would
make and that instant mode does not, without sleeping or timing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_retry import ASYNC_FORMS, SYNC_FORMS, arun, run

from resilience import (
    AdaptiveRateLimiter,
    Chaos,
    Pipeline,
    RateLimiter,
    RateLimitExceeded,
    Retry,
    _policy,
    chaos,
)
from resilience.backoff import constant
from resilience.chaos import CHAOS_VAR
from resilience.testing import FakeClock, instant, set_testing

BACKOFF = 10.0  # seconds between attempts: what production mode would sleep


class Boom(Exception):
    pass


class Sleeps:
    """The delays the sleep hook's default sleeps were called with, in this thread."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.sync: list[float] = []
        self.async_: list[float] = []


class _Module:
    """A module whose ``sleep`` is replaced, everything else the real one's."""

    def __init__(self, real: Any, sleep: Any) -> None:
        self._real = real
        self.sleep = sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """Record the hook's default sleeps instead of making them (other threads sleep for real)."""
    record = Sleeps()
    real_sleep, real_asleep = time.sleep, asyncio.sleep

    def sleep(seconds: float) -> None:
        if threading.get_ident() != record.thread:
            real_sleep(seconds)
            return
        record.sync.append(seconds)

    async def asleep(seconds: float) -> None:
        record.async_.append(seconds)
        await real_asleep(0)  # a turn of the loop, as the real one gives

    monkeypatch.setattr(_policy, "time", _Module(time, sleep))
    monkeypatch.setattr(_policy, "asyncio", _Module(asyncio, asleep))
    return record


@pytest.fixture(autouse=True)
def twin(policy_impl: Any) -> Iterator[Any]:
    """Every test runs on both twins, and leaves the switch off."""
    yield policy_impl
    set_testing(False)


class Failing:
    """A function that always raises, counting its calls (sync or async)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        raise Boom(f"#{self.calls}")

    async def acall(self) -> None:
        self.calls += 1
        raise Boom(f"#{self.calls}")


def retry_sleeps(sleeps: Sleeps) -> list[float]:
    """The default sleeps a Retry of two attempts makes now (a probe of the mode)."""
    before = len(sleeps.sync)
    with pytest.raises(Boom):
        Retry(2, backoff=constant(BACKOFF)).call(Failing())
    return sleeps.sync[before:]


# -- retries ----------------------------------------------------------------------


@pytest.mark.parametrize("form", SYNC_FORMS)
def test_a_retry_makes_every_attempt_without_sleeping(sleeps: Sleeps, form: str) -> None:
    # production first: the same retry sleeps its four backoffs
    outside = Retry(5, backoff=constant(BACKOFF))
    fn = Failing()
    with pytest.raises(Boom, match="#5"):
        run(outside, form, fn)
    assert fn.calls == 5
    assert sleeps.sync == [BACKOFF] * 4

    retry = Retry(5, backoff=constant(BACKOFF))
    fn = Failing()
    with instant(), pytest.raises(Boom, match="#5"):
        run(retry, form, fn)
    assert fn.calls == 5
    assert sleeps.sync == [BACKOFF] * 4  # no more than production made
    assert retry.stats == outside.stats  # the same attempts, retries, failures
    assert (retry.stats.attempts, retry.stats.retries, retry.stats.failures) == (5, 4, 1)


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_an_async_retry_makes_every_attempt_and_only_yields(sleeps: Sleeps, form: str) -> None:
    outside = Retry(5, backoff=constant(BACKOFF))
    fn = Failing()
    with pytest.raises(Boom, match="#5"):
        asyncio.run(arun(outside, form, fn.acall))
    assert fn.calls == 5
    assert sleeps.async_ == [BACKOFF] * 4

    sleeps.async_.clear()
    retry = Retry(5, backoff=constant(BACKOFF))
    fn = Failing()
    with instant(), pytest.raises(Boom, match="#5"):
        asyncio.run(arun(retry, form, fn.acall))
    assert fn.calls == 5
    assert sleeps.async_ == [0] * 4  # one turn of the loop per backoff, no wait
    assert sleeps.sync == []
    assert retry.stats == outside.stats


def test_an_instant_async_backoff_still_lets_other_tasks_run(sleeps: Sleeps) -> None:
    order: list[str] = []

    async def fails() -> None:
        order.append("attempt")
        raise Boom

    async def other() -> None:
        order.append("other")

    async def main() -> None:
        task = asyncio.ensure_future(other())
        with pytest.raises(Boom):
            await Retry(2, backoff=constant(BACKOFF)).acall(fails)
        await task

    with instant():
        asyncio.run(main())
    assert order == ["attempt", "other", "attempt"]


def test_a_retrys_own_sleep_is_still_called(sleeps: Sleeps) -> None:
    clock = FakeClock()
    retry = Retry(5, backoff=constant(BACKOFF), sleep=clock.sleep)
    with instant(), pytest.raises(Boom):
        retry.call(Failing())
    assert clock() == 4 * BACKOFF
    assert sleeps.sync == []

    aclock = FakeClock()
    aretry = Retry(5, backoff=constant(BACKOFF), sleep=aclock.asleep)
    with instant(), pytest.raises(Boom):
        asyncio.run(aretry.acall(Failing().acall))
    assert aclock() == 4 * BACKOFF
    assert sleeps.async_ == []


# -- rate limiters ----------------------------------------------------------------


def limiter(kind: str, **kwargs: Any) -> RateLimiter:
    """One token a second, a burst of one, waits of up to 3.5 s, on a clock that stands still."""
    settings: dict[str, Any] = {"burst": 1, "max_wait": 3.5, "clock": FakeClock(), **kwargs}
    if kind == "adaptive":
        return AdaptiveRateLimiter(1, min_rate=0.5, max_rate=2, **settings)
    return RateLimiter(1, **settings)


def through(policy: RateLimiter, form: str) -> Any:
    """One call through ``policy`` in ``form``."""
    if form == "call":
        return policy.call(lambda: "ok")
    if form == "decorator":
        return policy(lambda: "ok")()
    if form == "acquire":
        policy.acquire()
        return "ok"
    if form == "with":
        with policy:
            return "ok"

    async def ok() -> str:
        return "ok"

    async def block() -> str:
        async with policy:
            return "ok"

    if form == "acall":
        return asyncio.run(policy.acall(ok))
    if form == "async with":
        return asyncio.run(block())
    assert form == "async decorator"
    return asyncio.run(policy(ok)())


LIMITER_FORMS = ["call", "decorator", "acquire", "with", "acall", "async decorator", "async with"]
ASYNC_LIMITER_FORMS = ("acall", "async decorator", "async with")


def five_calls(policy: RateLimiter, form: str) -> list[str]:
    """What five calls in a row get: the first at once, three after reserving, one refused."""
    outcomes = []
    for _ in range(5):
        try:
            outcomes.append(through(policy, form))
        except RateLimitExceeded:
            outcomes.append("refused")
    return outcomes


@pytest.mark.parametrize("kind", ["plain", "adaptive"])
@pytest.mark.parametrize("form", LIMITER_FORMS)
def test_a_limiter_reserves_and_refuses_as_in_production_without_sleeping(
    sleeps: Sleeps, kind: str, form: str
) -> None:
    outside = limiter(kind)
    production = five_calls(outside, form)
    waits = sleeps.sync + sleeps.async_
    if kind == "plain":
        assert production == ["ok", "ok", "ok", "ok", "refused"]
        assert waits == [1.0, 2.0, 3.0]  # the waits it reserved
    else:  # its successes raise its rate as it goes: shorter waits, the same in both modes
        assert waits and all(wait > 0.0 for wait in waits)

    sleeps.sync.clear()
    sleeps.async_.clear()
    policy = limiter(kind)
    with instant():
        assert five_calls(policy, form) == production
    assert sleeps.sync == []
    assert sleeps.async_ == ([0] * len(waits) if form in ASYNC_LIMITER_FORMS else [])
    # the tokens were taken all the same: as many owed, as many refusals
    assert policy.stats == outside.stats
    if kind == "plain":
        assert (policy.stats.allowed, policy.stats.rejected) == (4, 1)
        assert policy.stats.available == pytest.approx(-3.0)


def test_a_limiters_own_sleep_is_still_called(sleeps: Sleeps) -> None:
    clock = FakeClock()
    policy = RateLimiter(1, burst=1, max_wait=5.0, clock=clock, sleep=clock.sleep)
    with instant():
        policy.acquire()
        policy.acquire()  # waits a second on its own sleep, which moves its clock
    assert clock() == 1.0
    assert sleeps.sync == []


def test_a_pipeline_retrying_through_a_limiter_decides_as_in_production(sleeps: Sleeps) -> None:
    def attempts(mode: Any) -> tuple[list[str], Any, Any]:
        """Retry over a limiter that owes more each attempt: who gets through, the stats."""
        retry = Retry(4, backoff=constant(BACKOFF))
        policy = limiter("plain", max_wait=1.5)
        seen: list[str] = []

        def fails() -> None:
            seen.append("attempt")
            raise Boom

        with mode, pytest.raises((Boom, RateLimitExceeded)):
            Pipeline(retry, policy).call(fails)
        return seen, retry.stats, policy.stats

    production = attempts(contextlib.nullcontext())
    waits = sorted(sleeps.sync)
    # a reservation's wait, a refusal's retry_after taken as its backoff, two backoffs
    assert waits == [1.0, 2.0, BACKOFF, BACKOFF]
    sleeps.sync.clear()
    assert attempts(instant()) == production
    assert sleeps.sync == []


# -- chaos ------------------------------------------------------------------------


def faults() -> tuple[chaos.Fault, ...]:
    return chaos.latency(BACKOFF), chaos.result("injected")


def test_chaos_enabled_by_the_variable_is_off_in_instant_mode(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHAOS_VAR, "1")
    policy = Chaos(*faults())
    assert policy.enabled is True
    with instant():
        assert policy.call(lambda: "real") == "real"
        assert asyncio.run(policy.acall(asyncio.sleep, 0, "real")) == "real"
    assert (policy.stats.latency, policy.stats.result) == (0, 0)
    assert sleeps.sync == sleeps.async_ == []
    # outside it injects again, sleeping the latency
    assert policy.call(lambda: "real") == "injected"
    assert sleeps.sync == [BACKOFF]


def test_chaos_enabled_explicitly_injects_in_instant_mode_without_sleeping(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CHAOS_VAR, raising=False)
    policy = Chaos(*faults(), enabled=True)
    with instant():
        assert policy.call(lambda: "real") == "injected"
        assert asyncio.run(policy.acall(asyncio.sleep, 0, "real")) == "injected"
    assert (policy.stats.latency, policy.stats.result) == (2, 2)
    assert sleeps.sync == []
    assert sleeps.async_ == [0]


def test_chaos_switched_on_by_assignment_counts_as_asked(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHAOS_VAR, "1")
    policy = Chaos(*faults())
    with instant():
        assert policy.call(lambda: "real") == "real"
        policy.enabled = True
        assert policy.call(lambda: "real") == "injected"
        policy.enabled = False
        assert policy.call(lambda: "real") == "real"
    assert policy.enabled is False


def test_chaos_latency_with_its_own_sleep_still_calls_it(sleeps: Sleeps) -> None:
    clock = FakeClock()
    policy = Chaos(chaos.latency(BACKOFF), enabled=True, sleep=clock.sleep)
    with instant():
        assert policy.call(lambda: "real") == "real"
    assert clock() == BACKOFF
    assert sleeps.sync == []


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_chaos_enabled_assignment_must_be_a_bool(bad: object) -> None:
    policy = Chaos(chaos.error(), enabled=False)
    with pytest.raises(TypeError, match="enabled"):
        policy.enabled = bad
    assert policy.enabled is False


# -- the switch and the blocks ----------------------------------------------------


def test_instant_blocks_nest(sleeps: Sleeps) -> None:
    with instant():
        with instant():
            assert retry_sleeps(sleeps) == []
        assert retry_sleeps(sleeps) == []  # the outer block is still open
    assert retry_sleeps(sleeps) == [BACKOFF]


def test_a_block_ends_instant_mode_when_it_raises(sleeps: Sleeps) -> None:
    with pytest.raises(Boom), instant():
        raise Boom
    assert retry_sleeps(sleeps) == [BACKOFF]


def test_set_testing_switches_the_mode_and_blocks_keep_it_on(sleeps: Sleeps) -> None:
    set_testing(True)
    assert retry_sleeps(sleeps) == []
    with instant():
        pass
    assert retry_sleeps(sleeps) == []  # the block's end leaves the switch on
    set_testing(False)
    assert retry_sleeps(sleeps) == [BACKOFF]

    with instant():
        set_testing(True)
        set_testing(False)
        assert retry_sleeps(sleeps) == []  # the open block keeps it on
    assert retry_sleeps(sleeps) == [BACKOFF]


@pytest.mark.parametrize("bad", [1, 0, "on", None])
def test_set_testing_takes_a_bool(sleeps: Sleeps, bad: object) -> None:
    with pytest.raises(TypeError, match="on must be a bool"):
        set_testing(bad)
    assert retry_sleeps(sleeps) == [BACKOFF]


def test_blocks_of_several_threads_keep_it_on_until_the_last_ends(sleeps: Sleeps) -> None:
    entered, leave, left = threading.Event(), threading.Event(), threading.Event()

    def other() -> None:
        with instant():
            entered.set()
            leave.wait(60)
        left.set()

    thread = threading.Thread(target=other)
    try:
        with instant():
            thread.start()
            assert entered.wait(60)
        # this thread's block ended first: the other's keeps the mode on
        meanwhile = retry_sleeps(sleeps)
    finally:  # the other thread's block ends whatever happened here
        leave.set()
        thread.join(60)
    assert meanwhile == []
    assert left.is_set()
    assert retry_sleeps(sleeps) == [BACKOFF]


def test_instant_decorates_functions_and_coroutine_functions(sleeps: Sleeps) -> None:
    @instant()
    def sync() -> list[float]:
        return retry_sleeps(sleeps)

    @instant()
    async def coroutine() -> list[float]:
        await asyncio.sleep(0)  # the mode holds across awaits
        with pytest.raises(Boom):
            await Retry(2, backoff=constant(BACKOFF)).acall(Failing().acall)
        return sleeps.async_[-1:]

    assert sync.__name__ == "sync"
    assert sync() == []
    assert asyncio.run(coroutine()) == [0]
    assert retry_sleeps(sleeps) == [BACKOFF]


def test_instant_decorates_only_callables() -> None:
    with pytest.raises(TypeError, match="callable"):
        instant()(42)


def test_an_exit_without_an_open_block_is_refused(sleeps: Sleeps) -> None:
    with pytest.raises(RuntimeError, match="without a block open"):
        instant().__exit__(None, None, None)
    with instant():  # the count did not go below zero: a block still works
        assert retry_sleeps(sleeps) == []
    assert retry_sleeps(sleeps) == [BACKOFF]
