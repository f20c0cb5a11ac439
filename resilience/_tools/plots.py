"""``--plot FILE.png``: the figures of ``bench``, ``bench --peers`` and ``--scaling`` as charts.

Needs matplotlib (the ``bench`` extra); imported only when a plot is drawn.
"""

from __future__ import annotations

import importlib
from typing import Any

from .. import __version__
from .scaling import TIME_WINDOW_SLICES
from .timing import environment, platform_line


def pyplot() -> Any:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


OURS_COLORS = {"cython": "#1f77b4", "python": "#9ecae1"}
PEER_COLOR = "#999999"
STDLIB_COLOR = "#d6a756"


def plot_peers(results: dict[str, Any], path: str) -> None:
    """Horizontal bars, ns per operation (log scale), grouped by operation.

    A dotted line in each group marks the bare call (or bare await) of the run.
    """
    plt = pyplot()
    patches = importlib.import_module("matplotlib.patches")
    labels: list[str] = []
    values: list[float] = []
    colors: list[str] = []
    headings: list[int] = []
    spans: list[tuple[int, int, float]] = []  # first row, last row, bare ns of the group
    current = None
    for entry in results["rows"]:
        heading = f"{entry['operation']} ({entry['mode']})"
        if heading != current:
            if current is not None:
                labels.append("")
                values.append(0.0)
                colors.append("none")
            current = heading
            headings.append(len(labels))
            labels.append(heading)
            values.append(0.0)
            colors.append("none")
            spans.append((len(labels), len(labels), results["bare"][entry["mode"]]))
        first, _, bare = spans[-1]
        spans[-1] = (first, len(labels), bare)
        labels.append(f"{entry['label']} {entry['version']}".strip())
        values.append(entry["ns"])
        if entry["library"] == "resilience":
            colors.append(OURS_COLORS.get(entry["variant"], OURS_COLORS["cython"]))
        else:
            colors.append(STDLIB_COLOR if entry["library"] == "stdlib" else PEER_COLOR)
    fig, ax = plt.subplots(figsize=(10, 0.22 * len(labels) + 1.8))
    positions = list(range(len(labels)))
    ax.barh(positions, [v if v > 0 else float("nan") for v in values], color=colors)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=8)
    ax.tick_params(axis="y", length=0)
    for i in headings:
        ax.get_yticklabels()[i].set_fontweight("bold")
    for first, last, bare in spans:
        ax.vlines(bare, first - 0.45, last + 0.45, colors="black", linestyles="dotted", lw=1)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ns per operation (log scale; lower is better)")
    for y, value in zip(positions, values, strict=True):
        if value > 0:
            ax.text(value * 1.05, y, _short_ns(value), va="center", fontsize=7)
    ax.set_title(
        f"resilience {__version__} vs peers - {platform_line(environment())},"
        f" median of {results['repeat']} interleaved rounds",
        fontsize=10,
    )
    ax.grid(axis="x", which="both", alpha=0.3)
    shown = [v for v in values if v > 0]
    ax.set_xlim(10.0, max(shown) * 4)
    legend = [
        patches.Patch(color=OURS_COLORS["cython"], label="resilience, compiled"),
        patches.Patch(color=OURS_COLORS["python"], label="resilience, pure Python"),
        patches.Patch(color=PEER_COLOR, label="peer library"),
        patches.Patch(color=STDLIB_COLOR, label="standard library"),
        importlib.import_module("matplotlib.lines").Line2D(
            [], [], color="black", linestyle="dotted", label="bare call / bare await"
        ),
    ]
    ax.legend(handles=legend, loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _short_ns(value: float) -> str:
    if value >= 10000:
        return f"{value / 1000:.0f} us"
    if value >= 1000:
        return f"{value / 1000:.1f} us"
    return f"{value:.0f} ns"


def _style(key: str) -> dict[str, Any]:
    """Colour by twin, line style by kind, the same in every panel."""
    twin = "python" if "python" in key else "cython"
    dashed = "core" in key or "Bulkhead" in key
    return {"color": OURS_COLORS[twin] if twin == "cython" else "#ff7f0e",
            "linestyle": "--" if dashed else "-", "marker": "o"}


def plot_scaling(results: dict[str, Any], path: str) -> None:
    """Three panels: breaker vs window size, TimeWindow vs idle slices, threads."""
    plt = pyplot()
    ticker = importlib.import_module("matplotlib.ticker")
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.5))
    rows = results["breaker_window"]
    sizes = [r["window"] for r in rows]
    for key in rows[0]:
        if key.endswith("_ns") and key != "bare_ns":
            a.plot(sizes, [r[key] for r in rows], label=key[:-3].replace("_", " "), **_style(key))
    a.set_xscale("log")
    a.set_xticks(sizes)
    a.set_xticklabels([str(n) for n in sizes])
    a.set_xlabel("CountWindow size")
    a.set_ylabel("ns per call (log scale)")
    a.set_title("breaker cost vs window size")
    rows = results["time_window_idle"]
    slices = [r["slices"] for r in rows]
    for key in rows[0]:
        if key.endswith("_ns") and key != "bare_ns":
            b.plot(slices, [r[key] for r in rows], label=f"record, {key[:-3]}", **_style(key))
    b.set_xscale("symlog", linthresh=1)
    b.set_xticks(slices)
    b.set_xticklabels([str(n) for n in slices])
    b.set_xlabel("slices idle between records")
    b.set_ylabel("ns per record (log scale)")
    b.set_title(f"TimeWindow record vs idle time ({TIME_WINDOW_SLICES} slices)")
    rows = results["throughput"]["rows"]
    threads = [r["threads"] for r in rows]
    for key in rows[0]:
        if key != "threads":
            c.plot(threads, [r[key] / 1e6 for r in rows], label=key, **_style(key))
    c.set_xscale("log", base=2)
    c.set_xticks(threads)
    c.set_xticklabels([str(t) for t in threads])
    c.set_xlabel("threads sharing one object")
    c.set_ylabel("Mops/s, all threads (log scale)")
    c.set_title("throughput vs threads")
    for axis in (a, b, c):
        axis.set_yscale("log")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.yaxis.set_minor_formatter(ticker.NullFormatter())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_twins(results: dict[str, Any], path: str) -> None:
    """Compiled vs pure vs bare, ns per operation (log scale)."""
    plt = pyplot()
    cases = list(results["cases"].items())
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(cases) + 1.5))
    series = [("bare", "#cccccc"), ("cython", OURS_COLORS["cython"]),
              ("python", OURS_COLORS["python"])]
    width = 0.27
    for i, (name, color) in enumerate(series):
        ys = [j + (i - 1) * width for j in range(len(cases))]
        xs = [row.get(name, float("nan")) for _, row in cases]
        ax.barh(ys, xs, height=width, color=color, label=name)
    ax.set_yticks(range(len(cases)))
    ax.set_yticklabels([name for name, _ in cases], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ns per operation (log scale)")
    ax.legend()
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
