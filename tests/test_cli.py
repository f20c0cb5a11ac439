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
from resilience.__main__ import main
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
    header = lines[0].split()
    for column in ("time", "phase", "ok%", "breaker", "retries", "budget", "health", "level"):
        assert column in header
    # The live view (one line per tick; the notes of changes are indented
    # further) goes through the phases in order, the outage included.
    view = [line.split()[1] for line in lines[1:] if re.match(r"^ {0,4}\d+\.\ds  [a-z]", line)]
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
    counts = {}
    for outcome in ("ok", "circuit open", "rate limited", "bulkhead full", "failed"):
        match = re.search(rf"^    {outcome}\s+(\d+)  \((\d+\.\d)%\)$", out.stdout, re.M)
        assert match, outcome
        counts[outcome] = int(match.group(1))
        assert match.group(2) == f"{100 * counts[outcome] / total:.1f}"
    assert sum(counts.values()) == total

    # The outage (95% errors) must trip the breaker: CLOSED -> OPEN at least once.
    breaker = re.search(r"^  breaker\s+(\w+); (\d+) rejected; (.*)$", out.stdout, re.M)
    moves = dict(re.findall(r"(\w+->\w+) x(\d+)", breaker.group(3)))
    assert int(moves.get("CLOSED->OPEN", 0)) >= 1
    assert "breaker CLOSED -> OPEN" in out.stdout  # the live view noted it
    # Every refusal is counted once: by the policy that refused and in the outcomes.
    assert int(breaker.group(2)) == counts["circuit open"]
    refused = re.search(r"^  bulkhead\s+(\d+) refused$", out.stdout, re.M)
    assert int(refused.group(1)) == counts["bulkhead full"]
    retry = re.search(r"^  retry\s+(\d+) attempts, (\d+) of them retries$", out.stdout, re.M)
    attempts, retries = int(retry.group(1)), int(retry.group(2))
    assert attempts == total - counts["rate limited"] + retries
    budget = re.search(r"\((\d+) bad of (\d+), SLO 90%", out.stdout)
    assert (int(budget.group(1)), int(budget.group(2))) == (total - counts["ok"], total)

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
        (["info"], 1, True),  # `info | head -1`
        (["info"], 0, False),  # closed before anything is written: the write at exit fails
        (["info"], 0, True),  # closed before anything is written: the first print fails
        (["bench", "--repeat", "1", "--target", "0.001"], 1, True),  # later lines fail
    ],
    ids=["info-one-line", "info-closed-buffered", "info-closed-unbuffered", "bench-one-line"],
)
def test_a_closed_stdout_stops_quietly(args: list[str], lines: int, unbuffered: bool) -> None:
    status, stderr = _gone_reader(args, lines, unbuffered)
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
    assert "Exception ignored" not in stderr
    assert status == 0, stderr


def test_help_lists_every_command_in_plain_text() -> None:
    for args in (["--help"], ["bench", "--help"], ["demo", "--help"]):
        out = subprocess.run(
            [sys.executable, "-m", "resilience", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        )
        assert "``" not in out.stdout, out.stdout
        assert "`" not in out.stdout, out.stdout
    top = subprocess.run(
        [sys.executable, "-m", "resilience", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    listed = re.findall(r"^    (\w+)\s", top, re.M)
    assert listed == ["info", "bench", "demo"], top
    assert "info, bench and demo" in top


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
