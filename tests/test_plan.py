"""triton_init.plan on plain torch modules: a framework-style init recorded on the meta device and applied after
``to_empty`` gives the values the same init gives under intercept on the materialized model, for whole tensors,
a padding row, a tied weight and a buffer copied from a real tensor; a plan that does not fit writes nothing.
(Sharded models, world sizes 1 to 3 on gloo: tests/integration/test_plan_world_sizes.py.)"""

import math

import pytest
import torch
import torch.nn as nn

import triton_init
from triton_init import apply_plan, intercept, record_plan

SEED = 99


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(13, 8, padding_idx=2)
        self.proj = nn.Linear(8, 8)
        self.head = nn.Linear(8, 13, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("freqs", torch.empty(4))


def framework_init(model):
    """What a framework's init does: whole-tensor inits, a padding row, a scaled init, a computed buffer."""
    with torch.no_grad():
        nn.init.normal_(model.embed.weight, std=0.02)
        model.embed.weight[model.embed.padding_idx].zero_()
        nn.init.kaiming_uniform_(model.proj.weight, a=math.sqrt(5))
        nn.init.normal_(model.proj.weight, std=0.5)  # overwrites the kaiming init: the plan keeps this one
        model.proj.bias.zero_()
        model.freqs.copy_(1.0 / 10000 ** (torch.arange(4) / 4))


def meta_model():
    with torch.device("meta"):
        return Tied()


def served_on_a_real_model():
    model = Tied()
    with intercept(model, seed=SEED):
        framework_init(model)
    return model


def test_plan_applied_after_to_empty_equals_intercept_on_the_real_model():
    model = meta_model()
    plan = record_plan(model, framework_init, seed=SEED)
    assert plan.manifest.aliases == {"head.weight": "embed.weight"}
    assert [w.fn for w in plan.manifest["proj.weight"].writes] == ["normal_"]  # from the last whole write on
    assert [w.region is not None for w in plan.manifest["embed.weight"].writes] == [False, True]
    model.to_empty(device="cpu")  # unties head.weight from embed.weight
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            t.fill_(float("nan"))
    assert model.head.weight is not model.embed.weight
    assert apply_plan(model, plan) == []
    expected = served_on_a_real_model()
    for name, value in expected.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert torch.equal(model.head.weight, model.embed.weight)  # each name of the tie gets its first name's values
    assert float(model.embed.weight.detach()[2].abs().sum()) == 0.0
    assert triton_init.verify_(model, plan.manifest).ok


def test_plan_seed_and_dtype():
    plan = record_plan(meta_model(), framework_init, seed=SEED)
    other = record_plan(meta_model(), framework_init, seed=SEED + 1)
    a, b = meta_model().to_empty(device="cpu"), meta_model().to_empty(device="cpu")
    apply_plan(a, plan)
    apply_plan(b, other)
    assert not torch.equal(a.proj.weight, b.proj.weight)
    half = meta_model().to_empty(device="cpu").to(torch.bfloat16)
    apply_plan(half, plan)  # the tensor's own dtype: the same init's values rounded to bf16
    assert torch.equal(half.proj.weight, triton_init.normal_(torch.empty(8, 8, dtype=torch.bfloat16), std=0.5,
                                                             seed=SEED, stream="proj.weight"))


def test_buffers_the_plan_has_no_values_for_are_returned():
    def init_without_buffer(model):
        with torch.no_grad():
            nn.init.normal_(model.embed.weight)
            nn.init.normal_(model.proj.weight)
            nn.init.zeros_(model.proj.bias)
    model = meta_model()
    plan = record_plan(model, init_without_buffer, seed=SEED)
    assert apply_plan(model.to_empty(device="cpu"), plan) == ["freqs"]


def test_a_plan_that_does_not_fit_writes_nothing():
    plan = record_plan(meta_model(), lambda m: nn.init.normal_(m.embed.weight), seed=SEED)
    model = meta_model().to_empty(device="cpu")
    with torch.no_grad():
        model.embed.weight.fill_(7.0)
    with pytest.raises(ValueError, match=r"no write for proj\.weight, proj\.bias"):
        apply_plan(model, plan)
    assert bool((model.embed.weight == 7.0).all())
    full = record_plan(meta_model(), framework_init, seed=SEED)
    other = meta_model()
    other.proj = nn.Linear(8, 5, device="meta")
    with pytest.raises(ValueError, match=r"other shapes: proj\.weight \(5, 8\) \(the plan has \(8, 8\)\)"):
        apply_plan(other.to_empty(device="cpu"), full)


def test_record_plan_needs_a_meta_model():
    with pytest.raises(ValueError, match="needs a model on the meta device"):
        record_plan(Tied(), framework_init, seed=SEED)
    with pytest.raises(TypeError, match="plan must be a triton_init Plan"):
        apply_plan(Tied(), triton_init.Manifest())


def test_a_write_that_cannot_be_replayed_in_the_tensors_dtype_writes_nothing():
    plan = record_plan(meta_model(), framework_init, seed=SEED)
    model = meta_model().to_empty(device="cpu")
    with torch.no_grad():
        model.embed.weight.fill_(7.0)
    model.proj.weight = nn.Parameter(torch.zeros(8, 8, dtype=torch.int32), requires_grad=False)
    with pytest.raises(ValueError, match=r"cannot write proj\.weight \(normal_"):
        apply_plan(model, plan)
    assert bool((model.embed.weight == 7.0).all())
