"""Graceful degradation: named levels, triggers that raise them, features that switch off.

A ``DegradationManager`` holds one level out of an ordered list (by default
``normal < degraded < critical``). Triggers — ``trigger_when(predicate,
level)``, e.g. a budget burning, a breaker open, a health check down — push
the level up at once; it comes down one step at a time, each step only after
``recovery`` quiet seconds, so a flapping signal cannot make it flap.
Features decorated with ``feature(name, off_at=...)`` return their fallback
while the level is at or above ``off_at``.

Load shedding by criticality follows Google's scheme: each request is
``CRITICAL_PLUS``, ``CRITICAL`` (the default), ``SHEDDABLE_PLUS`` or
``SHEDDABLE``, set for a block with ``request_criticality(...)`` and carried
by the context into threads' copies and tasks. As the level rises the least
critical requests are shed first: by default ``SHEDDABLE`` from the second
level, ``SHEDDABLE_PLUS`` from the third, ``CRITICAL`` from the fourth, and
``CRITICAL_PLUS`` never.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import IntEnum
from typing import Any

from . import _core
from ._core import _fork
from ._core._clock_py import reader
from ._core._nocopy import NoCopy
from ._core._validate import clock as check_clock
from ._core._validate import non_negative, positive
from ._policy import Policy, Replace, add_listener, check_name, logger, notify
from .errors import LoadShedError

__all__ = ["Criticality", "DegradationManager", "current_criticality", "request_criticality"]


class Criticality(IntEnum):
    """How much a request matters, least first; the least critical are shed first."""

    SHEDDABLE = 0
    SHEDDABLE_PLUS = 1
    CRITICAL = 2
    CRITICAL_PLUS = 3

    @classmethod
    def of(cls, value: object, argument: str = "criticality") -> Criticality:
        """A member, from itself or its name."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in cls.__members__:
            return cls[value]
        names = ", ".join(cls.__members__)
        raise ValueError(f"{argument} must be a Criticality or one of {names}, got {value!r}")


_criticality: ContextVar[Criticality] = ContextVar(
    "resilience_criticality", default=Criticality.CRITICAL
)


def current_criticality() -> Criticality:
    """The criticality of the request being served (``CRITICAL`` unless set)."""
    return _criticality.get()


@contextmanager
def request_criticality(criticality: Criticality | str) -> Iterator[Criticality]:
    """Serve the block as a request of ``criticality``."""
    value = Criticality.of(criticality)
    token = _criticality.set(value)
    try:
        yield value
    finally:
        _criticality.reset(token)


