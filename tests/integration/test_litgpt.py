"""litgpt 0.5.13: pretraining's ``initialize_weights`` (``reset_parameters`` bound to ``normal_`` partials) and
``GPT._init_weights`` with LoRA (``kaiming_uniform_``) under intercept. litgpt draws no truncated normal
anywhere, so (c) covers normal_, kaiming_uniform_ and the constants."""

import math
import types

from framework_checks import check_framework, require

litgpt = require("litgpt", "litgpt 0.5.13")

from litgpt import lora, pretrain  # noqa: E402

N_EMBD, N_LAYER = 64, 2


def config(**extra):
    return dict(name="tiny", block_size=64, vocab_size=256, padded_vocab_size=256, n_layer=N_LAYER, n_embd=N_EMBD,
                n_head=4, n_query_groups=2, rotary_percentage=1.0, parallel_residual=False, bias=False,
                norm_class_name="RMSNorm", mlp_class_name="LLaMAMLP", intermediate_size=128, **extra)


def gpt():
    return litgpt.GPT(litgpt.Config(**config()))


def lora_gpt():
    return lora.GPT(lora.Config(**config(lora_r=4, lora_alpha=8, lora_query=True, lora_value=True)))


def pretrain_init(model):
    pretrain.initialize_weights(types.SimpleNamespace(strategy=None), model, N_LAYER, N_EMBD)


def init_weights_and_lora(model):
    model.apply(model._init_weights)
    model.reset_parameters()  # the rope cache
    for module in model.modules():
        if isinstance(module, lora.LoRALayer) and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    for module in model.modules():
        if type(module).__name__ == "RMSNorm":
            module.reset_parameters()


def test_pretrain_initialize_weights():
    std = math.sqrt(2.0 / 5 / N_EMBD)
    _, kinds = check_framework(gpt, pretrain_init, [
        ("transformer.wte.weight", "normal_", {"mean": 0.0, "std": std}),
        ("transformer.h.0.attn.qkv.weight", "normal_", {"mean": 0.0, "std": std}),
        ("transformer.h.1.mlp.proj.weight", "normal_", {"mean": 0.0, "std": 1 / math.sqrt(N_EMBD) / N_LAYER}),
        ("transformer.ln_f.weight", "ones_", {}),
    ])
    assert {"normal_", "constant_"} <= kinds


def test_lora_init_weights():
    check_framework(lora_gpt, init_weights_and_lora, [
        ("lm_head.linear.weight", "normal_", {"mean": 0.0, "std": 0.02}),
        ("transformer.h.0.attn.qkv.lora_A", "kaiming_uniform_",
         {"a": math.sqrt(5), "mode": "fan_in", "nonlinearity": "leaky_relu"}),
        ("transformer.h.0.attn.qkv.lora_B", "zeros_", {}),
    ])
