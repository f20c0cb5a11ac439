"""``python -m resilience info | bench | demo``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import resilience
from resilience.__main__ import COMMANDS, main
from resilience._tools import bench, demo

ROOT = Path(__file__).resolve().parent.parent


def test_info_names_the_live_implementation(capsys) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"implementation: {resilience.IMPLEMENTATION}" in out
    assert f"resilience {resilience.__version__}" in out
    for stem in ("_bucket", "_breaker", "_semaphore", "_window"):
        assert f"resilience._core.{stem}_c:" in out


def test_info_shows_where_compiled_modules_load_from(twins, capsys) -> None:
    main(["info"])
    out = capsys.readouterr().out
    assert "not importable" not in out
    for line in out.splitlines():
        if line.startswith("resilience._core._"):
            path = line.split(": ", 1)[1]
            assert path.endswith(tuple(EXTENSION_SUFFIXES)), line


def test_bench_reports_every_case_for_both_twins(twins) -> None:
    lines: list[str] = []
    results = bench.run(repeat=1, target=0.001, out=lines.append)
    text = "\n".join(lines)
    assert "bare ns" in text
    for case in bench.CASES:
        assert case.name in text
        row = results["cases"][case.name]
        assert all(ns > 0 for ns in row.values())
        assert set(row) == {"bare", "cython", "python", "speedup"}
    for case in bench.POLICY_CASES:
        assert case.name in text
        row = results["cases"][case.name]
        assert set(row) == {"bare", "cython", "python", "over_bare", "target", "met"}
        assert row["met"] in (True, False)
        assert case.goal in text
    assert "speedup" in text
    assert results["breaker_bytes_python"] > 0
    assert results["breaker_bytes_cython"] > 0


def test_module_entry_point_runs() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-m", "resilience", "info"],
        env=env, cwd="/", capture_output=True, text=True, check=True,
    )
    assert "implementation:" in out.stdout


def test_unknown_command_fails() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-m", "resilience", "nonsense"],
        env=env, cwd="/", capture_output=True, text=True,
    )
    assert out.returncode != 0


def test_demo_runs_a_short_scenario_and_rejects_a_bad_scale() -> None:
    scale = 0.1
    out = subprocess.run(
        [sys.executable, "-m", "resilience", "demo", "--scale", str(scale)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # A legend first, once: each column's title and what it shows; then the header.
    assert lines[0] == f"One line every {scale:g} s, changes noted beneath it. The columns:"
    assert out.stdout.count("The columns:") == 1
    legend = lines[1 : 1 + len(demo.COLUMNS)]
    for column, line in zip(demo.COLUMNS, legend, strict=True):
        assert re.fullmatch(rf"  {re.escape(column.title)} +{re.escape(column.meaning)}", line)
    header = lines.index(demo.row([column.title for column in demo.COLUMNS]))
    assert header == len(demo.COLUMNS) + 2
    # The live view (one line per tick; the notes of changes are indented
    # further) goes through the phases in order, the outage included.
    view = [
        line.split()[1]
        for line in lines[header + 1 :]
        if re.match(r"^ {0,4}\d+\.\ds  [a-z]", line)
    ]
    seen = [p for i, p in enumerate(view) if i == 0 or view[i - 1] != p]
    remaining_phases = iter(p.name for p in demo.PHASES)
    assert all(p in remaining_phases for p in seen), seen  # a subsequence, in order
    assert seen[0] == "healthy" and "outage" in seen

    summary = lines[lines.index("summary") + 1 :]
    sections = [line.split()[0] for line in summary if line.startswith("  ") and
                not line.startswith("    ")]
    assert sections == [
        "requests", "breaker", "bulkhead", "retry", "chaos", "error", "latency", "health"
    ]
    total = int(re.search(r"^  requests\s+(\d+)$", out.stdout, re.M).group(1))
    expected = sum(round(p.seconds * scale * p.arrivals) for p in demo.PHASES)
    assert total == expected

    def count(indent: int, label: str, meaning: str = "") -> int:
        """The count on a summary line, after checking its share of the requests."""
        pattern = rf"^{' ' * indent}{label} +(\d+)  \((\d+\.\d)%\) *{re.escape(meaning)}$"
        match = re.search(pattern, out.stdout, re.M)
        assert match, pattern
        assert match.group(2) == f"{100 * int(match.group(1)) / total:.1f}"
        return int(match.group(1))

    # Each request counted once: ok, or not ok under the way it ended.
    ok, not_ok = count(4, "ok"), count(4, "not ok")
    assert ok + not_ok == total
    counts = {label: count(6, label, meaning) for label, (_, meaning) in demo.NOT_OK.items()}
    assert sum(counts.values()) == not_ok

    # The outage (95% errors) must trip the breaker: CLOSED -> OPEN at least once.
    breaker = re.search(r"^  breaker\s+(\w+); (\d+) calls refused; (.*)$", out.stdout, re.M)
    moves = dict(re.findall(r"(\w+->\w+) x(\d+)", breaker.group(3)))
    assert int(moves.get("CLOSED->OPEN", 0)) >= 1
    assert "breaker CLOSED -> OPEN" in out.stdout  # the live view noted it
    # Every refusal is counted once: by the policy that refused and in the outcomes.
    assert int(breaker.group(2)) == counts["circuit open"]
    refused = re.search(r"^  bulkhead\s+(\d+) calls refused$", out.stdout, re.M)
    assert int(refused.group(1)) == counts["bulkhead full"]
    retry = re.search(r"^  retry\s+(\d+) attempts, (\d+) of them retries$", out.stdout, re.M)
    attempts, retries = int(retry.group(1)), int(retry.group(2))
    assert attempts == total - counts["rate limited"] + retries
    budget = re.search(
        r" (\d+) not ok of (\d+) requests \(SLO 90% ok over 60 s\)$", out.stdout, re.M
    )
    assert (int(budget.group(1)), int(budget.group(2))) == (not_ok, total)

    bad = subprocess.run(
        [sys.executable, "-m", "resilience", "demo", "--scale", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode != 0
    assert "--scale" in bad.stderr
    assert "summary" not in bad.stdout


# -- the command line as a user meets it ------------------------------------------


def _gone_reader(args: list[str], lines: int, unbuffered: bool) -> tuple[int, str]:
    """Run a command whose stdout pipe is closed after ``lines`` lines: (status, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "resilience", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        for _ in range(lines):
            assert process.stdout.readline()
        process.stdout.close()  # the reader goes away, as `| head -n LINES` does
        status = process.wait(timeout=120)
        return status, process.stderr.read()
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("args", "lines", "unbuffered"),
    [
        (["info"], 0, False),  # closed before anything is written: the write at exit fails
        (["info"], 0, True),  # closed before anything is written: the first print fails
        (["bench", "--repeat", "1", "--target", "0.001"], 1, True),  # later lines fail
        (["demo", "--scale", "0.05"], 3, False),  # `demo | head -3`: the next tick fails
        (["--help"], 0, False),  # argparse exits with the help text still buffered
    ],
    ids=[
        "info-closed-buffered",
        "info-closed-unbuffered",
        "bench-one-line",
        "demo-three-lines",
        "help-closed-buffered",
    ],
)
def test_a_closed_stdout_stops_quietly(args: list[str], lines: int, unbuffered: bool) -> None:
    status, stderr = _gone_reader(args, lines, unbuffered)
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
    assert "Exception ignored" not in stderr
    assert status == 0, stderr


