"""DTensor shards on 2 and 4 gloo processes: every rank's local values equal its block of the whole tensor
initialized in one process (exactly, on the same backend).

One spawn per world size runs all the checks, so the suite pays process start-up twice. The expected
block comes from torch itself: ``distribute_tensor(whole, mesh, placements).to_local()``.
"""

import math

import pytest
import torch
import torch.distributed as dist
from _ranks import run_ranks

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]

SEED = 4242


def _functions():
    import triton_init as ti

    fns = [
        ("normal_", lambda t, s: ti.normal_(t, 0.1, 0.5, seed=SEED, stream=s)),
        ("trunc_normal_", lambda t, s: ti.trunc_normal_(t, 0.0, 1.0, -1.5, 2.0, seed=SEED, stream=s)),
        ("uniform_", lambda t, s: ti.uniform_(t, -1.0, 2.0, seed=SEED, stream=s)),
        ("kaiming_uniform_", lambda t, s: ti.kaiming_uniform_(t, a=math.sqrt(5), seed=SEED, stream=s)),
        ("xavier_normal_", lambda t, s: ti.xavier_normal_(t, seed=SEED, stream=s)),
        ("variance_scaling_", lambda t, s: ti.variance_scaling_(t, 2.0, "fan_avg", seed=SEED, stream=s)),
        ("sparse_", lambda t, s: ti.sparse_(t, 0.3, seed=SEED, stream=s)),
        ("eye_", lambda t, s: ti.eye_(t)),
        ("constant_", lambda t, s: ti.constant_(t, 0.75)),
    ]
    return fns


def _distribute(whole, mesh, placements):
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(whole, mesh, placements, src_data_rank=None)  # no communication: local chunks


def _check_placements(mesh, placements, shapes, functions):
    from torch.distributed.tensor import DTensor

    for shape in shapes:
        for name, fn in functions:
            if name in ("sparse_", "eye_") and len(shape) != 2:
                continue
            if len(shape) < 2 and name not in ("normal_", "trunc_normal_", "uniform_", "constant_"):
                continue
            stream = f"{name}{shape}"
            whole = fn(torch.empty(shape), stream)
            sharded = _distribute(torch.full(shape, float("nan")), mesh, placements)
            out = fn(sharded, stream)
            assert isinstance(out, DTensor) and out is sharded, name
            expected = _distribute(whole, mesh, placements).to_local()
            got = sharded.to_local()
            assert got.shape == expected.shape
            torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=False,
                                       msg=lambda m, name=name, shape=shape: f"{name} {shape} {placements}: {m}")


def _check_across_backends(mesh, placements):
    """Kernel shards (interpreter) against the reference's whole tensor: within the format's tolerance."""
    import triton_init as ti

    shape, mean, std = (9, 7), 0.1, 0.5
    whole = ti.normal_(torch.empty(shape), mean, std, seed=SEED, stream="across")
    sharded = _distribute(torch.full(shape, float("nan")), mesh, placements)
    with ti.backend("triton"):
        ti.normal_(sharded, mean, std, seed=SEED, stream="across")
    expected = _distribute(whole, mesh, placements).to_local()
    z = (expected - mean) / std
    # the contract: |dz| <= 2e-5 * max(1, |z|), plus the fp32 rounding of mean + std * z
    bound = 2e-5 * std * z.abs().clamp(min=1.0) + 2 * torch.finfo(torch.float32).eps * expected.abs()
    assert ((sharded.to_local() - expected).abs() <= bound).all()


def _check_block_of_larger_tensor(mesh, placements):
    """A DTensor that is itself a block (global_shape/global_offset) of a larger logical tensor, e.g. the
    query part of a fused QKV weight: the offsets compose."""
    import triton_init as ti

    whole = ti.normal_(torch.empty(9, 6), seed=SEED, stream="qkv")
    sharded = _distribute(torch.full((4, 6), float("nan")), mesh, placements)
    ti.normal_(sharded, seed=SEED, stream="qkv", global_shape=(9, 6), global_offset=(2, 0))
    torch.testing.assert_close(sharded.to_local(), _distribute(whole[2:6], mesh, placements).to_local(),
                               rtol=0, atol=0)


