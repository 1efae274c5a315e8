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

# Groups of 4 logical indices per program for long runs (values never depend on it).
DEFAULT_BLOCK_GROUPS = 1024
# fp64 output and the tail trunc_normal path hold more live values per group: half the groups per program
# keeps them clear of spills (triton 3.6 spilled fp64 trunc_normal at 1024).
HEAVY_BLOCK_GROUPS = 512
THREADS_PER_PROGRAM = 128  # 4 warps of 32 on NVIDIA, 2 wavefronts of 64 on AMD CDNA


def default_num_warps(block_groups: int, target, itemsize: int = 4) -> int:
    """Warps (wavefronts) of a ``target`` (``target.Target``) for ``block_groups`` groups: THREADS_PER_PROGRAM
    threads, fewer for small blocks (one group per thread, a pair of groups with 2-byte outputs: no thread
    computes another's values). Values never depend on it."""
    per_thread = 2 if itemsize == 2 else 1
    return max(1, min(THREADS_PER_PROGRAM, block_groups // per_thread) // target.warp_size)


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