def _help(*args: str) -> str:
    """The help text as a user sees it in an 80-column terminal."""
    return subprocess.run(
        [sys.executable, "-m", "resilience", *args, "--help"],
        cwd=ROOT, env=dict(os.environ, COLUMNS="80"),
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout


def _assert_plain_text(shown: str) -> None:
    """No reST markup (``literal``, :role:`x`, `link`_, directive::): a terminal shows it raw."""
    assert not re.search(r"`|:\w+:|::", shown), shown


def test_help_lists_every_command_on_one_line_each() -> None:
    top = _help()
    listed = re.findall(r"^    (\w+) +(.+)$", top, re.M)
    assert listed == [(name, help_text) for name, (help_text, *_) in COMMANDS.items()], top
    assert "python -m resilience COMMAND --help" in top
    _assert_plain_text(top)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_help_is_plain_text(command: str) -> None:
    _assert_plain_text(_help(command))


ASYNC_ROWS = (
    "CircuitBreaker async decorator, closed",
    "CircuitBreaker async rejection while open",
    "RateLimiter async decorator, allowed",
    "Retry async decorator, success first try",
    "Bulkhead async with, free",
)


def test_a_quick_bench_shows_the_async_rows_and_which_targets_are_met() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "resilience", "bench", "--repeat", "1", "--target", "0.001"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(line for line in lines if line.startswith("policy"))
    assert header.split()[-3:] == ["target", "(compiled)", "met"]
    for name in ASYNC_ROWS:
        row = next(line for line in lines if line.startswith(name + "  "))
        assert "over bare await" in row or "<= 500 ns" in row, row
        assert row.endswith(("met", "MISSED", "n/a (no compiled twin)")), row
    for case in bench.POLICY_CASES:
        row = next(line for line in lines if line.startswith(case.name + "  "))
        assert row.endswith(("met", "MISSED", "n/a (no compiled twin)")), row
    assert re.search(r"^targets .*: \d+ of \d+ met$|^targets: not judged", out.stdout, re.M)


def test_the_new_rows_carry_their_targets() -> None:
    goals = {case.name: case.goal for case in bench.POLICY_CASES}
    assert goals["CircuitBreaker async decorator, closed"] == "<= 150 ns over bare await"
    assert goals["RateLimiter async decorator, allowed"] == "<= 150 ns over bare await"
    assert goals["Retry async decorator, success first try"] == "<= 150 ns over bare await"
    assert goals["CircuitBreaker async rejection while open"] == "<= 500 ns"


def test_peers_set_the_pure_twin_against_the_fastest_pure_python_peer() -> None:
    from resilience._tools import peers

    def entry(library: str, variant: str, over_bare: float, pure_peer: bool = True) -> dict:
        return {"operation": "op", "mode": "sync", "library": library, "variant": variant,
                "label": library, "version": "1", "over_bare": over_bare, "pure_peer": pure_peer}

    section = [
        entry("resilience", "cython", 10.0),
        entry("resilience", "python", 300.0),
        entry("slow", "", 1000.0),
        entry("fast", "", 250.0),
        entry("stdlib", "semaphore", 5.0, pure_peer=False),  # the standard library: left out
    ]
    verdict = peers._pure_vs_peers(section)
    assert verdict["peer"] == "fast 1"
    assert verdict["ratio"] == pytest.approx(300.0 / 250.0)
    assert verdict["within"] is True
    assert "1.20x" in peers._verdict_line(verdict) and "met" in peers._verdict_line(verdict)
    alone = peers._pure_vs_peers([section[0], section[1], section[4]])
    assert alone["ratio"] is None and "none on this row" in peers._verdict_line(alone)


def test_peers_runs_and_ends_every_section_with_the_pure_ratio(twins) -> None:
    from resilience._tools import peers

    lines: list[str] = []
    results = peers.run(repeat=1, target=0.001, out=lines.append, progress=lambda _: None)
    headings = [line for line in lines if line.endswith("vs ours")]
    verdicts = [line for line in lines if "pure twin vs fastest pure-Python peer" in line]
    assert headings and len(verdicts) == len(headings) == len(results["pure_vs_peers"])
    bulkhead = [v for v in results["pure_vs_peers"] if v["operation"] == peers.BULKHEAD]
    assert all(v["peer"] is None for v in bulkhead)  # only the standard library's semaphores


def test_import_resilience_does_not_import_the_tools() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, resilience; print(sorted("
         "m for m in sys.modules if m.startswith('resilience._tools')))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.strip() == "[]"
