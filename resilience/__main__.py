"""``python -m resilience info | bench``."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Sequence

from . import IMPLEMENTATION, __version__
from ._core import CLASSES, SUFFIXES
from ._core._env import NO_EXTENSIONS_VAR


def info() -> None:
    """Which twin is live, and where each compiled module was loaded from."""
    print(f"resilience {__version__}")
    print(f"implementation: {IMPLEMENTATION}")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"python: {python} ({sys.executable})")
    print(f"{NO_EXTENSIONS_VAR}={os.environ.get(NO_EXTENSIONS_VAR, '')!r}")
    for stem in CLASSES:
        name = f"resilience._core.{stem}{SUFFIXES['cython']}"
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            print(f"{name}: not importable ({exc})")
        else:
            print(f"{name}: {module.__file__}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resilience", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="the live implementation and where it was loaded from")
    bench = commands.add_parser("bench", help="each core primitive, compiled vs pure (ns/op)")
    bench.add_argument("--repeat", type=int, default=7, help="timing loops per figure (median)")
    bench.add_argument("--target", type=float, default=0.1, help="seconds per timing loop")
    args = parser.parse_args(argv)
    if args.command == "info":
        info()
    else:
        from . import _bench

        _bench.run(repeat=args.repeat, target=args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
