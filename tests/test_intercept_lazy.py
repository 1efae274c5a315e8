"""intercept's unfilled temporaries (``triton_init._lazy``): a random init into a whole temporary is written
only when something reads it, so a framework that draws temporaries only to copy them into the model (the
fused QKV of torchtitan) pays for the model's fills alone; whatever reads a temporary, whenever, sees exactly
the values an eager fill would have written."""

import math

import pytest
import torch
import torch.nn as nn

import triton_init
from triton_init import _dispatch
from triton_init._intercept import intercept

SEED = 99
N_HEADS, N_KV, HEAD_DIM, DIM = 4, 2, 3, 8


def drawn(fn, shape, stream, *args, **kwargs):
    return fn(torch.full(shape, float("nan")), *args, seed=SEED, stream=stream, **kwargs)


@pytest.fixture
def filled(monkeypatch):
    """The number of elements the native and kernel fills write, as a list of counts per call."""
    counts = []
    original = _dispatch.fill_random_

    def counting(tensor, *args, **kwargs):
        counts.append(tensor.numel())
        return original(tensor, *args, **kwargs)

    monkeypatch.setattr(_dispatch, "fill_random_", counting)
    return counts


def fused_qkv_init(t):
    """torchtitan 0.3.0's fused QKV init: q, k, v drawn into temporaries, viewed per kv head, concatenated
    and copied into the parameter."""
    tail = t.shape[1:]
    q, k, v = (t.new_empty(n * HEAD_DIM, *tail) for n in (N_HEADS, N_KV, N_KV))
    for x in (q, k, v):
        nn.init.trunc_normal_(x, std=0.02)
    fused = torch.cat([q.view(N_KV, N_HEADS // N_KV, HEAD_DIM, *tail), k.view(N_KV, 1, HEAD_DIM, *tail),
                       v.view(N_KV, 1, HEAD_DIM, *tail)], dim=1).view(-1, *tail)
    with torch.no_grad():
        t.copy_(fused)


def test_fused_qkv_fills_only_the_parameter_and_gets_its_stream(filled):
    model = nn.Linear(DIM, (N_HEADS + 2 * N_KV) * HEAD_DIM, bias=False)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    with intercept(model, seed=SEED, strict=True) as ctx:
        fused_qkv_init(model.weight)
    assert filled == [model.weight.numel()]  # the three temporaries were never filled
    expected = drawn(triton_init.trunc_normal_, tuple(model.weight.shape), "weight", 0.0, 0.02)
    assert torch.equal(model.weight.detach(), expected)
    assert [(r.stream, r.function, r.via) for r in ctx.log] == [("weight", "trunc_normal_", "copy")]


def test_every_read_of_a_temporary_sees_the_eager_values():
    """Reads through ops that copy, reduce, index, concatenate or leave the context: each equals the values
    an eager fill of that temporary (stream ``temporary/<n>``) gives."""
    got = {}
    with intercept(nn.Linear(2, 2), seed=SEED):
        temps = [torch.empty(5, 7) for _ in range(7)]
        for k, t in enumerate(temps):
            nn.init.normal_(t, 0.5, 2.0) if k % 2 else nn.init.uniform_(t, -1.0, 3.0)
        got["clone"] = temps[0].clone()
        got["sum"] = temps[1].sum()
        got["rows"] = temps[2][[0, 3]]  # advanced indexing: a copy, not a view
        got["transposed"] = temps[3].t().contiguous()  # a view, then a copy
        got["item"] = temps[4].view(35)[11].item()
        both = torch.cat([temps[5], temps[5]], dim=1)  # unfilled until read
        got["cat"] = both * 1.0
        escaped = temps[6].reshape(7, 5)  # read only after the context
    eager = [drawn(triton_init.normal_, (5, 7), f"temporary/{k}", 0.5, 2.0) if k % 2 else
             drawn(triton_init.uniform_, (5, 7), f"temporary/{k}", -1.0, 3.0) for k in range(7)]
    assert torch.equal(got["clone"], eager[0])
    assert torch.equal(got["sum"], eager[1].sum())
    assert torch.equal(got["rows"], eager[2][[0, 3]])
    assert torch.equal(got["transposed"], eager[3].t().contiguous())
    assert got["item"] == eager[4].view(35)[11].item()
    assert torch.equal(got["cat"], torch.cat([eager[5], eager[5]], dim=1))
    assert torch.equal(escaped, eager[6].reshape(7, 5))
    for t, e in zip(temps, eager, strict=True):
        assert torch.equal(t, e)


def test_a_cat_keeps_the_values_of_its_inputs_when_they_are_written_later():
    with intercept(nn.Linear(2, 2), seed=SEED):
        a, b = torch.empty(3, 4), torch.empty(2, 4)
        nn.init.normal_(a)
        nn.init.kaiming_uniform_(b, a=math.sqrt(5))
        joined = torch.cat([a, b])
        a.zero_()  # after the cat: the cat holds a's random values
        b.mul_(2.0)
        held = joined.clone()
    ea = drawn(triton_init.normal_, (3, 4), "temporary/0")
    eb = drawn(triton_init.kaiming_uniform_, (2, 4), "temporary/1", a=math.sqrt(5))
    assert torch.equal(held, torch.cat([ea, eb]))
    assert torch.equal(a, torch.zeros(3, 4)) and torch.equal(b, eb * 2.0)


def test_a_write_into_part_of_a_temporary_keeps_the_rest_and_a_failed_init_changes_nothing():
    with intercept(nn.Linear(2, 2), seed=SEED):
        t = torch.empty(4, 6)
        nn.init.trunc_normal_(t, std=0.5, a=-1.0, b=1.0)
        t[1].fill_(7.0)
        t[2:].mul_(-1.0)
        with pytest.raises(ValueError):
            nn.init.normal_(t, 0.0, -1.0)
        held = t.clone()
    eager = drawn(triton_init.trunc_normal_, (4, 6), "temporary/0", 0.0, 0.5, -1.0, 1.0)
    eager[1] = 7.0
    eager[2:] *= -1.0
    assert torch.equal(held, eager)


def test_parameters_built_from_unfilled_temporaries_are_served_on_their_streams(filled):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(nn.init.normal_(torch.empty(6, 5), std=0.3))
            self.v = nn.Parameter(torch.empty(5))
            nn.init.uniform_(self.v, -0.1, 0.1)
            self.v.data.mul_(2.0)  # read in place before attach: filled, then scaled

    with intercept(None, seed=SEED, strict=True) as ctx:
        block = Block()
        ctx.attach(block)
    assert sum(filled) <= 2 * (30 + 5)  # never more than the eager path's fills
    assert torch.equal(block.w.detach(), drawn(triton_init.normal_, (6, 5), "w", 0.0, 0.3))
    assert torch.equal(block.v.detach(), drawn(triton_init.uniform_, (5,), "v", -0.1, 0.1) * 2.0)


def test_a_tensor_given_new_storage_without_a_registration_is_still_found():
    """The index re-reads the model after a miss only when a snapshot of it changed: ``.data =`` and a direct
    ``_parameters`` assignment change it without any registration hook."""
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with intercept(model, seed=SEED) as ctx:
        scratch = torch.empty(8)
        nn.init.normal_(scratch)  # a miss: the model is unchanged, nothing re-read
        model[0].weight.data = torch.empty(3, 4)
        nn.init.normal_(model[0].weight, 0.0, 0.5)
        model[1]._parameters["weight"] = nn.Parameter(torch.empty(2, 3))
        nn.init.uniform_(model[1].weight, -2.0, 2.0)
    assert torch.equal(model[0].weight.detach(), drawn(triton_init.normal_, (3, 4), "0.weight", 0.0, 0.5))
    assert torch.equal(model[1].weight.detach(), drawn(triton_init.uniform_, (2, 3), "1.weight", -2.0, 2.0))
    assert [r.stream for r in ctx.log] == ["0.weight", "1.weight"]


def test_registrations_inside_the_context_are_taken_in_and_a_broken_tie_renames():
    """A buffer or parameter registered inside the context (torchtitan's RoPE cache, once per layer) is
    taken into the index in place; replacing one half of a tie re-reads the model, so the other half is
    then served on its own (now first) name."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    model[1].weight = model[0].weight  # tied: first name 0.weight
    with intercept(model, seed=SEED) as ctx:
        model[0].register_buffer("cache", torch.empty(3))
        nn.init.uniform_(model[0].cache)
        model[0].cache = torch.empty(5)  # a new tensor under the same name
        nn.init.normal_(model[0].cache)
        old = model[0].weight
        model[0].weight = nn.Parameter(torch.empty(4, 4))  # the tie broken: `old` is 1.weight alone now
        nn.init.normal_(old, 0.0, 0.1)
        nn.init.normal_(model[0].weight, 0.0, 0.2)
    assert torch.equal(model[0].cache, drawn(triton_init.normal_, (5,), "0.cache"))
    assert torch.equal(model[1].weight.detach(), drawn(triton_init.normal_, (4, 4), "1.weight", 0.0, 0.1))
    assert torch.equal(model[0].weight.detach(), drawn(triton_init.normal_, (4, 4), "0.weight", 0.0, 0.2))
    assert [r.stream for r in ctx.log] == ["0.cache", "1.weight", "0.weight"]  # the first cache left the model
