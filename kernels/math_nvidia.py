"""The transcendental set for NVIDIA GPUs: PTX approximations (one MUFU instruction each), inline PTX.

Documented accuracy (PTX ISA, "Floating Point Instructions"), which the format's accuracy analysis uses
(``tests/test_math_bounds.py``) and ``tests/test_gpu_perf_paths.py`` checks on the GPU over every u:

- ``lg2.approx.f32``: absolute error at most 2^-22 for x in (0.5, 2), relative 2^-22 elsewhere;
- ``sqrt.approx.f32``: relative error at most 2^-23;
- ``sin.approx.f32``, ``cos.approx.f32``: absolute error at most 2^-20.5 on [-2 pi, 2 pi].

``.ftz`` flushes subnormal inputs to zero: every caller's argument is a normal number. Same names as
``math_amd`` and ``math_accurate``; compiled only for the "cuda" backend (see ``target``).
"""

import triton
import triton.language as tl

FULL_TURN = tl.constexpr(6.283185307179586)  # angles in radians


@triton.jit
def log2(x):
    return tl.inline_asm_elementwise("lg2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                     pack=1)


@triton.jit
def sqrt(x):
    return tl.inline_asm_elementwise("sqrt.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                     pack=1)


@triton.jit
def cos_angle(x):
    """cos(x), x in radians, |x| <= pi."""
    return tl.inline_asm_elementwise("cos.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                     pack=1)


@triton.jit
def sin_angle(x):
    """sin(x), x in radians, |x| <= pi."""
    return tl.inline_asm_elementwise("sin.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                     pack=1)
