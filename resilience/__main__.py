"""The command line of the resilience package: python -m resilience COMMAND.

Commands: info (which implementation is live), bench (timings against the
targets; --peers, --scaling) and demo (a flaky downstream, watched live).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Callable, Sequence

from . import IMPLEMENTATION, __version__
from ._core import CLASSES, SUFFIXES
from ._core._env import NO_EXTENSIONS_VAR

DESCRIPTION = "The command line of the resilience package."
EPILOG = "python -m resilience COMMAND --help shows a command's options."


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


def _tool(name: str) -> tuple[
    Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None]
]:
    """The handler and the arguments of a command whose module is ``_tools.<name>``.

    The module is imported only when the command is run (or its options
    shown): ``info`` has no need of it.
    """

    def handler(args: argparse.Namespace) -> int:
        status: int = importlib.import_module(f"{__package__}._tools.{name}").command(args)
        return status

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        importlib.import_module(f"{__package__}._tools.{name}").add_arguments(parser)

    return handler, add_arguments


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
    "info": ("which implementation is live, and where it was loaded from", _info, None),
    "bench": ("time each primitive and policy, compiled vs pure", *_tool("cli")),
    "demo": ("a flaky downstream behind a pipeline, watched live", *_tool("demo")),
}


def parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``chosen``, only that command's arguments are added."""
    top = argparse.ArgumentParser(
        prog="python -m resilience", description=DESCRIPTION, epilog=EPILOG
    )
    commands = top.add_subparsers(
        title="commands", dest="command", required=True, metavar="COMMAND"
    )
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


def run(argv: Sequence[str] | None = None) -> int:
    """``main``, stopping quietly when the reader of stdout goes away (``| head``)."""
    try:
        try:
            status = main(argv)
        except SystemExit:
            # --help exits from inside main with its text still in stdout's
            # buffer: write it now, where a closed pipe can be caught.
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # likewise what a command printed: a closed pipe shows here
    except BrokenPipeError:
        # Nothing more can be said to the reader; point stdout at devnull so
        # the interpreter's own flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return status


if __name__ == "__main__":
    sys.exit(run())
