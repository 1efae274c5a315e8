"""The fast path of ``verify_(samples=None)``: regenerate a block's values with the executor of its device and
clear every stored element whose bits equal them, one slab at a time; the rest goes to the float64 check.
On a CPU the native executor regenerates and compares in one pass (``_cpu.native_compare``); on a GPU the
fused kernel of kernels/verify.py does (contiguous slabs), or the fill kernel regenerates into a buffer.

Why equal bits suffice (soundness): the contract bounds |x - exact| <= tol(exact) for every value x an
executor writes, and each executor is proven to meet it for every value u(w) can take (the native one by
tests/test_native.py's every-u tests, the Triton kernels by tests/test_math_bounds.py from the hardware's
documented bounds). A stored element equal bit for bit to the executor's value at its logical index is that
value, so it meets the contract. No bound B tighter than the contract itself is proven for an executor
(B = tol), so the test "|s - e| <= tol - B" leaves no slack beyond s = e. An element that differs in any bit
(another executor's rounding, a GPU-written value checked on a CPU, a tampered one) is checked against the
exact value instead: on a CPU first by the native code itself for uniform and normal fp32/bf16/float64
values (the exact value in float64 with libm, |s - exact| + margin <= tol with the tolerance's ulps taken at
the smallest magnitude the exact value can have, the margin a thousand times the float64 evaluation's own
error: ``contract.native_tolerance``); on other devices by the reference's float64 check run on the device;
and whatever those do not clear by the reference's float64 check on the CPU (``verify._Tally``), which
accepts or rejects it for itself and reports.

Only plain whole-tensor fills are regenerated (uniform/normal/trunc_normal-family inits, and
constant_/zeros_/ones_); region writes after them send the elements they cover to the float64 check, and
any other write (eye_, orthogonal_, a user callable, a rescale) leaves the whole tensor to it.
"""

from contextlib import nullcontext

import torch

from . import _cpu, _dispatch, contract
from ._format import kernel_exact
from ._layout import make_layout, row_major_strides
from ._replay import DeterministicReplay, RandomReplay, coordinates, region_indices

SLAB = 1 << 22  # elements regenerated and compared per call on the CPU: memory stays within a few slabs' size
DEVICE_SLAB = 1 << 26  # on a GPU, where each slab is a regenerated buffer and a few kernel launches
FUSED_CAPACITY = 1 << 16  # positions the fused kernel may append per slab; more: the slab is compared unfused
EXACT_PART = 1 << 20  # elements per float64 check on a device (a few dozen float64 temporaries of this size)
CONSTANT_FILLS = ("constant_", "ones_", "zeros_")
BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}  # compared as integers of the element's size


class Plan:
    """How to regenerate the values of one write: ``replay_`` a ``RandomReplay`` or a constant fill."""

    def __init__(self, replay_):
        self.replay = replay_
        self.constant = None
        if isinstance(replay_, DeterministicReplay):
            self.constant = replay_.values(torch.zeros(1, dtype=torch.int64))  # the value, in the write's dtype

    def differing(self, slab: torch.Tensor, shape: tuple, offset: tuple, scratch: torch.Tensor) -> torch.Tensor:
        """The row-major positions in ``slab`` (a block of the logical ``shape`` at ``offset``) whose bits differ
        from this write's values there (an int64 CPU tensor, ascending). ``scratch``: room for int64 positions."""
        bits = BITS[slab.element_size()]
        if self.constant is not None:
            differ = slab.view(bits) != self.constant.to(slab.device).view(bits)
            return _nonzero(differ)
        replay_ = self.replay
        seed, stream, dist, params = replay_.write.seed, replay_.stream, replay_.dist, replay_.params
        if slab.device.type == "cpu" and not _dispatch.uses_triton(slab) and _dispatch.current_backend() != \
                "reference" and _cpu.available():
            count = _cpu.native_compare(slab, make_layout(slab, shape, offset), dist, params, seed, stream, scratch,
                                        tolerance=contract.native_tolerance(slab.dtype))
            return scratch[:count].clone()
        layout = make_layout(slab, shape, offset)
        if layout.is_flat and _dispatch.uses_triton(slab) and kernel_exact(dist, params):
            # the fused kernel: one read of the stored values, nothing written but the positions that differ
            positions = torch.empty(min(slab.numel(), FUSED_CAPACITY), dtype=torch.int64, device=slab.device)
            with torch.cuda.device(slab.device) if slab.is_cuda else nullcontext():
                count = _dispatch.kernel_module("verify").compare_flat_(slab, dist, params, seed, stream,
                                                                        layout.base, positions)
            if count <= positions.numel():
                return self._not_cleared(slab, positions[:count], shape, offset)
        expected = torch.empty(slab.shape, dtype=slab.dtype, device=slab.device)
        _dispatch.fill_random_(expected, dist, params, seed, stream, make_layout(expected, shape, offset))
        differ = (expected.view(bits) != slab.view(bits)).reshape(-1)
        del expected
        return self._not_cleared(slab, torch.nonzero(differ).squeeze(1), shape, offset)

    def _not_cleared(self, slab: torch.Tensor, positions: torch.Tensor, shape: tuple, offset: tuple):
        """Of the ``positions`` (on the slab's device) whose bits differ, those the float64 check on the device
        does not clear, on the CPU."""
        if positions.numel() == 0:
            return torch.empty(0, dtype=torch.int64)
        kept = [part[~self._within_contract(slab, part, shape, offset)]  # float64 temporaries of a part each
                for part in positions.split(EXACT_PART)]
        return torch.cat(kept).cpu()

    def _within_contract(self, slab: torch.Tensor, positions: torch.Tensor, shape: tuple, offset: tuple):
        """Which elements at ``positions`` of ``slab`` meet the contract, by the reference's float64 check run on
        the slab's device (``verify._Tally`` makes the same check on the CPU, and reports)."""
        coords, rest = [], positions
        for size in reversed(slab.shape):
            rest, c = torch.div(rest, size, rounding_mode="floor"), rest % size
            coords.insert(0, c)
        logical = torch.zeros_like(positions)
        for c, o, stride in zip(coords, offset, row_major_strides(shape), strict=True):
            logical += (c + o) * stride
        exact, tolerance = self.replay.expected(logical)
        return contract.contract_units(slab[tuple(coords)], exact, tolerance, slab.dtype) <= 1.0


