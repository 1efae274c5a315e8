"""From a module's tensors to streams and logical indices: the one mapping ``module``, ``flat`` and ``intercept`` use.

A tensor's stream is its fully qualified name without wrapper components, tied tensors under their first
name (``named_tensors``, ``stream_name``); ``plan`` pairs each with its recipe init. ``TensorIndex`` goes the
other way: from any tensor that shares storage with a model tensor (the tensor itself, ``.data``, a row, a
slice, a reshaped view, a DTensor's local shard) to that tensor's stream and the logical indices the view
covers, as a ``Layout`` the kernels and the reference fill.
"""

import functools
import re
from dataclasses import dataclass

import torch
import torch.nn as nn

from ._layout import Layout, coalesce, row_major_strides
from ._sharding import dtensor_block, is_dtensor
from .manifest import Region
from .recipes import ParamInfo, get

# Wrapper modules that insert a name component without changing the model: dropped from streams.
WRAPPER_NAMES = ("_orig_mod", "_checkpoint_wrapped_module", "_fsdp_wrapped_module")
_LAYER = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")


def stream_name(fqn: str, prefix: str = "") -> str:
    """The stream of a tensor: ``prefix`` + its fully qualified name without wrapper components."""
    parts = [p for p in fqn.split(".") if p not in WRAPPER_NAMES]
    return prefix + ".".join(parts)


def layer_of(fqn: str):
    """The block index in a name ("layers.3.attention.wo.weight" -> 3), or None."""
    match = _LAYER.search(fqn)
    return int(match.group(1)) if match else None


def named_tensors(module: nn.Module):
    """(fqn, owner, local name, tensor, is_buffer) of every parameter and buffer, shared ones once."""
    seen = set()
    for owner_name, owner in module.named_modules():
        for kind, table in (("param", owner._parameters), ("buffer", owner._buffers)):
            for name, tensor in table.items():
                if tensor is None or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                fqn = f"{owner_name}.{name}" if owner_name else name
                yield fqn, owner, name, tensor, kind == "buffer"


def plan(module: nn.Module, recipe="torch", *, prefix: str = "", **options) -> list:
    """The init of every parameter and buffer: a list of (stream, tensor, init, info).

    ``init`` is an ``Init``, an init call, or None (left as is: unmatched buffers, rules mapping to None).
    Raises ValueError naming every parameter no rule matches.
    """
    recipe = get(recipe, **options)
    entries = [(stream_name(fqn, prefix), owner, name, tensor, is_buffer)
               for fqn, owner, name, tensor, is_buffer in named_tensors(module)]
    n_layers = recipe.n_layers
    if n_layers is None:
        layers = [layer_of(stream) for stream, *_ in entries]
        n_layers = max((k for k in layers if k is not None), default=0) + 1
    out, unmatched = [], []
    for stream, owner, name, tensor, is_buffer in entries:
        info = ParamInfo(stream, name, owner, tuple(tensor.shape), layer_of(stream), n_layers, is_buffer)
        matched, init = recipe.lookup(info)
        if not matched and not is_buffer:
            unmatched.append(f"{stream} ({type(owner).__name__})")
        out.append((stream, tensor, init, info))
    if unmatched:
        raise ValueError(f"recipe {recipe.name!r} has no rule for: {', '.join(unmatched)}; add rules, e.g. "
                         f"recipe=triton_init.recipes.get({recipe.name!r}).extend({{'name.pattern': init}})")
    return out


@dataclass(frozen=True)
class Target:
    """Where a write lands in the model: the tensor's stream, its logical shape, the plain tensor to write
    (``local``) with the logical indices of its elements (``layout``), and the ``region`` those indices
    cover (None when the write is the model tensor itself, in its own layout)."""

    stream: str
    tensor: torch.Tensor  # the parameter or buffer
    logical_shape: tuple
    local: torch.Tensor
    layout: Layout
    region: Region | None


@dataclass(frozen=True)
class _Entry:
    stream: str
    tensor: torch.Tensor
    local: torch.Tensor  # the storage this process holds (a DTensor's local shard)
    logical_shape: tuple
    block_offset: tuple  # where ``local`` sits in the logical tensor


def _local(tensor) -> torch.Tensor:
    return tensor._local_tensor if is_dtensor(tensor) else tensor


def _storage_key(local: torch.Tensor):
    """The storage ``local`` views: its address, or on the meta device (no data) the storage object itself."""
    storage = local.untyped_storage()
    return local.device, storage._cdata if local.device.type == "meta" else storage.data_ptr()


