"""Builds the Cython core, unless RESILIENCE_NO_EXTENSIONS says not to.

Metadata lives in pyproject.toml. A compile error fails the build: there is
no silent fallback here (the runtime selector falls back only when the
compiled modules are absent, e.g. a pure wheel).
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, setup

CORE = Path("resilience", "_core")


def load_env_module():
    # The package cannot be imported while it is being built; load the one
    # parser by path so build and runtime read the switch the same way.
    spec = importlib.util.spec_from_file_location("_resilience_env", CORE / "_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extensions():
    from Cython.Build import cythonize

    if sys.platform == "win32":
        # MSVC contracts nothing into FMA under /fp:precise.
        flags = ["/O2", "/fp:precise"]
    else:
        # No fused multiply-add: both twins must compute the same floats.
        flags = ["-O3", "-ffp-contract=off"]
    modules = [
        Extension(
            f"resilience._core.{source.stem}",
            [str(source)],
            extra_compile_args=flags,
        )
        for source in sorted(CORE.glob("*_c.pyx"))
    ]
    return cythonize(
        modules,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
            "embedsignature": True,
            "freethreading_compatible": True,
            "linetrace": False,
        },
    )


if load_env_module().no_extensions():
    setup(ext_modules=[])
else:
    setup(ext_modules=extensions())
