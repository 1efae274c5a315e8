"""The four checks every framework integration passes, on a tiny model built on the meta device.

(a) after ``to_empty`` and NaN poisoning, the framework's own init under ``intercept`` leaves no NaN;
(b) the values reproduce with the same seed and change with another;
(c) named tensors equal the direct triton_init call on their stream;
(d) each tensor's empirical distribution (std, bounds, mean) matches what the framework's own init draws
    without ``intercept``: constants exactly, random tensors by moments, range and a two-sample KS test.
"""

import contextlib
import math

import pytest
import torch
from scipy import stats

import triton_init
from triton_init._intercept import intercept

SEED = 20260
INSTALL = "bash tests/integration/install.sh installs the pinned frameworks (README: Inside your framework)"


def require(module: str, package: str, install: str = INSTALL):
    """Import ``module`` or skip, saying why and how to install it."""
    return pytest.importorskip(module, reason=f"{package} is not installed: {install}")


def tensors(model):
    """Floating-point parameters and buffers by name (tied ones once)."""
    seen, out = set(), {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if id(t) not in seen and t.is_floating_point():
            seen.add(id(t))
            out[name] = t
    return out


def full(t) -> torch.Tensor:
    t = t.full_tensor() if hasattr(t, "full_tensor") else t
    return t.detach().clone()


def materialized(build):
    """``build()`` on the meta device, moved with ``to_empty`` to the CPU, every float tensor NaN."""
    with torch.device("meta"):
        model = build()
    model.to_empty(device="cpu")
    with torch.no_grad():
        for t in tensors(model).values():
            t.fill_(float("nan"))
    return model


def run_intercepted(build, init, seed, *, no_grad=True):
    """The model initialized under intercept; ``init=None``: a framework that initializes in its constructors,
    built inside ``intercept(None, ...)`` and attached."""
    if init is None:
        with intercept(None, seed=seed) as ctx:
            model = build()
            ctx.attach(model)
        return model, ctx
    model = materialized(build)
    with torch.no_grad() if no_grad else contextlib.nullcontext(), intercept(model, seed=seed) as ctx:
        init(model)
    return model, ctx


def check_framework(build, init, direct, *, fixed=(), no_grad=True):
    """Run checks (a) to (d) (``init=None``: see ``run_intercepted``). ``direct`` lists (tensor name,
    triton_init function, arguments) for (c); ``fixed`` names tensors the framework sets deterministically
    (compared exactly in (d)). Returns the intercept context of the first run and the kinds (normal_,
    trunc_normal_, constant_, ...) (c) checked."""
    model, ctx = run_intercepted(build, init, SEED, no_grad=no_grad)
    values = {name: full(t) for name, t in tensors(model).items()}
    # (a)
    assert not [name for name, v in values.items() if v.isnan().any()], "NaN left"
    assert not ctx.left_to_torch, ctx.left_to_torch
    # (b)
    again = {name: full(t) for name, t in tensors(run_intercepted(build, init, SEED, no_grad=no_grad)[0]).items()}
    other = {name: full(t) for name, t in tensors(run_intercepted(build, init, SEED + 1, no_grad=no_grad)[0]).items()}
    random = {r.stream for r in ctx.log if r.function not in ("constant_", "ones_", "zeros_", "eye_", "dirac_")}
    assert random, "no random init was served"
    for name, v in values.items():
        assert torch.equal(v, again[name]), f"{name} does not reproduce"
    for stream in random:
        assert not torch.equal(values[stream], other[stream]), f"{stream} does not change with the seed"
    # (c)
    kinds = set()
    for name, function, args in direct:
        records = [r for r in ctx.log if r.stream == name and r.region is None]  # the last one counts
        assert records and records[-1].function == function, (name, [(r.function, r.args) for r in records])
        expected = torch.full(values[name].shape, float("nan"), dtype=values[name].dtype)
        if function in ("constant_", "ones_", "zeros_"):
            getattr(triton_init, function)(expected, **args)
        else:
            getattr(triton_init, function)(expected, **args, seed=SEED, stream=name)
        torch.testing.assert_close(values[name], expected, rtol=0, atol=0, msg=lambda m, name=name: f"{name}: {m}")
        kinds.add({"ones_": "constant_", "zeros_": "constant_"}.get(function, function))
    # (d)
    torch.manual_seed(0)
    if init is None:
        reference = build()
    else:
        reference = materialized(build)
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            init(reference)
    for name, theirs in tensors(reference).items():
        compare_distribution(name, values[name], full(theirs), exact=name in fixed)
    return ctx, kinds


REQUIRED_KINDS = {"normal_", "trunc_normal_", "constant_"}  # (c) covers at least these per framework


def compare_distribution(name, ours, theirs, *, exact=False):
    ours, theirs = ours.double().flatten(), theirs.double().flatten()
    assert not theirs.isnan().any(), f"{name}: the framework's own init left NaN"
    if exact or theirs.min() == theirs.max() or theirs.numel() < 8:
        if exact or theirs.min() == theirs.max():
            assert torch.equal(ours, theirs), f"{name}: deterministic values differ"
        return
    n = theirs.numel()
    s_ours, s_theirs = ours.std().item(), theirs.std().item()
    assert abs(s_ours / s_theirs - 1) < max(0.1, 8 / math.sqrt(n)), f"{name}: std {s_ours} vs {s_theirs}"
    assert abs(ours.mean().item() - theirs.mean().item()) < 8 * s_theirs / math.sqrt(n) + 1e-12, (
        f"{name}: mean {ours.mean().item()} vs {theirs.mean().item()}")
    span = (theirs.max() - theirs.min()).item() * (0.15 if n >= 1000 else 0.5)  # sample extremes settle slowly
    assert ours.min() >= theirs.min() - span and ours.max() <= theirs.max() + span, (
        f"{name}: range [{ours.min()}, {ours.max()}] vs [{theirs.min()}, {theirs.max()}]")
    if n >= 64:
        p = stats.ks_2samp(ours.numpy(), theirs.numpy()).pvalue
        assert p > 1e-6, f"{name}: KS p-value {p}"
