"""intercept passes every argument through: each init function's own arguments on views, keyword arguments of
tensor methods, temporaries from torch's random factories and tensor methods, parameters stored channels_last
or transposed, wrapper components of stream names (timm's own truncated normals: tests/integration). Each
expectation is triton_init's values at the written logical indices, computed here from the functions'
formulas, not from intercept's own mapping."""

import math

import pytest
import torch
import torch.nn as nn

import triton_init
from triton_init._intercept import intercept

SEED = 99
NAN = float("nan")


def poisoned(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            tensor.fill_(NAN)
    return module


def values(fn, shape, stream, **kwargs) -> torch.Tensor:
    """triton_init's values of a whole tensor of ``shape`` on ``stream``."""
    return fn(torch.full(shape, NAN), seed=SEED, stream=stream, **kwargs)


def leaky_gain(a: float) -> float:
    return math.sqrt(2.0 / (1.0 + a * a))


# A column slice (9, 3) of a (9, 6) weight (fan_in 3, fan_out 9; kaiming gets it transposed): each init with
# arguments that differ from its defaults, and the distribution it draws there (fans of the view's own shape,
# as torch computes them).
VIEW_CALLS = {
    "uniform_": (dict(a=-0.5, b=0.25), triton_init.uniform_, dict(a=-0.5, b=0.25)),
    "normal_": (dict(mean=0.1, std=0.3), triton_init.normal_, dict(mean=0.1, std=0.3)),
    "trunc_normal_": (dict(mean=0.1, std=0.5, a=-0.3, b=0.9), triton_init.trunc_normal_,
                      dict(mean=0.1, std=0.5, a=-0.3, b=0.9)),
    "xavier_uniform_": (dict(gain=1.7), triton_init.uniform_,
                        dict(a=-1.7 * math.sqrt(6.0 / 12), b=1.7 * math.sqrt(6.0 / 12))),
    "xavier_normal_": (dict(gain=0.6), triton_init.normal_, dict(mean=0.0, std=0.6 * math.sqrt(2.0 / 12))),
    "kaiming_uniform_": (dict(a=2.0, mode="fan_out", nonlinearity="leaky_relu"), triton_init.uniform_,
                         dict(a=-leaky_gain(2.0), b=leaky_gain(2.0))),  # sqrt(3) gain / sqrt(3)
    "kaiming_normal_": (dict(a=0.5, mode="fan_out", nonlinearity="leaky_relu"), triton_init.normal_,
                        dict(mean=0.0, std=leaky_gain(0.5) / math.sqrt(3.0))),
}


@pytest.mark.parametrize("name", list(VIEW_CALLS))
def test_each_init_on_a_view_keeps_its_arguments(name):
    torch_kwargs, fn, drawn = VIEW_CALLS[name]
    if name.startswith("kaiming"):  # the slice transposed, (3, 9): fan_in 9, fan_out 3
        target = lambda w: w[:, 1:4].t()  # noqa: E731
    else:
        target = lambda w: w[:, 1:4]  # noqa: E731
    lin = poisoned(nn.Linear(6, 9))
    with intercept(lin, seed=SEED):
        getattr(nn.init, name)(target(lin.weight), **torch_kwargs)
    expected = torch.full((9, 6), NAN)
    target(expected).copy_(target(values(fn, (9, 6), "weight", **drawn)))
    torch.testing.assert_close(lin.weight.detach(), expected, rtol=0, atol=0, equal_nan=True)


def test_keyword_arguments_of_tensor_methods():
    """``w.data.normal_(mean=..., std=...)`` and friends, on whole tensors and on views."""
    net = poisoned(nn.Sequential(nn.Linear(6, 9), nn.LayerNorm(9)))
    with intercept(net, seed=SEED):
        net[0].weight.data[2:5].normal_(mean=0.5, std=2.0)
        net[0].weight.data[:2].normal_(std=0.02)
        net[0].weight.data[5:].normal_(0.0, std=0.7)
        net[0].bias.data.uniform_(-3.0, to=3.0)
        net[1].weight.data.fill_(value=0.25)
        net[1].bias.data.normal_(mean=-1.0)
    w = torch.cat([values(triton_init.normal_, (9, 6), "0.weight", std=0.02)[:2],
                   values(triton_init.normal_, (9, 6), "0.weight", mean=0.5, std=2.0)[2:5],
                   values(triton_init.normal_, (9, 6), "0.weight", std=0.7)[5:]])
    torch.testing.assert_close(net[0].weight.detach(), w, rtol=0, atol=0)
    torch.testing.assert_close(net[0].bias.detach(), values(triton_init.uniform_, (9,), "0.bias", a=-3.0, b=3.0),
                               rtol=0, atol=0)
    assert torch.equal(net[1].weight.detach(), torch.full((9,), 0.25))
    torch.testing.assert_close(net[1].bias.detach(), values(triton_init.normal_, (9,), "1.bias", mean=-1.0),
                               rtol=0, atol=0)


def test_temporaries_of_torch_random_factories_and_methods():
    """rand, randn_like and empty().uniform_ temporaries copied into the model get their distribution on the
    parameter's stream; randint values and a mix of two inits are left to torch."""
    net = poisoned(nn.ModuleDict({"a": nn.Linear(6, 9), "b": nn.Linear(6, 9), "c": nn.Conv2d(3, 4, 3),
                                  "d": nn.Linear(4, 2)}))
    with pytest.warns(UserWarning, match=r"3 write\(s\) of random values") as record:
        with intercept(net, seed=SEED) as ctx, torch.no_grad():
            net["a"].weight.copy_(torch.rand(9, 6))
            net["b"].weight.copy_(torch.randn_like(net["b"].weight))
            net["c"].weight.copy_(torch.empty(4, 3, 3, 3).uniform_(-2.0, 2.0))
            net["a"].bias.copy_(torch.randint(0, 3, (9,)).float())
            net["d"].weight.copy_(torch.cat([torch.randn(1, 4), torch.rand(1, 4)]))
            net["c"].bias.copy_(torch.randint_like(net["c"].bias, 0, 5))
    torch.testing.assert_close(net["a"].weight.detach(), values(triton_init.uniform_, (9, 6), "a.weight"),
                               rtol=0, atol=0)
    torch.testing.assert_close(net["b"].weight.detach(), values(triton_init.normal_, (9, 6), "b.weight"),
                               rtol=0, atol=0)
    torch.testing.assert_close(net["c"].weight.detach(),
                               values(triton_init.uniform_, (4, 3, 3, 3), "c.weight", a=-2.0, b=2.0), rtol=0, atol=0)
    served = [(r.stream, r.via) for r in ctx.log if r.via != "torch"]
    assert served == [("a.weight", "copy"), ("b.weight", "copy"), ("c.weight", "copy")]
    assert sorted(r.stream for r in ctx.log if r.via == "torch") == ["a.bias", "c.bias", "d.weight"]
    assert sum(ctx.left_to_torch.values()) == 3 and len(record) == 1
    left = " ".join(ctx.left_to_torch)
    assert "a.bias" in left and "d.weight" in left and "c.bias" in left


def test_parameters_stored_channels_last_or_transposed():
    """Writes into a channels_last conv weight, a weight stored transposed and a transposed view of a square
    weight land at the logical indices of each element."""
    conv = poisoned(nn.Conv2d(3, 4, 3)).to(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    with intercept(conv, seed=SEED):
        nn.init.kaiming_normal_(conv.weight, a=0.5)
        nn.init.normal_(conv.weight[1:3], 0.0, 0.5)
        nn.init.uniform_(conv.weight[:, :, 0], -1.0, 1.0)
    expected = values(triton_init.kaiming_normal_, (4, 3, 3, 3), "weight", a=0.5)
    expected[1:3] = values(triton_init.normal_, (4, 3, 3, 3), "weight", std=0.5)[1:3]
    expected[:, :, 0] = values(triton_init.uniform_, (4, 3, 3, 3), "weight", a=-1.0, b=1.0)[:, :, 0]
    torch.testing.assert_close(conv.weight.detach(), expected, rtol=0, atol=0)

    model = nn.Module()
    model.stored_t = nn.Parameter(torch.full((6, 9), NAN).t())  # logical (9, 6), stored column-major
    model.square = nn.Parameter(torch.full((5, 5), NAN))
    with intercept(model, seed=SEED):
        nn.init.normal_(model.stored_t, 0.0, 0.1)
        nn.init.uniform_(model.stored_t[:, 4:], -0.1, 0.1)
        nn.init.uniform_(model.square.t(), -1.0, 1.0)  # a view of the whole: each element keeps its own index
    expected = values(triton_init.normal_, (9, 6), "stored_t", std=0.1)
    expected[:, 4:] = values(triton_init.uniform_, (9, 6), "stored_t", a=-0.1, b=0.1)[:, 4:]
    torch.testing.assert_close(model.stored_t.detach(), expected, rtol=0, atol=0)
    torch.testing.assert_close(model.square.detach(), values(triton_init.uniform_, (5, 5), "square", a=-1.0, b=1.0),
                               rtol=0, atol=0)


def test_stream_names_drop_every_wrapper_and_take_the_prefix():
    """torch.compile's _orig_mod, activation checkpointing's and FSDP1's wrapper components are dropped."""
    inner = nn.Linear(4, 3)
    model = nn.Module()
    model._fsdp_wrapped_module = nn.Module()
    model._fsdp_wrapped_module._checkpoint_wrapped_module = nn.Module()
    model._fsdp_wrapped_module._checkpoint_wrapped_module._orig_mod = inner
    with intercept(model, seed=SEED, prefix="pp2.") as ctx:
        nn.init.normal_(inner.weight)
    assert [r.stream for r in ctx.log] == ["pp2.weight"]
    torch.testing.assert_close(inner.weight.detach(), values(triton_init.normal_, (3, 4), "pp2.weight"),
                               rtol=0, atol=0)
