"""The segment-table fill: one launch writes many parameters' pieces into one flat 1-D buffer.

A segment is a run of consecutive flattened logical indices of one parameter, stored contiguously in the
buffer (an FSDP1 FlatParameter shard, a ZeRO partition, a distributed-optimizer bucket). All segments of
one distribution family go in one launch; each program finds its segment by binary search in the table
and writes stream format v1 values exactly as the per-parameter fill does.
"""

import struct

import torch
import triton
import triton.language as tl

from .fill import _bf16_round_nearest_even, _f64, _transform
from .philox import philox4x32_10

UNIFORM = 0
NORMAL = 1
TRUNC_NORMAL = 2
CONSTANT = 3  # prm0 everywhere, no Philox

# Columns of the int64 segment table, one row per segment.
COL_BUFFER_OFFSET = 0  # element offset of the segment in the buffer
COL_LOGICAL_START = 1  # first logical index (uint64 bit pattern)
COL_NUMEL = 2
COL_STREAM = 3  # uint64 bit pattern
COL_FIRST_BLOCK = 4  # index of the segment's first program; sorted, so programs find it by bisection
COL_PARAMS = 5  # 7 float64 parameters as bit patterns (see fill._transform)
TABLE_COLS = 12

DEFAULT_BLOCK_GROUPS = 512
DEFAULT_NUM_WARPS = 4


@triton.jit
def _word_lo(x):
    return (x & 0xFFFFFFFF).to(tl.uint32)


@triton.jit
def _word_hi(x):
    return ((x >> 32) & 0xFFFFFFFF).to(tl.uint32)


@triton.jit(do_not_specialize=["n_segments", "seed_lo", "seed_hi"])
def _flat_fill_kernel(
    out_ptr,
    table_ptr,  # int64 [n_segments, TABLE_COLS]
    n_segments,
    seed_lo: tl.uint32, seed_hi: tl.uint32,
    DIST: tl.constexpr,
    SEARCH_STEPS: tl.constexpr,  # ceil(log2(n_segments)), enough bisection steps to find any segment
    BLOCK_GROUPS: tl.constexpr,  # groups of 4 logical indices per program
    CENTRAL_ONLY: tl.constexpr,
    FAST: tl.constexpr,
    EXACT_BF16: tl.constexpr,  # round fp32 -> bf16 by hand (the interpreter's cast truncates), as fill does
):
    pid = tl.program_id(0).to(tl.int64)
    # Bisection: the last segment whose first program is <= pid. Invariant: first_block[lo] <= pid.
    lo = pid * 0
    hi = lo + n_segments
    for _ in tl.static_range(SEARCH_STEPS):
        mid = (lo + hi) // 2
        take = tl.load(table_ptr + mid * 12 + 4) <= pid
        lo = tl.where(take, mid, lo)
        hi = tl.where(take, hi, mid)
    row = table_ptr + lo * 12
    buffer_offset = tl.load(row + 0)
    start = tl.load(row + 1).to(tl.uint64, bitcast=True)
    numel = tl.load(row + 2)
    block = pid - tl.load(row + 4)
    prm0 = tl.load(row + 5)

    head = (start & 3).to(tl.int64)
    element = block * (4 * BLOCK_GROUPS) - head + tl.arange(0, 4 * BLOCK_GROUPS)  # index within the segment
    mask = (element >= 0) & (element < numel)
    ptrs = out_ptr + buffer_offset + element
    if DIST == 3:
        values = tl.zeros([4 * BLOCK_GROUPS], dtype=tl.float64) + _f64(prm0)
    else:
        stream = tl.load(row + 3)
        group = (start >> 2) + (block * BLOCK_GROUPS + tl.arange(0, BLOCK_GROUPS)).to(tl.uint64)
        c0 = group.to(tl.uint32)
        c1 = (group >> 32).to(tl.uint32)
        c2 = tl.zeros_like(c0) + _word_lo(stream)
        c3 = tl.zeros_like(c0) + _word_hi(stream)
        w0, w1, w2, w3 = philox4x32_10(c0, c1, c2, c3, seed_lo.to(tl.uint32), seed_hi.to(tl.uint32))
        OUT_F64: tl.constexpr = out_ptr.dtype.element_ty == tl.float64
        v0, v1, v2, v3 = _transform(w0, w1, w2, w3, prm0, tl.load(row + 6), tl.load(row + 7), tl.load(row + 8),
                                    tl.load(row + 9), tl.load(row + 10), tl.load(row + 11),
                                    DIST, OUT_F64, CENTRAL_ONLY, FAST)
        values = tl.reshape(tl.join(tl.join(v0, v2), tl.join(v1, v3)), [4 * BLOCK_GROUPS])
    if out_ptr.dtype.element_ty == tl.bfloat16:
        values = values.to(tl.float32)  # fp64 -> bf16 goes through fp32, as in torch and the fill kernel
        if EXACT_BF16:
            values = _bf16_round_nearest_even(values)
    tl.store(ptrs, values.to(out_ptr.dtype.element_ty), mask=mask, eviction_policy="evict_first")


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", float(x)))[0]


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def flat_fill_(out: torch.Tensor, dist: int, segments, seed: int, *, central_only: bool = False,
               fast: bool | None = None, block_groups: int | None = None, num_warps: int | None = None) -> None:
    """One launch over ``segments`` of one family: (buffer_offset, logical_start, numel, stream, params).

    ``out`` is a contiguous 1-D buffer; ``params`` are the floats of ``fill._transform`` (for CONSTANT,
    the value alone). Segments with no elements are skipped.
    """
    segments = [s for s in segments if s[2] > 0]
    if not segments:
        return
    if block_groups is None:
        longest = max(s[2] for s in segments)
        block_groups = min(DEFAULT_BLOCK_GROUPS, triton.next_power_of_2((longest + 6) // 4))
    if num_warps is None:
        num_warps = max(1, min(DEFAULT_NUM_WARPS, block_groups // 32))
    rows, first_block = [], 0
    for offset, start, numel, stream, params in segments:
        prm = [_bits(p) for p in params] + [0] * (7 - len(params))
        rows.append([offset, _signed(start), numel, _signed(stream), first_block, *prm])
        first_block += triton.cdiv((start % 4) + numel, 4 * block_groups)
    table = torch.tensor(rows, dtype=torch.int64, device=out.device)
    if fast is None:
        fast = out.is_cuda
    search_steps = max(1, (len(segments) - 1).bit_length())
    _flat_fill_kernel[(first_block,)](
        out, table, len(segments), seed & 0xFFFFFFFF, seed >> 32,
        DIST=dist, SEARCH_STEPS=search_steps, BLOCK_GROUPS=block_groups, CENTRAL_ONLY=central_only,
        FAST=fast, EXACT_BF16=not out.is_cuda, num_warps=num_warps,
    )