class DegradationManager(NoCopy):
    """Levels, triggers and features; see the module docstring.

    Triggers are evaluated lazily — when ``.level`` is read or a feature is
    called, at most once per ``check_interval`` seconds (0: every time) — and
    whenever ``.evaluate()`` is called. A predicate that raises is logged
    and counts as not firing. ``set_level`` holds a level by hand until the
    next ``set_level`` or ``auto()``.
    """

    def __init__(
        self,
        levels: Iterable[str] = ("normal", "degraded", "critical"),
        *,
        recovery: float = 60.0,
        check_interval: float = 1.0,
        shed_at: Mapping[Criticality | str, str] | None = None,
        clock: Callable[[], float] | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(levels, str) or not isinstance(levels, Iterable):
            raise TypeError(f"levels must be an iterable of names, got {levels!r}")
        self._levels = tuple(levels)
        if not self._levels or not all(isinstance(level, str) for level in self._levels):
            raise TypeError(f"levels must be one or more str names, got {levels!r}")
        if len(set(self._levels)) != len(self._levels):
            raise ValueError(f"levels must be distinct, got {levels!r}")
        self._recovery = positive("recovery", recovery)
        self._name = check_name(name)
        self._check_interval = non_negative("check_interval", check_interval)
        if math.isinf(self._check_interval):
            raise ValueError(f"check_interval must be finite, got {check_interval!r}")
        self._clock: Callable[[], float] = reader(check_clock(clock))  # readings checked
        self._lock = _fork.lock()
        self._index = 0
        self._manual: int | None = None
        self._triggers: list[tuple[Callable[[], object], int]] = []
        self._features: dict[str, int] = {}
        self._listeners: list[Callable[[str, str], object]] = []
        self._last_evaluation = -math.inf
        self._latest = -math.inf  # the latest time seen: time never runs backwards here
        self._started = 0  # evaluations begun, and the newest one applied
        self._applied = 0
        # When a trigger last asked for the current level (or more), or the
        # level last moved: stepping down waits ``recovery`` from then.
        self._quiet_since = self._clock()
        self._shed_from = self._shedding(shed_at)
        self._shed = _core.SELECTED.Counters(len(Criticality))

    # -- levels ------------------------------------------------------------------

    def _index_of(self, level: str, argument: str = "level") -> int:
        try:
            return self._levels.index(level)
        except ValueError:
            raise ValueError(f"{argument} must be one of {self._levels!r}, got {level!r}") from None

    @property
    def name(self) -> str | None:
        """The name given at construction (in ``LoadShedError``)."""
        return self._name

    @property
    def levels(self) -> tuple[str, ...]:
        return self._levels

    @property
    def level(self) -> str:
        """The current level, after a due evaluation of the triggers."""
        return self._levels[self._current()]

    def _current(self) -> int:
        if self._clock() - self._last_evaluation >= self._check_interval:
            self.evaluate()
        return self._index

    def set_level(self, level: str) -> None:
        """Hold ``level`` by hand, whatever the triggers say, until ``auto()``."""
        index = self._index_of(level)
        now = self._clock()
        with self._lock:
            self._manual = index
            change = self._move(index, self._clamped(now))
        self._announce(change)

    def auto(self) -> None:
        """Back to the triggers: the level moves from where it is, as they ask."""
        now = self._clock()
        with self._lock:
            self._manual = None
            self._quiet_since = self._clamped(now)
            self._last_evaluation = -math.inf

    def trigger_when(self, predicate: Callable[[], object], level: str) -> None:
        """While ``predicate()`` is true, the level is at least ``level``."""
        if not callable(predicate):
            raise TypeError(f"predicate must be callable, got {predicate!r}")
        self._triggers.append((predicate, self._index_of(level)))

    def _demanded(self) -> int:
        """The highest level a trigger asks for now (0 when none does)."""
        demanded = 0
        for predicate, index in list(self._triggers):
            if index <= demanded:
                continue
            try:
                fired = bool(predicate())
            except Exception:
                logger.exception("degradation trigger %r failed", predicate)
                fired = False
            if fired:
                demanded = index
        return demanded

    def evaluate(self) -> str:
        """Evaluate the triggers now and move the level as they ask; the level."""
        with self._lock:
            self._started += 1
            ticket = self._started
        demanded = self._demanded()  # user code: called outside the lock
        now = self._clock()
        with self._lock:
            if ticket < self._applied:
                # A newer evaluation has been applied meanwhile: this one's
                # view of the triggers is out of date, so it changes nothing.
                return self._levels[self._index]
            self._applied = ticket
            now = self._last_evaluation = self._clamped(now)
            change = None
            if self._manual is None:
                if demanded >= self._index:
                    if demanded > self._index:
                        change = self._move(demanded, now)  # up at once
                    self._quiet_since = now
                elif now - self._quiet_since >= self._recovery:
                    change = self._move(self._index - 1, now)  # down one step
            level = self._levels[self._index]
        self._announce(change)
        return level

    def _clamped(self, now: float) -> float:
        """Under the lock: ``now``, or the latest time already seen if that is later."""
        self._latest = max(now, self._latest)
        return self._latest

    def _move(self, index: int, now: float) -> tuple[str, str] | None:
        old = self._index
        self._index = index
        self._quiet_since = now
        return None if old == index else (self._levels[old], self._levels[index])

    def _announce(self, change: tuple[str, str] | None) -> None:
        if change is not None:
            old, new = change
            rose = self._levels.index(new) > self._levels.index(old)
            logger.log(
                logging.WARNING if rose else logging.INFO,
                "degradation %r: %s -> %s",
                self._name,
                old,
                new,
                extra={
                    "resilience_event": "degradation.level",
                    "resilience_name": self._name,
                    "resilience_from_state": old,
                    "resilience_to_state": new,
                },
            )
            notify(self._listeners, old, new)

    def on_change(self, callback: Callable[[str, str], object]) -> Callable[[str, str], object]:
        """Call ``callback(old, new)`` on every change of level (usable as a decorator)."""
        return add_listener(self._listeners, callback)

    # -- features ----------------------------------------------------------------

    def feature(
        self, name: str, *, off_at: str, fallback: Callable[..., Any] | None = None
    ) -> Policy:
        """Decorate a function that is switched off at or above level ``off_at``.

        While it is off the function is not called and ``fallback(*args,
        **kwargs)`` is returned instead (None without a fallback; an awaitable
        fallback result is awaited for an async function).
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        if fallback is not None and not callable(fallback):
            raise TypeError(f"fallback must be callable or None, got {fallback!r}")
        self._features[name] = self._index_of(off_at, "off_at")

        return _Feature(self, name, fallback)

    # -- load shedding -------------------------------------------------------------

    def _shedding(self, shed_at: Mapping[Criticality | str, str] | None) -> list[int]:
        """For each criticality, the index of the first level that sheds it."""
        never = len(self._levels)
        if shed_at is None:
            # One more class shed at each level above the first; CRITICAL_PLUS never.
            return [min(c + 1, never) for c in range(Criticality.CRITICAL_PLUS)] + [never]
        if not isinstance(shed_at, Mapping):
            raise TypeError(f"shed_at must map criticalities to levels, got {shed_at!r}")
        shed_from = [never] * len(Criticality)
        given: set[Criticality] = set()
        for key, level in shed_at.items():
            c = Criticality.of(key, "shed_at key")
            if c in given:
                raise ValueError(f"shed_at names {c.name} twice, got {shed_at!r}")
            given.add(c)
            shed_from[c] = self._index_of(level, "shed_at level")
        for i in range(1, len(Criticality)):
            if shed_from[i] < shed_from[i - 1]:
                raise ValueError(
                    f"shed_at must not shed {Criticality(i).name} before"
                    f" {Criticality(i - 1).name}, got {shed_at!r}"
                )
        return shed_from

    def admits(self, criticality: Criticality | str | None = None) -> bool:
        """Whether a request of ``criticality`` (default: the current one) is served now."""
        c = current_criticality() if criticality is None else Criticality.of(criticality)
        return self._current() < self._shed_from[c]

    def admit(self, criticality: Criticality | str | None = None) -> None:
        """Raise ``LoadShedError`` (and count it) unless the request is served now."""
        c = current_criticality() if criticality is None else Criticality.of(criticality)
        index = self._current()
        if index >= self._shed_from[c]:
            self._shed.add(int(c))  # a plain int takes the counters' fast path
            raise LoadShedError(c.name, self._levels[index], name=self._name)

    def admission(
        self, criticality: Criticality | str | None = None
    ) -> Policy:
        """Decorate a request handler (sync or async) that ``admit`` guards.

        With no ``criticality`` each call is judged by the criticality of
        its context (see ``request_criticality``).
        """
        return _Admission(self, None if criticality is None else Criticality.of(criticality))

    @property
    def shed_counts(self) -> dict[str, int]:
        """How many requests of each criticality were shed (by ``admit``)."""
        return dict(zip(Criticality.__members__, self._shed.snapshot(), strict=True))

    def shed_level(self, criticality: Criticality | str) -> str | None:
        """The first level that sheds ``criticality``; None if none does."""
        index = self._shed_from[Criticality.of(criticality)]
        return self._levels[index] if index < len(self._levels) else None

    def is_enabled(self, name: str) -> bool:
        """Whether feature ``name`` is on at the current level."""
        try:
            off_at = self._features[name]
        except KeyError:
            raise KeyError(f"no feature named {name!r}") from None
        return self._current() < off_at

    def __repr__(self) -> str:
        mode = "manual" if self._manual is not None else "auto"
        return f"<DegradationManager level={self._levels[self._index]!r} {mode}>"


class _Feature(Policy):
    """``DegradationManager.feature``'s decorator: off, the fallback answers the call."""

    __slots__ = ("_fallback", "_feature", "_manager", "_name")

    def __init__(
        self, manager: DegradationManager, feature: str, fallback: Callable[..., Any] | None
    ) -> None:
        self._manager = manager
        self._feature = feature
        self._fallback = fallback
        self._name = manager.name

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        if self._manager.is_enabled(self._feature):
            return None
        fallback = self._fallback
        return Replace(None if fallback is None else fallback(*(args or ()), **(kwargs or {})))


class _Admission(Policy):
    """``DegradationManager.admission``'s decorator: ``admit`` before each call."""

    __slots__ = ("_criticality", "_manager", "_name")

    def __init__(self, manager: DegradationManager, criticality: Criticality | None) -> None:
        self._manager = manager
        self._criticality = criticality
        self._name = manager.name

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> None:
        self._manager.admit(self._criticality)
