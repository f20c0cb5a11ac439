"""FakeClock: the clock users drive in their own tests."""

from __future__ import annotations

import asyncio
import math

import pytest

from resilience.testing import FakeClock


def test_starts_where_told_and_stands_still() -> None:
    clock = FakeClock(12.5)
    assert clock() == 12.5
    assert clock() == 12.5
    assert FakeClock()() == 0.0


def test_advance_moves_and_returns_the_new_time() -> None:
    clock = FakeClock()
    assert clock.advance(1.5) == 1.5
    assert clock.advance(0) == 1.5
    assert clock() == 1.5


def test_sleep_advances() -> None:
    clock = FakeClock(1.0)
    clock.sleep(2.0)
    assert clock() == 3.0


def test_asleep_advances_and_yields_to_the_loop() -> None:
    clock = FakeClock()
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    async def main() -> None:
        task = asyncio.ensure_future(other())
        await clock.asleep(5.0)
        order.append("after sleep")
        await task

    asyncio.run(main())
    assert clock() == 5.0
    assert order == ["other", "after sleep"]


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_advance_rejects_bad_amounts(bad: float) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(bad)
    assert clock() == 0.0


def test_start_must_be_a_finite_number() -> None:
    with pytest.raises(TypeError, match="start"):
        FakeClock("0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start"):
        FakeClock(math.nan)


def test_drives_a_core_object(impl) -> None:
    clock = FakeClock()
    bucket = impl.TokenBucket(2.0, 1.0, clock=clock)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    clock.advance(0.5)
    assert bucket.try_acquire()


def test_repr() -> None:
    assert repr(FakeClock(2.0)) == "FakeClock(2.0)"
