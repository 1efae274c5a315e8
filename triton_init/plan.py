"""An init plan recorded on the meta device: a framework's own init code runs once, under ``intercept``, on the
model as it was written (unsharded, unwrapped, on ``meta``); ``apply_plan`` then writes each rank's shards of
the sharded, materialized model from it.

The plan is a ``Manifest`` (which triton_init function, with which arguments, into which logical tensor, in
order; tied tensors as aliases of their first name) plus the values of the deterministic tensors the
framework copied in from real ones (transformers' rotary ``inv_freq``), which a meta model cannot hold.
"""

import dataclasses
from itertools import chain

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from ._intercept import intercept
from ._replay import NotReplayable, replay
from ._sharding import dtensor_block, is_dtensor
from .manifest import Manifest
from .streams import named_tensors, stream_name
from .verify import regenerate_


@dataclasses.dataclass
class Plan:
    """A model's init: ``manifest`` (the writes, in order, and the aliases of tied tensors) and ``values``
    (stream -> the whole tensor's values, for deterministic copies from real tensors, applied first)."""

    manifest: Manifest
    values: dict = dataclasses.field(default_factory=dict)

    def apply(self, model: nn.Module, *, prefix: str = "") -> list:
        """``apply_plan(model, self, prefix=prefix)``."""
        return apply_plan(model, self, prefix=prefix)


class _Copies(TorchFunctionMode):
    """Keeps the values of ``copy_`` from a real tensor into a whole meta tensor of the model."""

    def __init__(self, streams: dict, log: list):
        super().__init__()
        self.streams = streams  # id(meta tensor) -> stream
        self.log = log
        self.values = {}  # stream -> (values, number of log entries before the copy)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "copy_" and len(args) > 1 and isinstance(args[1], torch.Tensor):
            stream = self.streams.get(id(args[0]))
            source = args[1]
            if stream is not None and source.device.type != "meta" and not is_dtensor(source):
                values = source.detach().to("cpu", args[0].dtype).expand(args[0].shape).clone()
                self.values[stream] = (values, len(self.log))
        return func(*args, **kwargs)


def _aliases(model: nn.Module, prefix: str) -> dict:
    """name -> the first name of its tensor, for every other name of a tied tensor."""
    first = {id(tensor): stream_name(fqn, prefix) for fqn, _, _, tensor, _ in named_tensors(model)}
    return {stream_name(fqn, prefix): first[id(tensor)]
            for fqn, tensor in chain(model.named_parameters(remove_duplicate=False),
                                     model.named_buffers(remove_duplicate=False))
            if first[id(tensor)] != stream_name(fqn, prefix)}


def record_plan(model: nn.Module, init, *, seed, prefix: str = "", strict: bool = False) -> Plan:
    """Run ``init(model)`` (the framework's own init code) under ``intercept(model, seed=seed)`` on a model
    whose tensors are on the meta device, before any sharding or wrapping, and return its ``Plan``.

    Nothing is allocated or written (buffers the model holds for real are written, as under ``intercept``).
    Each tensor's writes are kept from its last whole-tensor write on (earlier ones are overwritten). Raises
    ``ValueError`` if a parameter is not on the meta device; random writes intercept leaves to torch are
    reported as ``intercept`` reports them (``strict``), and ``apply_plan`` then finds no write for them.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    real = [stream_name(fqn, prefix) for fqn, _, _, t, is_buffer in named_tensors(model)
            if not is_buffer and t.device.type != "meta"]
    if real:
        raise ValueError(f"record_plan needs a model on the meta device; {', '.join(real[:3])}"
                         f"{' ...' if len(real) > 3 else ''} hold real storage")
    streams = {id(tensor): stream_name(fqn, prefix) for fqn, _, _, tensor, _ in named_tensors(model)}
    with torch.no_grad(), intercept(model, seed=seed, strict=strict, prefix=prefix) as ctx:
        with _Copies(streams, ctx.log) as copies:
            init(model)
    kept: dict = {}  # stream -> its writes from the last whole one on
    for position, served in enumerate(ctx.log):
        copied = copies.values.get(served.stream)
        if copied is not None and position < copied[1]:
            continue
        if served.region is None:
            kept[served.stream] = []
        kept.setdefault(served.stream, []).append(served)
    manifest = Manifest(aliases=_aliases(model, prefix))
    for served in chain.from_iterable(kept.values()):
        manifest.record(served.stream, served.shape, served.dtype, served.function, served.args, served.seed,
                        served.region)
    return Plan(manifest, {stream: values for stream, (values, _) in copies.values.items()})


def apply_plan(model: nn.Module, plan: Plan, *, prefix: str = "") -> list:
    """Write every parameter and buffer of ``model`` that ``plan`` records: each rank's block of it (a
    DTensor's local shard at its global offset: FSDP2, tensor parallel), in the tensor's own dtype. Tied
    names get their first name's values, whether the tie survived ``to_empty`` or not.

    Checks everything before writing anything: raises ``ValueError`` naming parameters the plan does not
    record, tensors whose logical shape differs, and writes that cannot be replayed in the tensor's dtype
    (a random init into an integer buffer, a user callable). Returns the names of buffers left as they were
    (the plan holds no write for them: buffers a framework computes on the meta device, e.g. torchtitan's RoPE
    cache).
    """
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be a triton_init Plan (record_plan), got {type(plan).__name__}")
    manifest = plan.manifest
    jobs, missing, mismatched, invalid, unwritten, seen = [], [], [], [], [], set()
    for fqn, tensor in chain(model.named_parameters(remove_duplicate=False),
                             model.named_buffers(remove_duplicate=False)):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        name = stream_name(fqn, prefix)
        stream = manifest.aliases.get(name, name)
        record = manifest.find(stream)
        values = plan.values.get(stream)
        if record is None and values is None:
            (missing if isinstance(tensor, nn.Parameter) else unwritten).append(name)
            continue
        shape = record.shape if record is not None else tuple(values.shape)
        if tuple(tensor.shape) != tuple(shape):
            mismatched.append(f"{name} {tuple(tensor.shape)} (the plan has {tuple(shape)})")
            continue
        if record is not None:
            dtype = _local_block(tensor)[0].dtype
            record = dataclasses.replace(record, dtype=dtype,
                                         writes=tuple(dataclasses.replace(w, dtype=dtype) for w in record.writes))
            try:
                for write in record.writes:
                    replay(write)  # validates the call in this dtype, on the meta device
            except NotReplayable as exc:
                invalid.append(f"{name} ({exc})")
                continue
        jobs.append((tensor, record, values))
    if missing or mismatched or invalid:
        raise ValueError("the plan does not fit the model: "
                         + "; ".join(([f"no write for {', '.join(missing)}"] if missing else [])
                                     + ([f"other shapes: {', '.join(mismatched)}"] if mismatched else [])
                                     + ([f"cannot write {', '.join(invalid)}"] if invalid else [])))
    with torch.no_grad():
        for tensor, record, values in jobs:
            local, offset = _local_block(tensor)
            if values is not None and offset is not None:
                local.copy_(values[tuple(slice(o, o + s) for o, s in zip(offset, local.shape, strict=True))])
            if record is not None:
                regenerate_(tensor, record)
    return unwritten


def _local_block(tensor) -> tuple:
    """(the storage this rank holds, its offset in the logical tensor; None when it holds none)."""
    if not is_dtensor(tensor):
        return tensor, (0,) * tensor.dim()
    local, _, offset = dtensor_block(tensor)
    return local, offset


__all__ = ["Plan", "apply_plan", "record_plan"]
