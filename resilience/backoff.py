"""Backoffs: how long ``Retry`` waits before each retry.

A backoff is a callable ``f(n, previous=None) -> float`` giving the wait in
seconds before retry ``n`` (``n = 1`` for the first retry). ``Retry`` passes
the wait it used last as ``previous``, so one backoff object can serve many
concurrent calls; only decorrelated jitter uses it. Any callable of that
shape (the ``Backoff`` protocol) will do; the four kinds here are::

    constant(delay)                                  delay
    linear(initial=0.1, step=0.1, max=30.0)          min(max, initial + step*(n-1))
    fibonacci(initial=0.1, max=30.0)                 min(max, initial*F(n)), F = 1, 1, 2, 3, 5, ...
    exponential(initial=0.1, multiplier=2.0, max=30.0, jitter="full", *, random=None)

For ``exponential``, ``d = min(max, initial * multiplier**(n-1))`` and the wait
is, by ``jitter``: ``None`` -> ``d``; ``"full"`` -> uniform in ``[0, d]``;
``"equal"`` -> ``d/2`` plus uniform in ``[0, d/2]``; ``"decorrelated"`` ->
``min(max, uniform(initial, 3*previous))`` (``multiplier`` is not used), where
``previous`` is the wait passed in, or the one this object returned last, or
``initial`` on the first call; a ``previous`` below ``initial`` counts as
``initial``, so the wait is never below ``initial``.

Backoffs are immutable: their settings are read-only attributes, ``max``
included (``None`` for ``constant``, which has no cap; ``Retry`` caps a
server's ``retry_after`` by ``max`` when there is one). Two backoffs of the
same kind with equal settings compare and hash equal; the ``random``
generator is not a setting and takes no part in that. ``n`` is an ``int``
from 1 to ``sys.maxsize``; huge ``n`` gives ``max`` without overflowing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from random import Random
from typing import Literal, Protocol

from ._core import _validate

__all__ = ["Backoff", "Jitter", "constant", "exponential", "fibonacci", "linear"]

Jitter = Literal["full", "equal", "decorrelated"] | None
_JITTERS: tuple[Jitter, ...] = (None, "full", "equal", "decorrelated")

# The generator of every exponential() given no ``random=``.
_RANDOM = Random()


class Backoff(Protocol):
    """What ``Retry`` accepts as ``backoff=``: the wait in seconds before retry ``n``."""

    def __call__(self, n: int, previous: float | None = None) -> float: ...


class _Backoff:
    """Checks the call's arguments; each kind computes the wait in ``_wait``."""

    def __call__(self, n: int, previous: float | None = None) -> float:
        n = _validate.count("n", n)
        if previous is not None:
            previous = _validate.non_negative_finite("previous", previous)
        return self._wait(n, previous)

    def _wait(self, n: int, previous: float | None) -> float:
        raise NotImplementedError


def _set(obj: object, name: str, value: object) -> None:
    """Store a checked setting on a frozen dataclass."""
    object.__setattr__(obj, name, value)


def _cap(obj: object, initial: float, value: object) -> float:
    """The ``max`` setting: finite, and at least ``initial``."""
    result = _validate.non_negative_finite("max", value)
    if result < initial:
        raise ValueError(f"max must be >= initial ({initial!r}), got {value!r}")
    _set(obj, "max", result)
    return result


def _times(x: float, k: int) -> float:
    """``x * k``; for a ``k`` past the float range, the exact product rounded (inf if too large)."""
    try:
        return x * k
    except OverflowError:
        try:
            return float(Fraction(x) * k)
        except OverflowError:
            return math.inf


# The kinds are classes named like the functions of the contract (a call builds
# one, as with ``functools.partial``); their repr reads as that call.


@dataclass(frozen=True)
class constant(_Backoff):
    """The same wait, ``delay`` seconds, before every retry."""

    delay: float

    def __post_init__(self) -> None:
        _set(self, "delay", _validate.non_negative_finite("delay", self.delay))

    @property
    def max(self) -> None:
        """No cap: ``None``."""
        return None

    def _wait(self, n: int, previous: float | None) -> float:
        return self.delay


