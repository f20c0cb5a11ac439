"""Policies and core objects are neither copied nor pickled, on both twins.

Each holds live state of this process — counts other callers are changing,
locks, a clock, listeners, permits out — so a copy would share part of it
and fork the rest without a word (two breakers each believing it holds the
only count of failures), and an unpickled one would start from a moment
that has passed. ``copy.copy``, ``copy.deepcopy`` and ``pickle`` all fall
back to ``__reduce_ex__`` when a class has no ``__copy__`` / ``__deepcopy__``
of its own, so refusing there refuses all three, with one message.
"""

from __future__ import annotations

from typing import NoReturn, SupportsIndex


def refuse_copy(obj: object, protocol: SupportsIndex = 0, /) -> NoReturn:
    """``__reduce_ex__`` of the objects that cannot be copied or pickled: a TypeError saying so.

    The compiled classes bind it as their ``__reduce_ex__`` (Cython's own
    pickling is turned off in their modules); Python classes inherit it
    from ``NoCopy``.
    """
    kind = type(obj).__name__
    raise TypeError(
        f"a {kind} cannot be copied or pickled: it holds live state of this process;"
        f" construct a new {kind} with the same settings instead"
    )


class NoCopy:
    """Base of the Python classes that refuse ``copy``, ``deepcopy`` and ``pickle``."""

    __slots__ = ()

    def __reduce_ex__(self, protocol: SupportsIndex, /) -> NoReturn:
        refuse_copy(self, protocol)