def _metadata_only(method):
    """``method`` reads only tensors' metadata (storage, shape, strides): run it with ``__torch_function__``
    off, so that a mode active around it (intercept's) does not see each of its many small calls."""

    @functools.wraps(method)
    def run(*args, **kwargs):
        with torch._C.DisableTorchFunction():
            return method(*args, **kwargs)
    return run


def _address(tensor):
    """Where ``tensor``'s (local) data starts; None for none (a None slot, a sparse tensor)."""
    try:
        return getattr(tensor, "_local_tensor", tensor).data_ptr()
    except (RuntimeError, AttributeError):
        return None


class UnmappedView(ValueError):
    """A tensor shares storage with a model tensor but its elements are no set of that tensor's indices
    that a stride per dim describes (another dtype, an overlapping or irregular view)."""


class TensorIndex:
    """The parameters and buffers of a module by storage, to map any view of them to logical indices.
    Setting ``stale`` (a submodule was registered, a re-tie) re-reads the module at the next lookup;
    ``registered`` takes a parameter or buffer registration, which the next lookup applies in place when
    it can (a new tensor under a name that held an untied one) and otherwise re-reads the module for."""

    def __init__(self, module: nn.Module, prefix: str = ""):
        self.module = module
        self.prefix = prefix
        self._pending = []  # (module, name, table, tensor it held, tensor registered), in order
        self.refresh()

    @_metadata_only
    def refresh(self) -> None:
        """Re-read the module's tensors (after ``to_empty``, re-tying or re-assigned parameters); entries of
        tensors whose storage and first name did not change are kept."""
        previous = getattr(self, "_entries", {})
        self.stale, self._pending = False, []
        named = list(self.module.named_modules())
        self._module_names = {id(m): name for name, m in named}
        modules = [m for _, m in named]
        self._tables = [t for m in modules for t in (m._modules, m._parameters, m._buffers)]
        self._tensor_tables = [t for m in modules for t in (m._parameters, m._buffers) if t]
        self._seen = self._snapshot()
        self._entries: dict = {}
        self._by_storage: dict = {}
        self._names = {}  # id(tensor) -> how many (module, name) slots hold it
        for table in self._tensor_tables:
            for t in table.values():
                self._names[id(t)] = self._names.get(id(t), 0) + 1
        for fqn, _, _, tensor, _ in named_tensors(self.module):
            self._add(tensor, stream_name(fqn, self.prefix), previous)

    def _add(self, tensor, stream: str, previous=None) -> None:
        """Index ``tensor`` under ``stream`` (kept from ``previous`` when nothing about it changed)."""
        local = _local(tensor)
        if local.numel() == 0:
            return
        key = (id(tensor), _storage_key(local), local.storage_offset(), tuple(local.shape))
        entry = previous.get(key) if previous else None
        if entry is None or entry.tensor is not tensor or entry.stream != stream:
            if is_dtensor(tensor):
                _, shape, offset = dtensor_block(tensor)
                if offset is None:  # this rank is outside the tensor's mesh
                    return
            else:
                shape, offset = tuple(tensor.shape), (0,) * tensor.dim()
            entry = _Entry(stream, tensor, local, tuple(shape), tuple(offset))
        self._entries[key] = entry
        self._by_storage.setdefault(_storage_key(local), []).append(entry)

    def registered(self, module, name: str, table: dict, tensor) -> None:
        """``tensor`` is being registered as ``module``'s parameter or buffer ``name`` (``table`` is
        ``module._parameters`` or ``module._buffers``, not yet set)."""
        if not self.stale:
            self._pending.append((module, name, table, table.get(name), tensor))

    def _catch_up(self) -> None:
        """Apply the registrations since the last lookup; re-read the module where one may be a re-tie."""
        if self._pending and not self.stale:
            pending, self._pending = self._pending, []
            for module, name, table, old, new in pending:
                prefix = self._module_names.get(id(module))
                if (prefix is None or table.get(name) is not new or (new is not None and id(new) in self._names)
                        or (old is not None and self._names.get(id(old), 0) != 1)):
                    self.stale = True  # an unknown module, a value replaced again, a tie made or broken
                    break
                if old is not None:
                    del self._names[id(old)]
                    for key in [k for k, e in self._entries.items() if e.tensor is old]:
                        entry = self._entries.pop(key)
                        self._by_storage[key[1]].remove(entry)
                if new is not None:
                    self._names[id(new)] = 1
                    self._add(new, stream_name(f"{prefix}.{name}" if prefix else name, self.prefix))
            if not self.stale:
                self._seen = self._snapshot()
        if self.stale:
            self.refresh()

    def _snapshot(self) -> list:
        """What ``refresh`` read, cheaply, without walking the module tree: the objects in each module's
        tables of children, parameters and buffers, and where each tensor's data is. It differs when a tensor
        was re-assigned or got new storage (``.data =``, ``to_empty``, a swap) or a child module was
        replaced, even without a registration hook."""
        seen = [tuple(map(id, table.values())) for table in self._tables]
        seen.append(tuple(_address(t) for table in self._tensor_tables for t in table.values()))
        return seen

    @_metadata_only
    def first_names(self) -> dict:
        """id(tensor) -> stream of every parameter and buffer of the module as it is now (tied ones: the
        first name)."""
        return {id(tensor): stream_name(fqn, self.prefix) for fqn, _, _, tensor, _ in named_tensors(self.module)}

    @_metadata_only
    def shares_storage(self, tensor) -> bool:
        self._catch_up()
        local = _local(tensor)
        return local.numel() > 0 and bool(self._current(_storage_key(local)))

    def _current(self, key) -> list:
        """The entries in storage ``key`` that still hold it (``to_empty`` gives tensors new storage, and
        the old addresses are reused)."""
        entries = self._by_storage.get(key, ())
        return [e for e in entries if _local(e.tensor) is e.local and _storage_key(e.local) == key]

    @_metadata_only
    def locate(self, tensor, *, refresh: bool = True) -> Target | None:
        """The ``Target`` of a write into ``tensor``, None if it shares no storage with the model (looked up
        again after a ``refresh`` when it seems not to: the module may have new storage).

        Raises ``UnmappedView`` when it does but its elements cannot be mapped to logical indices.
        """
        self._catch_up()
        local = _local(tensor)
        if local.numel() == 0:
            return None
        key = _storage_key(local)
        entries = self._current(key)
        if not entries and refresh and self._snapshot() != self._seen:
            self.refresh()
            entries = self._current(key)
        if not entries:
            return None
        for entry in entries:
            dims = _view_dims(entry, local)
            if dims is None:
                continue
            lstrides = row_major_strides(entry.logical_shape)
            start, pieces = dims
            base = sum((o + i) * s for o, i, s in zip(entry.block_offset, start, lstrides, strict=True))
            layout = coalesce(((size, mstride, step * lstrides[dim]) for size, mstride, dim, step in pieces), base)
            own = (local.shape == entry.local.shape and local.stride() == entry.local.stride()
                   and local.storage_offset() == entry.local.storage_offset()
                   and (is_dtensor(tensor) or not is_dtensor(entry.tensor)))
            region = None if own else Region(base, tuple(p[0] for p in pieces),
                                             tuple(p[3] * lstrides[p[2]] for p in pieces))
            return Target(entry.stream, entry.tensor, entry.logical_shape, local, layout, region)
        raise UnmappedView(f"a write into {tuple(local.shape)} elements (strides {local.stride()}) of the storage "
                           f"of {entries[0].stream} covers no regular set of its indices")


