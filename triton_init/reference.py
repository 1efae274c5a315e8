"""Reference of stream format v1 in vectorized torch ops: the tests' oracle, the fallback for CPU tensors where the
native executor (``_cpu``) is not built, and the path of the rare calls CUDA kernels leave (``kernel_exact``).

Words are uint32 values held in int64 tensors (the 64-bit products wrap but keep their bits). Work goes
in chunks of ``CHUNK_ELEMENTS`` so that the extra memory stays bounded whatever the tensor's size.
"""

import functools
import math

import torch

from ._format import NORMAL, TRUNC_NORMAL, UNIFORM, inner_bounds, trunc_params
from ._layout import Layout

MASK32 = 0xFFFFFFFF
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
# 2^20 elements: about 40 int64/float64 temporaries of this size stay well under 256 MiB.
CHUNK_ELEMENTS = 1 << 20


def philox4x32_10(c0, c1, c2, c3, k0: int, k1: int):
    """Philox4x32-10 on int64 tensors holding uint32 words (any broadcastable shapes)."""
    for _ in range(10):
        prod0 = c0 * PHILOX_M0
        prod1 = c2 * PHILOX_M1
        c0, c1, c2, c3 = (
            ((prod1 >> 32) & MASK32) ^ c1 ^ k0,
            prod1 & MASK32,
            ((prod0 >> 32) & MASK32) ^ c3 ^ k1,
            prod0 & MASK32,
        )
        k0 = (k0 + PHILOX_W0) & MASK32
        k1 = (k1 + PHILOX_W1) & MASK32
    return c0, c1, c2, c3


def group_words(groups: torch.Tensor, seed: int, stream: int):
    """The four words of each group index (an int64 tensor, values below 2^62)."""
    c0 = groups & MASK32
    c1 = groups >> 32
    c2 = torch.full_like(groups, stream & MASK32)
    c3 = torch.full_like(groups, stream >> 32)
    return philox4x32_10(c0, c1, c2, c3, seed & MASK32, seed >> 32)


