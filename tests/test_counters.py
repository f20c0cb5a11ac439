"""Counters: the lifetime event counts the policies keep in the core."""

from __future__ import annotations

import threading

import pytest


def test_counts_by_index(impl):
    counters = impl.Counters(3)
    assert counters.snapshot() == (0, 0, 0)
    counters.add(0)
    counters.add(2, 5)
    counters.add(2)
    assert counters.snapshot() == (1, 0, 6)
    assert len(counters) == 3


def test_adding_zero_changes_nothing(impl):
    counters = impl.Counters(1)
    counters.add(0, 0)
    assert counters.snapshot() == (0,)


@pytest.mark.parametrize(
    ("args", "error", "word"),
    [
        ((3,), IndexError, "index"),
        ((-1,), ValueError, "index"),
        ((0, -1), ValueError, "n"),
        ((0, 1.5), TypeError, "n"),
        (("0",), TypeError, "index"),
    ],
)
def test_bad_add_raises_the_same_on_both_twins(impl, args, error, word):
    counters = impl.Counters(3)
    with pytest.raises(error, match=word):
        counters.add(*args)
    assert counters.snapshot() == (0, 0, 0)


@pytest.mark.parametrize(("size", "error"), [(0, ValueError), (-2, ValueError), (2.0, TypeError)])
def test_bad_size(impl, size, error):
    with pytest.raises(error, match="size"):
        impl.Counters(size)


def test_threads_lose_no_count(impl):
    counters = impl.Counters(2)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait(timeout=10)
        for _ in range(2000):
            counters.add(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert counters.snapshot() == (0, 16000)


def test_twins_agree_on_messages(twins):
    compiled, pure = twins
    for args in [(5,), (0, -3), ("x",)]:
        errors = []
        for ns in (compiled, pure):
            try:
                ns.Counters(2).add(*args)
            except Exception as exc:  # compared below
                errors.append((type(exc), str(exc)))
        assert errors[0] == errors[1]
