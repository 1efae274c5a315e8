"""The fused fill kernel: logical index -> Philox words -> uniform / normal / truncated normal -> store.

One write-only pass. Each Philox call yields the four lanes of one group of 4 logical indices, which
land in 4 consecutive elements of a row. A row is a run of consecutive logical indices (the innermost
dim of the tensor after coalescing); up to three outer dims are decomposed from the program id.
"""

import math
import struct
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import trunc_paths
from .interface import (
    DEFAULT_BLOCK_GROUPS,
    HEAVY_BLOCK_GROUPS,
    NORMAL,
    THREADS_PER_PROGRAM,
    TRUNC_NORMAL,
    UNIFORM,
    default_num_warps,
    param_bits,
    uint64_words,
)
from .philox import (
    ONE_MINUS_HALF_ULP,
    SQRT_2LN2,
    box_muller,
    box_muller_angle,
    box_muller_root,
    philox4x32_10,
    trunc_normal_central,
    trunc_normal_tail,
    trunc_normal_untruncated,
    trunc_normal_wide,
    uniform01,
    uniform01_f64,
)
from .target import Target, of_device
from .transcendentals import cos_angle, sin_angle

# The distribution codes as constexprs: kernel bodies cannot read plain module-level ints.
DIST_UNIFORM, DIST_NORMAL, DIST_TRUNC_NORMAL = (tl.constexpr(code) for code in (UNIFORM, NORMAL, TRUNC_NORMAL))

# The trunc_normal paths as constexprs (kernel bodies cannot read plain module-level ints).
TRUNC_CENTRAL, TRUNC_UNTRUNCATED, TRUNC_WIDE = (tl.constexpr(path) for path in (
    trunc_paths.CENTRAL, trunc_paths.UNTRUNCATED, trunc_paths.WIDE))

MAX_OUTER_DIMS = 3


@triton.jit
def _f64(bits):
    """A float64 passed as its int64 bit pattern (exact under the interpreter too)."""
    return bits.to(tl.int64).to(tl.float64, bitcast=True)


