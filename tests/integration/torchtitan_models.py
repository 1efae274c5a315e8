"""Tiny torchtitan models: the llama3 and deepseek_v3 "debugmodel" flavors' own builders, scaled down so
that the checks and the multi-process shard tests stay within a few seconds on a CPU."""

import dataclasses

import torch


def _scaled(config, vocab_size, dim, output_init):
    from torchtitan.models.common import Embedding, Linear, RMSNorm

    return dataclasses.replace(
        config, vocab_size=vocab_size, dim=dim,
        tok_embeddings=Embedding.Config(num_embeddings=vocab_size, embedding_dim=dim,
                                        param_init=config.tok_embeddings.param_init),
        norm=RMSNorm.Config(normalized_shape=dim, param_init=config.norm.param_init),
        lm_head=Linear.Config(in_features=dim, out_features=vocab_size, param_init=output_init(dim)))


def llama3_config(n_layers=2, dim=64, n_heads=4, n_kv_heads=2, vocab_size=256):
    """llama3's debugmodel (fused QKV, depth-scaled init, trunc_normal output layer) at this size."""
    from torchtitan.models import llama3
    from torchtitan.models.common import ComplexRoPE

    config = llama3.llama3_configs["debugmodel"](attn_backend="flex")
    layers = llama3._build_llama3_layers(
        fuse_qkv=True, n_layers=n_layers, dim=dim, n_heads=n_heads, n_kv_heads=n_kv_heads, hidden_dim=4 * dim,
        rope=ComplexRoPE.Config(dim=dim // n_heads, max_seq_len=256, theta=500000, scaling="llama"),
        attn_backend="flex")
    return dataclasses.replace(_scaled(config, vocab_size, dim, llama3._output_linear_init), layers=layers)


def deepseek_v3_config(n_layers=2, dim=64, vocab_size=256):
    """deepseek_v3's debugmodel (MLA attention, a dense layer then MoE layers with shared experts)."""
    from torchtitan.models import deepseek_v3
    from torchtitan.models.common import ComplexRoPE

    config = deepseek_v3.deepseekv3_configs["debugmodel"](attn_backend="flex", moe_comm_backend="standard")
    layers = deepseek_v3._build_dsv3_layers(
        n_layers=n_layers, n_dense_layers=1, dim=dim, n_heads=4, q_lora_rank=0, kv_lora_rank=32,
        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, mscale=0.70, dense_hidden_dim=128,
        moe_hidden_dim=32, num_experts=4, num_shared_experts=1, router_top_k=2, router_score_func="softmax",
        attn_backend="flex", moe_comm_backend="standard", non_blocking_capacity_factor=None,
        rope=ComplexRoPE.Config(dim=8, max_seq_len=256, theta=10000.0, scaling="yarn", rope_factor=40.0,
                                beta_fast=32.0, beta_slow=1.0, original_seq_len=64))
    return dataclasses.replace(_scaled(config, vocab_size, dim, deepseek_v3._output_linear_init), layers=layers)


def init_weights(model):
    """What torchtitan's trainer runs after ``to_empty``."""
    with torch.no_grad():
        model.init_weights(buffer_device=None)
