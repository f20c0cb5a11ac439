"""Check the .pyi stubs of the compiled core against both twins (mypy's stubtest).

1. every ``resilience/_core/_<name>_c.pyx`` has a ``_<name>_c.pyi`` beside it;
2. each stub matches its compiled module: names, signatures, properties
   (the compiled modules must be importable from the repository root, as
   after ``pip install -e .``);
3. each stub matches the pure twin ``_<name>_py.py`` too: stubtest runs on a
   copy of the package in which ``_<name>_py.pyi`` is the same stub, so a
   method added to a twin but not to its stub fails here.

Cython artefacts and differences that are not API are listed in
``stubtest-allowlist.txt`` beside this file. Run from the repository root:
``python .ci/check_stubs.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "resilience" / "_core"
ALLOWLIST = Path(__file__).resolve().parent / "stubtest-allowlist.txt"


def stubtest(modules: list[str], cwd: Path) -> int:
    command = [
        sys.executable,
        "-m",
        "mypy.stubtest",
        "--concise",
        "--ignore-unused-allowlist",  # one list serves both runs
        "--allowlist",
        str(ALLOWLIST),
        *modules,
    ]
    return subprocess.run(command, cwd=cwd, check=False).returncode


def main() -> int:
    stems = sorted(source.stem[: -len("_c")] for source in CORE.glob("*_c.pyx"))
    missing = [f"{stem}_c.pyi" for stem in stems if not (CORE / f"{stem}_c.pyi").exists()]
    if missing:
        print(f"compiled modules without a stub in {CORE}: {', '.join(missing)}", file=sys.stderr)
        return 1

    compiled = [f"resilience._core.{stem}_c" for stem in stems]
    failed = stubtest(compiled, ROOT)

    with tempfile.TemporaryDirectory() as tmp:
        # Only the core, and the two package __init__ files empty: the pure
        # modules import nothing but their siblings.
        package = Path(tmp, "resilience")
        shutil.copytree(
            CORE,
            package / "_core",
            ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "*.html", "__pycache__"),
        )
        (package / "__init__.py").write_text("")
        (package / "_core" / "__init__.py").write_text("")
        for stem in stems:
            shutil.copyfile(CORE / f"{stem}_c.pyi", package / "_core" / f"{stem}_py.pyi")
        pure = [f"resilience._core.{stem}_py" for stem in stems]
        failed |= stubtest(pure, Path(tmp))

    if failed:
        print("the .pyi stubs of resilience/_core do not match the twins", file=sys.stderr)
    else:
        print(f"stubs match both twins: {', '.join(f'{stem}_c.pyi' for stem in stems)}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
