"""RateLimiter.decide / adecide and RateDecision, on both twins.

Expectations worked out by hand from the bucket's definition: ``rate`` tokens
per ``per`` seconds into a bucket of ``burst``; time is a FakeClock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from types import SimpleNamespace

import pytest

from resilience import RateLimiter
from resilience.ratelimit import RateDecision
from resilience.testing import FakeClock


def make(rate: float = 2.0, **kwargs: float) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(rate, clock=clock, **kwargs), clock


def test_burst_is_granted_then_refused_with_the_wait(policy_impl: SimpleNamespace) -> None:
    limiter, _ = make(2.0, burst=3)
    decisions = [limiter.decide() for _ in range(4)]
    assert decisions[:3] == [
        RateDecision(True, 3.0, 2, 0.0, 0.5),
        RateDecision(True, 3.0, 1, 0.0, 1.0),
        RateDecision(True, 3.0, 0, 0.0, 1.5),
    ]
    # Empty: one token comes in 1 / rate = 0.5 s; full again in 3 / 2 s.
    assert decisions[3] == RateDecision(False, 3.0, 0, 0.5, 1.5)


def test_refill_shows_in_every_field(policy_impl: SimpleNamespace) -> None:
    limiter, clock = make(4.0, burst=4)
    for _ in range(4):
        assert limiter.decide().allowed
    clock.advance(0.5)  # two tokens back
    decision = limiter.decide()
    assert decision == RateDecision(True, 4.0, 1, 0.0, 0.75)
    clock.advance(10.0)
    assert limiter.decide(0) == RateDecision(True, 4.0, 4, 0.0, 0.0)


def test_several_tokens_and_more_than_the_burst(policy_impl: SimpleNamespace) -> None:
    limiter, _ = make(1.0, per=2.0, burst=5)  # a token every 2 s
    assert limiter.decide(4) == RateDecision(True, 5.0, 1, 0.0, 8.0)
    assert limiter.decide(3) == RateDecision(False, 5.0, 1, 4.0, 8.0)
    over = limiter.decide(6)
    assert not over.allowed and over.retry_after == math.inf
    assert limiter.available == pytest.approx(1.0)  # refusals took nothing


def test_decisions_count_in_the_stats(policy_impl: SimpleNamespace) -> None:
    limiter, _ = make(1.0)
    assert limiter.decide().allowed
    assert not limiter.decide().allowed
    stats = limiter.stats
    assert (stats.allowed, stats.rejected) == (1, 1)


def test_remaining_is_whole_tokens_and_never_negative(policy_impl: SimpleNamespace) -> None:
    limiter, clock = make(10.0, burst=4, max_wait=5.0, sleep=FakeClock().sleep)
    limiter.decide(4)
    clock.advance(0.15)  # 1.5 tokens: one whole
    assert limiter.decide(0).remaining == 1
    limiter.acquire(3)  # a reservation puts the bucket in debt
    decision = limiter.decide()
    assert decision.remaining == 0 and not decision.allowed
    assert decision.reset_after == pytest.approx((4 - (1.5 - 3)) / 10)


def test_adecide_is_decide(policy_impl: SimpleNamespace) -> None:
    limiter, _ = make(2.0, burst=2)

    async def main() -> list[RateDecision]:
        return [await limiter.adecide() for _ in range(3)]

    assert [d.allowed for d in asyncio.run(main())] == [True, True, False]


def test_a_decision_is_frozen_and_slotted() -> None:
    decision = RateDecision(True, 1.0, 0, 0.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.allowed = False  # type: ignore[misc]
    assert not hasattr(decision, "__dict__")


@pytest.mark.parametrize(
    ("tokens", "error"),
    [
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("1", TypeError),
        (True, TypeError),
    ],
)
def test_bad_tokens(policy_impl: SimpleNamespace, tokens: object, error: type) -> None:
    limiter, _ = make()
    with pytest.raises(error, match="tokens"):
        limiter.decide(tokens)  # type: ignore[arg-type]
