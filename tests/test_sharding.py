"""local_block: the block a DTensor shard holds, checked against torch.chunk applied mesh dim by mesh dim."""

import itertools

import pytest
import torch

dist_tensor = pytest.importorskip("torch.distributed.tensor")
Partial, Replicate, Shard = dist_tensor.Partial, dist_tensor.Replicate, dist_tensor.Shard

from triton_init._sharding import is_dtensor, local_block  # noqa: E402


def _chunked(whole, mesh_shape, coordinate, placements):
    """What DTensor holds: each mesh dim chunks (torch.chunk, empty tail chunks) what the previous left."""
    local = whole
    for size, index, placement in zip(mesh_shape, coordinate, placements, strict=True):
        if placement.is_shard():
            chunks = list(torch.chunk(local, size, dim=placement.dim))
            chunks += [local.narrow(placement.dim, 0, 0)] * (size - len(chunks))
            local = chunks[index]
    return local


CASES = [
    ((7, 5), (2,), [(Shard(0),), (Shard(1),), (Shard(-1),), (Replicate(),)]),
    ((3, 6), (4,), [(Shard(0),), (Shard(1),)]),
    ((5,), (8,), [(Shard(0),)]),
    ((9, 11), (2, 2), [(Shard(0), Shard(1)), (Shard(0), Shard(0)), (Shard(1), Shard(1)), (Replicate(), Shard(0)),
                       (Shard(1), Replicate())]),
    ((10, 4, 3), (3, 2), [(Shard(0), Shard(2)), (Shard(2), Shard(0)), (Shard(0), Shard(0))]),
]


@pytest.mark.parametrize("shape,mesh_shape,placements_list", CASES)
def test_local_block_matches_chunking(shape, mesh_shape, placements_list):
    numel = 1
    for s in shape:
        numel *= s
    whole = torch.arange(numel).reshape(shape)
    for placements in placements_list:
        for coordinate in itertools.product(*(range(n) for n in mesh_shape)):
            expected = _chunked(whole, mesh_shape, coordinate, placements)
            local_shape, offset = local_block(shape, mesh_shape, coordinate, placements)
            assert local_shape == tuple(expected.shape), (placements, coordinate)
            block = whole[tuple(slice(o, o + s) for o, s in zip(offset, local_shape, strict=True))]
            assert torch.equal(block, expected), (placements, coordinate)


def test_placements_without_a_block_raise():
    with pytest.raises(ValueError, match="Partial|placement"):
        local_block((4, 4), (2,), (0,), (Partial(),))
    with pytest.raises(ValueError, match="placements for a mesh"):
        local_block((4, 4), (2, 2), (0, 0), (Shard(0),))


def test_plain_tensors_are_not_dtensors():
    assert not is_dtensor(torch.empty(2))
    assert not is_dtensor(torch.nn.Parameter(torch.empty(2)))


def test_strided_shards_raise():
    from torch.distributed.tensor import placement_types

    strided = getattr(placement_types, "_StridedShard", None)
    if strided is None:
        pytest.skip("no _StridedShard in this torch")
    with pytest.raises(NotImplementedError, match="strided"):
        local_block((8, 4), (2,), (0,), (strided(0, split_factor=2),))
