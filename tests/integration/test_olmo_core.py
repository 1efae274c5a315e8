"""OLMo-core 3.0: ``Transformer.init_weights`` (its own ``to_empty``, ``reset_parameters``, then the init
method's ``nn.init`` calls with a ``torch.Generator``) under intercept, for the "llama" and "normal" init
methods; the generator is ignored in favour of the intercept's seed."""

import dataclasses

import torch
from framework_checks import REQUIRED_KINDS, check_framework, require, tensors

require("olmo_core", "ai2-olmo-core 3.0.0")

from olmo_core.nn.transformer import InitMethod, TransformerConfig  # noqa: E402

D_MODEL, N_LAYERS = 64, 2


def poisoning(model):
    """``model`` whose ``to_empty`` (``init_weights`` allocates itself) NaN-fills what it allocates."""
    to_empty = model.to_empty

    def to_empty_poisoned(*args, **kwargs):
        out = to_empty(*args, **kwargs)
        with torch.no_grad():
            for t in tensors(model).values():
                t.fill_(float("nan"))
        return out

    model.to_empty = to_empty_poisoned
    return model


def builder(init_method):
    def build():
        config = TransformerConfig.llama_like(d_model=D_MODEL, vocab_size=256, n_layers=N_LAYERS, n_heads=4,
                                              hidden_size_multiple_of=32)
        return poisoning(dataclasses.replace(config, init_method=init_method).build(init_device="meta"))
    return build


def init_weights(model):
    model.init_weights(device=torch.device("cpu"), max_seq_len=64)


def trunc(std):
    return {"mean": 0.0, "std": std, "a": -3 * std, "b": 3 * std}


def test_llama_init():
    depth_std = 0.02 / (2 * N_LAYERS) ** 0.5
    _, kinds = check_framework(builder(InitMethod.llama), init_weights, [
        ("embeddings.weight", "normal_", {"mean": 0.0, "std": 1.0}),
        ("blocks.0.attention.w_q.weight", "trunc_normal_", trunc(0.02)),
        ("blocks.1.attention.w_out.weight", "trunc_normal_", trunc(depth_std)),
        ("lm_head.w_out.weight", "trunc_normal_", trunc(D_MODEL ** -0.5)),
        ("blocks.0.feed_forward_norm.weight", "ones_", {}),
    ])
    assert REQUIRED_KINDS <= kinds


def test_normal_init():
    check_framework(builder(InitMethod.normal), init_weights, [
        ("embeddings.weight", "trunc_normal_", trunc(0.02)),
        ("blocks.1.feed_forward.w2.weight", "trunc_normal_", trunc(0.02)),
    ])
