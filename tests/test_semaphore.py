"""SemaphoreCore, the bulkhead counter, on both twins (the ``impl`` fixture)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st


def counts(sem):
    return sem.active, sem.available, sem.acquired, sem.rejected


def test_fresh(impl):
    sem = impl.SemaphoreCore(3)
    assert sem.limit == 3
    assert counts(sem) == (0, 3, 0, 0)


def test_acquires_up_to_the_limit(impl):
    sem = impl.SemaphoreCore(3)
    assert [sem.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert counts(sem) == (3, 0, 3, 1)


def test_limit_one(impl):
    sem = impl.SemaphoreCore(1)
    assert sem.try_acquire()
    assert not sem.try_acquire()
    sem.release()
    assert sem.try_acquire()
    assert counts(sem) == (1, 0, 2, 1)


def test_release_frees_a_permit(impl):
    sem = impl.SemaphoreCore(2)
    sem.try_acquire()
    sem.try_acquire()
    sem.release()
    assert counts(sem) == (1, 1, 2, 0)
    assert sem.try_acquire()
    assert not sem.try_acquire()
    assert counts(sem) == (2, 0, 3, 1)


def test_release_with_none_held_raises(impl):
    sem = impl.SemaphoreCore(2)
    with pytest.raises(RuntimeError):
        sem.release()
    assert counts(sem) == (0, 2, 0, 0)
    assert sem.try_acquire()


def test_release_more_than_acquired_raises(impl):
    sem = impl.SemaphoreCore(2)
    sem.try_acquire()
    sem.release()
    with pytest.raises(RuntimeError):
        sem.release()
    assert counts(sem) == (0, 2, 1, 0)


def test_try_acquire_without_counting_the_rejection(impl):
    sem = impl.SemaphoreCore(1)
    assert sem.try_acquire(False)
    assert not sem.try_acquire(False)
    assert not sem.try_acquire(count_rejection=False)
    assert counts(sem) == (1, 0, 1, 0)
    assert not sem.try_acquire(True)
    assert sem.rejected == 1


def test_try_acquire_false_still_grants(impl):
    sem = impl.SemaphoreCore(2)
    assert sem.try_acquire(count_rejection=False)
    assert counts(sem) == (1, 1, 1, 0)


def test_reject_counts_one(impl):
    sem = impl.SemaphoreCore(2)
    sem.try_acquire()
    sem.reject()
    sem.reject()
    assert counts(sem) == (1, 1, 1, 2)


def test_set_limit_higher(impl):
    sem = impl.SemaphoreCore(1)
    assert sem.try_acquire()
    sem.set_limit(3)
    assert sem.limit == 3
    assert sem.available == 2
    assert sem.try_acquire()
    assert sem.try_acquire()
    assert not sem.try_acquire()
    assert counts(sem) == (3, 0, 3, 1)


def test_set_limit_lower_keeps_holders(impl):
    sem = impl.SemaphoreCore(4)
    for _ in range(4):
        assert sem.try_acquire()
    sem.set_limit(2)
    assert sem.limit == 2
    assert sem.active == 4  # nobody loses a permit
    assert sem.available == 0  # never negative
    assert not sem.try_acquire()
    sem.release()  # 3 out, limit 2
    assert not sem.try_acquire()
    sem.release()  # 2 out, limit 2
    assert not sem.try_acquire()
    sem.release()  # 1 out
    assert sem.available == 1
    assert sem.try_acquire()
    assert not sem.try_acquire()
    assert counts(sem) == (2, 0, 5, 4)


def test_set_limit_same(impl):
    sem = impl.SemaphoreCore(2)
    sem.try_acquire()
    sem.set_limit(2)
    assert counts(sem) == (1, 1, 1, 0)


def test_repr(impl):
    sem = impl.SemaphoreCore(7)
    sem.try_acquire()
    sem.try_acquire()
    text = repr(sem)
    assert "SemaphoreCore" in text
    assert "2" in text
    assert "7" in text


def test_repr_same_on_both_twins(twins):
    texts = set()
    for ns in twins:
        sem = ns.SemaphoreCore(7)
        sem.try_acquire()
        texts.add(repr(sem))
    assert len(texts) == 1


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.booleans()),
        st.tuples(st.just("release")),
        st.tuples(st.just("reject")),
        st.tuples(st.just("set_limit"), st.integers(1, 6)),
    ),
    max_size=60,
)


@given(limit=st.integers(1, 6), ops=OPS)
def test_matches_a_model(impl, limit, ops):
    sem = impl.SemaphoreCore(limit)
    active = acquired = rejected = 0
    for op in ops:
        if op[0] == "acquire":
            expected = active < limit
            if expected:
                active += 1
                acquired += 1
            elif op[1]:
                rejected += 1
            assert sem.try_acquire(op[1]) is expected
        elif op[0] == "release":
            if active == 0:
                with pytest.raises(RuntimeError):
                    sem.release()
            else:
                sem.release()
                active -= 1
        elif op[0] == "reject":
            sem.reject()
            rejected += 1
        else:
            limit = op[1]
            sem.set_limit(limit)
        assert sem.limit == limit
        assert counts(sem) == (active, max(0, limit - active), acquired, rejected)
