"""megatron-core 0.19.2: a GPTModel built inside ``intercept(None, ...)`` and attached. Megatron initializes
each parameter in its layer's constructor (``_initialize_affine_weight_cpu``: a full fp32 master weight drawn
by the config's ``init_method`` partial, split and copied in), before a model exists, so the intercept serves
those writes as temporaries and re-serves each parameter on its stream when the model is attached.

megatron-core's wheel is cp312-only: ``bash tests/integration/install.sh --megatron`` builds its sdist.
"""

import os
import socket

import pytest
import torch
import torch.distributed as dist
from framework_checks import check_framework, require

require("megatron.core", "megatron-core 0.19.2",
        "bash tests/integration/install.sh --megatron builds it from its sdist (its wheel is cp312-only)")

STD = 0.02
N_LAYERS = 2


@pytest.fixture(scope="module")
def model_parallel():
    from megatron.core import parallel_state

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=0, world_size=1)
    parallel_state.initialize_model_parallel(1, 1)
    yield
    parallel_state.destroy_model_parallel()
    dist.destroy_process_group()


def gpt():
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import TransformerConfig

    config = TransformerConfig(num_layers=N_LAYERS, hidden_size=64, num_attention_heads=4, init_method_std=STD,
                               use_cpu_initialization=True)
    return GPTModel(config=config, transformer_layer_spec=get_gpt_layer_local_spec(), vocab_size=256,
                    max_sequence_length=64)


@pytest.mark.filterwarnings("ignore")
def test_gpt_model_constructors(model_parallel):
    _, kinds = check_framework(gpt, None, [
        ("embedding.word_embeddings.weight", "normal_", {"mean": 0.0, "std": STD}),
        ("decoder.layers.0.self_attention.linear_qkv.weight", "normal_", {"mean": 0.0, "std": STD}),
        ("decoder.layers.1.mlp.linear_fc2.weight", "normal_", {"mean": 0.0, "std": STD / (2 * N_LAYERS) ** 0.5}),
        ("decoder.final_layernorm.weight", "ones_", {}),
    ])
    assert {"normal_", "constant_"} <= kinds
    assert torch.distributed.is_initialized()
