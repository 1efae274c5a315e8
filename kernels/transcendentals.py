"""log2, sqrt, cos and sin for the kernels, from the set ``MATH`` names (see ``target``).

Kernels call these with their ``MATH`` constexpr and never test vendors; the choice is resolved at trace
time, so a kernel compiled for one target contains only that target's set. Angles are in the set's unit:
``full_turn(MATH)`` is one revolution (2 pi radians on NVIDIA and in accurate math, 1 on AMD, whose
sin and cos take revolutions).
"""

import triton
import triton.language as tl

from . import math_accurate, math_amd, math_nvidia
from .target import MATH_AMD, MATH_NVIDIA

NVIDIA = tl.constexpr(MATH_NVIDIA)
AMD = tl.constexpr(MATH_AMD)


@triton.jit
def full_turn(MATH: tl.constexpr):
    if MATH == NVIDIA:
        return math_nvidia.FULL_TURN
    elif MATH == AMD:
        return math_amd.FULL_TURN
    else:
        return math_accurate.FULL_TURN


@triton.jit
def log2(x, MATH: tl.constexpr):
    if MATH == NVIDIA:
        return math_nvidia.log2(x)
    elif MATH == AMD:
        return math_amd.log2(x)
    else:
        return math_accurate.log2(x)


@triton.jit
def sqrt(x, MATH: tl.constexpr):
    if MATH == NVIDIA:
        return math_nvidia.sqrt(x)
    elif MATH == AMD:
        return math_amd.sqrt(x)
    else:
        return math_accurate.sqrt(x)


@triton.jit
def cos_angle(x, MATH: tl.constexpr):
    """cos of x in the set's angle unit, |x| at most half a turn."""
    if MATH == NVIDIA:
        return math_nvidia.cos_angle(x)
    elif MATH == AMD:
        return math_amd.cos_angle(x)
    else:
        return math_accurate.cos_angle(x)


@triton.jit
def sin_angle(x, MATH: tl.constexpr):
    """sin of x in the set's angle unit, |x| at most half a turn."""
    if MATH == NVIDIA:
        return math_nvidia.sin_angle(x)
    elif MATH == AMD:
        return math_amd.sin_angle(x)
    else:
        return math_accurate.sin_angle(x)
