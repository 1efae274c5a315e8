"""The fused fill kernel: logical index -> Philox words -> uniform / normal / truncated normal -> store.

One write-only pass. Each Philox call yields the four lanes of one group of 4 logical indices, which
land in 4 consecutive elements of a row. A row is a run of consecutive logical indices (the innermost
dim of the tensor after coalescing); up to three outer dims are decomposed from the program id.
"""

import struct

import torch
import triton
import triton.language as tl

from .philox import box_muller, philox4x32_10, trunc_normal_z, uniform01, uniform01_f64

UNIFORM = 0
NORMAL = 1
TRUNC_NORMAL = 2

MAX_OUTER_DIMS = 3
DEFAULT_BLOCK_GROUPS = 512
DEFAULT_NUM_WARPS = 4


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
def _transform(w0, w1, w2, w3, prm0, prm1, prm2, prm3, prm4, prm5, prm6,
               DIST: tl.constexpr, OUT_F64: tl.constexpr, CENTRAL_ONLY: tl.constexpr, FAST: tl.constexpr):
    """The four lanes' values, before the cast to the output dtype (fp64 if OUT_F64, else fp32)."""
    if DIST == 0:  # uniform: a + (b - a) * u, in fp64, rounded once by the caller's cast
        a = _f64(prm0)
        width = _f64(prm1)
        v0 = a + width * uniform01_f64(w0)
        v1 = a + width * uniform01_f64(w1)
        v2 = a + width * uniform01_f64(w2)
        v3 = a + width * uniform01_f64(w3)
    else:
        if DIST == 1:
            z0, z1 = box_muller(w0, w1, FAST)
            z2, z3 = box_muller(w2, w3, FAST)
        else:
            p_lo = _f64(prm2).to(tl.float32)
            q_hi = _f64(prm3).to(tl.float32)
            mass = _f64(prm4).to(tl.float32)
            z0 = trunc_normal_z(w0, p_lo, q_hi, mass, CENTRAL_ONLY, FAST)
            z1 = trunc_normal_z(w1, p_lo, q_hi, mass, CENTRAL_ONLY, FAST)
            z2 = trunc_normal_z(w2, p_lo, q_hi, mass, CENTRAL_ONLY, FAST)
            z3 = trunc_normal_z(w3, p_lo, q_hi, mass, CENTRAL_ONLY, FAST)
        mean = _f64(prm0)
        std = _f64(prm1)
        if OUT_F64:
            v0 = mean + std * z0.to(tl.float64)
            v1 = mean + std * z1.to(tl.float64)
            v2 = mean + std * z2.to(tl.float64)
            v3 = mean + std * z3.to(tl.float64)
        else:
            mean = mean.to(tl.float32)
            std = std.to(tl.float32)
            v0 = mean + std * z0
            v1 = mean + std * z1
            v2 = mean + std * z2
            v3 = mean + std * z3
        if DIST == 2:  # clamp to the outermost output-dtype values inside [a, b]
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
    CENTRAL_ONLY: tl.constexpr,
    FAST: tl.constexpr,
    EXACT_BF16: tl.constexpr = False,  # round fp32 -> bf16 by hand: the interpreter's cast truncates
):
    pid = tl.program_id(0).to(tl.int64)
    base = (base_hi.to(tl.uint64) << 32) | base_lo.to(tl.uint64)
    if FLAT:
        block = pid
        row_mem = mem_offset
        row_start = base
        head = HEAD
    else:
        row = pid // blocks_per_row
        block = pid - row * blocks_per_row
        k3 = row % size3
        k12 = row // size3
        k2 = k12 % size2
        k1 = k12 // size2
        row_mem = mem_offset + k1 * mstride1 + k2 * mstride2 + k3 * mstride3
        row_start = base + (k1 * lstride1 + k2 * lstride2 + k3 * lstride3).to(tl.uint64)
        head = (row_start & 3).to(tl.int64)

    # Philox counters: group j = logical // 4 in words 0-1, the stream in words 2-3; key = the seed.
    group = (row_start >> 2) + (block * BLOCK_GROUPS + tl.arange(0, BLOCK_GROUPS)).to(tl.uint64)
    c0 = group.to(tl.uint32)
    c1 = (group >> 32).to(tl.uint32)
    c2 = tl.zeros_like(c0) + stream_lo.to(tl.uint32)
    c3 = tl.zeros_like(c0) + stream_hi.to(tl.uint32)
    w0, w1, w2, w3 = philox4x32_10(c0, c1, c2, c3, seed_lo.to(tl.uint32), seed_hi.to(tl.uint32))

    OUT_F64: tl.constexpr = out_ptr.dtype.element_ty == tl.float64
    v0, v1, v2, v3 = _transform(w0, w1, w2, w3, prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                                DIST, OUT_F64, CENTRAL_ONLY, FAST)
    # Lane order 0, 1, 2, 3 within each group: join(join(v0, v2), join(v1, v3)) then flatten.
    values = tl.reshape(tl.join(tl.join(v0, v2), tl.join(v1, v3)), [4 * BLOCK_GROUPS])

    element = block * (4 * BLOCK_GROUPS) - head + tl.arange(0, 4 * BLOCK_GROUPS)  # index within the row
    mask = (element >= 0) & (element < n_inner)
    if FLAT:
        ptrs = out_ptr + row_mem + element
    else:
        ptrs = out_ptr + row_mem + element * inner_stride
    if out_ptr.dtype.element_ty == tl.bfloat16:
        values = values.to(tl.float32)  # uniform is fp64: round through fp32, as torch's fp64 -> bf16 does
        if EXACT_BF16:
            values = _bf16_round_nearest_even(values)
    tl.store(ptrs, values.to(out_ptr.dtype.element_ty), mask=mask, eviction_policy="evict_first")


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", float(x)))[0]


