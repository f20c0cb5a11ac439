"""KeyedRateLimiter (a bucket per key, memory bounded by max_keys) and rate strings.

Every test asks for ``policy_impl``, so each runs on both twins' buckets.
"""

from __future__ import annotations

import copy
import math
import pickle
import re
import threading
from typing import Any

import pytest

from resilience import (
    AdaptiveRateLimiter,
    KeyedRateLimiter,
    KeyedRateLimiterStats,
    RateDecision,
    RateLimiter,
    ResilienceManager,
)
from resilience.testing import FakeClock

pytestmark = pytest.mark.usefixtures("policy_impl")


# -- rate strings --------------------------------------------------------------------------

RATE_STRINGS = {
    "100/minute": (100.0, 60.0),
    "10/s": (10.0, 1.0),
    "5 per second": (5.0, 1.0),
    "1000/day": (1000.0, 86400.0),
    " 2.5 / h ": (2.5, 3600.0),
    "3/M": (3.0, 60.0),
    "7 per hours": (7.0, 3600.0),
    "1.5/d": (1.5, 86400.0),
}


@pytest.mark.parametrize(("text", "expected"), RATE_STRINGS.items())
@pytest.mark.parametrize("kind", [RateLimiter, KeyedRateLimiter])
def test_a_rate_string_gives_the_rate_and_its_period(
    kind: type[Any], text: str, expected: tuple[float, float]
) -> None:
    stats = kind(text, burst=5).stats
    assert (stats.rate, stats.per) == expected


def test_an_adaptive_limiter_takes_a_rate_string() -> None:
    limiter = AdaptiveRateLimiter("10/minute", min_rate=1, max_rate=100)
    assert (limiter.rate, limiter.stats.per) == (10.0, 60.0)


MALFORMED = ["100/fortnight", "abc", "-5/s", "1e3/s", "100/", "/s", "100//s", "", "100 per",
             "100 minute", "1,000/s", "five/s", "100/s/s", "100 per  per s"]  # fmt: skip


@pytest.mark.parametrize("text", MALFORMED)
@pytest.mark.parametrize("kind", [RateLimiter, KeyedRateLimiter])
def test_a_malformed_rate_string_is_a_value_error_quoting_it(kind: type[Any], text: str) -> None:
    with pytest.raises(ValueError, match=f"rate must be .*got {re.escape(repr(text))}"):
        kind(text, burst=5)


@pytest.mark.parametrize("text", ["0/s", "0.0 per minute", "9" * 400 + "/s"])
def test_a_rate_string_of_no_tokens_or_too_many_is_refused(text: str) -> None:
    message = f"rate must be a finite number > 0 of tokens, got {text!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        RateLimiter(text, burst=1)


@pytest.mark.parametrize("kind", [RateLimiter, KeyedRateLimiter])
def test_a_rate_string_with_per_is_a_type_error(kind: type[Any]) -> None:
    with pytest.raises(TypeError, match=r"per must not be given with a rate string \('10/s'\)"):
        kind("10/s", per=2.0)


def test_a_numeric_rate_keeps_per() -> None:
    stats = RateLimiter(5, per=2.0).stats
    assert (stats.rate, stats.per) == (5.0, 2.0)
    assert RateLimiter(5).stats.per == 1.0


def test_the_manager_compares_rates_however_written() -> None:
    manager = ResilienceManager({"rate_limiters": {"api": {"rate": "100/minute"}}})
    limiter = manager.rate_limiter("api")
    assert (limiter.stats.rate, limiter.stats.per) == (100.0, 60.0)
    assert manager.rate_limiter("api", rate=100, per=60.0) is limiter
    assert manager.rate_limiter("api", rate="100 per minute") is limiter
    with pytest.raises(ValueError, match=r"per=1\.0 differs from the config's 60\.0"):
        manager.rate_limiter("api", rate="100/s")
    with pytest.raises(TypeError, match="per must not be given with a rate string"):
        ResilienceManager({"rate_limiters": {"x": {"rate": "1/s", "per": 3}}})


# -- a bucket per key ----------------------------------------------------------------------


def keyed(**kwargs: Any) -> tuple[KeyedRateLimiter, FakeClock]:
    clock = FakeClock()
    kwargs.setdefault("max_keys", 100)
    return KeyedRateLimiter(2, per=1.0, burst=3, clock=clock, **kwargs), clock


