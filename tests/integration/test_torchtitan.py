"""torchtitan 0.3: ``init_weights`` of llama3 (fused QKV drawn into temporaries, ``partial(trunc_normal_)``
bound at import, depth-scaled std) and deepseek_v3 (MLA, MoE experts and router) under intercept."""

from framework_checks import REQUIRED_KINDS, check_framework, require

require("torchtitan", "torchtitan 0.3.0")

import torchtitan_models as models  # noqa: E402


def trunc(std, a=-2.0, b=2.0):
    return {"mean": 0.0, "std": std, "a": a, "b": b}


def test_llama3():
    config = models.llama3_config()
    s = 64 ** -0.5
    ctx, kinds = check_framework(config.build, models.init_weights, [
        ("tok_embeddings.weight", "normal_", {"mean": 0.0, "std": 1.0}),
        ("layers.0.feed_forward.w1.weight", "trunc_normal_", trunc(0.02)),
        ("layers.1.attention.wo.weight", "trunc_normal_", trunc(0.02 / 4 ** 0.5)),
        ("layers.0.attention.qkv_linear.wqkv.weight", "trunc_normal_", trunc(0.02)),  # served from its temporaries
        ("lm_head.weight", "trunc_normal_", trunc(s, -3 * s, 3 * s)),
        ("norm.weight", "ones_", {}),
    ])
    assert REQUIRED_KINDS <= kinds
    assert [r.via for r in ctx.log if r.stream.endswith("wqkv.weight")] == ["copy", "copy"]


def test_deepseek_v3():
    config = models.deepseek_v3_config()
    _, kinds = check_framework(config.build, models.init_weights, [
        ("tok_embeddings.weight", "normal_", {"mean": 0.0, "std": 1.0}),
        ("layers.0.attention.wkv_b.weight", "trunc_normal_", trunc(0.02)),
        ("layers.1.moe.routed_experts.inner_experts.w2_EDF", "trunc_normal_", trunc(0.02 / 4 ** 0.5)),
        ("layers.1.moe.router.gate.weight", "trunc_normal_", trunc(0.02 / 4 ** 0.5)),
        ("layers.1.attention.kv_norm.weight", "ones_", {}),
    ], fixed=("layers.1.moe.expert_bias_E", "layers.1.moe.tokens_per_expert_E"))
    assert REQUIRED_KINDS <= kinds
