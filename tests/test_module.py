"""init_module_, materialize_ and the recipes: per-parameter streams, torch's default bounds, meta devices."""

import math

import pytest
import torch
import torch.nn as nn

import triton_init
from triton_init import recipes
from triton_init._spec import Init
from triton_init.models import build
from triton_init.module import init_module_, materialize_, plan, stream_name

SEED = 99


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16, padding_idx=3)
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(16, 300)
        self.ln = nn.LayerNorm(16)
        self.rms = nn.RMSNorm(16)
        self.bn = nn.BatchNorm1d(16)


def _bound(fan_in):
    return 1.0 / math.sqrt(fan_in)


def test_torch_recipe_has_reset_parameters_distributions():
    torch.manual_seed(0)
    theirs = Net()  # torch's reset_parameters ran in the constructors
    ours = init_module_(Net(), "torch", seed=SEED)
    for name, p in ours.named_parameters():
        assert p.shape == dict(theirs.named_parameters())[name].shape
    checks = {"fc.weight": _bound(16), "fc.bias": _bound(16), "conv.weight": _bound(27), "conv.bias": _bound(27)}
    for name, bound in checks.items():
        mine, ref = dict(ours.named_parameters())[name].detach(), dict(theirs.named_parameters())[name].detach()
        assert mine.abs().max() <= bound and ref.abs().max() <= bound
        assert mine.abs().max() > 0.8 * bound
        if mine.numel() > 1000:
            assert abs(mine.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    emb = ours.emb.weight.detach()
    assert (emb[3] == 0).all() and abs(emb[torch.arange(50) != 3].std().item() - 1.0) < 0.1
    for module in (ours.ln, ours.rms, ours.bn):
        assert (module.weight == 1).all()
    assert (ours.ln.bias == 0).all() and (ours.bn.bias == 0).all()
    assert (ours.bn.running_mean == 0).all() and (ours.bn.running_var == 1).all()


def test_values_are_the_init_on_the_fqn_stream():
    model = init_module_(Net(), "torch", seed=SEED)
    expected = Init.uniform(-_bound(16), _bound(16)).fill_(torch.empty(300, 16), seed=SEED, stream="fc.weight")
    torch.testing.assert_close(model.fc.weight.detach(), expected, rtol=0, atol=0)


def test_materialize_meta_equals_eager_and_order_does_not_matter():
    eager = init_module_(build("nano", device="cpu"), "llama", seed=SEED)
    meta = build("nano")
    assert all(p.is_meta for p in meta.parameters())
    materialize_(meta, "cpu", "llama", seed=SEED)
    for (name, a), (_, b) in zip(eager.named_parameters(), meta.named_parameters(), strict=True):
        assert b.device.type == "cpu"
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # one block alone (a pipeline stage), given its prefix and the model's depth, gets the same values
    block = init_module_(build("nano", device="cpu").layers["1"], "llama", seed=SEED, prefix="layers.1.",
                         n_layers=2)
    for name, p in block.named_parameters():
        torch.testing.assert_close(p, dict(eager.named_parameters())[f"layers.1.{name}"], rtol=0, atol=0)


def test_wrapper_names_do_not_change_streams():
    assert stream_name("_orig_mod.layers.0._checkpoint_wrapped_module.attention.wq.weight") == \
        "layers.0.attention.wq.weight"

    class Compiled(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    wrapped = init_module_(Compiled(build("nano", device="cpu")), "llama", seed=SEED)
    plain = init_module_(build("nano", device="cpu"), "llama", seed=SEED)
    for (_, a), (_, b) in zip(wrapped.named_parameters(), plain.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_llama_megatron_gpt2_rules():
    model = build("nano")
    inits = {stream: init for stream, _, init, _ in plan(model, "llama")}
    assert inits["tok_embeddings.weight"] == Init.normal(0.0, 1.0)
    assert inits["layers.0.attention.wq.weight"] == Init.trunc_normal(0.0, 0.02)
    assert inits["layers.0.attention.wo.weight"] == Init.trunc_normal(0.0, 0.02 / math.sqrt(2))
    assert inits["layers.1.feed_forward.w3.weight"] == Init.trunc_normal(0.0, 0.02 / math.sqrt(4))
    assert inits["layers.1.feed_forward.w1.weight"] == Init.trunc_normal(0.0, 0.02)
    std = 32 ** -0.5
    assert inits["output.weight"] == Init.trunc_normal(0.0, std, -3 * std, 3 * std)
    assert inits["norm.weight"] == Init.ones()
    flat_depth = {s: i for s, _, i, _ in plan(model, "llama", depth_init=False)}
    assert flat_depth["layers.0.attention.wo.weight"] == Init.trunc_normal(0.0, 0.02 / math.sqrt(4))

    meg = {s: i for s, _, i, _ in plan(model, "megatron", sigma=0.01)}
    assert meg["layers.1.attention.wo.weight"] == Init.normal(0.0, 0.01 / math.sqrt(4))
    assert meg["layers.1.feed_forward.w3.weight"] == Init.normal(0.0, 0.01)
    assert meg["tok_embeddings.weight"] == Init.normal(0.0, 0.01)

    gpt = {s: i for s, _, i, _ in plan(build("gpt2-small"), "gpt2")}
    assert gpt["h.3.mlp.c_proj.weight"] == Init.normal(0.0, 0.02 / math.sqrt(24))
    assert gpt["h.3.attn.c_attn.weight"] == Init.normal(0.0, 0.02)
    assert gpt["h.3.attn.c_attn.bias"] == Init.zeros()
    assert gpt["ln_f.weight"] == Init.ones() and gpt["wpe.weight"] == Init.normal(0.0, 0.02)


def test_user_rule_tables_and_overrides():
    calls = []

    def custom(tensor, *, seed, stream):
        calls.append(stream)
        return triton_init.normal_(tensor, 0.0, 3.0, seed=seed, stream=stream)

    rules = {"*.bias": Init.constant(0.5), "fc.weight": custom, "*": Init.zeros()}
    model = init_module_(Net(), rules, seed=SEED)
    assert (model.fc.bias == 0.5).all() and (model.conv.weight == 0).all() and calls == ["fc.weight"]
    assert model.fc.weight.std() > 1.0
    recipe = recipes.get("torch").extend([("fc.*", Init.ones())])
    model = init_module_(Net(), recipe, seed=SEED)
    assert (model.fc.weight == 1).all() and (model.fc.bias == 1).all() and (model.ln.weight == 1).all()
    deep = {s: i for s, _, i, _ in plan(build("nano"), recipes.get("megatron"), n_layers=8)}
    assert deep["layers.0.attention.wo.weight"] == Init.normal(0.0, 0.02 / math.sqrt(16))
    with pytest.raises(TypeError, match="options"):
        plan(build("nano"), recipes.get("llama"), depth_init=False)


def test_unmatched_parameters_and_meta_buffers_raise():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.scale = nn.Parameter(torch.ones(3))

    with pytest.raises(ValueError, match="scale"):
        init_module_(Odd(), "torch", seed=1)
    with pytest.raises(ValueError, match="unknown recipe"):
        init_module_(Odd(), "nope", seed=1)

    with torch.device("meta"):
        m = nn.Linear(3, 3)
        m.register_buffer("freqs", torch.empty(4))
    with pytest.raises(ValueError, match="freqs"):
        materialize_(m, "cpu", "torch", seed=1)
    assert m.weight.is_meta  # nothing was allocated
    materialize_(m, "cpu", recipes.get("torch").extend([recipes.Rule("freqs", Init.ones(), buffers=True)]), seed=1)
    assert (m.freqs == 1).all()


def test_tied_weights_are_initialized_once_under_the_first_name():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_embeddings = nn.Embedding(10, 4)
            self.output = nn.Linear(4, 10, bias=False)
            self.output.weight = self.tok_embeddings.weight

    model = init_module_(Tied(), "llama", seed=SEED)
    expected = Init.normal().fill_(torch.empty(10, 4), seed=SEED, stream="tok_embeddings.weight")
    torch.testing.assert_close(model.output.weight.detach(), expected, rtol=0, atol=0)


def test_torch_recipe_covers_attention_rnn_and_bilinear():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64)
    lstm, bilinear = nn.LSTM(8, 16), nn.Bilinear(5, 7, 3)
    for module in (layer, lstm, bilinear):
        init_module_(module, "torch", seed=SEED)
    attn = layer.self_attn
    assert attn.in_proj_weight.abs().max() <= math.sqrt(6 / (32 + 96))
    assert attn.in_proj_weight.abs().max() > 0.9 * math.sqrt(6 / (32 + 96))
    assert (attn.in_proj_bias == 0).all() and (attn.out_proj.bias == 0).all()
    assert attn.out_proj.weight.abs().max() <= _bound(32) and layer.linear1.bias.abs().max() <= _bound(32)
    for p in lstm.parameters():
        assert p.abs().max() <= 0.25 and p.abs().max() > 0.2
    for p in bilinear.parameters():
        assert p.abs().max() <= _bound(5)
