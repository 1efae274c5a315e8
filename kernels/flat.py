"""The segment-table fill: one launch writes many parameters' pieces into one flat 1-D buffer.

A segment is a run of consecutive flattened logical indices of one parameter, stored contiguously in the
buffer (an FSDP1 FlatParameter shard, a ZeRO partition, a distributed-optimizer bucket). All segments of
one distribution family go in one launch; each program reads its segment from a program -> segment map
and writes stream format v1 values exactly as the per-parameter fill does.
"""

import torch
import triton
import triton.language as tl

from . import interface
from .fill import _block_values, _f64, _store_values, uniform_in_f32
from .interface import NORMAL, TRUNC_NORMAL, UNIFORM

DIST_CONSTANT = tl.constexpr(interface.CONSTANT)  # prm0 everywhere, no Philox

# Columns of the int64 segment table, one row per segment.
COL_OFFSET = tl.constexpr(0)  # element offset of the segment from out_ptr
COL_START = tl.constexpr(1)  # first logical index (uint64 bit pattern)
COL_NUMEL = tl.constexpr(2)
COL_STREAM = tl.constexpr(3)  # uint64 bit pattern
COL_FIRST_BLOCK = tl.constexpr(4)  # index of the segment's first program
COL_PARAMS = tl.constexpr(5)  # N_PARAMS float64 parameters as bit patterns (see fill._transform)
TABLE_COLS = tl.constexpr(COL_PARAMS.value + interface.N_PARAMS)


@triton.jit
def _word_lo(x):
    return (x & 0xFFFFFFFF).to(tl.uint32)


@triton.jit
def _word_hi(x):
    return ((x >> 32) & 0xFFFFFFFF).to(tl.uint32)


@triton.jit(do_not_specialize=["seed_lo", "seed_hi"])
def _flat_fill_kernel(
    out_ptr,
    table_ptr,  # int64 [n_segments, TABLE_COLS], columns COL_*
    segment_ptr,  # int32 [n_programs]: the segment each program writes
    seed_lo: tl.uint32, seed_hi: tl.uint32,
    DIST: tl.constexpr,
    BLOCK_GROUPS: tl.constexpr,  # groups of 4 logical indices per program
    CENTRAL_ONLY: tl.constexpr,
    FAST: tl.constexpr,
    EXACT_BF16: tl.constexpr = False,  # round fp32 -> bf16 by hand (the interpreter's cast truncates), as fill does
    UNIFORM_F32: tl.constexpr = False,  # uniform as one fp32 fma, decided per segment as fill's launcher does
    VEC: tl.constexpr = 1,  # every offset and numel a multiple of VEC elements (16 bytes), every start of 4
    ALIGNED: tl.constexpr = False,  # every start a multiple of 4 * BLOCK_GROUPS: no carry into j hi
):
    pid = tl.program_id(0).to(tl.int64)
    row = table_ptr + tl.load(segment_ptr + pid).to(tl.int64) * TABLE_COLS
    buffer_offset = tl.load(row + COL_OFFSET)
    start = tl.load(row + COL_START).to(tl.uint64, bitcast=True)
    numel = tl.load(row + COL_NUMEL)
    block = pid - tl.load(row + COL_FIRST_BLOCK)
    prm0 = tl.load(row + COL_PARAMS)

    if VEC > 1:  # whole groups at 16-byte aligned addresses: the compiler can emit 16-byte stores
        element = block * (4 * BLOCK_GROUPS) + tl.arange(0, 4 * BLOCK_GROUPS)
        mask = element < tl.multiple_of(numel, VEC)
        ptrs = out_ptr + tl.multiple_of(buffer_offset, VEC) + element
    else:
        head = (start & 3).to(tl.int64)
        element = block * (4 * BLOCK_GROUPS) - head + tl.arange(0, 4 * BLOCK_GROUPS)  # index within the segment
        mask = (element >= 0) & (element < numel)
        ptrs = out_ptr + buffer_offset + element
    if DIST == DIST_CONSTANT:
        values = tl.zeros([4 * BLOCK_GROUPS], dtype=tl.float64) + _f64(prm0)
    else:
        stream = tl.load(row + COL_STREAM)
        first_group = (start >> 2) + (block * BLOCK_GROUPS).to(tl.uint64)
        values = _block_values(out_ptr, first_group.to(tl.uint32), (first_group >> 32).to(tl.uint32),
                               seed_lo.to(tl.uint32), seed_hi.to(tl.uint32), _word_lo(stream), _word_hi(stream),
                               prm0, tl.load(row + COL_PARAMS + 1), tl.load(row + COL_PARAMS + 2),
                               tl.load(row + COL_PARAMS + 3), tl.load(row + COL_PARAMS + 4),
                               tl.load(row + COL_PARAMS + 5), tl.load(row + COL_PARAMS + 6),
                               DIST, BLOCK_GROUPS, CENTRAL_ONLY, FAST, UNIFORM_F32, ALIGNED)
    _store_values(out_ptr, ptrs, values, mask, EXACT_BF16)


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def flat_fill_(out: torch.Tensor, dist: int, segments, seed: int, *, central_only: bool = False,
               fast: bool | None = None, block_groups: int | None = None, num_warps: int | None = None) -> None:
    """One launch over ``segments`` of one family: (offset, logical_start, numel, stream, params).

    Each segment's elements are ``out[offset : offset + numel]`` (offsets may point past ``out``, into
    other tensors of its dtype on its device); ``params`` are the floats of ``fill._transform`` (for
    CONSTANT, the value alone). Uniform segments are launched in two groups, by whether fill's launcher
    would take the fp32 path for them, so that values stay bit-equal to ``fill_``'s.
    """
    segments = [s for s in segments if s[2] > 0]
    if dist != UNIFORM:
        _launch(out, dist, segments, seed, central_only, False, fast, block_groups, num_warps)
        return
    f64 = out.dtype == torch.float64
    for flag in (True, False):
        part = [s for s in segments if uniform_in_f32(f64, s[4][0], s[4][1]) == flag]
        _launch(out, dist, part, seed, False, flag, fast, block_groups, num_warps)


