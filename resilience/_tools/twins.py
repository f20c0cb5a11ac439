"""The two twins of the core, side by side: loading both, and building policies on one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

from .. import _core

NAMES = ("cython", "python")  # compiled, pure


def load_twins(out: Callable[[str], object] = print) -> dict[str, SimpleNamespace]:
    """The core classes of each twin that loads; a note through ``out`` for one that does not."""
    twins: dict[str, SimpleNamespace] = {}
    for name in NAMES:
        try:
            twins[name] = _core.load(name)
        except ImportError as exc:
            out(f"note: the {name} twin is not available ({exc})")
    return twins


@contextmanager
def running_on(classes: SimpleNamespace) -> Iterator[None]:
    """Policies built inside take their core classes from ``classes``."""
    saved = _core.SELECTED
    _core.SELECTED = classes
    try:
        yield
    finally:
        _core.SELECTED = saved