def _words(x: int) -> tuple[int, int]:
    return x & 0xFFFFFFFF, x >> 32


def fill_(out: torch.Tensor, dist: int, params, seed: int, stream: int, sizes, mem_strides,
          logical_strides, base: int, *, central_only: bool = False, fast: bool | None = None,
          block_groups: int | None = None, num_warps: int | None = None, mem_offset: int = 0) -> None:
    """Launch the fill over a coalesced layout (see ``triton_init._layout``).

    ``sizes``/``mem_strides``/``logical_strides`` list the dims outermost first; the last dim is the
    row (logical stride 1). ``params`` are up to 7 floats (see ``_transform``). Layouts with more than
    three outer dims are split here into launches over the extra leading dims.
    """
    if len(sizes) - 1 > MAX_OUTER_DIMS:
        for k in range(sizes[0]):
            fill_(out, dist, params, seed, stream, sizes[1:], mem_strides[1:], logical_strides[1:],
                  base + k * logical_strides[0], central_only=central_only, fast=fast,
                  block_groups=block_groups, num_warps=num_warps,
                  mem_offset=mem_offset + k * mem_strides[0])
        return
    n_inner = sizes[-1]
    outer = [1] * (MAX_OUTER_DIMS - len(sizes) + 1) + list(sizes[:-1])
    outer_m = [0] * (MAX_OUTER_DIMS - len(sizes) + 1) + list(mem_strides[:-1])
    outer_l = [0] * (MAX_OUTER_DIMS - len(sizes) + 1) + list(logical_strides[:-1])
    rows = outer[0] * outer[1] * outer[2]
    flat = rows == 1 and mem_strides[-1] == 1
    groups_per_row = (n_inner + 3 + 3) // 4  # a row can straddle one extra group
    if block_groups is None:
        block_groups = min(DEFAULT_BLOCK_GROUPS, triton.next_power_of_2(groups_per_row))
    if num_warps is None:
        num_warps = max(1, min(DEFAULT_NUM_WARPS, block_groups // 32))
    blocks_per_row = triton.cdiv(groups_per_row, block_groups)
    if fast is None:
        fast = out.is_cuda
    prm = [_bits(p) for p in params] + [0] * (7 - len(params))
    grid = (rows * blocks_per_row,)
    _fill_kernel[grid](
        out, mem_offset, n_inner, mem_strides[-1], blocks_per_row, outer[1], outer[2],
        outer_m[0], outer_m[1], outer_m[2], outer_l[0], outer_l[1], outer_l[2],
        *_words(base), *_words(seed), *_words(stream), *prm,
        DIST=dist, BLOCK_GROUPS=block_groups, FLAT=flat, HEAD=base % 4 if flat else 0,
        CENTRAL_ONLY=central_only, FAST=fast, EXACT_BF16=not out.is_cuda, num_warps=num_warps,
    )
