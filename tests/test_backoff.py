"""resilience.backoff: the waits before each retry.

Expected values come from the contract's formulas worked by hand; the
examples use dyadic numbers (and 0.1 doubled, which stays the nearest float
to 0.2, 0.4, ...) so the float results are exact and compared with ``==``.
The jittered waits are checked against their bounds, with ``d`` taken from
the unjittered backoff of the same settings; exactly, against the contract's
formulas worked with a generator seeded alike; and for reaching the whole of
their range (a range narrowed by a few percent stays within the bounds).
"""

from __future__ import annotations

import math
import random as random_module
import sys
from fractions import Fraction
from random import Random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from resilience import backoff
from resilience.backoff import constant, exponential, fibonacci, linear

NAN = math.nan
INF = math.inf
JITTERS = [None, "full", "equal", "decorrelated"]
HUGE_N = [10**6, 10**9, 2**62, sys.maxsize]


def fib(n):
    a, b = 1, 1
    for _ in range(n - 1):
        a, b = b, a + b
    return a


# -- exact values -------------------------------------------------------------


def test_constant():
    wait = constant(0.5)
    assert [wait(n) for n in (1, 2, 3, 100)] == [0.5, 0.5, 0.5, 0.5]
    assert constant(0)(1) == 0.0


def test_int_settings_give_float_waits():
    assert type(constant(3)(1)) is float
    assert type(linear(1, 1, 10)(2)) is float
    assert type(fibonacci(1, 10)(3)) is float
    assert type(exponential(1, 2, 10, None)(2)) is float


def test_fraction_settings_are_numbers():
    wait = linear(Fraction(1, 2), Fraction(1, 4), 2)
    assert wait.initial == 0.5
    assert type(wait.initial) is float
    assert wait(3) == 1.0


def test_linear():
    wait = linear(0.5, 0.25, 1.5)
    # 0.5 + 0.25*(n-1), capped at 1.5
    assert [wait(n) for n in range(1, 8)] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.5, 1.5]


def test_linear_defaults():
    wait = linear()
    assert (wait.initial, wait.step, wait.max) == (0.1, 0.1, 30.0)
    assert wait(1) == 0.1
    assert wait(2) == 0.2
    assert wait(1000) == 30.0  # 0.1 + 0.1*999 = 100 -> 30


def test_linear_without_step_is_flat():
    assert [linear(2, 0, 5)(n) for n in (1, 2, 50)] == [2.0, 2.0, 2.0]


def test_fibonacci():
    wait = fibonacci(0.5, 10)
    # 0.5 * (1, 1, 2, 3, 5, 8, 13, 21), capped at 10
    assert [wait(n) for n in range(1, 10)] == [0.5, 0.5, 1.0, 1.5, 2.5, 4.0, 6.5, 10.0, 10.0]


def test_fibonacci_defaults():
    wait = fibonacci()
    assert (wait.initial, wait.max) == (0.1, 30.0)
    assert [wait(1), wait(2), wait(3)] == [0.1, 0.1, 0.2]
    assert wait(100) == 30.0  # 0.1 * 354224848179261915075


def test_fibonacci_of_zero_is_zero():
    wait = fibonacci(0, 5)
    assert [wait(1), wait(2), wait(50), wait(sys.maxsize)] == [0.0, 0.0, 0.0, 0.0]


def test_fibonacci_past_the_float_range():
    # F(1500) ~ 1.4e313 does not fit a float; 1e-10 * F(1500) ~ 1.4e303 does
    wait = fibonacci(1e-10, 1e308)
    assert wait(1500) == float(Fraction(1e-10) * fib(1500))
    assert wait(1600) == 1e308
    tiny = fibonacci(5e-324, 1.0)  # 2**-1074: capped once F(n) >= 2**1074
    assert tiny(1500) == float(Fraction(fib(1500), 2**1074))
    assert 0.0 < tiny(1500) < 1.0
    assert tiny(2000) == 1.0