def uniform01(words: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """u(w) = ((w >> 9) + 0.5) * 2^-23, exact in fp32 and fp64."""
    return ((words >> 9).to(dtype) + 0.5) * (2.0 ** -23)


def _box_muller(w_first, w_second, dtype):
    radius = torch.sqrt(-2.0 * torch.log(uniform01(w_first, dtype)))
    angle = (2.0 * math.pi) * uniform01(w_second, dtype)
    return radius * torch.cos(angle), radius * torch.sin(angle)


def _trunc_z(words, p_lo: float, q_hi: float, mass: float):
    u = uniform01(words)
    p = p_lo + mass * u
    q = q_hi + mass * uniform01(MASK32 - words)  # 1 - u, exact
    lower = p <= 0.5
    z = torch.special.ndtri(torch.where(lower, p, q))
    return torch.where(lower, z, -z)


def lane_values(words, dist: int, params, out_dtype: torch.dtype):
    """The four lanes' values (before the cast to ``out_dtype``) from the four word tensors."""
    w0, w1, w2, w3 = words
    if dist == UNIFORM:
        a, width = params[0], params[1]
        return [a + width * uniform01(w) for w in words]
    mean, std = params[0], params[1]
    if dist == NORMAL:
        compute = torch.float64 if out_dtype == torch.float64 else torch.float32
        z0, z1 = _box_muller(w0, w1, compute)
        z2, z3 = _box_muller(w2, w3, compute)
        return [(mean + std * z.double()) if compute == torch.float64 else mean + std * z
                for z in (z0, z1, z2, z3)]
    p_lo, q_hi, mass, lo, hi = params[2:7]
    return [torch.clamp(mean + std * _trunc_z(w, p_lo, q_hi, mass), lo, hi) for w in words]


def values_at(logical: torch.Tensor, dist: int, params, seed: int, stream: int,
              out_dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Values of arbitrary logical indices below 2^63 (an int64 tensor), as ``out_dtype``."""
    words = group_words(logical >> 2, seed, stream)
    lanes = torch.stack(lane_values(words, dist, params, out_dtype), dim=-1)
    return torch.gather(lanes, -1, (logical & 3).unsqueeze(-1)).squeeze(-1).to(out_dtype)


def _row_values(group0, head, n: int, dist, params, seed, stream, out_dtype):
    """Values of the logical runs [4 * group0 + head, ... + n) for each row, as a (R, n) tensor.

    ``group0`` and ``head`` (0..3) are int64 tensors of shape (R,): a logical index can reach 2^64 - 1,
    which int64 cannot hold, but its group index cannot."""
    n_groups = (n + 3 + 3) // 4
    groups = group0.unsqueeze(1) + torch.arange(n_groups, dtype=torch.int64)
    lanes = torch.stack(lane_values(group_words(groups, seed, stream), dist, params, out_dtype), dim=-1)
    lanes = lanes.reshape(len(group0), 4 * n_groups)
    cols = head.unsqueeze(1) + torch.arange(n, dtype=torch.int64)
    return torch.gather(lanes, 1, cols).to(out_dtype)


def dist_params(dist: int, out_dtype: torch.dtype, *, a=0.0, b=1.0, mean=0.0, std=1.0):
    """The float parameters a kernel or the reference takes for one call (see kernels/fill.py)."""
    if dist == UNIFORM:
        return (float(a), float(b) - float(a))
    if dist == NORMAL:
        return (float(mean), float(std))
    tp = trunc_params(mean, std, a, b)
    lo, hi = inner_bounds(a, b, out_dtype)
    return (float(mean), float(std), tp.p_lo, tp.q_hi, tp.mass, lo, hi)


def call_params(dist: int, out_dtype: torch.dtype, **dist_args):
    """(dist, params) of one call: ``dist_params``, with trunc_normal at std 0 as the point mass at mean
    clamped into [a, b] (a uniform of zero width, so it rounds into [a, b] like every trunc_normal value)."""
    if dist == TRUNC_NORMAL:
        mean, std, a, b = (float(dist_args[k]) for k in ("mean", "std", "a", "b"))
        return _trunc_call_params(mean, std, a, b, out_dtype, math.copysign(1.0, mean), math.copysign(1.0, a),
                                  math.copysign(1.0, b))
    return dist, dist_params(dist, out_dtype, **dist_args)


@functools.lru_cache(maxsize=1024)
def _trunc_call_params(mean: float, std: float, a: float, b: float, out_dtype: torch.dtype, *_signs):
    """``call_params`` of trunc_normal, remembered: its CDFs and bounds cost more than a small fill, and models
    repeat their arguments. The signs are in the key because -0.0 == 0.0 would otherwise share an entry."""
    if std == 0.0:
        lo, hi = inner_bounds(a, b, out_dtype)
        value = min(max(mean, lo), hi)
        return UNIFORM, dist_params(UNIFORM, out_dtype, a=value, b=value)
    return TRUNC_NORMAL, dist_params(TRUNC_NORMAL, out_dtype, mean=mean, std=std, a=a, b=b)


@torch.no_grad()
def fill_(out: torch.Tensor, layout: Layout, dist: int, params, seed: int, stream: int) -> None:
    """Write the values of ``layout``'s logical indices into ``out`` (any device), chunk by chunk, outside
    autograd (``out`` may be a parameter)."""
    base_group, base_head = divmod(layout.base, 4)
    n = layout.sizes[-1]
    if layout.is_flat:
        flat = out.view(-1) if out.is_contiguous() else out.as_strided((n,), (1,))
        for start in range(0, n, CHUNK_ELEMENTS):
            stop = min(n, start + CHUNK_ELEMENTS)
            group, head = divmod(base_head + start, 4)
            values = _row_values(torch.tensor([base_group + group]), torch.tensor([head]), stop - start,
                                 dist, params, seed, stream, out.dtype)
            flat[start:stop].copy_(values[0])
        return
    outer_sizes = layout.sizes[:-1]
    rows = 1
    for s in outer_sizes:
        rows *= s
    span = sum((s - 1) * m for s, m in zip(layout.sizes, layout.mem_strides, strict=True)) + 1
    storage = out.as_strided((span,), (1,))
    cols_per_chunk = min(n, CHUNK_ELEMENTS)
    # Each row computes whole groups, up to n + 6 lane values (a short row straddles two groups): bound those.
    rows_per_chunk = max(1, CHUNK_ELEMENTS // (4 * ((n + 6) // 4)))
    dims = list(zip(outer_sizes, layout.mem_strides[:-1], layout.logical_strides[:-1], strict=True))[::-1]
    for r0 in range(0, rows, rows_per_chunk):
        rest = torch.arange(r0, min(rows, r0 + rows_per_chunk), dtype=torch.int64)
        row_mem = torch.zeros_like(rest)
        row_group = torch.full_like(rest, base_group)
        row_head = torch.full_like(rest, base_head)
        for size, mstride, lstride in dims:
            k = rest % size
            rest = rest // size
            row_mem += k * mstride
            row_group += k * (lstride >> 2)
            row_head += k * (lstride & 3)
        row_group += row_head >> 2
        row_head &= 3
        for c0 in range(0, n, cols_per_chunk):
            c1 = min(n, c0 + cols_per_chunk)
            group, head = row_group + ((row_head + c0) >> 2), (row_head + c0) & 3
            values = _row_values(group, head, c1 - c0, dist, params, seed, stream, out.dtype)
            offsets = row_mem.unsqueeze(1) + torch.arange(c0, c1, dtype=torch.int64) * layout.mem_strides[-1]
            storage[offsets.to(storage.device)] = values.to(storage.device)