def test_each_key_has_its_own_bucket() -> None:
    limiter, clock = keyed()
    assert [limiter.try_acquire("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.try_acquire("b")  # another key's bucket is full
    clock.advance(0.5)  # one token back for "a" (2 a second)
    assert [limiter.try_acquire("a"), limiter.try_acquire("a")] == [True, False]
    stats = limiter.stats
    assert stats == KeyedRateLimiterStats(None, 2.0, 1.0, 3.0, 2, 100, 5, 2, 0, 0)


def test_decide_says_what_is_left_and_when_to_come_back() -> None:
    limiter, clock = keyed()
    assert limiter.decide("a", 2) == RateDecision(True, 3.0, 1, 0.0, 1.0)
    refused = limiter.decide("a", 2)
    assert refused == RateDecision(False, 3.0, 1, 0.5, 1.0)  # one more token in 0.5 s
    assert limiter.decide("a", 4).retry_after == math.inf  # more than the bucket holds
    clock.advance(1.0)
    assert limiter.decide("a") == RateDecision(True, 3.0, 2, 0.0, 0.5)


def test_adecide_is_decide_for_async_code() -> None:
    import asyncio

    limiter, _ = keyed()
    assert asyncio.run(limiter.adecide("a", 3)) == RateDecision(True, 3.0, 0, 0.0, 1.5)
    assert not limiter.try_acquire("a")


def test_a_full_bucket_among_the_least_recently_used_makes_room_first() -> None:
    limiter, _ = keyed(max_keys=3)
    limiter.try_acquire("spent")  # least recently used, and not full
    limiter.decide("full", 0)  # a bucket that is still full
    limiter.try_acquire("busy")
    limiter.try_acquire("new")  # room is made by dropping "full", which loses nothing
    assert (limiter.stats.keys, limiter.stats.evicted, limiter.stats.lossy) == (3, 1, 0)
    assert [limiter.try_acquire("spent") for _ in range(3)] == [True, True, False]  # kept
    limiter.try_acquire("newer")  # none full now: the least recently used goes, lossy
    assert (limiter.stats.keys, limiter.stats.evicted, limiter.stats.lossy) == (3, 2, 1)
    assert [limiter.try_acquire("busy") for _ in range(3)] == [True, True, True]  # begun anew


def test_only_the_eight_least_recently_used_are_looked_at() -> None:
    limiter, _ = keyed(max_keys=10)
    for i in range(9):
        limiter.try_acquire(f"spent-{i}")
    limiter.decide("full", 0)  # the 10th: full, but the most recently used
    limiter.try_acquire("new")
    assert limiter.stats.lossy == 1  # "full" was not among the 8 looked at
    assert [limiter.try_acquire("spent-0") for _ in range(4)] == [True, True, True, False]


def test_memory_is_bounded_by_max_keys() -> None:
    limiter, _ = keyed(max_keys=50)
    for i in range(5000):
        limiter.try_acquire(i)
    stats = limiter.stats
    assert stats.keys == 50 and stats.evicted == 4950 and stats.allowed == 5000


def test_forget_drops_a_key() -> None:
    limiter, _ = keyed()
    for _ in range(3):
        limiter.try_acquire("a")
    limiter.forget("a")
    limiter.forget("never seen")
    assert limiter.stats.keys == 0
    assert limiter.try_acquire("a")


def test_threads_on_one_key_never_get_more_than_the_bucket_holds(frequent_switches: None) -> None:
    limiter = KeyedRateLimiter(1, per=3600.0, burst=50, clock=FakeClock())
    granted: list[int] = []
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait(timeout=10.0)
        granted.append(sum(limiter.try_acquire("k") for _ in range(2000)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60.0)
    assert sum(granted) == 50
    assert (limiter.stats.allowed, limiter.stats.rejected) == (50, 8 * 2000 - 50)


def test_each_bucket_is_the_selected_twins(policy_impl: Any) -> None:
    limiter, _ = keyed()
    limiter.try_acquire("a")
    assert all(type(b) is policy_impl.TokenBucket for b in limiter._buckets.values())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_keys": 0}, ValueError, "max_keys must be an integer >= 1, got 0"),
        ({"max_keys": 10**8}, ValueError, "max_keys must be an integer <= 10000000, got 100000000"),
        ({"max_keys": 1.5}, TypeError, "max_keys must be an integer, got 1.5"),
        ({"max_keys": True}, TypeError, "max_keys must be an integer, got True"),
        ({"burst": 0.5}, ValueError, "burst must be"),
        ({"rate": math.nan}, ValueError, "rate must not be NaN, got nan"),
        ({"rate": -1}, ValueError, "rate must be"),
        ({"rate": None}, TypeError, "rate must be"),
        ({"per": 0}, ValueError, "per must be"),
        ({"name": 3}, TypeError, "name must be a str or None, got 3"),
        ({"clock": 3}, TypeError, "clock"),
    ],
)
def test_bad_settings_are_refused(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments = {"rate": 10, **kwargs}
    with pytest.raises(error, match=message):
        KeyedRateLimiter(**arguments)


def test_a_keyed_limiter_is_neither_copied_nor_pickled() -> None:
    limiter, _ = keyed()
    for attempt in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError):
            attempt(limiter)
