"""Which block of the logical tensor a shard holds: DTensor placements -> (global_shape, global_offset).

``local_block`` is the pure rule (torch.chunk semantics, mesh dims applied left to right, as DTensor
does); ``dtensor_block`` applies it to a DTensor on this rank. No collective is involved: every rank
computes its own offsets from the mesh shape, its mesh coordinate and the placements. Strided shards
(FSDP2 over tensor parallel on the same dim) are laid out by DTensor itself on one arange per dim.
"""

import torch


def _dtensor_type():
    if not torch.distributed.is_available():
        return None
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch builds without DTensor
        return None
    return DTensor


def is_dtensor(tensor) -> bool:
    if type(tensor) in (torch.Tensor, torch.nn.Parameter):  # the common case: no torch.distributed import
        return False
    dtensor = _dtensor_type()
    return dtensor is not None and isinstance(tensor, dtensor)


def local_block(global_shape, mesh_shape, coordinate, placements) -> tuple[tuple, tuple]:
    """(local shape, global offset) of the shard at ``coordinate`` of a mesh of ``mesh_shape``.

    ``placements`` has one entry per mesh dim: ``Shard(d)`` splits tensor dim d (what is left of it
    after the mesh dims before) into ``mesh_shape[i]`` chunks like ``torch.chunk`` (ceil-sized chunks,
    trailing ranks may get fewer or no rows); ``Replicate()`` leaves it whole. Partial placements hold no
    values of the logical tensor and raise; strided shards raise here (``dtensor_block`` asks DTensor).
    """
    shape = list(global_shape)
    offset = [0] * len(shape)
    if len(placements) != len(mesh_shape) or len(coordinate) != len(mesh_shape):
        raise ValueError(f"{len(placements)} placements for a mesh of shape {tuple(mesh_shape)}")
    for mesh_dim, placement in enumerate(placements):
        if type(placement).__name__ == "_StridedShard":
            raise NotImplementedError(
                f"placement {placement} on mesh dim {mesh_dim}: a strided shard (FSDP2 combined with tensor "
                "parallel on the same tensor dim) has no closed-form block here; dtensor_block asks DTensor")
        if placement.is_replicate():
            continue
        if not placement.is_shard():
            raise ValueError(f"cannot initialize a DTensor with placement {placement} on mesh dim {mesh_dim}: "
                             "only Shard and Replicate placements hold values of the logical tensor")
        dim = placement.dim + len(shape) if placement.dim < 0 else placement.dim
        parts, index = mesh_shape[mesh_dim], coordinate[mesh_dim]
        size = shape[dim]
        chunk = -(-size // parts)
        start = min(index * chunk, size)
        stop = min(start + chunk, size)
        offset[dim] += start
        shape[dim] = stop - start
    return tuple(shape), tuple(offset)


def _is_strided(placement) -> bool:
    return type(placement).__name__ == "_StridedShard"


def _probed_block(tensor) -> tuple[tuple, tuple]:
    """The block of a DTensor with strided shards (FSDP2 over tensor parallel on the same dim), as DTensor
    itself lays it out: each dim's indices come from distributing an arange of that dim alone (no
    communication, memory of one dim). Raises unless every dim's indices are one contiguous run."""
    from torch.distributed.tensor import Replicate, distribute_tensor

    shape, offset = [], []
    ndim = tensor.dim()
    for d in range(ndim):
        size = tensor.shape[d]
        placements = [p if not p.is_replicate() and (p.dim + ndim if p.dim < 0 else p.dim) == d else Replicate()
                      for p in tensor.placements]
        probe = torch.arange(size).reshape([size if k == d else 1 for k in range(ndim)])
        held = distribute_tensor(probe, tensor.device_mesh, placements, src_data_rank=None).to_local()
        held = held.reshape(-1).cpu()
        first = int(held[0]) if held.numel() else 0
        if not torch.equal(held, torch.arange(first, first + held.numel())):
            raise NotImplementedError(f"placements {tuple(tensor.placements)} give this rank the indices "
                                      f"{held.tolist()[:8]}... of dim {d}: not one block of the logical tensor")
        shape.append(held.numel())
        offset.append(first)
    return tuple(shape), tuple(offset)


def dtensor_block(tensor, global_shape=None, global_offset=None):
    """(local tensor, global_shape, global_offset) for a DTensor on this rank.

    If ``global_shape`` is given, the DTensor itself is a block (at ``global_offset``) of that larger
    logical tensor, and the offsets compose.
    """
    mesh = tensor.device_mesh
    local = tensor._local_tensor  # the storage this rank owns; to_local() would add an autograd view
    coordinate = mesh.get_coordinate()
    full_shape = tuple(tensor.shape)
    if coordinate is None:  # this rank is not part of the mesh: it holds nothing
        return local, full_shape, None
    placements = tuple(tensor.placements)
    if any(_is_strided(p) for p in placements):
        shape, offset = _probed_block(tensor)
    else:
        shape, offset = local_block(full_shape, tuple(mesh.shape), tuple(coordinate), placements)
    if tuple(local.shape) != shape:
        raise RuntimeError(f"the DTensor's local tensor has shape {tuple(local.shape)} but its placements "
                           f"{tuple(tensor.placements)} on mesh {tuple(mesh.shape)} give {shape}")
    if global_shape is None:
        if global_offset is not None and any(o != 0 for o in global_offset):
            raise ValueError("global_offset is given without global_shape")
        return local, full_shape, offset
    if global_offset is None:
        global_offset = (0,) * len(full_shape)
    if len(global_offset) != len(offset):
        raise ValueError(f"global_offset has {len(global_offset)} dims but the tensor has {len(offset)}")
    return local, tuple(global_shape), tuple(int(g) + o for g, o in zip(global_offset, offset, strict=True))
