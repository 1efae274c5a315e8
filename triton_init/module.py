"""Module-level init: ``init_module_`` walks named parameters and buffers, ``materialize_`` meta modules.

Each tensor's stream is its fully qualified name (a str stream of format v1), so its values depend on
neither the order of initialization, the pipeline stage holding it, nor its sharding: a DTensor
parameter (FSDP2, tensor parallel) gets its local block of the values the whole tensor would get.
"""

from itertools import chain

import torch
import torch.nn as nn

from ._format import resolve_seed
from ._spec import Init
from .flat import fill_blocks_
from .manifest import Manifest, Region
from .recipes import ParamInfo, get
from .streams import plan, stream_name


def apply_init(tensor, init, *, seed: int, stream: str, global_shape=None, global_offset=None):
    """Fill ``tensor`` (or its block, or its DTensor shard) with ``init`` on ``stream``."""
    if init is None:
        return tensor
    if isinstance(init, Init):
        return init.fill_(tensor, seed=seed, stream=stream, global_shape=global_shape, global_offset=global_offset)
    if global_shape is not None:
        return init(tensor, seed=seed, stream=stream, global_shape=global_shape, global_offset=global_offset)
    return init(tensor, seed=seed, stream=stream)


def _zero_padding_row(info: ParamInfo, tensor):
    """Zero an embedding's padding row (the local part of it); return that logical row, or None."""
    padding_idx = getattr(info.module, "padding_idx", None)
    if padding_idx is None or info.name != "weight" or not isinstance(info.module, (nn.Embedding, nn.EmbeddingBag)):
        return None
    from ._random import resolve_block

    local, _, offset = resolve_block(tensor, None, None)
    logical_row = padding_idx % info.shape[0]
    row = logical_row - (offset[0] if offset else 0)
    if 0 <= row < local.shape[0] and local.device.type != "meta":
        with torch.no_grad():
            local[row].zero_()
    return logical_row


def init_module_(module: nn.Module, recipe="torch", *, seed, prefix: str = "", callback=None, manifest=None,
                 **options) -> nn.Module:
    """Initialize every parameter (and every buffer a rule names) of ``module`` by ``recipe``.

    ``recipe`` is a name ('torch', 'gpt2', 'llama', 'megatron', with ``options`` such as ``n_layers=``),
    a ``Recipe``, or a user rule table ``{pattern: init}``. The stream of each tensor is ``prefix`` + its
    fully qualified name; give ``prefix`` (e.g. "layers.5.") when ``module`` is a part of the model, and
    ``n_layers=`` when depth-scaled recipes cannot count the blocks from the names. Tied parameters are
    initialized once, under their first name. ``callback(stream, tensor)`` runs after each tensor (a
    progress bar). With ``manifest`` (a ``triton_init.Manifest``) every write is appended to it, in the
    order applied, and tied names as aliases. Returns ``module``.
    """
    seed = resolve_seed(seed, None)
    if manifest is not None and not isinstance(manifest, Manifest):
        raise TypeError(f"manifest must be a triton_init.Manifest, got {type(manifest).__name__}")
    entries = plan(module, recipe, prefix=prefix, **options)
    zero_padding = get(recipe, **options).zero_padding_idx
    with torch.no_grad():
        # Inits the segment-table kernel can take go in a few launches; the rest one tensor at a time.
        rest = fill_blocks_([(tensor, init, stream, None, None) for stream, tensor, init, _ in entries
                             if init is not None], seed=seed)
        one_by_one = {id(block[0]) for block in rest}
        for stream, tensor, init, info in entries:
            if id(tensor) in one_by_one:
                apply_init(tensor, init, seed=seed, stream=stream)
            if manifest is not None and init is not None:
                manifest.record_init(stream, info.shape, tensor.dtype, init, seed)
            row = _zero_padding_row(info, tensor) if zero_padding and init is not None else None
            if manifest is not None and row is not None:
                manifest.record(stream, info.shape, tensor.dtype, "zeros_", {}, seed,
                                Region(row * info.shape[1], info.shape[1:], (1,)))
            if callback is not None:
                callback(stream, tensor)
    if manifest is not None:
        recorded = {id(tensor): stream for stream, tensor, init, _ in entries if init is not None}
        for fqn, tensor in chain(module.named_parameters(remove_duplicate=False),
                                 module.named_buffers(remove_duplicate=False)):
            if recorded.get(id(tensor), stream_name(fqn, prefix)) != stream_name(fqn, prefix):
                manifest.alias(stream_name(fqn, prefix), recorded[id(tensor)])
    return module


def materialize_(module: nn.Module, device, recipe="torch", *, seed, prefix: str = "", callback=None,
                 manifest=None, **options) -> nn.Module:
    """Allocate a meta-device ``module`` on ``device`` (``to_empty``) and initialize it by ``recipe``.

    Only the storage ``to_empty`` allocates is ever written (for a sharded module: each rank's shards),
    never a full host copy. Meta buffers no rule names would be left uninitialized, so they raise
    before anything is allocated; give them a rule (an init call may compute them).
    """
    entries = plan(module, recipe, prefix=prefix, **options)
    missing = [stream for stream, tensor, init, info in entries
               if info.is_buffer and init is None and tensor.device.type == "meta"]
    if missing:
        raise ValueError(f"no rule for the meta buffers {', '.join(missing)}: to_empty would leave them "
                         "uninitialized; add rules for them (e.g. an init call that computes them)")
    module.to_empty(device=device)
    return init_module_(module, recipe, seed=seed, prefix=prefix, callback=callback, manifest=manifest, **options)
