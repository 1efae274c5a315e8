"""Build of the native CPU executor (csrc/): an optional extension, so that the package still installs and
imports where no C compiler works (CPU fills then take the torch-op reference, after one warning).
Everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "triton_init._native",
            sources=["csrc/module.c", "csrc/stream_v1.c"],
            depends=["csrc/stream_v1.h", "csrc/ndtri_coeffs.h"],
            # -ffp-contract=off: no fused multiply-adds, so every instruction set gives the same bits;
            # -fno-math-errno: sqrt vectorizes; -g0: seconds, not tens of seconds, for the build.
            extra_compile_args=["-O3", "-g0", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"],
            optional=True,
        )
    ]
)
