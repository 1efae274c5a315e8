"""What the kernels and their callers share, in plain Python (no triton): the distribution codes, the launch
defaults, and how float parameters and 64-bit ints travel as kernel arguments.

``triton_init`` takes these from here (it imports the kernels, never the other way round); the kernel files
use them in their launchers and, as ``tl.constexpr`` copies, in their bodies.
"""

import struct

# Distribution codes: the kernels' DIST constexpr, the reference's ``dist`` argument.
UNIFORM = 0
NORMAL = 1
TRUNC_NORMAL = 2
CONSTANT = 3  # the flat kernel's family for constants: one value everywhere, no Philox

# A distribution's float parameters (see fill._transform), passed as this many int64 bit patterns.
N_PARAMS = 7

# Groups of 4 logical indices per program for long runs, and warps per program (values never depend on either).
DEFAULT_BLOCK_GROUPS = 1024
# fp64 output and the general (tail-capable) trunc_normal hold more live values per group: half the groups per
# program keeps them clear of spills (triton 3.6 spilled fp64 trunc_normal at 1024).
HEAVY_BLOCK_GROUPS = 512
DEFAULT_NUM_WARPS = 4


def default_num_warps(block_groups: int) -> int:
    """Warps for a program of ``block_groups`` groups: one per 32 groups, at most ``DEFAULT_NUM_WARPS``."""
    return max(1, min(DEFAULT_NUM_WARPS, block_groups // 32))


def float_bits(x: float) -> int:
    """The float64 bit pattern of ``x`` as a signed int64 (exact through every launch path)."""
    return struct.unpack("<q", struct.pack("<d", float(x)))[0]


def param_bits(params) -> list:
    """Up to ``N_PARAMS`` floats as the kernels' ``prm0..prm6`` arguments (unused ones 0)."""
    if len(params) > N_PARAMS:
        raise ValueError(f"at most {N_PARAMS} parameters, got {len(params)}")
    return [float_bits(p) for p in params] + [0] * (N_PARAMS - len(params))


def uint64_words(x: int) -> tuple:
    """(low, high) 32-bit words of an int in [0, 2^64)."""
    return x & 0xFFFFFFFF, x >> 32