@triton.jit
def _bf16_round_nearest_even(x):
    """fp32 -> bf16 rounded to nearest even with integer ops (finite inputs), as the GPU's cvt.rn does."""
    bits = x.to(tl.uint32, bitcast=True)
    bits = bits + (0x7FFF + ((bits >> 16) & 1))
    return (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def _trunc_setup(p_lo, q_hi, mass, TRUNC_PATH: tl.constexpr):
    """The path's fp32 scalars from float64 Phi(alpha), Phi(-beta) and mass, and the sign of its scale."""
    if TRUNC_PATH == TRUNC_CENTRAL:
        two_mass = (2.0 * mass).to(tl.float32)
        x_at_one = ((2.0 * p_lo - 1.0) - two_mass.to(tl.float64) * ONE_MINUS_HALF_ULP).to(tl.float32)
        return x_at_one, two_mass, two_mass, 1.0
    elif TRUNC_PATH == TRUNC_UNTRUNCATED:
        one = mass.to(tl.float32)
        return one, one, one, 1.0
    elif TRUNC_PATH == TRUNC_WIDE:
        return (128.0 * p_lo).to(tl.float32), (128.0 * q_hi).to(tl.float32), (128.0 * mass).to(tl.float32), 1.0
    else:  # one tail: the upper one draws 1 - u and negates z
        upper = q_hi < p_lo
        base = tl.where(upper, q_hi, p_lo)
        return ((128.0 * base).to(tl.float32), (128.0 * mass).to(tl.float32), tl.where(upper, 1.0, 0.0),
                tl.where(upper, -1.0, 1.0))


@triton.jit
def _trunc_value(w, k0, k1, k2, scale, shift, TRUNC_PATH: tl.constexpr, MATH: tl.constexpr):
    if TRUNC_PATH == TRUNC_CENTRAL:
        return trunc_normal_central(w, k0, k1, scale, shift, MATH)
    elif TRUNC_PATH == TRUNC_UNTRUNCATED:
        return trunc_normal_untruncated(w, scale, shift, MATH)
    elif TRUNC_PATH == TRUNC_WIDE:
        return trunc_normal_wide(w, k0, k1, k2, scale, shift, MATH)
    else:
        return trunc_normal_tail(w, k0, k1, k2, scale, shift, MATH)


@triton.jit
def _transform(w0, w1, w2, w3, prm0, prm1, prm2, prm3, prm4, prm5, prm6,
               DIST: tl.constexpr, OUT_F64: tl.constexpr, TRUNC_PATH: tl.constexpr, CLAMP: tl.constexpr,
               MATH: tl.constexpr, UNIFORM_F32: tl.constexpr = False):
    """The four lanes' values, before the cast to the output dtype (fp64 if OUT_F64, else fp32).

    UNIFORM_F32 (the launcher's call: a and b - a exact in fp32, output not fp64) computes uniform as one
    fp32 fma of exact operands: the exact a + (b - a) u rounded once, within half an fp32 ulp. trunc_normal
    takes TRUNC_PATH (``trunc_paths``) with std and mean folded into its last fma, and clamps if CLAMP.
    """
    if DIST == DIST_UNIFORM:
        if UNIFORM_F32:
            a32 = _f64(prm0).to(tl.float32)
            width32 = _f64(prm1).to(tl.float32)
            v0 = tl.fma(uniform01(w0), width32, a32)
            v1 = tl.fma(uniform01(w1), width32, a32)
            v2 = tl.fma(uniform01(w2), width32, a32)
            v3 = tl.fma(uniform01(w3), width32, a32)
        else:  # a + (b - a) * u in fp64, rounded once by the caller's cast
            a = _f64(prm0)
            width = _f64(prm1)
            v0 = a + width * uniform01_f64(w0)
            v1 = a + width * uniform01_f64(w1)
            v2 = a + width * uniform01_f64(w2)
            v3 = a + width * uniform01_f64(w3)
    elif DIST == DIST_NORMAL:
        mean = _f64(prm0)
        std = _f64(prm1)
        if OUT_F64:
            z0, z1 = box_muller(w0, w1, MATH)
            z2, z3 = box_muller(w2, w3, MATH)
            v0 = mean + std * z0.to(tl.float64)
            v1 = mean + std * z1.to(tl.float64)
            v2 = mean + std * z2.to(tl.float64)
            v3 = mean + std * z3.to(tl.float64)
        else:  # mean + std * (-r cos(t - pi)): one multiply per pair, one fma per element.
            mean = mean.to(tl.float32)
            scale = (std * -SQRT_2LN2).to(tl.float32)  # r = sqrt(2 ln 2) * box_muller_root
            s01 = box_muller_root(w0, MATH) * scale
            s23 = box_muller_root(w2, MATH) * scale
            t01 = box_muller_angle(w1, MATH)
            t23 = box_muller_angle(w3, MATH)
            v0 = s01 * cos_angle(t01, MATH) + mean
            v1 = s01 * sin_angle(t01, MATH) + mean
            v2 = s23 * cos_angle(t23, MATH) + mean
            v3 = s23 * sin_angle(t23, MATH) + mean
    else:
        mean = _f64(prm0)
        std = _f64(prm1)
        k0, k1, k2, sign = _trunc_setup(_f64(prm2), _f64(prm3), _f64(prm4), TRUNC_PATH)
        if OUT_F64:  # z in fp32, then mean + std z in fp64
            v0 = mean + std * _trunc_value(w0, k0, k1, k2, sign, 0.0, TRUNC_PATH, MATH).to(tl.float64)
            v1 = mean + std * _trunc_value(w1, k0, k1, k2, sign, 0.0, TRUNC_PATH, MATH).to(tl.float64)
            v2 = mean + std * _trunc_value(w2, k0, k1, k2, sign, 0.0, TRUNC_PATH, MATH).to(tl.float64)
            v3 = mean + std * _trunc_value(w3, k0, k1, k2, sign, 0.0, TRUNC_PATH, MATH).to(tl.float64)
        else:  # mean + std z as the path's last fma: std rides in the polynomial's coefficients
            scale = std.to(tl.float32) * sign
            shift = mean.to(tl.float32)
            v0 = _trunc_value(w0, k0, k1, k2, scale, shift, TRUNC_PATH, MATH)
            v1 = _trunc_value(w1, k0, k1, k2, scale, shift, TRUNC_PATH, MATH)
            v2 = _trunc_value(w2, k0, k1, k2, scale, shift, TRUNC_PATH, MATH)
            v3 = _trunc_value(w3, k0, k1, k2, scale, shift, TRUNC_PATH, MATH)
        if CLAMP:  # to the outermost output-dtype values inside [a, b]
            lo = _f64(prm5)
            hi = _f64(prm6)
            if not OUT_F64:
                lo = lo.to(tl.float32)
                hi = hi.to(tl.float32)
            v0 = tl.minimum(tl.maximum(v0, lo), hi)
            v1 = tl.minimum(tl.maximum(v1, lo), hi)
            v2 = tl.minimum(tl.maximum(v2, lo), hi)
            v3 = tl.minimum(tl.maximum(v3, lo), hi)
    return v0, v1, v2, v3


@triton.jit
def _group_values(first_lo, first_hi, offsets, seed_lo, seed_hi, stream_lo, stream_hi,
                  prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                  DIST: tl.constexpr, OUT_F64: tl.constexpr, TRUNC_PATH: tl.constexpr, CLAMP: tl.constexpr,
                  MATH: tl.constexpr, UNIFORM_F32: tl.constexpr, ALIGNED: tl.constexpr):
    """The four lanes' values of groups first + offsets (first as two uint32 words, offsets uint32).

    Counters (j lo, j hi, stream lo, stream hi) with j lo = first_lo + offset in 32 bits and its carry
    into j hi.
    """
    c0 = first_lo + offsets
    if ALIGNED:  # first_lo is a multiple of the block: no carry
        c1 = tl.zeros_like(c0) + first_hi
    else:
        c1 = first_hi + (c0 < offsets).to(tl.uint32)
    c2 = tl.zeros_like(c0) + stream_lo
    c3 = tl.zeros_like(c0) + stream_hi
    w0, w1, w2, w3 = philox4x32_10(c0, c1, c2, c3, seed_lo, seed_hi)
    return _transform(w0, w1, w2, w3, prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                      DIST, OUT_F64, TRUNC_PATH, CLAMP, MATH, UNIFORM_F32)


@triton.jit
def _block_values(out_ptr, first_lo, first_hi, seed_lo, seed_hi, stream_lo, stream_hi,
                  prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                  DIST: tl.constexpr, BLOCK_GROUPS: tl.constexpr, TRUNC_PATH: tl.constexpr, CLAMP: tl.constexpr,
                  MATH: tl.constexpr, UNIFORM_F32: tl.constexpr, ALIGNED: tl.constexpr):
    """The 4 * BLOCK_GROUPS values of BLOCK_GROUPS groups from ``first``, in element order.

    With 2-byte outputs (``out_ptr``'s dtype) each thread takes two consecutive groups, computed as two
    tensors of the same layout and interleaved by tl.join in registers: its 8 values are 16 contiguous
    bytes and reach the store without a shared-memory shuffle.
    """
    OUT_F64: tl.constexpr = out_ptr.dtype.element_ty == tl.float64
    PAIRED: tl.constexpr = out_ptr.dtype.element_ty.primitive_bitwidth == 16 and BLOCK_GROUPS >= 2
    if PAIRED:
        even = tl.arange(0, BLOCK_GROUPS // 2).to(tl.uint32) * 2
        e0, e1, e2, e3 = _group_values(first_lo, first_hi, even, seed_lo, seed_hi, stream_lo, stream_hi,
                                       prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                                       DIST, OUT_F64, TRUNC_PATH, CLAMP, MATH, UNIFORM_F32, ALIGNED)
        o0, o1, o2, o3 = _group_values(first_lo, first_hi, even + 1, seed_lo, seed_hi, stream_lo, stream_hi,
                                       prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                                       DIST, OUT_F64, TRUNC_PATH, CLAMP, MATH, UNIFORM_F32, ALIGNED)
        # [BLOCK_GROUPS // 2, pair, 2, 2] -> element 8 k + 4 pair + lane
        values = tl.join(tl.join(tl.join(e0, o0), tl.join(e2, o2)), tl.join(tl.join(e1, o1), tl.join(e3, o3)))
    else:
        v0, v1, v2, v3 = _group_values(first_lo, first_hi, tl.arange(0, BLOCK_GROUPS).to(tl.uint32),
                                       seed_lo, seed_hi, stream_lo, stream_hi,
                                       prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                                       DIST, OUT_F64, TRUNC_PATH, CLAMP, MATH, UNIFORM_F32, ALIGNED)
        # Lane order 0, 1, 2, 3 within each group: join(join(v0, v2), join(v1, v3)) then flatten.
        values = tl.join(tl.join(v0, v2), tl.join(v1, v3))
    return tl.reshape(values, [4 * BLOCK_GROUPS])


@triton.jit
def _output_values(out_ptr, values, EXACT_BF16: tl.constexpr):
    """Cast to the output dtype of ``out_ptr`` (rounded once; fp64 -> bf16 through fp32, as torch)."""
    if out_ptr.dtype.element_ty == tl.bfloat16:
        values = values.to(tl.float32)
        if EXACT_BF16:  # the interpreter's cast truncates; some AMD archs convert slower than this
            values = _bf16_round_nearest_even(values)
    return values.to(out_ptr.dtype.element_ty)


@triton.jit
def _store_values(out_ptr, ptrs, values, mask, EXACT_BF16: tl.constexpr):
    """Cast to the output dtype and store."""
    tl.store(ptrs, _output_values(out_ptr, values, EXACT_BF16), mask=mask, eviction_policy="evict_first")


@triton.jit(do_not_specialize=["seed_lo", "seed_hi", "stream_lo", "stream_hi", "base_lo", "base_hi",
                                "prm0", "prm1", "prm2", "prm3", "prm4", "prm5", "prm6"])
def _fill_kernel(
    out_ptr,
    mem_offset: tl.int64,  # element offset of local element (0, ..., 0) from out_ptr
    n_inner,  # elements per row: consecutive logical indices
    inner_stride,  # memory stride of the row, in elements
    blocks_per_row,
    size2, size3,  # outer dims (d1, d2, d3) with d1 implicit; row = (k1 * size2 + k2) * size3 + k3
    mstride1: tl.int64, mstride2: tl.int64, mstride3: tl.int64,  # memory strides of the outer dims
    lstride1: tl.int64, lstride2: tl.int64, lstride3: tl.int64,  # logical strides of the outer dims
    base_lo: tl.uint32, base_hi: tl.uint32,  # logical index of element (0, ..., 0), up to 2^64 - 1
    seed_lo: tl.uint32, seed_hi: tl.uint32,
    stream_lo: tl.uint32, stream_hi: tl.uint32,
    prm0: tl.int64, prm1: tl.int64, prm2: tl.int64, prm3: tl.int64,  # float64 parameters as bit patterns
    prm4: tl.int64, prm5: tl.int64, prm6: tl.int64,
    DIST: tl.constexpr,
    BLOCK_GROUPS: tl.constexpr,  # groups of 4 logical indices per program
    FLAT: tl.constexpr,  # one row with unit stride: the head is HEAD and needs no decomposition
    HEAD: tl.constexpr,  # base % 4 when FLAT
    TRUNC_PATH: tl.constexpr,  # trunc_normal's inverse-CDF path (trunc_paths)
    CLAMP: tl.constexpr,  # trunc_normal values may leave [a, b]: clamp them
    MATH: tl.constexpr,  # the transcendental set (target)
    EXACT_BF16: tl.constexpr = False,  # round fp32 -> bf16 by hand (Target.rounds_bf16_by_hand)
    UNIFORM_F32: tl.constexpr = False,  # uniform as one fp32 fma (see _transform)
    ALIGNED: tl.constexpr = False,  # FLAT and base // 4 a multiple of BLOCK_GROUPS: no carry into j hi
):
    base = (base_hi.to(tl.uint64) << 32) | base_lo.to(tl.uint64)
    if FLAT:
        block = tl.program_id(0).to(tl.int64)
        row_mem = mem_offset
        row_start = base
        head = HEAD
    else:  # the program id is below 2^31: decompose it in 32 bits
        pid = tl.program_id(0)
        row = pid // blocks_per_row
        block = (pid - row * blocks_per_row).to(tl.int64)
        k3 = (row % size3).to(tl.int64)
        k12 = row // size3
        k2 = (k12 % size2).to(tl.int64)
        k1 = (k12 // size2).to(tl.int64)
        row_mem = mem_offset + k1 * mstride1 + k2 * mstride2 + k3 * mstride3
        row_start = base + (k1 * lstride1 + k2 * lstride2 + k3 * lstride3).to(tl.uint64)
        head = (row_start & 3).to(tl.int64)

    first_group = (row_start >> 2) + (block * BLOCK_GROUPS).to(tl.uint64)
    values = _block_values(out_ptr, first_group.to(tl.uint32), (first_group >> 32).to(tl.uint32),
                           seed_lo.to(tl.uint32), seed_hi.to(tl.uint32), stream_lo.to(tl.uint32),
                           stream_hi.to(tl.uint32), prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                           DIST, BLOCK_GROUPS, TRUNC_PATH, CLAMP, MATH, UNIFORM_F32, ALIGNED)

    element = block * (4 * BLOCK_GROUPS) - head + tl.arange(0, 4 * BLOCK_GROUPS)  # index within the row
    if FLAT and HEAD == 0:
        mask = element < n_inner
    else:
        mask = (element >= 0) & (element < n_inner)
    if FLAT:
        ptrs = out_ptr + row_mem + element
    else:
        ptrs = out_ptr + row_mem + element * inner_stride
    _store_values(out_ptr, ptrs, values, mask, EXACT_BF16)


@triton.jit(do_not_specialize=["seed_lo", "seed_hi", "stream_lo", "stream_hi", "base_lo", "base_hi",
                                "prm0", "prm1", "prm2", "prm3", "prm4", "prm5", "prm6"])
def _fill_rows_kernel(
    out_ptr,
    mem_offset: tl.int64,  # element offset of local element (0, ..., 0) from out_ptr, a multiple of VEC
    n_rows,  # rows in all: the product of the outer dims
    n_inner,  # elements per row, a multiple of VEC
    blocks_per_row,
    size2, size3,  # outer dims (d1, d2, d3) with d1 implicit; row = (k1 * size2 + k2) * size3 + k3
    mstride1: tl.int64, mstride2: tl.int64, mstride3: tl.int64,  # memory strides, multiples of VEC
    lstride1: tl.int64, lstride2: tl.int64, lstride3: tl.int64,  # logical strides, multiples of 4
    base_lo: tl.uint32, base_hi: tl.uint32,  # logical index of element (0, ..., 0), a multiple of 4
    seed_lo: tl.uint32, seed_hi: tl.uint32,
    stream_lo: tl.uint32, stream_hi: tl.uint32,
    prm0: tl.int64, prm1: tl.int64, prm2: tl.int64, prm3: tl.int64,
    prm4: tl.int64, prm5: tl.int64, prm6: tl.int64,
    DIST: tl.constexpr,
    BLOCK_GROUPS: tl.constexpr,  # groups of 4 logical indices per row and program
    ROWS: tl.constexpr,  # rows per program
    VEC: tl.constexpr,  # elements per 16 bytes
    TRUNC_PATH: tl.constexpr,
    CLAMP: tl.constexpr,
    MATH: tl.constexpr,
    EXACT_BF16: tl.constexpr = False,
    UNIFORM_F32: tl.constexpr = False,
    ALIGNED: tl.constexpr = False,  # every row start // 4 a multiple of BLOCK_GROUPS: no carry into j hi
):
    """Rows that start on group boundaries at 16-byte aligned addresses, in whole 16-byte vectors, with unit
    stride (a tensor-parallel Shard(1) block, a slice of whole rows): ROWS rows of BLOCK_GROUPS groups per
    program, each stored 16 bytes at a time, so that short rows still fill a program."""
    pid = tl.program_id(0)  # below 2^31: decompose it in 32 bits
    tile = pid // blocks_per_row
    block = pid - tile * blocks_per_row
    base = (base_hi.to(tl.uint64) << 32) | base_lo.to(tl.uint64)
    element = block * (4 * BLOCK_GROUPS) + tl.arange(0, 4 * BLOCK_GROUPS)  # index within the row
    for r in tl.static_range(ROWS):
        row = tile * ROWS + r
        k3 = (row % size3).to(tl.int64)
        k12 = row // size3
        k2 = (k12 % size2).to(tl.int64)
        k1 = (k12 // size2).to(tl.int64)
        row_mem = tl.multiple_of(mem_offset + k1 * mstride1 + k2 * mstride2 + k3 * mstride3, VEC)
        row_start = base + (k1 * lstride1 + k2 * lstride2 + k3 * lstride3).to(tl.uint64)
        first_group = (row_start >> 2) + (block * BLOCK_GROUPS).to(tl.uint64)
        values = _block_values(out_ptr, first_group.to(tl.uint32), (first_group >> 32).to(tl.uint32),
                               seed_lo.to(tl.uint32), seed_hi.to(tl.uint32), stream_lo.to(tl.uint32),
                               stream_hi.to(tl.uint32), prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                               DIST, BLOCK_GROUPS, TRUNC_PATH, CLAMP, MATH, UNIFORM_F32, ALIGNED)
        row_end = tl.multiple_of(tl.where(row < n_rows, n_inner, 0), VEC)  # the tile's last rows may not exist
        _store_values(out_ptr, out_ptr + row_mem + element, values, element < row_end, EXACT_BF16)


@triton.jit(do_not_specialize=["seed_lo", "seed_hi", "stream_lo", "stream_hi", "base_group_lo", "base_group_hi",
                                "prm0", "prm1", "prm2", "prm3", "prm4", "prm5", "prm6"])
def _fill_transposed_kernel(
    out_ptr,
    mem_offset: tl.int64,  # element offset of local element (0, 0) from out_ptr
    n_rows, n_cols,  # local (rows, cols); a row is a run of consecutive logical indices
    col_stride: tl.int64,  # memory stride of a column step; a row step has memory stride 1
    row_groups: tl.int64,  # logical stride of a row step, in groups (a multiple of 4 indices)
    col_tiles,  # programs along the columns
    base_group_lo: tl.uint32, base_group_hi: tl.uint32,  # group of local element (0, 0), which starts it
    seed_lo: tl.uint32, seed_hi: tl.uint32,
    stream_lo: tl.uint32, stream_hi: tl.uint32,
    prm0: tl.int64, prm1: tl.int64, prm2: tl.int64, prm3: tl.int64,
    prm4: tl.int64, prm5: tl.int64, prm6: tl.int64,
    DIST: tl.constexpr,
    TILE_ROWS: tl.constexpr,
    TILE_GROUPS: tl.constexpr,  # groups of 4 columns per tile
    TRUNC_PATH: tl.constexpr,
    CLAMP: tl.constexpr,
    MATH: tl.constexpr,
    EXACT_BF16: tl.constexpr = False,
    UNIFORM_F32: tl.constexpr = False,
):
    """A (rows, cols) block stored column-major (rows contiguous), e.g. the matrix orthogonal_'s QR takes.

    Rows of logical indices start on group boundaries, so a [TILE_ROWS, 4 TILE_GROUPS] tile is whole
    groups; values come out row-major and the store's layout change (through shared memory) makes the
    writes contiguous along the rows, instead of one 4-byte store per element at a column's stride.
    """
    pid = tl.program_id(0).to(tl.int64)
    tile_r = pid // col_tiles
    tile_c = pid - tile_r * col_tiles
    rows = tile_r * TILE_ROWS + tl.arange(0, TILE_ROWS).to(tl.int64)  # [TR]
    col_groups = tile_c * TILE_GROUPS + tl.arange(0, TILE_GROUPS).to(tl.int64)  # [TG]
    base_group = (base_group_hi.to(tl.uint64) << 32) | base_group_lo.to(tl.uint64)
    group = base_group + (rows[:, None] * row_groups + col_groups[None, :]).to(tl.uint64)  # [TR, TG]
    c0 = group.to(tl.uint32)
    c1 = (group >> 32).to(tl.uint32)
    c2 = tl.zeros_like(c0) + stream_lo.to(tl.uint32)
    c3 = tl.zeros_like(c0) + stream_hi.to(tl.uint32)
    w0, w1, w2, w3 = philox4x32_10(c0, c1, c2, c3, seed_lo.to(tl.uint32), seed_hi.to(tl.uint32))
    OUT_F64: tl.constexpr = out_ptr.dtype.element_ty == tl.float64
    v0, v1, v2, v3 = _transform(w0, w1, w2, w3, prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                                DIST, OUT_F64, TRUNC_PATH, CLAMP, MATH, UNIFORM_F32)
    values = tl.reshape(tl.join(tl.join(v0, v2), tl.join(v1, v3)), [TILE_ROWS, 4 * TILE_GROUPS])
    cols = tile_c * (4 * TILE_GROUPS) + tl.arange(0, 4 * TILE_GROUPS).to(tl.int64)  # [TC]
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    ptrs = out_ptr + mem_offset + rows[:, None] + cols[None, :] * col_stride
    _store_values(out_ptr, ptrs, values, mask, EXACT_BF16)


def _exact_f32(x: float) -> bool:
    try:
        return math.isfinite(x) and struct.unpack("<f", struct.pack("<f", x))[0] == x
    except OverflowError:
        return False


def uniform_in_f32(dtype_is_f64: bool, a: float, width: float) -> bool:
    """Whether uniform can take the fp32 fma path: a and b - a exact in fp32, output not fp64."""
    return not dtype_is_f64 and _exact_f32(a) and _exact_f32(width)


def trunc_choice(params) -> tuple[int, bool]:
    """(TRUNC_PATH, CLAMP) for trunc_normal's params (mean, std, Phi(alpha), Phi(-beta), mass, lo, hi)."""
    mean, std, p_lo, q_hi, mass, lo, hi = params
    path = trunc_paths.choose(p_lo, q_hi, mass)
    return path, trunc_paths.needs_clamp(path, mean, std, p_lo, q_hi, mass, lo, hi)


def default_block_groups(out_f64: bool, dist: int, trunc_path: int) -> int:
    """Groups per program for a long row (values never depend on it)."""
    heavy = out_f64 or (dist == TRUNC_NORMAL and trunc_path == trunc_paths.TAIL)
    return HEAVY_BLOCK_GROUPS if heavy else DEFAULT_BLOCK_GROUPS


@dataclass
class Launch:
    """One kernel launch as a launcher decided it: ``kernel[grid](*args, **constexprs, **options)``.

    ``bench/isa_report.py`` compiles exactly this for any target, offline, through Triton's own binder."""

    kernel: object
    grid: tuple
    args: tuple
    constexprs: dict
    num_warps: int

    @property
    def options(self) -> dict:
        """Compile options: the warps, and fp fusion on whatever Triton's default (every a * b + c in the
        kernels is meant as one fma; the interpreter ignores both)."""
        return {"num_warps": self.num_warps, "enable_fp_fusion": True}

    def run(self) -> None:
        self.kernel[self.grid](*self.args, **self.constexprs, **self.options)


def _dist_constexprs(out: torch.Tensor, dist: int, params, target: Target, trunc_path) -> dict:
    """What every fill kernel specialises on besides its layout: the distribution's variant and the target."""
    path, clamp = (trunc_paths.CENTRAL, False) if dist != TRUNC_NORMAL else trunc_choice(params)
    if dist == TRUNC_NORMAL and trunc_path is not None:  # a caller's choice (tests): the clamp for that path
        path = trunc_path
        clamp = trunc_paths.needs_clamp(path, *params)
    return {"DIST": dist, "TRUNC_PATH": path, "CLAMP": clamp, "MATH": target.math,
            "EXACT_BF16": target.rounds_bf16_by_hand,
            "UNIFORM_F32": dist == UNIFORM and uniform_in_f32(out.dtype == torch.float64, params[0], params[1])}


def _row_vec(out: torch.Tensor, sizes, mem_strides, logical_strides, base: int, mem_offset: int) -> int:
    """Elements per 16 bytes when every row of a strided block can take 16-byte stores, else 1: unit stride,
    rows starting on group boundaries at 16-byte aligned addresses, and whole 16-byte vectors per row."""
    vec = 16 // out.element_size()
    aligned = (mem_strides[-1] == 1 and base % 4 == 0 and out.data_ptr() % 16 == 0
               and all(stride % 4 == 0 for stride in logical_strides[:-1])
               and all(x % vec == 0 for x in (*mem_strides[:-1], mem_offset, sizes[-1])))
    return vec if aligned else 1


def fill_launches(out: torch.Tensor, dist: int, params, seed: int, stream: int, sizes, mem_strides,
                  logical_strides, base: int, *, target: Target, trunc_path: int | None = None,
                  block_groups: int | None = None, num_warps: int | None = None, mem_offset: int = 0) -> list:
    """The launches that fill a coalesced layout (see ``triton_init._layout``) on ``target``.

    ``sizes``/``mem_strides``/``logical_strides`` list the dims outermost first; the last dim is the
    row (logical stride 1). ``params`` are up to 7 floats (see ``_transform``). Layouts with more than
    three outer dims are split into launches over the extra leading dims.
    """
    if len(sizes) - 1 > MAX_OUTER_DIMS:
        return [launch for k in range(sizes[0])
                for launch in fill_launches(out, dist, params, seed, stream, sizes[1:], mem_strides[1:],
                                            logical_strides[1:], base + k * logical_strides[0], target=target,
                                            trunc_path=trunc_path, block_groups=block_groups, num_warps=num_warps,
                                            mem_offset=mem_offset + k * mem_strides[0])]
    constexprs = _dist_constexprs(out, dist, params, target, trunc_path)
    prm = param_bits(params)
    if _transposed_tiles(sizes, mem_strides, logical_strides, base) and block_groups is None:
        n_rows, n_cols = sizes
        col_tiles = triton.cdiv(n_cols, 4 * TILE_GROUPS)
        args = (out, mem_offset, n_rows, n_cols, mem_strides[1], logical_strides[0] // 4, col_tiles,
                *uint64_words(base // 4), *uint64_words(seed), *uint64_words(stream), *prm)
        constexprs.update(TILE_ROWS=TILE_ROWS, TILE_GROUPS=TILE_GROUPS)
        grid = (triton.cdiv(n_rows, TILE_ROWS) * col_tiles,)
        num_warps = default_num_warps(THREADS_PER_PROGRAM, target)
        return [Launch(_fill_transposed_kernel, grid, args, constexprs, num_warps)]
    n_inner = sizes[-1]
    # outer dims padded at the inner end: the runtime passes sizes of 1 as constants, and the kernels'
    # decompositions of a row number by them disappear
    pad = MAX_OUTER_DIMS - len(sizes) + 1
    outer, outer_m, outer_l = list(sizes[:-1]) + [1] * pad, list(mem_strides[:-1]) + [0] * pad, \
        list(logical_strides[:-1]) + [0] * pad
    rows = outer[0] * outer[1] * outer[2]
    flat = rows == 1 and mem_strides[-1] == 1
    heavy = default_block_groups(out.dtype == torch.float64, dist, constexprs["TRUNC_PATH"])
    vec = 1 if flat else _row_vec(out, sizes, mem_strides, logical_strides, base, mem_offset)
    if vec > 1 and block_groups is None:  # whole aligned rows: tiles of several rows
        groups_per_row = triton.cdiv(n_inner, 4)
        block_groups = min(heavy, triton.next_power_of_2(groups_per_row))
        num_warps = num_warps or default_num_warps(block_groups, target, out.element_size())
        # as many groups per thread as a full program of the flat kernel
        threads = num_warps * target.warp_size
        tile_rows = max(1, min(heavy * threads // (THREADS_PER_PROGRAM * block_groups),
                               triton.next_power_of_2(rows)))
        blocks_per_row = triton.cdiv(groups_per_row, block_groups)
        args = (out, mem_offset, rows, n_inner, blocks_per_row, outer[1], outer[2],
                outer_m[0], outer_m[1], outer_m[2], outer_l[0], outer_l[1], outer_l[2],
                *uint64_words(base), *uint64_words(seed), *uint64_words(stream), *prm)
        aligned = all((start >> 2) % block_groups == 0 for start in (base, *outer_l))
        constexprs.update(BLOCK_GROUPS=block_groups, ROWS=tile_rows, VEC=vec, ALIGNED=aligned)
        grid = (triton.cdiv(rows, tile_rows) * blocks_per_row,)
        return [Launch(_fill_rows_kernel, grid, args, constexprs, num_warps)]
    groups_per_row = (n_inner + 3 + 3) // 4  # a row can straddle one extra group
    if block_groups is None:
        block_groups = min(heavy, triton.next_power_of_2(groups_per_row))
    blocks_per_row = triton.cdiv(groups_per_row, block_groups)
    args = (out, mem_offset, n_inner, mem_strides[-1], blocks_per_row, outer[1], outer[2],
            outer_m[0], outer_m[1], outer_m[2], outer_l[0], outer_l[1], outer_l[2],
            *uint64_words(base), *uint64_words(seed), *uint64_words(stream), *prm)
    constexprs.update(BLOCK_GROUPS=block_groups, FLAT=flat, HEAD=base % 4 if flat else 0,
                      ALIGNED=flat and (base >> 2) % block_groups == 0)
    return [Launch(_fill_kernel, (rows * blocks_per_row,), args, constexprs,
                   num_warps or default_num_warps(block_groups, target, out.element_size()))]


def fill_(out: torch.Tensor, dist: int, params, seed: int, stream: int, sizes, mem_strides, logical_strides,
          base: int, *, target: Target | None = None, trunc_path: int | None = None, block_groups: int | None = None,
          num_warps: int | None = None, mem_offset: int = 0) -> None:
    """Fill a coalesced layout of ``out`` (see ``fill_launches``) for the device it is on (``target.of_device``).

    ``trunc_path`` forces a trunc_normal path (tests); ``block_groups`` and ``num_warps`` change the launch,
    never the values.
    """
    target = target or of_device(out.device)
    for launch in fill_launches(out, dist, params, seed, stream, sizes, mem_strides, logical_strides, base,
                                target=target, trunc_path=trunc_path, block_groups=block_groups,
                                num_warps=num_warps, mem_offset=mem_offset):
        launch.run()


TILE_ROWS = 64
TILE_GROUPS = 16


def _transposed_tiles(sizes, mem_strides, logical_strides, base) -> bool:
    """A 2-D block whose rows are contiguous in memory down the columns (column-major), group-aligned."""
    return (len(sizes) == 2 and mem_strides[0] == 1 and mem_strides[1] != 1 and sizes[0] > 1
            and base % 4 == 0 and logical_strides[0] % 4 == 0)
