"""Graceful degradation: named levels, triggers that raise them, features that switch off.

A ``DegradationManager`` holds one level out of an ordered list (by default
``normal < degraded < critical``). Triggers — ``trigger_when(predicate,
level)``, e.g. a budget burning, a breaker open, a health check down — push
the level up at once; it comes down one step at a time, each step only after
``recovery`` quiet seconds, so a flapping signal cannot make it flap.
Features decorated with ``feature(name, off_at=...)`` return their fallback
while the level is at or above ``off_at``.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ._core._validate import clock as check_clock
from ._core._validate import non_negative, positive
from ._policy import logger, notify

__all__ = ["DegradationManager"]


class DegradationManager:
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
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(levels, str) or not isinstance(levels, Iterable):
            raise TypeError(f"levels must be an iterable of names, got {levels!r}")
        self._levels = tuple(levels)
        if not self._levels or not all(isinstance(level, str) for level in self._levels):
            raise TypeError(f"levels must be one or more str names, got {levels!r}")
        if len(set(self._levels)) != len(self._levels):
            raise ValueError(f"levels must be distinct, got {levels!r}")
        self._recovery = positive("recovery", recovery)
        self._check_interval = non_negative("check_interval", check_interval)
        if math.isinf(self._check_interval):
            raise ValueError(f"check_interval must be finite, got {check_interval!r}")
        self._clock: Callable[[], float] = check_clock(clock) or time.monotonic
        self._lock = threading.Lock()
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

    # -- levels ------------------------------------------------------------------

    def _index_of(self, level: str, argument: str = "level") -> int:
        try:
            return self._levels.index(level)
        except ValueError:
            raise ValueError(f"{argument} must be one of {self._levels!r}, got {level!r}") from None

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
            notify(self._listeners, *change)

    def on_change(self, callback: Callable[[str, str], object]) -> Callable[[str, str], object]:
        """Call ``callback(old, new)`` on every change of level (usable as a decorator)."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        self._listeners.append(callback)
        return callback

    # -- features ----------------------------------------------------------------

    def feature(
        self, name: str, *, off_at: str, fallback: Callable[..., Any] | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
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

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def async_feature(*args: Any, **kwargs: Any) -> Any:
                    if self.is_enabled(name):
                        return await fn(*args, **kwargs)
                    if fallback is None:
                        return None
                    value = fallback(*args, **kwargs)
                    return await value if inspect.isawaitable(value) else value

                return async_feature

            @functools.wraps(fn)
            def feature(*args: Any, **kwargs: Any) -> Any:
                if self.is_enabled(name):
                    return fn(*args, **kwargs)
                return None if fallback is None else fallback(*args, **kwargs)

            return feature

        return decorate

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
