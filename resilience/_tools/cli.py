"""The ``bench`` command: its options, which sections run, ``--json`` and ``--plot``.

``python -m resilience bench`` prints the targets table (``bench``);
``--peers`` the comparison with other libraries (``peers``); ``--scaling``
cost against window size, idle time and threads (``scaling``). ``--json
FILE`` and ``--plot FILE.png`` (matplotlib) record any of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from . import bench, peers, plots, scaling, timing
from .twins import load_twins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m resilience bench``."""
    parser.add_argument("--repeat", type=int, default=7, help="timing rounds per figure (median)")
    parser.add_argument("--target", type=float, default=0.1, help="seconds per timing loop")
    parser.add_argument(
        "--peers", action="store_true", help="compare with other libraries (those installed)"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="breaker vs window size, TimeWindow vs idle time, throughput vs threads",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument(
        "--plot", metavar="FILE.png", help="draw a bar chart (needs matplotlib: the bench extra)"
    )


def command(args: argparse.Namespace) -> int:
    """Run the sections asked for; write ``--json`` and ``--plot`` files."""
    if args.repeat < 1 or args.target <= 0:
        print("--repeat must be >= 1 and --target > 0", file=sys.stderr)
        return 2
    if args.plot:
        try:
            plots.pyplot()
        except ImportError as exc:
            print(f"--plot needs matplotlib ({exc}): pip install matplotlib", file=sys.stderr)
            return 2
    sections: dict[str, dict[str, Any]] = {}
    if not (args.peers or args.scaling):
        sections["twins"] = bench.run(repeat=args.repeat, target=args.target)
    if args.peers:
        sections["peers"] = peers.run(repeat=args.repeat, target=args.target)
    if args.scaling:
        if args.peers:
            print()
        sections["scaling"] = scaling.run(load_twins(), repeat=args.repeat, target=args.target)
    if args.json:
        document = {**timing.environment(), "repeat": args.repeat, "target_seconds": args.target,
                    **sections}
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=1)
            file.write("\n")
        print(f"wrote {args.json}")
    if args.plot:
        for section, file_name in _plot_paths(args.plot, list(sections)):
            PLOTS[section](sections[section], file_name)
            print(f"wrote {file_name}")
    return 0


PLOTS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "twins": plots.plot_twins,
    "peers": plots.plot_peers,
    "scaling": plots.plot_scaling,
}


def _plot_paths(path: str, sections: list[str]) -> list[tuple[str, str]]:
    """The first section gets ``path``; any other ``<stem>-<section><suffix>``."""
    stem, dot, suffix = path.rpartition(".")
    if not dot:
        stem, suffix = path, "png"
    paths = [(sections[0], path)]
    paths += [(section, f"{stem}-{section}.{suffix}") for section in sections[1:]]
    return paths
