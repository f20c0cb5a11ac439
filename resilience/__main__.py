"""``python -m resilience info | bench [--peers] [--scaling] [--json FILE] [--plot FILE.png]``."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

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


def _info(args: argparse.Namespace) -> int:
    info()
    return 0


def _bench(args: argparse.Namespace) -> int:
    from . import _bench

    return _bench.command(args)


def _demo_module() -> ModuleType:
    from . import _demo

    return _demo


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    from . import _bench

    _bench.add_arguments(parser)


# name -> (help, handler, function adding the subcommand's arguments or None).
# A new subcommand is one more entry.
COMMANDS: dict[
    str,
    tuple[
        str,
        Callable[[argparse.Namespace], int],
        Callable[[argparse.ArgumentParser], None] | None,
    ],
] = {
    "info": ("the live implementation and where it was loaded from", _info, None),
    "demo": (
        "a flaky downstream called through a pipeline, watched live (about 20 s)",
        lambda args: _demo_module().command(args),
        lambda parser: _demo_module().add_arguments(parser),
    ),
    "bench": (
        "compiled vs pure (ns/op); --peers: vs other libraries; --scaling",
        _bench,
        _bench_arguments,
    ),
}


def parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``chosen``, only that command's arguments are added."""
    top = argparse.ArgumentParser(prog="python -m resilience", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    for name, (help_text, handler, add_arguments) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        # Only the command being run gets its arguments: adding them imports
        # its module, which `info` has no need of.
        if add_arguments is not None and (chosen is None or name == chosen):
            add_arguments(sub)
        sub.set_defaults(handler=handler)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in arguments if not a.startswith("-")), None)
    args = parser(chosen).parse_args(arguments)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