def _check_orthogonal(mesh, placements):
    import triton_init as ti

    for shape in ((9, 6), (5, 12)):
        whole = ti.orthogonal_(torch.empty(shape), gain=1.5, seed=SEED, stream="orth")
        sharded = _distribute(torch.full(shape, float("nan")), mesh, placements)
        ti.orthogonal_(sharded, gain=1.5, seed=SEED, stream="orth")
        torch.testing.assert_close(sharded.to_local(), _distribute(whole, mesh, placements).to_local(),
                                   rtol=0, atol=0)


def _check_fsdp2(mesh, recipe):
    """A small transformer built on meta, sharded by fully_shard, materialized: each rank's shards equal
    the whole model initialized in one process."""
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    from triton_init.models import build
    from triton_init.module import init_module_, materialize_

    model = build("nano")
    for block in model.layers.values():
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    materialize_(model, "cpu", recipe, seed=SEED)
    whole = init_module_(build("nano", device="cpu"), recipe, seed=SEED)
    expected = dict(whole.named_parameters())
    n = 0
    for name, param in model.named_parameters():
        assert isinstance(param, DTensor), name
        local = param.to_local()
        block = _distribute(expected[name].detach(), mesh, param.placements).to_local()
        torch.testing.assert_close(local, block, rtol=0, atol=0, msg=lambda m, name=name: f"{recipe} {name}: {m}")
        n += local.numel()
    total = torch.tensor([n])
    dist.all_reduce(total, group=mesh.get_group())
    assert total.item() == sum(p.numel() for p in whole.parameters())


def _check_fsdp1(recipe):
    """FSDP1's own FlatParameter shard, filled by init_flat_ from the module's segments, unshards to the
    whole model initialized in one process (FSDP1 runs on gloo's CPU tensors in this torch)."""
    import warnings

    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from triton_init.flat import init_flat_, module_segments
    from triton_init.models import build
    from triton_init.module import init_module_, stream_name

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FSDP1's deprecation notice
        model = FSDP(build("nano", device="cpu"), device_id=torch.device("cpu"), use_orig_params=False)
    (flat,) = list(model.parameters())  # this rank's chunk of the padded concatenation
    start = dist.get_rank() * flat.numel()
    with torch.no_grad():
        init_flat_(flat.data, module_segments(build("nano"), recipe, start, start + flat.numel()), seed=SEED)
    whole = dict(init_module_(build("nano", device="cpu"), recipe, seed=SEED).named_parameters())
    with FSDP.summon_full_params(model):
        names = [name for name, _ in model.named_parameters()]
        assert len(names) == len(whole)
        for name, param in model.named_parameters():
            torch.testing.assert_close(param, whole[stream_name(name)], rtol=0, atol=0,
                                       msg=lambda m, name=name: f"FSDP1 {name}: {m}")


def _check_fsdp2_over_tensor_parallel(mesh2):
    """Tensor parallel on "tp", then FSDP2 on "dp": dim 0 of the colwise weight gets a strided shard."""
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    from triton_init.module import init_module_

    def build():
        return torch.nn.Sequential(torch.nn.Linear(8, 10), torch.nn.Linear(10, 6))

    model = build()
    parallelize_module(model, mesh2["tp"], {"0": ColwiseParallel(), "1": RowwiseParallel()})
    fully_shard(model, mesh=mesh2["dp"])
    assert any(type(p).__name__ == "_StridedShard" for p in model[0].weight.placements)
    init_module_(model, "torch", seed=SEED)
    whole = dict(init_module_(build(), "torch", seed=SEED).named_parameters())
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.full_tensor(), whole[name], rtol=0, atol=0,
                                   msg=lambda m, name=name: f"FSDP2+TP {name}: {m}")


