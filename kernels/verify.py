"""The fused compare kernel of ``verify_``: logical index -> the fill kernel's values -> compared bit for bit with
the stored ones, in one read-only pass; the positions that differ are appended to a buffer.

Only flat runs (one row of consecutive logical indices with unit stride: a contiguous tensor or slab); other
layouts regenerate into a buffer and compare there (``triton_init._fastcheck``).
"""

import torch
import triton
import triton.language as tl

from .fill import _block_values, _dist_constexprs, _output_values, default_block_groups
from .interface import default_num_warps, param_bits, uint64_words
from .target import of_device

_INT_OF_WIDTH = {16: tl.int16, 32: tl.int32, 64: tl.int64}


@triton.jit(do_not_specialize=["seed_lo", "seed_hi", "stream_lo", "stream_hi", "base_lo", "base_hi",
                                "prm0", "prm1", "prm2", "prm3", "prm4", "prm5", "prm6"])
def _compare_flat_kernel(
    stored_ptr,
    positions_ptr,  # int64: the positions that differ, appended in no particular order
    found_ptr,  # int32 counter of positions appended (may exceed capacity: then the rest are not written)
    capacity,
    n_elements,
    base_lo: tl.uint32, base_hi: tl.uint32,  # logical index of element 0
    seed_lo: tl.uint32, seed_hi: tl.uint32,
    stream_lo: tl.uint32, stream_hi: tl.uint32,
    prm0: tl.int64, prm1: tl.int64, prm2: tl.int64, prm3: tl.int64,  # float64 parameters as bit patterns
    prm4: tl.int64, prm5: tl.int64, prm6: tl.int64,
    DIST: tl.constexpr,
    BLOCK_GROUPS: tl.constexpr,
    HEAD: tl.constexpr,  # base % 4
    TRUNC_PATH: tl.constexpr,
    CLAMP: tl.constexpr,
    MATH: tl.constexpr,
    INT: tl.constexpr,  # the integer type of the stored element's width
    EXACT_BF16: tl.constexpr = False,
    UNIFORM_F32: tl.constexpr = False,
    ALIGNED: tl.constexpr = False,
):
    base = (base_hi.to(tl.uint64) << 32) | base_lo.to(tl.uint64)
    block = tl.program_id(0).to(tl.int64)
    first_group = (base >> 2) + (block * BLOCK_GROUPS).to(tl.uint64)
    values = _block_values(stored_ptr, first_group.to(tl.uint32), (first_group >> 32).to(tl.uint32),
                           seed_lo.to(tl.uint32), seed_hi.to(tl.uint32), stream_lo.to(tl.uint32),
                           stream_hi.to(tl.uint32), prm0, prm1, prm2, prm3, prm4, prm5, prm6,
                           DIST, BLOCK_GROUPS, TRUNC_PATH, CLAMP, MATH, UNIFORM_F32, ALIGNED)
    element = block * (4 * BLOCK_GROUPS) - HEAD + tl.arange(0, 4 * BLOCK_GROUPS)
    mask = (element >= 0) & (element < n_elements)
    expected = _output_values(stored_ptr, values, EXACT_BF16).to(INT, bitcast=True)
    stored = tl.load(stored_ptr + element, mask=mask, other=0, eviction_policy="evict_first").to(INT, bitcast=True)
    differ = mask & (expected != stored)
    if tl.sum(differ.to(tl.int32), axis=0) > 0:
        slot = tl.atomic_add(found_ptr + tl.zeros_like(element), 1, mask=differ)
        tl.store(positions_ptr + slot, element, mask=differ & (slot < capacity))


def compare_flat_(stored: torch.Tensor, dist: int, params, seed: int, stream: int, base: int,
                  positions: torch.Tensor) -> int:
    """Compare the contiguous ``stored`` (logical indices base, base + 1, ...) with the fill kernel's values bit
    for bit on its device: the positions that differ go to ``positions`` (int64 on the same device), sorted,
    if they fit; returns how many differ (more than ``positions.numel()``: they did not all fit)."""
    target = of_device(stored.device)
    constexprs = _dist_constexprs(stored, dist, params, target, None)
    block_groups = min(default_block_groups(stored.dtype == torch.float64, dist, constexprs["TRUNC_PATH"]),
                       triton.next_power_of_2((stored.numel() + 3 + 3) // 4))
    found = torch.zeros(1, dtype=torch.int32, device=stored.device)
    grid = (triton.cdiv(stored.numel() + base % 4, 4 * block_groups),)
    _compare_flat_kernel[grid](
        stored, positions, found, positions.numel(), stored.numel(), *uint64_words(base), *uint64_words(seed),
        *uint64_words(stream), *param_bits(params), **constexprs, BLOCK_GROUPS=block_groups, HEAD=base % 4,
        INT=_INT_OF_WIDTH[8 * stored.element_size()], ALIGNED=(base >> 2) % block_groups == 0,
        num_warps=default_num_warps(block_groups, target, stored.element_size()))
    count = int(found.item())
    if count <= positions.numel():
        positions[:count] = torch.sort(positions[:count]).values
    return count
