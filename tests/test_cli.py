"""``python -m resilience info | bench``."""

from __future__ import annotations

import os
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