def _launch(out, dist, segments, seed, central_only, uniform_f32, fast, block_groups, num_warps) -> None:
    if not segments:
        return
    # VEC: every segment at a 16-byte aligned address, in whole groups and whole 16-byte vectors, so that
    # stores are 16 bytes wide. Without it the stores are narrow and large blocks cost registers: 512 groups.
    vec = 16 // out.element_size()
    if out.data_ptr() % 16 or any(s[0] % vec or s[1] % 4 or s[2] % vec for s in segments):
        vec = 1
    if block_groups is None:
        longest = max(s[2] for s in segments)
        cap = interface.DEFAULT_BLOCK_GROUPS if vec > 1 else interface.DEFAULT_BLOCK_GROUPS // 2
        block_groups = min(cap, triton.next_power_of_2((longest + 6) // 4))
    if num_warps is None:
        num_warps = interface.default_num_warps(block_groups)
    aligned = all(s[1] % (4 * block_groups) == 0 for s in segments)
    rows, counts, first_block = [], [], 0
    for offset, start, numel, stream, params in segments:
        rows.append([offset, _signed(start), numel, _signed(stream), first_block, *interface.param_bits(params)])
        counts.append(triton.cdiv((start % 4) + numel, 4 * block_groups))
        first_block += counts[-1]
    table = torch.tensor(rows, dtype=torch.int64, device=out.device)
    # program -> segment, expanded on the device: 4 bytes per program (1/2048 of the bytes a bf16 VEC launch
    # writes), one load per program instead of a bisection that every thread would repeat
    segment_of = torch.repeat_interleave(
        torch.arange(len(rows), dtype=torch.int32, device=out.device),
        torch.tensor(counts, dtype=torch.int64, device=out.device), output_size=first_block)
    if fast is None:
        fast = out.is_cuda
    _flat_fill_kernel[(first_block,)](
        out, table, segment_of, *interface.uint64_words(seed),
        DIST=dist, BLOCK_GROUPS=block_groups, CENTRAL_ONLY=central_only, FAST=fast,
        EXACT_BF16=not out.is_cuda, UNIFORM_F32=uniform_f32, VEC=vec, ALIGNED=aligned, num_warps=num_warps,
    )


def sass_variants(variant):
    """The launches bench/sass_report.py compiles offline: ``variant`` is its ``Variant`` class.

    "vec" is the batched path of whole tensors and FSDP2 row shards (16-byte stores, no carry); "seg"
    the FSDP1 layout, with segments starting mid-group.
    """
    out = []
    for dtype, itemsize in (("bf16", 2), ("fp32", 4)):
        for name, dist, central in (("normal", NORMAL, False), ("trunc_c", TRUNC_NORMAL, True),
                                    ("uniform", UNIFORM, False)):
            for layout, vec, groups in (("vec", 16 // itemsize, interface.DEFAULT_BLOCK_GROUPS),
                                        ("seg", 1, interface.DEFAULT_BLOCK_GROUPS // 2)):
                if layout == "seg" and (dtype != "bf16" or dist == UNIFORM):
                    continue
                signature = {"out_ptr": f"*{dtype}", "table_ptr": "*i64", "segment_ptr": "*i32",
                             "seed_lo": "u32", "seed_hi": "u32"}
                constexprs = {"DIST": dist, "BLOCK_GROUPS": groups, "CENTRAL_ONLY": central, "FAST": True,
                              "EXACT_BF16": False, "UNIFORM_F32": dist == UNIFORM, "VEC": vec,
                              "ALIGNED": vec > 1}
                out.append(variant(f"flat_{name}_{layout}", dtype, __name__, "_flat_fill_kernel", signature,
                                   constexprs, ("out_ptr", "table_ptr", "segment_ptr"), 4 * groups,
                                   num_warps=interface.DEFAULT_NUM_WARPS))
    return out
