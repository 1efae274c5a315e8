"""Shard invariance on real models, on gloo: under intercept, each framework's own init of a sharded model
gives bit-identical full tensors to the same model initialized in one process.

torchtitan's llama3 (the debug model's builders, tiny) through torchtitan's own ``parallelize_llama``: FSDP2 on
2 ranks, tensor parallel on 2 ranks, FSDP2 x TP on 4 ranks; transformers' Llama with FSDP2 on 2 ranks. One
spawn per world size; every rank also initializes the unsharded model, the reference.
"""

import tempfile

import pytest
import torch
import torch.distributed as dist
from _ranks import run_ranks
from framework_checks import require

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]
SEED = 777


def _full(model) -> dict:
    return {name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for name, p in model.named_parameters()}


def _poison(model) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))


def _assert_equal(got: dict, expected: dict, what: str) -> None:
    assert got.keys() == expected.keys(), what
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=0, msg=lambda m, name=name: f"{what} {name}: {m}")


def _torchtitan(world_size: int, dp: int, tp: int) -> None:
    import torchtitan.distributed.parallel_dims as parallel_dims_module
    import torchtitan_models
    from torchtitan.config import CompileConfig, ParallelismConfig, TrainingConfig
    from torchtitan.distributed import ParallelDims
    from torchtitan.models.llama3 import parallelize_llama
    from torchtitan.models.llama3.sharding import set_llama3_sharding_config

    from triton_init import intercept

    def initialized(model):
        model.to_empty(device="cpu")
        _poison(model)
        with intercept(model, seed=SEED) as ctx:
            torchtitan_models.init_weights(model)
        assert not ctx.left_to_torch
        return _full(model)

    reference = initialized(torchtitan_models.llama3_config().build())
    parallel_dims_module.device_type = "cpu"  # torchtitan picks "cuda" when it finds no accelerator
    parallelism = ParallelismConfig(data_parallel_shard_degree=dp, tensor_parallel_degree=tp,
                                    spmd_backend="partial_dtensor")
    config = torchtitan_models.llama3_config()
    set_llama3_sharding_config(config, enable_sp=parallelism.enable_sequence_parallel)
    dims = ParallelDims.from_config(parallelism, world_size)
    dims.build_mesh()
    with torch.device("meta"):
        model = config.build()
    model = parallelize_llama(model, parallel_dims=dims, training=TrainingConfig(), parallelism=parallelism,
                              compile_config=CompileConfig(), ac_config=None, dump_folder=tempfile.mkdtemp())
    placements = {str(p.placements) for p in model.parameters()}
    assert any("Shard" in p for p in placements), placements
    _assert_equal(initialized(model), reference, f"torchtitan llama3 dp={dp} tp={tp}")


def _transformers_fsdp2(world_size: int) -> None:
    from test_transformers import llama
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from triton_init import intercept

    def initialized(model):
        model.to_empty(device="cpu")
        _poison(model)
        with torch.no_grad(), intercept(model, seed=SEED) as ctx:
            model.initialize_weights()
        assert not ctx.left_to_torch
        return _full(model)

    # No padding row: transformers zeroes it through ``weight[padding_idx]``, which on a sharded DTensor is a
    # gathered copy, so the row of the parameter is never written, with or without intercept.
    with torch.device("meta"):
        unsharded, model = llama(pad_token_id=None), llama(pad_token_id=None)
    reference = initialized(unsharded)
    mesh = init_device_mesh("cpu", (world_size,))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    _assert_equal(initialized(model), reference, "transformers Llama FSDP2")


def _worker(rank: int, world_size: int) -> None:
    if world_size == 2:
        _torchtitan(2, dp=2, tp=1)
        _torchtitan(2, dp=1, tp=2)
        _transformers_fsdp2(2)
    else:
        _torchtitan(4, dp=2, tp=2)


@pytest.mark.parametrize("world_size", [2, 4])
def test_sharded_init_equals_single_process(world_size):
    require("torchtitan", "torchtitan 0.3.0")
    require("transformers", "transformers 5.24")
    run_ranks(_worker, world_size)
