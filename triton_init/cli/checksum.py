"""The checksum ``triton-init init`` prints: a sum mod 2^64 of one 64-bit hash per element,
hash(stream, logical index, value bits). Integer addition is associative and commutative, so per-rank
partial sums add up to exactly the whole-model value whatever the world size, the sharding or the order,
and a changed or moved value changes it.
"""

import torch

from .._format import stream_id
from .._layout import row_major_strides

MASK64 = (1 << 64) - 1
_CHECKSUM_CHUNK = 1 << 22  # elements hashed at once: bounded extra memory (a few int64 temporaries)


def _signed(x: int) -> int:
    x &= MASK64
    return x - (1 << 64) if x >> 63 else x


_MIX1, _MIX2 = _signed(0xBF58476D1CE4E5B9), _signed(0x94D049BB133111EB)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finalizer on int64 tensors (products wrap; >> made logical by masking)."""
    z = (z ^ ((z >> 30) & ((1 << 34) - 1))) * _MIX1
    z = (z ^ ((z >> 27) & ((1 << 37) - 1))) * _MIX2
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def _bits(values: torch.Tensor) -> torch.Tensor:
    """The storage bits of each element as a non-negative int64."""
    width = values.element_size()
    if width == 8:
        return values.view(torch.int64)
    as_int = values.view({4: torch.int32, 2: torch.int16, 1: torch.int8}[width]).to(torch.int64)
    return as_int & ((1 << (8 * width)) - 1)


def block_checksum(tensor: torch.Tensor, stream, global_shape=None, global_offset=None) -> int:
    """Sum mod 2^64 of hash(stream, logical index, bits) over the block ``tensor`` of the logical tensor."""
    shape = tuple(tensor.shape)
    global_shape = tuple(global_shape) if global_shape is not None else shape
    offset = tuple(global_offset) if global_offset is not None else (0,) * len(shape)
    if tensor.numel() == 0:
        return 0
    if tensor.dim() == 0:
        tensor, shape, global_shape, offset = tensor.reshape(1), (1,), (1,), (0,)
    strides = row_major_strides(global_shape)
    salt = _signed(stream_id(stream) * 0x9E3779B97F4A7C15)
    row_numel = tensor.numel() // shape[0]
    rows_per_chunk = max(1, _CHECKSUM_CHUNK // max(1, row_numel))
    total = torch.zeros((), dtype=torch.int64, device=tensor.device)
    for r0 in range(0, shape[0], rows_per_chunk):
        r1 = min(shape[0], r0 + rows_per_chunk)
        index = (offset[0] + torch.arange(r0, r1, device=tensor.device)) * strides[0]
        for d in range(1, len(shape)):
            cols = (offset[d] + torch.arange(shape[d], device=tensor.device)) * strides[d]
            index = index.unsqueeze(-1) + cols
        chunk = tensor[r0:r1].contiguous().reshape(-1)
        total += _mix64(_mix64(index.reshape(-1) + salt) ^ _bits(chunk)).sum()
    return int(total.item()) & MASK64


def combine(partials) -> int:
    """The whole-model checksum from per-rank (or per-tensor) partial checksums."""
    return sum(partials) & MASK64
