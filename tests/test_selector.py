"""The selector: one env parser, one choice for all modules, both twins loadable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import resilience
from resilience import _core
from resilience._core._env import NO_EXTENSIONS_VAR, env_flag

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "Yes", "on", " on "])
def test_env_flag_true(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RESILIENCE_TEST_FLAG", value)
    assert env_flag("RESILIENCE_TEST_FLAG") is True


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "2", "y", "enable"])
def test_env_flag_false(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RESILIENCE_TEST_FLAG", value)
    assert env_flag("RESILIENCE_TEST_FLAG") is False


def test_env_flag_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESILIENCE_TEST_FLAG", raising=False)
    assert env_flag("RESILIENCE_TEST_FLAG") is False


def test_setup_py_reads_the_same_parser() -> None:
    # setup.py must not grow a second parser of the switch.
    source = (ROOT / "setup.py").read_text()
    assert "_env.py" in source
    assert "no_extensions()" in source
    assert "environ" not in source


def implementation_in_subprocess(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop(NO_EXTENSIONS_VAR, None)
    if env_value is not None:
        env[NO_EXTENSIONS_VAR] = env_value
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", "import resilience; print(resilience.IMPLEMENTATION)"],
        env=env, cwd="/", capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


@pytest.mark.parametrize("value", ["1", "yes"])
def test_switch_at_import_gives_pure(value: str) -> None:
    assert implementation_in_subprocess(value) == "python"


def test_compiled_is_live_by_default(twins) -> None:
    assert implementation_in_subprocess(None) == "cython"
    assert implementation_in_subprocess("0") == "cython"


def test_top_level_names_are_the_selected_twin() -> None:
    selected = _core.load(resilience.IMPLEMENTATION)
    for names in _core.CLASSES.values():
        for name in names:
            assert getattr(_core.SELECTED, name) is getattr(selected, name)
    for name in ("BreakerCore", "TokenBucket", "SemaphoreCore", "CountWindow", "TimeWindow"):
        assert getattr(resilience, name) is getattr(selected, name)
        assert getattr(_core, name) is getattr(selected, name)
    assert resilience.IMPLEMENTATION in ("cython", "python")


def test_twins_are_distinct_classes(impl) -> None:
    other = _core.load("python")
    if impl.IMPLEMENTATION == "cython":
        assert impl.TokenBucket is not other.TokenBucket
        assert impl.TokenBucket.__module__ == "resilience._core._bucket_c"
    else:
        assert impl.TokenBucket is other.TokenBucket
        assert impl.TokenBucket.__module__ == "resilience._core._bucket_py"


def test_every_twin_defines_the_same_public_api(impl) -> None:
    pure = _core.load("python")
    for names in _core.CLASSES.values():
        for name in names:
            ours = {a for a in dir(getattr(impl, name)) if not a.startswith("_")}
            theirs = {a for a in dir(getattr(pure, name)) if not a.startswith("_")}
            assert ours == theirs, name


def test_unknown_implementation_name() -> None:
    with pytest.raises(KeyError):
        _core.load("rust")
