"""The accurate transcendental set: Triton's ``tl`` functions. The Triton interpreter (CI) and any backend
without a proven faster set run these; under the interpreter they are numpy's, correctly rounded or nearly.

Same names as ``math_nvidia`` and ``math_amd`` (see ``target``).
"""

import triton
import triton.language as tl

FULL_TURN = tl.constexpr(6.283185307179586)  # angles in radians


@triton.jit
def log2(x):
    return tl.log2(x)


@triton.jit
def sqrt(x):
    return tl.sqrt(x)


@triton.jit
def cos_angle(x):
    """cos(x), x in radians."""
    return tl.cos(x)


@triton.jit
def sin_angle(x):
    """sin(x), x in radians."""
    return tl.sin(x)
