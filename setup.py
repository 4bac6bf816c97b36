"""Build the optional native sampling loop (kernels/native.c) into greenai._native.

Everything else is declared in pyproject.toml. The extension is optional: without a C
compiler (or Python headers) the build warns and greenai installs without it, falling back
to the pure-Python twin. ``GREENAI_NO_NATIVE=1`` skips it on purpose.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

ext_modules = []
if os.environ.get("GREENAI_NO_NATIVE", "") in ("", "0") and sys.platform.startswith("linux"):
    ext_modules.append(
        Extension(
            "greenai._native",
            sources=["kernels/native.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            libraries=["dl", "pthread"],
            optional=True,
        )
    )

setup(ext_modules=ext_modules)