def _nonzero(differ: torch.Tensor) -> torch.Tensor:
    """Row-major positions of the True elements of a bool tensor (on the CPU)."""
    flat = differ.reshape(-1)
    if not bool(flat.any()):
        return torch.empty(0, dtype=torch.int64)
    return torch.nonzero(flat).squeeze(1).cpu()


def plan(record, replays, problems):
    """(index of the write the fast path regenerates, its ``Plan``), or None where it regenerates nothing: the
    last whole-tensor write, if it is a plain random fill or a constant one (exactly those replay classes)."""
    whole = [k for k, write in enumerate(record.writes) if write.region is None]
    if not whole or problems[whole[-1]] is not None:
        return None
    k = whole[-1]
    replay_, fn = replays[k], record.writes[k].fn
    if type(replay_) is RandomReplay or (type(replay_) is DeterministicReplay and fn in CONSTANT_FILLS):
        if replay_.dtype in _cpu.OUT_CODES:  # the dtypes every executor writes
            return k, Plan(replay_)
    return None


def slab_limit(tensor: torch.Tensor) -> int:
    """Elements per slab for a tensor on this device."""
    return SLAB if tensor.device.type == "cpu" else DEVICE_SLAB


def slabs(local: torch.Tensor, offset: tuple, limit: int | None = None, dim: int = 0):
    """(view, offset) pieces of ``local`` (at ``offset`` in its logical tensor) in row-major order, each a
    contiguous run of its row-major positions with at most ``limit`` (default ``slab_limit``) elements."""
    limit = slab_limit(local) if limit is None else limit
    n = local.numel()
    if n <= limit or dim >= local.dim():
        if n:
            yield local, offset
        return
    per = n // local.shape[dim]  # elements per index of ``dim``
    step = max(1, limit // per)
    for i in range(0, local.shape[dim], step):
        piece = local.narrow(dim, i, min(step, local.shape[dim] - i))
        at = offset[:dim] + (offset[dim] + i,) + offset[dim + 1:]
        if piece.numel() <= limit:
            yield piece, at
        else:  # one index of ``dim`` is too large: split the next dim
            yield from slabs(piece, at, limit, dim + 1)


def covered_positions(regions, local_shape: tuple, shape: tuple, offset: tuple) -> torch.Tensor:
    """Sorted unique local row-major positions of the block (``local_shape`` at ``offset`` in ``shape``) that
    lie in any of ``regions``."""
    found = []
    local_strides = row_major_strides(local_shape)
    for region in regions:
        for logical in region_indices(region):
            inside = torch.ones_like(logical, dtype=torch.bool)
            position = torch.zeros_like(logical)
            for c, o, size, stride in zip(coordinates(logical, shape), offset, local_shape, local_strides,
                                          strict=True):
                inside &= (c >= o) & (c < o + size)
                position += (c - o) * stride
            found.append(position[inside])
    return torch.unique(torch.cat(found)) if found else torch.empty(0, dtype=torch.int64)
