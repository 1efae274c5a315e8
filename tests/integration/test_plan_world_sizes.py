"""A plan recorded on the meta device (``triton_init.plan``), applied to sharded models on gloo: world sizes 1, 2
and 3 give bit-identical full tensors, for a tied (GPT-2), a padded (BERT) and an encoder-decoder (T5)
transformers model, torchtitan's llama3 (through its own ``parallelize_llama`` at world size 3), litgpt and
OLMo-core, each with FSDP2. One spawn of 3 ranks; world size 2 is a mesh of ranks 0 and 1.
"""

import os
import sys
import types

import pytest
import torch
import torch.distributed as dist
from _ranks import run_ranks
from framework_checks import require

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]
SEED = 5
HERE = os.path.dirname(__file__)


def _hf(model_type, **fields):
    import transformers

    config = transformers.AutoConfig.for_model(model_type, **fields)
    model_class = (transformers.AutoModelForSeq2SeqLM if model_type == "t5" else
                   transformers.AutoModelForMaskedLM if model_type == "bert" else transformers.AutoModelForCausalLM)
    return (lambda: model_class.from_config(config)), (lambda m: m.initialize_weights())


def _torchtitan():
    import torchtitan_models

    return torchtitan_models.llama3_config().build, torchtitan_models.init_weights


def _litgpt():
    import litgpt
    from litgpt import pretrain
    from test_litgpt import N_EMBD, N_LAYER, config

    def init(model):
        pretrain.initialize_weights(types.SimpleNamespace(strategy=None), model, N_LAYER, N_EMBD)

    return (lambda: litgpt.GPT(litgpt.Config(**config()))), init


def _olmo_core():
    from olmo_core.nn.transformer import TransformerConfig

    config = TransformerConfig.llama_like(d_model=64, vocab_size=256, n_layers=2, n_heads=4,
                                          hidden_size_multiple_of=32)

    def init(model):  # init_weights calls to_empty itself and seeds a generator on its device: keep the meta one
        model.to_empty = lambda **_: model
        model.init_weights(device=torch.device("cpu"), max_seq_len=64)
        del model.to_empty

    return (lambda: config.build(init_device="meta")), init


CASES = {
    "gpt2 (tied)": lambda: _hf("gpt2", vocab_size=256, n_positions=64, n_embd=64, n_layer=2, n_head=4),
    "bert (padding row)": lambda: _hf("bert", vocab_size=256, hidden_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                                      pad_token_id=3),
    "t5 (encoder-decoder)": lambda: _hf("t5", vocab_size=256, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                                        num_heads=4, relative_attention_num_buckets=8, decoder_start_token_id=0),
    "litgpt": _litgpt,
    "olmo-core": _olmo_core,
    "torchtitan llama3": _torchtitan,  # last: its parallelize_llama leaves global state behind
}


def _full(model) -> dict:
    return {name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for name, p in model.named_parameters(remove_duplicate=False)}  # a tie under each of its names


def _written(build, plan, shard=None) -> dict:
    from triton_init import apply_plan

    with torch.device("meta"):
        model = build()
    if shard is not None:
        model = shard(model) or model
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    apply_plan(model, plan)
    return _full(model)


def _fully_shard(mesh):
    from torch.distributed.fsdp import fully_shard

    def shard(model):  # each block of the outermost ModuleLists (T5's blocks hold ModuleLists too), then the root
        lists = []
        for name, child in model.named_modules():
            if isinstance(child, torch.nn.ModuleList) and not any(name.startswith(f"{n}.") for n in lists):
                lists.append(name)
                for block in child:
                    fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    return shard


def _parallelize_llama(model):
    """torchtitan's own parallelization: FSDP2 over the 3 ranks."""
    import tempfile

    import torchtitan.distributed.parallel_dims as parallel_dims_module
    from torchtitan.config import CompileConfig, ParallelismConfig, TrainingConfig
    from torchtitan.distributed import ParallelDims
    from torchtitan.models.llama3 import parallelize_llama

    parallel_dims_module.device_type = "cpu"  # torchtitan picks "cuda" when it finds no accelerator
    parallelism = ParallelismConfig(data_parallel_shard_degree=3, spmd_backend="partial_dtensor")
    dims = ParallelDims.from_config(parallelism, 3)
    dims.build_mesh()
    return parallelize_llama(model, parallel_dims=dims, training=TrainingConfig(), parallelism=parallelism,
                             compile_config=CompileConfig(), ac_config=None, dump_folder=tempfile.mkdtemp())


def _worker(rank: int, _ranks: int) -> None:
    sys.path.insert(0, HERE)
    from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

    from triton_init import record_plan

    meshes = {2: DeviceMesh("cpu", [0, 1]), 3: init_device_mesh("cpu", (3,))}
    for what, case in CASES.items():
        print(f"rank {rank}: {what}", flush=True)
        build, init = case()
        with torch.device("meta"):
            model = build()
        plan = record_plan(model, init, seed=SEED)
        reference = _written(build, plan)
        assert not any(t.isnan().any() for t in reference.values()), what
        if what.startswith("t5"):  # the init FSDP2 made transformers skip: std (d_model * d_kv)^-0.5, not 1
            std = float(reference["encoder.block.0.layer.0.SelfAttention.q.weight"].std())
            assert abs(std / (64 * 16) ** -0.5 - 1) < 0.1, std
        for world_size, mesh in meshes.items():
            if rank >= world_size:
                continue
            shard = _parallelize_llama if what.startswith("torchtitan") and world_size == 3 else \
                _fully_shard(mesh)
            got = _written(build, plan, shard)
            assert got.keys() == reference.keys(), what
            for name, value in reference.items():
                assert torch.equal(got[name], value), f"{what} world size {world_size}: {name}"


def test_plan_gives_the_same_tensors_for_world_sizes_1_2_3():
    for module, package in (("transformers", "transformers 5.24"), ("torchtitan", "torchtitan 0.3.0"),
                            ("litgpt", "litgpt 0.5.13"), ("olmo_core", "ai2-olmo-core 3.0.0")):
        require(module, package)
    run_ranks(_worker, 3)