@dataclass(frozen=True)
class linear(_Backoff):
    """``min(max, initial + step*(n-1))``."""

    initial: float = 0.1
    step: float = 0.1
    max: float = 30.0

    def __post_init__(self) -> None:
        initial = _validate.non_negative_finite("initial", self.initial)
        _set(self, "initial", initial)
        _set(self, "step", _validate.non_negative_finite("step", self.step))
        _cap(self, initial, self.max)

    def _wait(self, n: int, previous: float | None) -> float:
        return min(self.max, self.initial + self.step * (n - 1))


@dataclass(frozen=True)
class fibonacci(_Backoff):
    """``min(max, initial*F(n))`` with F = 1, 1, 2, 3, 5, ...

    The waits up to the first one that reaches ``max`` are computed once, at
    construction (a few dozen for usual settings), so any ``n`` costs the same.
    """

    initial: float = 0.1
    max: float = 30.0
    _waits: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        initial = _validate.non_negative_finite("initial", self.initial)
        _set(self, "initial", initial)
        cap = _cap(self, initial, self.max)
        waits = []
        f, f_next = 1, 1
        while True:
            wait = min(cap, _times(initial, f))
            waits.append(wait)
            if wait >= cap or initial == 0.0:  # no further growth
                break
            f, f_next = f_next, f + f_next
        _set(self, "_waits", tuple(waits))

    def _wait(self, n: int, previous: float | None) -> float:
        waits = self._waits
        return waits[min(n, len(waits)) - 1]


@dataclass(frozen=True)
class exponential(_Backoff):
    """``d = min(max, initial * multiplier**(n-1))``, with ``jitter`` applied.

    ``random`` (a ``random.Random``) draws the jitter; give a seeded one for
    reproducible waits. It is not a setting: it does not take part in
    equality, hashing or the repr. Decorrelated jitter called without
    ``previous`` uses the wait this object returned last (shared by every
    caller of the object; pass ``previous`` to keep calls independent).
    """

    initial: float = 0.1
    multiplier: float = 2.0
    max: float = 30.0
    jitter: Jitter = "full"
    random: Random | None = field(default=None, repr=False, compare=False, kw_only=True)
    _random: Random = field(init=False, repr=False, compare=False)
    _last: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        initial = _validate.positive("initial", self.initial)
        _set(self, "initial", initial)
        multiplier = _validate.finite("multiplier", self.multiplier)
        if multiplier < 1.0:
            raise ValueError(f"multiplier must be a finite number >= 1, got {self.multiplier!r}")
        _set(self, "multiplier", multiplier)
        _cap(self, initial, self.max)
        if self.jitter not in _JITTERS:
            raise ValueError(
                f"jitter must be None, 'full', 'equal' or 'decorrelated', got {self.jitter!r}"
            )
        if self.random is not None and not isinstance(self.random, Random):
            raise TypeError(f"random must be a random.Random or None, got {self.random!r}")
        _set(self, "_random", _RANDOM if self.random is None else self.random)
        _set(self, "_last", initial)

    def _wait(self, n: int, previous: float | None) -> float:
        jitter = self.jitter
        if jitter == "decorrelated":
            return self._decorrelated(self._last if previous is None else previous)
        d = self._capped(n)
        if jitter is None:
            return d
        if jitter == "full":
            return self._random.uniform(0.0, d)
        half = d / 2
        # d/2 + d/2 can round past d for subnormal d
        return min(d, half + self._random.uniform(0.0, half))

    def _capped(self, n: int) -> float:
        """``min(max, initial * multiplier**(n-1))``, without OverflowError."""
        try:
            d = self.initial * self.multiplier ** (n - 1)
        except OverflowError:
            # multiplier**(n-1) is past the float range; the product may not be
            try:
                d = math.exp(math.log(self.initial) + (n - 1) * math.log(self.multiplier))
            except OverflowError:
                d = math.inf
        return min(self.max, d)

    def _decorrelated(self, previous: float) -> float:
        high = 3.0 * (previous if previous > self.initial else self.initial)
        # uniform() may round up past its upper end by an ulp: keep within high
        wait = min(self.max, high, self._random.uniform(self.initial, high))
        _set(self, "_last", wait)
        return wait
