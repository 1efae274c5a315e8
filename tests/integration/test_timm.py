"""timm 1.0.31: a ViT's ``init_weights`` in timm's default and "jax" modes (its own truncated normals,
``lecun_normal_`` through ``trunc_normal_tf_``, xavier, ``reset_parameters``) under intercept.

timm imports torchvision, whose PyPI wheel does not load with torch's CPU build: when it cannot be imported,
``torchvision_stub`` stands in for it (model building and init never use it)."""

import math

import torchvision_stub
from framework_checks import REQUIRED_KINDS, check_framework, require

STUBBED = torchvision_stub.install()
timm = require("timm", "timm 1.0.31")

DIM = 32


def vit():
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                             embed_dim=DIM, num_heads=2, num_classes=10)


def trunc(std, a=-2.0, b=2.0):
    return {"mean": 0.0, "std": std, "a": a, "b": b}


def test_vit_default_init():
    _, kinds = check_framework(vit, lambda model: model.init_weights(), [
        ("pos_embed", "trunc_normal_", trunc(0.02)),
        ("blocks.0.attn.qkv.weight", "trunc_normal_", trunc(0.02)),
        ("cls_token", "normal_", {"mean": 0.0, "std": 1e-6}),
        ("blocks.1.norm1.weight", "ones_", {}),
        ("blocks.1.mlp.fc2.bias", "zeros_", {}),
    ])
    assert REQUIRED_KINDS <= kinds


def test_vit_jax_init():
    fan_in = 3 * 8 * 8
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # lecun_normal_: trunc_normal_tf_ cut at 2 std
    check_framework(vit, lambda model: model.init_weights("jax"), [
        ("patch_embed.proj.weight", "trunc_normal_", trunc(std, -2 * std, 2 * std)),
        ("blocks.0.mlp.fc1.weight", "xavier_uniform_", {"gain": 1.0}),
        ("head.weight", "zeros_", {}),
    ])