def test_exponential_without_jitter():
    wait = exponential(0.25, 2, 3, None)
    # 0.25 * 2**(n-1), capped at 3
    assert [wait(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]
    triple = exponential(0.5, 3, 100, jitter=None)
    # 0.5 * 3**(n-1): 0.5, 1.5, 4.5, 13.5, 40.5, 121.5 -> 100
    assert [triple(n) for n in range(1, 8)] == [0.5, 1.5, 4.5, 13.5, 40.5, 100.0, 100.0]


def test_exponential_defaults():
    wait = exponential()
    assert (wait.initial, wait.multiplier, wait.max, wait.jitter) == (0.1, 2.0, 30.0, "full")
    assert wait.random is None
    flat = exponential(jitter=None)
    expected = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    assert [flat(n) for n in range(1, 12)] == expected


def test_exponential_multiplier_one_is_flat():
    wait = exponential(0.75, 1, 10, None)
    assert [wait(1), wait(2), wait(10**6), wait(sys.maxsize)] == [0.75, 0.75, 0.75, 0.75]


def test_exponential_past_the_float_range():
    # 2.0**1024 overflows a float; 1e-10 * 2**1024 ~ 1.8e298 does not
    wait = exponential(1e-10, 2.0, 1e308, None)
    assert math.isclose(wait(1025), math.ldexp(1e-10, 1024), rel_tol=1e-9)
    assert math.isclose(wait(1030), math.ldexp(1e-10, 1029), rel_tol=1e-9)
    assert wait(1100) == 1e308
    assert exponential(0.1, 1e300, 1e308, None)(3) == 1e308


@pytest.mark.parametrize("n", HUGE_N)
def test_huge_n_reaches_the_cap(n):
    assert linear(0.1, 0.1, 30)(n) == 30.0
    assert linear(0.1, 5e-324, 30)(n) < 30.0  # step*(n-1) still tiny
    assert fibonacci(0.1, 30)(n) == 30.0
    assert fibonacci(5e-324, 1.7e308)(n) == 1.7e308
    assert exponential(0.1, 2, 30, None)(n) == 30.0
    assert exponential(1e-300, 1.01, 1e308, None)(n) == 1e308


@pytest.mark.parametrize("n", HUGE_N)
@pytest.mark.parametrize("jitter", JITTERS)
def test_huge_n_jittered(n, jitter):
    wait = exponential(0.1, 2, 30, jitter, random=Random(1))(n)
    assert 0.0 <= wait <= 30.0
    assert constant(2)(n) == 2.0


# -- bounds of every wait ------------------------------------------------------

finite = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
ns = st.integers(min_value=1, max_value=sys.maxsize - 1)
seeds = st.integers(min_value=0, max_value=2**32)


@st.composite
def ordered(draw, exclude_zero=False):
    """(low, high) with 0 <= low <= high < inf (low > 0 with exclude_zero)."""
    low = draw(st.floats(min_value=0.0, exclude_min=exclude_zero, allow_infinity=False))
    high = draw(st.floats(min_value=low, allow_infinity=False))
    return low, high


multipliers = st.floats(min_value=1.0, allow_infinity=False)


@given(ordered(), finite, ns)
def test_linear_bounds_and_growth(initial_max, step, n):
    initial, cap = initial_max
    wait = linear(initial, step, cap)
    assert initial <= wait(n) <= cap
    assert wait(n) <= wait(n + 1)


@given(ordered(), ns)
def test_fibonacci_bounds_and_growth(initial_max, n):
    initial, cap = initial_max
    wait = fibonacci(initial, cap)
    assert initial <= wait(n) <= cap
    assert wait(n) <= wait(n + 1)


@given(ordered(), st.integers(min_value=3, max_value=3000))
def test_fibonacci_adds_the_two_before(initial_max, n):
    initial, cap = initial_max
    wait = fibonacci(initial, cap)
    assume(wait(n) < cap)
    assert math.isclose(wait(n), wait(n - 1) + wait(n - 2), rel_tol=1e-9, abs_tol=1e-300)


@given(ordered(exclude_zero=True), multipliers, ns)
def test_exponential_bounds_and_growth(initial_max, multiplier, n):
    initial, cap = initial_max
    wait = exponential(initial, multiplier, cap, None)
    assert initial <= wait(n) <= cap
    assert wait(n) <= wait(n + 1)
    if wait(n + 1) < cap:
        assert math.isclose(wait(n + 1), wait(n) * multiplier, rel_tol=1e-9)


@given(ordered(exclude_zero=True), multipliers, ns, seeds)
def test_full_jitter_is_within_0_and_d(initial_max, multiplier, n, seed):
    initial, cap = initial_max
    d = exponential(initial, multiplier, cap, None)(n)
    wait = exponential(initial, multiplier, cap, "full", random=Random(seed))
    for _ in range(5):
        assert 0.0 <= wait(n) <= d


@given(ordered(exclude_zero=True), multipliers, ns, seeds)
def test_equal_jitter_is_within_half_d_and_d(initial_max, multiplier, n, seed):
    initial, cap = initial_max
    d = exponential(initial, multiplier, cap, None)(n)
    wait = exponential(initial, multiplier, cap, "equal", random=Random(seed))
    for _ in range(5):
        assert d / 2 <= wait(n) <= d


@given(ordered(exclude_zero=True), multipliers, ns, seeds, st.data())
def test_decorrelated_jitter_bounds(initial_max, multiplier, n, seed, data):
    initial, cap = initial_max
    previous = data.draw(st.floats(min_value=initial, allow_infinity=False), label="previous")
    wait = exponential(initial, multiplier, cap, "decorrelated", random=Random(seed))
    for _ in range(5):
        assert initial <= wait(n, previous) <= min(cap, 3 * previous)


@given(ordered(exclude_zero=True), finite, seeds)
def test_decorrelated_never_below_initial(initial_max, previous, seed):
    # a previous wait shorter than initial (say a server's small retry_after) counts as initial
    initial, cap = initial_max
    wait = exponential(initial, 2.0, cap, "decorrelated", random=Random(seed))
    assert initial <= wait(1, previous) <= min(cap, 3 * max(previous, initial))


@given(ordered(exclude_zero=True), seeds)
def test_decorrelated_defaults_to_its_last_wait(initial_max, seed):
    initial, cap = initial_max
    wait = exponential(initial, 2.0, cap, "decorrelated", random=Random(seed))
    last = initial
    for n in range(1, 20):
        current = wait(n)
        assert initial <= current <= min(cap, 3 * last)
        last = current


@given(seeds)
def test_decorrelated_without_previous_uses_the_wait_it_returned(seed):
    alone = exponential(1, 2, 1000, "decorrelated", random=Random(seed))
    told = exponential(1, 2, 1000, "decorrelated", random=Random(seed))
    previous = 1.0  # initial, on the first call
    for n in range(1, 10):
        expected = told(n, previous)
        assert alone(n) == expected
        previous = expected
    # a previous passed in becomes the last wait too
    returned = alone(1, 500.0)
    assert returned == told(1, 500.0)
    assert alone(2) == told(2, returned)


@given(ordered(exclude_zero=True), multipliers, st.sampled_from(JITTERS), seeds)
def test_every_wait_is_between_0_and_max(initial_max, multiplier, jitter, seed):
    initial, cap = initial_max
    wait = exponential(initial, multiplier, cap, jitter, random=Random(seed))
    for n in (1, 2, 3, 10, 100, 10**6):
        value = wait(n)
        assert type(value) is float
        assert 0.0 <= value <= cap


# -- exact draws and the whole range --------------------------------------------


def expected_waits(initial, multiplier, cap, jitter, seed, calls):
    """The waits of ``calls`` ((n, previous) pairs), by the module docstring's formulas,
    drawing from a generator seeded as the backoff's is."""
    twin = Random(seed)
    flat = exponential(initial, multiplier, cap, None)
    last = initial
    waits_ = []
    for n, previous in calls:
        if jitter == "decorrelated":
            high = 3.0 * max(last if previous is None else previous, initial)
            wait = min(cap, high, twin.uniform(initial, high))
            last = wait
        else:
            d = flat(n)
            if jitter == "full":
                wait = twin.uniform(0.0, d)
            else:
                wait = min(d, d / 2 + twin.uniform(0.0, d / 2))
        waits_.append(wait)
    return waits_


calls_ = st.lists(
    st.tuples(st.integers(1, 80), st.none() | st.floats(0.0, 1e3)), min_size=1, max_size=8
)


@given(
    ordered(exclude_zero=True),
    st.floats(1.0, 10.0),
    st.sampled_from(["full", "equal", "decorrelated"]),
    seeds,
    calls_,
)
def test_jittered_waits_are_the_formulas_drawn_exactly(
    initial_max, multiplier, jitter, seed, calls
):
    initial, cap = initial_max
    wait = exponential(initial, multiplier, cap, jitter, random=Random(seed))
    got = [wait(n, previous) for n, previous in calls]
    assert got == expected_waits(initial, multiplier, cap, jitter, seed, calls)


# (jitter, previous, low, high): the range of wait(5, previous) for
# exponential(1, 2, 100, jitter), where d = 16.
RANGES = [
    ("full", None, 0.0, 16.0),
    ("equal", None, 8.0, 16.0),
    ("decorrelated", 10.0, 1.0, 30.0),
    ("decorrelated", 0.5, 1.0, 3.0),  # a previous below initial counts as initial
    ("decorrelated", 50.0, 1.0, 100.0),  # 3 * previous is past the cap
]


@pytest.mark.parametrize(("jitter", "previous", "low", "high"), RANGES)
def test_jitter_reaches_the_whole_of_its_range(jitter, previous, low, high):
    wait = exponential(1, 2, 100, jitter, random=Random(2024))
    draws = [wait(5, previous) for _ in range(4000)]
    assert low <= min(draws) <= low + 0.005 * (high - low)
    assert high - 0.005 * (high - low) <= max(draws) <= high
    # and spread evenly over it: each tenth of the range gets about a tenth of the
    # draws below ``high`` (the draws a cap cut to ``high`` exactly are left out)
    below = [value for value in draws if value < high]
    tenths = [0] * 10
    for value in below:
        tenths[int(10 * (value - low) / (high - low))] += 1
    assert min(tenths) > 0.8 * len(below) / 10, tenths


# -- reproducibility -----------------------------------------------------------


def waits(backoff_, count=20):
    return [backoff_(n) for n in range(1, count + 1)]


@given(st.sampled_from(JITTERS), seeds, multipliers, ordered(exclude_zero=True))
def test_same_seed_same_waits(jitter, seed, multiplier, initial_max):
    initial, cap = initial_max
    first = exponential(initial, multiplier, cap, jitter, random=Random(seed))
    second = exponential(initial, multiplier, cap, jitter, random=Random(seed))
    assert waits(first) == waits(second)


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_draws_from_the_generator(jitter):
    one = exponential(1, 2, 1000, jitter, random=Random(1))
    two = exponential(1, 2, 1000, jitter, random=Random(2))
    assert waits(one) != waits(two)
    assert len(set(waits(one))) > 1


def test_no_jitter_draws_nothing():
    generator = Random(5)
    state = generator.getstate()
    waits(exponential(jitter=None, random=generator))
    assert generator.getstate() == state


def test_default_generator():
    assert 0.0 <= exponential()(3) <= 0.4
    assert 0.2 <= exponential(jitter="equal")(3) <= 0.4
    assert 0.1 <= exponential(jitter="decorrelated")(3) <= 0.3


def test_system_random_is_a_random():
    wait = exponential(random=random_module.SystemRandom())
    assert 0.0 <= wait(1) <= 0.1


# -- settings: attributes, equality, repr -----------------------------------------------


def test_settings_are_attributes():
    assert constant(2).delay == 2.0
    assert constant(2).max is None
    assert (linear(1, 2, 3).initial, linear(1, 2, 3).step, linear(1, 2, 3).max) == (1, 2, 3)
    assert (fibonacci(1, 3).initial, fibonacci(1, 3).max) == (1.0, 3.0)
    wait = exponential(0.5, 3, 9, "equal")
    assert (wait.initial, wait.multiplier, wait.max, wait.jitter) == (0.5, 3.0, 9.0, "equal")


@pytest.mark.parametrize(
    ("made", "attributes"),
    [
        (constant(1), ["delay", "max"]),
        (linear(), ["initial", "step", "max"]),
        (fibonacci(), ["initial", "max"]),
        (exponential(), ["initial", "multiplier", "max", "jitter", "random"]),
    ],
    ids=["constant", "linear", "fibonacci", "exponential"],
)
def test_settings_are_read_only(made, attributes):
    for name in attributes:
        before = getattr(made, name)
        with pytest.raises(AttributeError):
            setattr(made, name, 1.0)
        assert getattr(made, name) == before


def test_equal_settings_equal_backoffs():
    pairs = [
        (constant(1), constant(1.0)),
        (linear(1, 2, 3), linear(1.0, 2.0, 3.0)),
        (linear(), linear(0.1, 0.1, 30)),
        (fibonacci(), fibonacci(0.1, 30.0)),
        (exponential(), exponential(0.1, 2, 30, "full")),
        (exponential(random=Random(1)), exponential(random=Random(2))),
        (exponential(jitter=None), exponential(jitter=None, random=Random(3))),
    ]
    for a, b in pairs:
        assert a == b
        assert hash(a) == hash(b)


def test_different_settings_differ():
    different = [
        constant(1),
        constant(2),
        linear(1, 2, 3),
        linear(1, 2, 4),
        linear(1, 1, 3),
        linear(0, 2, 3),
        fibonacci(1, 3),
        fibonacci(1, 4),
        fibonacci(2, 3),
        exponential(),
        exponential(0.2),
        exponential(multiplier=3),
        exponential(max=20),
        *(exponential(jitter=jitter) for jitter in [None, "equal", "decorrelated"]),
    ]
    for i, a in enumerate(different):
        for b in different[i + 1 :]:
            assert a != b


def test_kinds_never_equal():
    # the same waits, but different kinds
    assert constant(0.5) != linear(0.5, 0, 0.5)
    assert linear(0.5, 0, 0.5) != fibonacci(0.5, 0.5)
    assert fibonacci(0.5, 0.5) != exponential(0.5, 1, 0.5, None)
    assert constant(1) != 1.0
    assert linear() != (0.1, 0.1, 30.0)


def test_backoffs_are_keys():
    assert len({constant(1), constant(1.0), linear(), linear(0.1, 0.1, 30), exponential()}) == 3


def test_decorrelated_state_is_not_a_setting():
    used = exponential(jitter="decorrelated", random=Random(1))
    waits(used)
    fresh = exponential(jitter="decorrelated")
    assert used == fresh
    assert hash(used) == hash(fresh)


def test_repr():
    assert repr(constant(1)) == "constant(delay=1.0)"
    assert repr(linear()) == "linear(initial=0.1, step=0.1, max=30.0)"
    assert repr(fibonacci(1, 8)) == "fibonacci(initial=1.0, max=8.0)"
    assert repr(exponential()) == (
        "exponential(initial=0.1, multiplier=2.0, max=30.0, jitter='full')"
    )
    assert repr(exponential(jitter=None, random=Random(1))) == (
        "exponential(initial=0.1, multiplier=2.0, max=30.0, jitter=None)"
    )


@pytest.mark.parametrize(
    "made",
    [constant(0.25), linear(1, 2, 3), fibonacci(), exponential(0.5, 1.5, 7, "decorrelated")],
)
def test_repr_rebuilds_an_equal_backoff(made):
    assert eval(repr(made), vars(backoff)) == made


# -- bad input -----------------------------------------------------------------

NOT_NUMBERS = [("1", TypeError), (None, TypeError), (True, TypeError), ([1], TypeError)]
NOT_FINITE = [(NAN, ValueError), (INF, ValueError), (-INF, ValueError), (10**400, ValueError)]
NEGATIVE = [(-1, ValueError), (-0.5, ValueError), (-5e-324, ValueError)]
BAD_NON_NEGATIVE = NOT_NUMBERS + NOT_FINITE + NEGATIVE


def bad_settings():
    """(kind, keyword arguments, argument named, value, exception)."""
    cases = []
    for value, exc in BAD_NON_NEGATIVE:
        cases.append((constant, {"delay": value}, "delay", value, exc))
        for name in ("initial", "step", "max"):
            cases.append((linear, {name: value}, name, value, exc))
        for name in ("initial", "max"):
            cases.append((fibonacci, {name: value}, name, value, exc))
            cases.append((exponential, {name: value}, name, value, exc))
    for value, exc in [(0, ValueError), (0.0, ValueError), *NOT_NUMBERS, *NOT_FINITE]:
        cases.append((exponential, {"multiplier": value}, "multiplier", value, exc))
    for value in (0, 0.5, 0.999, -2):
        cases.append((exponential, {"multiplier": value}, "multiplier", value, ValueError))
    # initial > 0 for exponential (decorrelated included)
    for jitter in JITTERS:
        cases.append((exponential, {"initial": 0, "jitter": jitter}, "initial", 0, ValueError))
    # max >= initial
    cases.append((linear, {"initial": 2, "max": 1.5}, "max", 1.5, ValueError))
    cases.append((fibonacci, {"initial": 2, "max": 1.5}, "max", 1.5, ValueError))
    cases.append((exponential, {"initial": 2, "max": 1.5}, "max", 1.5, ValueError))
    cases.append((exponential, {"max": 0.05}, "max", 0.05, ValueError))  # default initial 0.1
    for value in ("half", "", "FULL", "none", 1, True, 0.5):
        cases.append((exponential, {"jitter": value}, "jitter", value, ValueError))
    for value in (42, "seed", random_module, Random):
        cases.append((exponential, {"random": value}, "random", value, TypeError))
    return cases


@pytest.mark.parametrize(("kind", "kwargs", "name", "value", "exc"), bad_settings())
def test_bad_setting_names_argument_and_value(kind, kwargs, name, value, exc):
    with pytest.raises(exc) as info:
        kind(**kwargs)
    message = str(info.value)
    assert message.startswith(f"{name} "), message
    assert repr(value) in message, message


def test_good_edge_settings():
    assert constant(0)(1) == 0.0
    assert linear(0, 0, 0)(5) == 0.0
    assert fibonacci(0, 0)(5) == 0.0
    assert fibonacci(3, 3)(5) == 3.0
    assert exponential(5e-324, 1, 5e-324, None)(9) == 5e-324
    assert exponential(2, 2, 2, None)(9) == 2.0
    assert exponential(1, 2, 1, "decorrelated")(1) == 1.0


def every_kind():
    return [
        constant(1),
        linear(),
        fibonacci(),
        *(exponential(jitter=jitter, random=Random(0)) for jitter in JITTERS),
    ]


BAD_N = [
    (0, ValueError),
    (-1, ValueError),
    (sys.maxsize + 1, ValueError),
    (1.0, TypeError),
    (1.5, TypeError),
    ("1", TypeError),
    (True, TypeError),
    (None, TypeError),
    (Fraction(1), TypeError),
]


@pytest.mark.parametrize("made", every_kind(), ids=repr)
@pytest.mark.parametrize(("n", "exc"), BAD_N)
def test_bad_n(made, n, exc):
    with pytest.raises(exc) as info:
        made(n)
    assert str(info.value).startswith("n ")
    assert repr(n) in str(info.value)


@pytest.mark.parametrize("made", every_kind(), ids=repr)
@pytest.mark.parametrize(
    ("previous", "exc"), [("1", TypeError), (True, TypeError), *NEGATIVE, *NOT_FINITE]
)
def test_bad_previous(made, previous, exc):
    with pytest.raises(exc) as info:
        made(1, previous)
    assert str(info.value).startswith("previous ")
    assert repr(previous) in str(info.value)


@pytest.mark.parametrize("made", every_kind(), ids=repr)
def test_previous_is_a_wait(made):
    for previous in (0, 0.0, 1, 2.5):
        assert 0.0 <= made(1, previous) <= (made.max if made.max is not None else 1.0)
