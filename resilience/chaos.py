"""Chaos: inject latency, errors and substitute results, on purpose and reproducibly.

Off unless enabled in code (``enabled=True``) or by ``RESILIENCE_CHAOS=1``
(read with the same parser as the build switch). With a ``seed`` the same
calls get the same injections; with ``sleep=FakeClock.sleep`` (or
``.asleep``) injected latency is instant in tests. In the instant mode of
``resilience.testing`` a chaos enabled only by the variable injects nothing.
Used alone or as the innermost policy of a ``Pipeline``, so the policies
around it see the faults.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _policy
from ._core import _fork
from ._core._env import env_flag
from ._core._validate import clock as check_clock
from ._core._validate import non_negative_finite, number
from ._policy import Policy, Replace, Sleep, check_callable, check_name
from .errors import InjectedFault

__all__ = ["CHAOS_VAR", "Chaos", "ChaosStats", "Fault", "error", "latency", "result"]

CHAOS_VAR = "RESILIENCE_CHAOS"


def _rate(value: object) -> float:
    rate = number("rate", value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {value!r}")
    return rate


@dataclass(frozen=True)
class ChaosStats:
    """Injections so far, by kind."""

    name: str | None
    latency: int
    error: int
    result: int


@dataclass(frozen=True)
class Fault:
    """Base of the faults: fires on a fraction ``rate`` of calls."""

    rate: float


@dataclass(frozen=True)
class _Latency(Fault):
    seconds: float
    jitter: float


@dataclass(frozen=True)
class _Error(Fault):
    make: Callable[[], BaseException]


@dataclass(frozen=True)
class _Result(Fault):
    value: Any


def latency(seconds: float, *, jitter: float = 0.0, rate: float = 1.0) -> Fault:
    """Delay the call by ``seconds`` plus uniform(-jitter, +jitter) (never below 0)."""
    return _Latency(
        _rate(rate),
        non_negative_finite("seconds", seconds),
        non_negative_finite("jitter", jitter),
    )


def error(
    exc: type[BaseException] | BaseException | Callable[[], BaseException] = InjectedFault,
    *,
    rate: float = 1.0,
) -> Fault:
    """Raise instead of calling: an exception class, an instance, or a factory of them."""
    make: Callable[[], BaseException]
    if isinstance(exc, type) and issubclass(exc, BaseException):
        kind = exc
        make = lambda: kind("injected by resilience.chaos")  # noqa: E731
    elif isinstance(exc, BaseException):
        instance = exc
        make = lambda: instance  # noqa: E731
    elif callable(exc) and not isinstance(exc, type):
        make = exc
    else:
        raise TypeError(
            f"exc must be an exception class, an exception or a factory of them, got {exc!r}"
        )
    return _Error(_rate(rate), make)


def result(value: Any, *, rate: float = 1.0) -> Fault:
    """Return ``value`` instead of calling."""
    return _Result(_rate(rate), value)


# Indexes of Chaos's counters, in ChaosStats' order.
LATENCY, ERROR, RESULT = range(3)


class Chaos(Policy):
    """Inject ``faults`` into calls (decorator, ``call``, ``acall``).

    Each call draws one number per fault, in order, whether or not an
    earlier fault fired (a latency fault with jitter that fires draws one
    more, for its jitter); latency faults apply first, then the first error
    or result fault that fired (the function is then not called). Latency
    sleeps with ``sleep``, else with ``clock.sleep`` when the clock has one
    (a FakeClock), else for real. ``.stats`` counts the injections.

    ``enabled`` (None: read ``RESILIENCE_CHAOS``) can be switched at run
    time. In instant mode (``resilience.testing``) only an ``enabled`` given
    or assigned explicitly turns chaos on; the variable does not.
    """

    __slots__ = ("_asked", "_counts", "_enabled", "_faults", "_lock", "_name", "_random", "_sleep")

    def __init__(
        self,
        *faults: Fault,
        enabled: bool | None = None,
        seed: int | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
        name: str | None = None,
    ) -> None:
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"Chaos takes faults (latency, error, result), got {fault!r}")
        self._faults = faults
        if enabled is not None and not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool or None, got {enabled!r}")
        self._enabled = env_flag(CHAOS_VAR) if enabled is None else enabled
        self._asked = enabled is not None  # explicitly, not by the variable
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self._random = random.Random(seed)
        check_clock(clock)
        self._sleep = check_callable("sleep", sleep)
        if self._sleep is None:
            self._sleep = check_callable("clock.sleep", getattr(clock, "sleep", None))
        self._name = check_name(name)
        self._lock = _fork.lock()  # one call's draws stay together
        self._counts = [0, 0, 0]  # LATENCY, ERROR, RESULT, under the lock

    def _draw(self) -> tuple[float, Fault | None]:
        """This call's injected delay and its error or result fault, if any."""
        delay = 0.0
        chosen: Fault | None = None
        with self._lock:
            for fault in self._faults:
                fired = self._random.random() < fault.rate
                if not fired:
                    continue
                if isinstance(fault, _Latency):
                    jitter = fault.jitter
                    extra = self._random.uniform(-jitter, jitter) if jitter else 0.0
                    delay += max(0.0, fault.seconds + extra)
                    self._counts[LATENCY] += 1
                elif chosen is None:
                    chosen = fault
                    self._counts[ERROR if isinstance(fault, _Error) else RESULT] += 1
        return delay, chosen

    @property
    def enabled(self) -> bool:
        """Whether faults are injected (outside instant mode)."""
        return self._enabled

    @enabled.setter
    def enabled(self, on: bool) -> None:
        if not isinstance(on, bool):
            raise TypeError(f"enabled must be a bool, got {on!r}")
        self._enabled = on
        self._asked = True

    # -- the protocol: faults are injected as the call enters ---------------------------

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        if not self._enabled or (_policy.instant and not self._asked):
            return None
        delay, chosen = self._draw()
        if delay > 0.0:
            return _Delay(delay, self._sleep, chosen)
        return _injected(chosen)

    @property
    def stats(self) -> ChaosStats:
        with self._lock:
            return ChaosStats(self._name, *self._counts)

    def __repr__(self) -> str:
        state = "on" if self._enabled else "off"
        return f"<Chaos name={self._name!r} {state} faults={len(self._faults)}>"


def _injected(chosen: Fault | None) -> Replace | None:
    """The token of a call after its latency: an error raised, a result, or the call."""
    if isinstance(chosen, _Error):
        raise chosen.make()
    if isinstance(chosen, _Result):
        return Replace(chosen.value)
    return None


class _Delay(Sleep):
    """Injected latency, then the call's injected error or result (``then``)."""

    __slots__ = ()

    def done(self) -> Replace | None:
        return _injected(self.then)
