"""transformers 5: ``initialize_weights`` (its own table of torch's functions, ``guard_torch_init_functions``,
the ``padding_idx`` row zeroed through a view) under intercept, on a tiny Llama and a tiny ViT."""

from framework_checks import REQUIRED_KINDS, check_framework, require

from triton_init.manifest import Region

transformers = require("transformers", "transformers 5.24")

STD = 0.02


def llama(pad_token_id=3):
    config = transformers.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      pad_token_id=pad_token_id, initializer_range=STD, tie_word_embeddings=False)
    return transformers.LlamaForCausalLM(config)


def vit():
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                    image_size=16, patch_size=4, initializer_range=STD)
    return transformers.ViTModel(config, add_pooling_layer=False)


def initialize(model):
    model.initialize_weights()


def test_llama_and_vit():
    ctx, kinds = check_framework(llama, initialize, [
        ("model.layers.0.self_attn.q_proj.weight", "normal_", {"mean": 0.0, "std": STD}),
        ("model.layers.1.mlp.down_proj.weight", "normal_", {"mean": 0.0, "std": STD}),
        ("lm_head.weight", "normal_", {"mean": 0.0, "std": STD}),
        ("model.norm.weight", "ones_", {}),
        ("model.layers.0.input_layernorm.weight", "ones_", {}),
    ], fixed=("model.rotary_emb.inv_freq", "model.rotary_emb.original_inv_freq"))
    padding = [r for r in ctx.log if r.stream == "model.embed_tokens.weight"]
    assert [(r.function, r.args) for r in padding] == [("normal_", {"mean": 0.0, "std": STD}),
                                                       ("constant_", {"val": 0.0})]
    assert padding[1].region == Region(3 * 32, (32,), (1,))  # row 3
    _, vit_kinds = check_framework(vit, initialize, [
        ("embeddings.cls_token", "trunc_normal_", {"mean": 0.0, "std": STD}),
        ("embeddings.position_embeddings", "trunc_normal_", {"mean": 0.0, "std": STD}),
        ("embeddings.patch_embeddings.projection.weight", "normal_", {"mean": 0.0, "std": STD}),
        ("layers.0.layernorm_before.weight", "ones_", {}),
        ("layers.0.attention.q_proj.bias", "zeros_", {}),
    ])
    assert REQUIRED_KINDS <= kinds | vit_kinds
