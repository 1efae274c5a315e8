"""Where each element of a tensor sits in its logical tensor: coalesced dims with memory and logical strides.

A local tensor of shape s is the block of a logical (global) tensor of shape G starting at offset o. Its
element k has logical row-major index base + sum(k_d * G_stride_d) and memory offset sum(k_d * stride_d).
Both the kernels and the CPU reference consume the coalesced form built here.
"""

import functools
import numbers
from dataclasses import dataclass

import torch

from ._format import UINT64_LIMIT


@dataclass(frozen=True)
class Layout:
    sizes: tuple  # outermost first; the last dim is a row of consecutive logical indices
    mem_strides: tuple  # element strides in memory
    logical_strides: tuple  # strides in the logical row-major index (the last one is 1)
    base: int  # logical index of local element (0, ..., 0)

    @property
    def numel(self) -> int:
        n = 1
        for s in self.sizes:
            n *= s
        return n

    @property
    def is_flat(self) -> bool:
        """One run of consecutive logical indices stored with unit stride."""
        return len(self.sizes) == 1 and self.mem_strides[0] == 1


def _is_int(value) -> bool:
    """An int, or an integer of another type (``numpy.int64``), not a bool."""
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def as_int(value, name: str) -> int:
    """``value`` as a Python int: ints and other integer types (``numpy.int64``) only."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def _as_int_tuple(value, name: str) -> tuple:
    if isinstance(value, torch.Size):
        return tuple(int(v) for v in value)
    if _is_int(value):
        return (int(value),)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {type(value).__name__}") from None
    for v in items:
        if not _is_int(v):
            raise TypeError(f"{name} must be a sequence of ints, got an element of type {type(v).__name__}")
    return tuple(int(v) for v in items)


def logical_block(shape, global_shape=None, global_offset=None) -> tuple[tuple, tuple]:
    """Validate and normalise (global_shape, global_offset) for a local block of ``shape``."""
    shape = tuple(shape)
    if global_shape is None:
        if global_offset is not None:
            offset = _as_int_tuple(global_offset, "global_offset")
            if len(offset) != len(shape):
                raise ValueError(f"global_offset has {len(offset)} dims but the tensor has {len(shape)}")
            if any(o != 0 for o in offset):
                raise ValueError("global_offset is given without global_shape: the block lies outside the "
                                 "logical tensor, which is the tensor itself")
        return shape, (0,) * len(shape)
    gshape = _as_int_tuple(global_shape, "global_shape")
    offset = (0,) * len(shape) if global_offset is None else _as_int_tuple(global_offset, "global_offset")
    _check_block(shape, gshape, offset)
    return gshape, offset


@functools.lru_cache(maxsize=4096)
def _check_block(shape: tuple, gshape: tuple, offset: tuple) -> None:
    """Raise unless the block of ``shape`` at ``offset`` lies in ``gshape`` (ints, all three), of at most
    2^64 elements. Remembered: models repeat their blocks."""
    if len(gshape) != len(shape):
        raise ValueError(f"global_shape has {len(gshape)} dims but the tensor has {len(shape)}: ranks must match")
    if any(g < 0 for g in gshape):
        raise ValueError(f"global_shape must be non-negative, got {gshape}")
    if len(offset) != len(shape):
        raise ValueError(f"global_offset has {len(offset)} dims but the tensor has {len(shape)}: ranks must match")
    for d, (o, s, g) in enumerate(zip(offset, shape, gshape, strict=True)):
        if o < 0 or o + s > g:
            raise ValueError(f"the block [{o}, {o + s}) in dim {d} lies outside global_shape {gshape}")
    total = 1
    for g in gshape:
        total *= g
    if total > UINT64_LIMIT:
        raise ValueError(f"global_shape {gshape} has more than 2**64 elements")


def row_major_strides(shape) -> tuple:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


def make_layout(tensor: torch.Tensor, global_shape=None, global_offset=None) -> Layout:
    if global_shape is None and global_offset is None and tensor.is_contiguous() and tensor.numel():
        return Layout((tensor.numel(),), (1,), (1,), 0)  # what the general path gives, without its cost
    gshape, offset = logical_block(tensor.shape, global_shape, global_offset)
    return block_layout(tuple(tensor.shape), tensor.stride(), gshape, offset)


@functools.lru_cache(maxsize=4096)
def block_layout(shape: tuple, strides: tuple, global_shape: tuple, global_offset: tuple) -> Layout:
    """The ``Layout`` of a tensor of ``shape`` and memory ``strides`` that is the block at ``global_offset`` of
    ``global_shape`` (validated by ``logical_block``). Remembered: a pure function of its arguments."""
    lstrides = row_major_strides(global_shape)
    base = sum(o * g for o, g in zip(global_offset, lstrides, strict=True))
    return coalesce(zip(shape, strides, lstrides, strict=True), base)


def coalesce(dims, base: int) -> Layout:
    """The ``Layout`` of (size, memory stride, logical stride) dims, outermost first, whose element (0, ..., 0)
    has logical index ``base``: size-1 dims dropped, neighbours that step alike in memory and in the logical
    tensor merged, and a last dim of logical stride 1 (a dim of one element if none is)."""
    merged = []
    for size, mstride, lstride in dims:
        if size == 1:
            continue
        if merged:
            psize, pm, pl = merged[-1]
            if pm == size * mstride and pl == size * lstride:
                merged[-1] = (psize * size, mstride, lstride)
                continue
        merged.append((size, mstride, lstride))
    if not merged or merged[-1][2] != 1:
        merged.append((1, 1, 1))  # rows of a single element
    sizes, mstrides, lstrides = zip(*merged, strict=True)
    return Layout(tuple(sizes), tuple(mstrides), tuple(lstrides), base)