def _check_verify_and_regenerate(mesh):
    """FSDP2 shards verify per rank against the manifest without any collective, a changed local element is
    reported by its rank with its logical index, and a shard regenerated from the manifest alone equals the
    original."""
    from unittest import mock

    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    import triton_init as ti
    from triton_init._sharding import dtensor_block
    from triton_init.models import build

    model = build("nano")
    for block in model.layers.values():
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    manifest = ti.Manifest()
    ti.materialize_(model, "cpu", "llama", seed=SEED, manifest=manifest)
    texts = [None] * dist.get_world_size()
    dist.all_gather_object(texts, manifest.dumps())
    assert texts[0] == texts[1]  # the manifest is the logical model's, the same on every rank

    def no_collective(*args, **kwargs):
        raise AssertionError("verify_ must not communicate")

    names = ("all_gather", "all_gather_into_tensor", "all_gather_object", "all_reduce", "broadcast", "gather",
             "reduce_scatter_tensor", "scatter", "send", "recv")
    with mock.patch.multiple(dist, **{n: no_collective for n in names}), \
            mock.patch.multiple(DTensor, full_tensor=no_collective, redistribute=no_collective):
        report = ti.verify_(model, manifest, samples=None)
        sampled = ti.verify_(model, manifest, samples=64, seed=1)
    local = sum(p.to_local().numel() for p in model.parameters())
    assert report.ok and sampled.ok and sum(t.checked for t in report.tensors) == local, report.table()
    total = torch.tensor([local])
    dist.all_reduce(total)
    assert total.item() == sum(p.numel() for p in build("nano").parameters())

    name = "layers.0.attention.wq.weight"
    local = dict(model.named_parameters())[name].to_local()
    kept = local[0, 0].clone()
    if dist.get_rank() == 1:
        with torch.no_grad():
            local[0, 0] += 1.0
    report = ti.verify_(model, manifest, samples=None)
    if dist.get_rank() == 1:
        assert [(t.name, t.first_mismatch["index"]) for t in report.failures] == [(name, 16 * 32)]
    else:
        assert report.ok
    with torch.no_grad():
        local[0, 0] = kept

    for name, param in model.named_parameters():
        lost = _distribute(torch.full(param.shape, float("nan")), mesh, param.placements)
        ti.regenerate_(lost, manifest[name])
        original = param.to_local()
        assert torch.equal(lost.to_local(), original), name
        _, _, offset = dtensor_block(param)
        block = ti.regenerate_(torch.full_like(original, float("nan")), manifest[name], global_offset=offset)
        assert torch.equal(block, original), name


def _worker(rank, world_size):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard

    import triton_init

    functions = _functions()
    mesh = init_device_mesh("cpu", (world_size,))
    uneven = [(7, 5), (3, 6), (7,), (6, 4, 3, 3)]  # (3, 6) leaves a rank empty on 4 ranks
    for placements in ((Shard(0),), (Shard(1),), (Shard(-1),), (Replicate(),)):
        _check_placements(mesh, placements, uneven if placements != (Shard(1),) else uneven[:2] + uneven[3:],
                          functions)
    _check_block_of_larger_tensor(mesh, (Shard(0),))
    _check_block_of_larger_tensor(mesh, (Shard(1),))
    _check_orthogonal(mesh, (Shard(0),))
    _check_orthogonal(mesh, (Shard(1),))
    _check_fsdp2(mesh, "llama")
    if world_size == 2:
        _check_fsdp2(mesh, "torch")
        _check_fsdp1("llama")
        _check_verify_and_regenerate(mesh)
        if not torch.cuda.is_available():  # the kernels through the interpreter, on gloo's CPU tensors
            with triton_init.backend("triton"):
                _check_placements(mesh, (Shard(1),), [(5, 9)], functions[:3])
                _check_fsdp2(mesh, "gpt2")  # FSDP2 shards through the batched segment-table kernel
            _check_across_backends(mesh, (Shard(0),))
    if world_size == 4:
        mesh2 = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
        for placements in ((Shard(0), Shard(1)), (Shard(0), Shard(0)), (Shard(1), Shard(0)),
                           (Replicate(), Shard(1)), (Shard(1), Replicate())):
            _check_placements(mesh2, placements, [(7, 5), (9, 11)], functions)
        _check_orthogonal(mesh2, (Shard(0), Shard(1)))
        _check_fsdp2(mesh2["dp"], "megatron")
        _check_fsdp2_over_tensor_parallel(mesh2)


@pytest.mark.parametrize("world_size", [2, 4])
def test_dtensor_shards_equal_single_process_init(world_size):
    run_ranks(_worker, world_size)