def _view_dims(entry: _Entry, view: torch.Tensor):
    """(start index per dim of the model tensor's local block, pieces) or None when ``view`` is not a view of
    it. Each piece (size, memory stride, dim, step) walks ``dim`` by ``step``: a view dim that spans several
    dims of the tensor (a flattened view) becomes several pieces, outermost first."""
    base = entry.local
    if view.dtype != base.dtype:
        return None
    order = sorted((d for d in range(base.dim()) if base.shape[d] > 1), key=lambda d: -base.stride(d))
    rel = view.storage_offset() - base.storage_offset()
    start = [0] * base.dim()
    for d in order:
        start[d], rel = divmod(rel, base.stride(d))
    if rel != 0 or any(not 0 <= start[d] < base.shape[d] for d in order):
        return None
    used = list(start)
    pieces = []
    for size, stride in zip(view.shape, view.stride(), strict=True):
        if size == 1:
            continue
        split = _split_dim(base, order, start, size, stride)
        if split is None:
            return None
        for piece_size, _, dim, step in split:
            used[dim] += (piece_size - 1) * step
        pieces.extend(split)
    if any(used[d] >= base.shape[d] for d in range(base.dim()) if base.shape[d] > 1):
        return None
    return start, pieces


def _split_dim(base, order, start, size, stride):
    """Pieces (outermost first) of one view dim of ``size`` elements ``stride`` apart, or None."""
    inner = []
    while True:
        dims = [d for d in order if base.stride(d) <= stride]
        if not dims or stride % base.stride(dims[0]):
            return None
        dim = dims[0]
        step = stride // base.stride(dim)
        if start[dim] + (size - 1) * step < base.shape[dim]:
            return [(size, stride, dim, step)] + inner
        extent = base.shape[dim]
        if step != 1 or start[dim] != 0 or size % extent:
            return None
        inner = [(extent, stride, dim, 1)] + inner
        size, stride = size // extent, stride * extent
