"""``python -m resilience info | bench``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import resilience
from resilience import _bench
from resilience.__main__ import main

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
    results = _bench.run(repeat=1, target=0.001, out=lines.append)
    text = "\n".join(lines)
    assert "bare ns" in text
    for case in _bench.CASES:
        assert case.name in text
        row = results["cases"][case.name]
        assert all(ns > 0 for ns in row.values())
        assert set(row) == {"bare", "cython", "python", "speedup"}
    for case in _bench.POLICY_CASES:
        assert case.name in text
        assert set(results["cases"][case.name]) == {"bare", "cython", "python", "over_bare"}
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
    from resilience import _demo

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
    remaining_phases = iter(p.name for p in _demo.PHASES)
    assert all(p in remaining_phases for p in seen), seen  # a subsequence, in order
    assert seen[0] == "healthy" and "outage" in seen

    summary = lines[lines.index("summary") + 1 :]
    sections = [line.split()[0] for line in summary if line.startswith("  ") and
                not line.startswith("    ")]
    assert sections == [
        "requests", "breaker", "bulkhead", "retry", "chaos", "error", "latency", "health"
    ]
    total = int(re.search(r"^  requests\s+(\d+)$", out.stdout, re.M).group(1))
    expected = sum(round(p.seconds * scale * p.arrivals) for p in _demo.PHASES)
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
