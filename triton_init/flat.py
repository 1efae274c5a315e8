"""Flat buffers: ``init_flat_`` fills a 1-D buffer holding pieces of many parameters, one launch per family.

A ``Segment`` says which run of a parameter's flattened logical indices sits where in the buffer, and how
that parameter is initialized. ``shard_segments`` builds the segments of one rank's shard of the
concatenation of flattened parameters (the FSDP1 FlatParameter / ZeRO layout). Values equal those of
per-parameter init with the same seed and stream, wherever the segment boundaries fall.
"""

from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch

from . import _dispatch
from ._format import UINT64_LIMIT, kernel_exact, resolve_seed, stream_id
from ._layout import Layout, _as_int_tuple, as_int
from ._spec import CONSTANT, Init
from ._validate import SUPPORTED_DTYPES, check_tensor
from .manifest import Manifest
from .streams import plan


@dataclass(frozen=True)
class Segment:
    """Logical indices [start, start + numel) of a parameter, stored at buffer[offset : offset + numel]."""

    init: Init
    stream: object  # int or str, as in every triton_init function
    global_shape: tuple  # the parameter's full (logical) shape
    start: int  # first flattened (row-major) logical index held
    numel: int
    offset: int  # where that index sits in the buffer


def _total(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _check_segments(buffer, segments) -> list:
    """Every segment validated (nothing is written before all are): (segment with Python ints, stream id)."""
    checked = []
    for k, seg in enumerate(segments):
        if not isinstance(seg, Segment):
            raise TypeError(f"segments[{k}] must be a Segment, got {type(seg).__name__}")
        if not isinstance(seg.init, Init):
            raise TypeError(f"segments[{k}].init must be an Init, got {type(seg.init).__name__}")
        shape = _as_int_tuple(seg.global_shape, f"segments[{k}].global_shape")
        start, numel, offset = (as_int(getattr(seg, f), f"segments[{k}].{f}") for f in ("start", "numel", "offset"))
        if any(s < 0 for s in shape):
            raise ValueError(f"segments[{k}].global_shape must be non-negative, got {shape}")
        total = _total(shape)
        if total > UINT64_LIMIT:
            raise ValueError(f"segments[{k}].global_shape {shape} has more than 2**64 elements")
        if numel < 0 or start < 0 or start + numel > total:
            raise ValueError(f"segments[{k}] holds indices [{start}, {start + numel}) of a parameter "
                             f"with {total} elements")
        if offset < 0 or offset + numel > buffer.numel():
            raise ValueError(f"segments[{k}] sits at [{offset}, {offset + numel}) of a buffer of "
                             f"{buffer.numel()} elements")
        stream = stream_id(seg.stream)
        checked.append((replace(seg, global_shape=shape, start=start, numel=numel, offset=offset), stream))
    spans = sorted((seg.offset, seg.offset + seg.numel, k) for k, (seg, _) in enumerate(checked) if seg.numel)
    for (_, stop, k), (start, _, k2) in zip(spans, spans[1:], strict=False):
        if start < stop:
            raise ValueError(f"segments[{k}] and segments[{k2}] overlap in the buffer")
    return checked


def init_flat_(buffer: torch.Tensor, segments, *, seed, manifest=None) -> torch.Tensor:
    """Fill each segment of the 1-D contiguous ``buffer`` with its parameter's values; return ``buffer``.

    On the Triton backend all segments of one family (uniform, normal, trunc_normal with and without
    tails, constant) go in one launch of the segment-table kernel; otherwise each segment is filled as a
    block of its logical tensor, like a per-tensor fill (natively on the CPU). Elements outside every segment
    (padding) are left untouched. With ``manifest`` (a ``triton_init.Manifest``) each segment's parameter is
    recorded, whole and logical.
    """
    check_tensor(buffer, "buffer")
    if buffer.dim() != 1 or not buffer.is_contiguous():
        raise ValueError(f"buffer must be a contiguous 1-D tensor, got shape {tuple(buffer.shape)}")
    checked = _check_segments(buffer, segments)
    seed = resolve_seed(seed, None)
    if manifest is not None and not isinstance(manifest, Manifest):
        raise TypeError(f"manifest must be a triton_init.Manifest, got {type(manifest).__name__}")
    if buffer.device.type == "meta":
        return buffer
    families: dict = {}
    for seg, stream in checked:
        family, params = seg.init.flat_family(buffer.dtype)
        families.setdefault(family, []).append((seg.offset, seg.start, seg.numel, stream, params))
    with torch.no_grad():
        if _dispatch.uses_triton(buffer):
            # the rare calls the fp32 kernels cannot serve within the contract take the reference
            _launch(buffer, {f: [r for r in rows if kernel_exact(f, r[4])] for f, rows in families.items()}, seed)
            families = {f: [r for r in rows if not kernel_exact(f, r[4])] for f, rows in families.items()}
        for family, rows in families.items():
            for offset, start, numel, stream, params in rows:
                piece = buffer[offset:offset + numel]
                if family == CONSTANT:
                    piece.fill_(params[0])
                elif numel:  # as a per-tensor fill: the native executor on the CPU, the reference otherwise
                    _dispatch.fill_random_(piece, family, params, seed, stream, Layout((numel,), (1,), (1,), start))
    if manifest is not None:
        for seg, _ in checked:
            manifest.record_init(seg.stream, seg.global_shape, buffer.dtype, seg.init, seed)
    return buffer


def _launch(anchor: torch.Tensor, families: dict, seed: int) -> None:
    """Segment-table launches per family; row offsets count elements from ``anchor``."""
    flat = _dispatch.kernel_module("flat")
    with torch.cuda.device(anchor.device) if anchor.is_cuda else nullcontext():
        for family, rows in families.items():
            if rows:
                flat.flat_fill_(anchor, family, rows, seed)


def fill_blocks_(blocks, *, seed: int) -> list:
    """Fill many tensors, each with its ``Init``, in as few launches as possible; return the rest.

    ``blocks`` holds (tensor, init, stream, global_shape, global_offset) as ``Init.fill_`` takes them
    (a DTensor stands for its local shard). Every tensor whose values are one run of consecutive logical
    indices stored contiguously (a whole parameter, an FSDP2 Shard(0) shard) and that runs on the Triton
    backend is filled by the segment-table kernel: one launch per family for each (device, dtype), with
    each row's offset the distance in elements from the group's first tensor. The others (the reference
    backend, strided blocks, inits that are not an ``Init``) are returned untouched, for the caller to
    fill one by one. Values are those of per-tensor init either way.
    """
    from ._layout import make_layout
    from ._random import resolve_block

    groups: dict = {}
    rest = []
    for block in blocks:
        tensor, init, stream, global_shape, global_offset = block
        if not isinstance(init, Init):
            rest.append(block)
            continue
        local, global_shape, global_offset = resolve_block(tensor, global_shape, global_offset)
        layout = make_layout(local, global_shape, global_offset)  # validates the block
        if local.device.type == "meta" or local.numel() == 0:
            continue
        if (local.dtype not in SUPPORTED_DTYPES or not layout.is_flat or not _dispatch.uses_triton(local)
                or local.data_ptr() % local.element_size() or not kernel_exact(*init.flat_family(local.dtype))):
            rest.append(block)
            continue
        groups.setdefault((local.device, local.dtype), []).append((local, init, stream_id(stream), layout.base))
    with torch.no_grad():
        for (_, dtype), items in groups.items():
            anchor = items[0][0]
            itemsize = anchor.element_size()
            families: dict = {}
            for local, init, stream, base in items:
                family, params = init.flat_family(dtype)
                offset = (local.data_ptr() - anchor.data_ptr()) // itemsize
                families.setdefault(family, []).append((offset, base, local.numel(), stream, params))
            _launch(anchor, families, seed)
    return rest


def shard_segments(params, start: int, stop: int, *, align: int = 1) -> list:
    """Segments of buffer indices [start, stop) of the concatenation of flattened ``params``.

    ``params`` lists (init, stream, global_shape) in concatenation order; the shard's buffer holds
    concatenation index ``start`` at offset 0. This is FSDP1's FlatParameter layout (the rank's chunk of
    the padded concatenation) and ZeRO's; with ``align`` each parameter starts at a multiple of ``align``
    elements (FSDP1 with ``use_orig_params`` aligns to 16 bytes). Padding gets no segment.
    """
    if align < 1:
        raise ValueError(f"align must be at least 1, got {align}")
    segments, base = [], 0
    for init, stream, global_shape in params:
        base = -(-base // align) * align
        numel = _total(global_shape)
        lo, hi = max(start, base), min(stop, base + numel)
        if lo < hi:
            segments.append(Segment(init, stream, tuple(global_shape), lo - base, hi - lo, lo - start))
        base += numel
    return segments


def module_segments(module, recipe, start: int, stop: int, *, prefix: str = "", align: int = 1,
                    **options) -> list:
    """``shard_segments`` for the parameters of ``module`` in ``named_parameters`` order, each with its
    recipe init and its qualified-name stream (as ``init_module_`` gives them)."""
    params = []
    for stream, tensor, init, info in plan(module, recipe, prefix=prefix, **options):
        if info.is_buffer:
            continue
        if not isinstance(init, Init):
            raise TypeError(f"{stream}: a flat segment needs an Init, not {init!r}")
        params.append((init, stream, tuple(tensor.shape)))
    return shard_segments(params, start, stop, align=align)
