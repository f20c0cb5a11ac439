"""Fork safety: the library's locks and per-process state, fresh in a forked child.

A forked child runs only the thread that called ``fork()``. A lock another
thread held at that moment stays held in the child for ever, so the child's
first call would hang; a permit a parent thread held would never come back.
So every lock an object keeps is made here (``lock()``, ``rlock()``) and
is unlocked again in the child before the child's own code runs, and
objects that keep per-process state (permits, queues, threads of the
parent) ``register`` to reset it there. All of it is done at construction:
a call pays nothing.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Protocol

__all__ = ["ResetsInChild", "lock", "register", "rlock"]


class ResetsInChild(Protocol):
    """An object with per-process state to reset in a forked child."""

    def _reset_in_child(self) -> None:
        """In the child, after its locks are free: drop what the parent's threads held."""


# ``_thread.lock`` and ``_thread.RLock``: weakly held, so a lock lives only as
# long as its owner; reinitialised in place (``_at_fork_reinit``, what the
# standard library does for its own locks), so every reference to it sees
# the unlocked lock.
_locks: weakref.WeakSet[Any] = weakref.WeakSet()
_owners: weakref.WeakSet[ResetsInChild] = weakref.WeakSet()


def lock() -> threading.Lock:
    """A new ``threading.Lock``, unlocked again in a forked child."""
    new = threading.Lock()
    _locks.add(new)
    return new


def rlock() -> threading.RLock:
    """A new ``threading.RLock``, unlocked again in a forked child."""
    new = threading.RLock()
    _locks.add(new)
    return new


def register(owner: ResetsInChild) -> None:
    """Call ``owner._reset_in_child()`` in every forked child while ``owner`` lives."""
    _owners.add(owner)


def _after_fork_in_child() -> None:
    # Locks first: a reset takes its owner's lock.
    for held in list(_locks):
        held._at_fork_reinit()
    for owner in list(_owners):
        owner._reset_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
