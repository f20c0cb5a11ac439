"""Every ```python block of README.md runs as written, on its own.

Each block runs in a fresh interpreter, so a block that leans on another's
imports or names fails here as it would for a reader who copies it. Shell
commands and output sit in ```sh and ```text blocks, which are not run; a
fence without a language is refused, so no Python can hide from the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Generous for a block that takes about half a second: long enough for a
# loaded machine, short enough that a block that hangs fails the run.
TIMEOUT = 60.0
FENCE = re.compile(r"^```(\S*)\s*$")


def readme_text() -> str:
    """README.md beside the tests, or the copy the installed distribution carries.

    cibuildwheel copies only the tests next to the installed wheel; the
    README is there as the distribution's long description.
    """
    path = ROOT / "README.md"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    description = metadata("resilience-primitives").get_payload()
    assert isinstance(description, str) and description, "the distribution has no README"
    return description


@dataclass(frozen=True)
class Block:
    """A fenced block: its language, the line of its opening fence, its text."""

    language: str
    line: int
    code: str


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order."""
    blocks: list[Block] = []
    opened: tuple[str, int] | None = None
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence is None:
            if opened is not None:
                body.append(line)
        elif opened is None:
            opened, body = (fence.group(1), number), []
        else:
            blocks.append(Block(opened[0], opened[1], "\n".join(body) + "\n"))
            opened = None
    assert opened is None, f"the block opened at line {opened[1]} is never closed"
    return blocks


README_BLOCKS = fenced_blocks(readme_text())
PYTHON_BLOCKS = [block for block in README_BLOCKS if block.language == "python"]


def test_the_fences_are_read_as_the_readme_means() -> None:
    sample = "text\n```python\nx = 1\n\n```\n```text\nout\n```\n"
    assert fenced_blocks(sample) == [Block("python", 2, "x = 1\n\n"), Block("text", 6, "out\n")]


def test_every_block_says_what_it_holds() -> None:
    assert len(PYTHON_BLOCKS) >= 6  # the quick start, testing, and each operations section
    unnamed = [block.line for block in README_BLOCKS if not block.language]
    assert not unnamed, f"fences without a language (python, sh or text) at lines {unnamed}"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda block: f"line-{block.line}")
def test_the_python_block_runs_on_its_own(block: Block) -> None:
    try:
        run = subprocess.run(
            [sys.executable, "-c", block.code],
            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the block at README.md line {block.line} still ran after {TIMEOUT:g} s")
    assert run.returncode == 0, f"README.md line {block.line}:\n{run.stderr}"


REDIS_BLOCKS = [block for block in PYTHON_BLOCKS if "REDIS_URL" in block.code]


def test_a_block_uses_redis() -> None:
    assert REDIS_BLOCKS, "the README's Redis example is gone"


@pytest.mark.parametrize("block", REDIS_BLOCKS, ids=lambda block: f"line-{block.line}")
def test_the_redis_block_runs_against_a_real_server(block: Block, redis_url: str) -> None:
    """With ``REDIS_URL`` set, as a reader with a server would: every decision
    is made by Redis (no fallback) and the health probe reports UP."""
    try:
        run = subprocess.run(
            [sys.executable, "-c", block.code],
            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
            env={**os.environ, "REDIS_URL": redis_url},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the block at README.md line {block.line} still ran after {TIMEOUT:g} s")
    assert run.returncode == 0, f"README.md line {block.line}:\n{run.stderr}"
    assert "fallbacks=0" in run.stdout and "errors=0" in run.stdout, run.stdout
    assert "UP" in run.stdout, run.stdout
