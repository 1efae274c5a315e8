"""Built-in model shape tables (no downloads) and their parameter-only modules, for ``triton-init init``.

The modules hold parameters with the usual names (torchtitan's Llama, HF's GPT-2 blocks) and no forward:
they exist to be built on the meta device, sharded and initialized.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class ModelShape:
    arch: str  # "llama" or "gpt2"
    vocab: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    max_seq: int = 0  # gpt2's learned positions
    recipe: str = "llama"


MODELS = {
    "nano": ModelShape("llama", vocab=256, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96),
    "tiny": ModelShape("llama", vocab=8192, dim=256, n_layers=4, n_heads=8, n_kv_heads=4, ffn_dim=768),
    "gpt2-small": ModelShape("gpt2", vocab=50257, dim=768, n_layers=12, n_heads=12, n_kv_heads=12,
                             ffn_dim=3072, max_seq=1024, recipe="gpt2"),
    "llama-3-8b": ModelShape("llama", vocab=128256, dim=4096, n_layers=32, n_heads=32, n_kv_heads=8,
                             ffn_dim=14336),
    "llama-3-70b": ModelShape("llama", vocab=128256, dim=8192, n_layers=80, n_heads=64, n_kv_heads=8,
                              ffn_dim=28672),
    "llama-3-405b": ModelShape("llama", vocab=128256, dim=16384, n_layers=126, n_heads=128, n_kv_heads=8,
                               ffn_dim=53248),
}


class _Attention(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        head_dim = s.dim // s.n_heads
        self.wq = nn.Linear(s.dim, s.n_heads * head_dim, bias=False)
        self.wk = nn.Linear(s.dim, s.n_kv_heads * head_dim, bias=False)
        self.wv = nn.Linear(s.dim, s.n_kv_heads * head_dim, bias=False)
        self.wo = nn.Linear(s.n_heads * head_dim, s.dim, bias=False)


class _FeedForward(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.w1 = nn.Linear(s.dim, s.ffn_dim, bias=False)
        self.w2 = nn.Linear(s.ffn_dim, s.dim, bias=False)
        self.w3 = nn.Linear(s.dim, s.ffn_dim, bias=False)


class LlamaBlock(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.attention = _Attention(s)
        self.feed_forward = _FeedForward(s)
        self.attention_norm = nn.RMSNorm(s.dim)
        self.ffn_norm = nn.RMSNorm(s.dim)


class Llama(nn.Module):
    """torchtitan's Llama 3 parameter names and shapes."""

    def __init__(self, s: ModelShape):
        super().__init__()
        self.tok_embeddings = nn.Embedding(s.vocab, s.dim)
        self.layers = nn.ModuleDict({str(k): LlamaBlock(s) for k in range(s.n_layers)})
        self.norm = nn.RMSNorm(s.dim)
        self.output = nn.Linear(s.dim, s.vocab, bias=False)


class _GPT2Attention(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.c_attn = nn.Linear(s.dim, 3 * s.dim)
        self.c_proj = nn.Linear(s.dim, s.dim)


class _GPT2MLP(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.c_fc = nn.Linear(s.dim, s.ffn_dim)
        self.c_proj = nn.Linear(s.ffn_dim, s.dim)


class GPT2Block(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.ln_1 = nn.LayerNorm(s.dim)
        self.attn = _GPT2Attention(s)
        self.ln_2 = nn.LayerNorm(s.dim)
        self.mlp = _GPT2MLP(s)


class GPT2(nn.Module):
    """GPT-2's parameter names (HF's ``transformer.*`` without the prefix); lm_head is tied to wte."""

    def __init__(self, s: ModelShape):
        super().__init__()
        self.wte = nn.Embedding(s.vocab, s.dim)
        self.wpe = nn.Embedding(s.max_seq, s.dim)
        self.h = nn.ModuleList(GPT2Block(s) for _ in range(s.n_layers))
        self.ln_f = nn.LayerNorm(s.dim)


def build(name: str, *, device="meta", dtype=torch.float32) -> nn.Module:
    """The model ``name`` (a key of ``MODELS``) with its parameters on ``device`` (meta by default)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    shape = MODELS[name]
    with torch.device(device):
        model = Llama(shape) if shape.arch == "llama" else GPT2(shape)
    return model.to(dtype)


def parameter_count(name: str) -> int:
    return sum(p.numel() for p in build(name).parameters())
