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


# ---- the model-zoo matrix (test_model_zoo.py): one table row per model -----------------------------------------

STD_TOLERANCE = 0.05  # relative, on tensors of at least STD_MIN_NUMEL elements
STD_MIN_NUMEL = 10_000


def zoo_run(build, init, seed, *, strict=True):
    """(model, context) of one intercepted init: ``init=None`` builds inside ``intercept(None, ...)`` and
    attaches; otherwise ``build()`` on meta, ``to_empty``, NaN, then ``init(model)`` in the context."""
    if init is None:
        with intercept(None, seed=seed, strict=strict) as ctx:
            model = build()
            ctx.attach(model)
        return model, ctx
    model = materialized(build)
    with torch.no_grad(), intercept(model, seed=seed, strict=strict) as ctx:
        init(model)
    return model, ctx


def zoo_reference(build, init):
    """The framework's own init, without intercept."""
    torch.manual_seed(0)
    if init is None:
        return build()
    model = materialized(build)
    with torch.no_grad():
        init(model)
    return model


def manifest_of(log) -> triton_init.Manifest:
    manifest = triton_init.Manifest()
    for r in log:
        manifest.record(r.stream, r.shape, r.dtype, r.function, r.args, r.seed, r.region)
    return triton_init.Manifest.loads(manifest.dumps())  # through its JSON, as a checkpoint carries it


def _values(model) -> dict:
    """Every float tensor's values (each run builds its own model: no copies needed)."""
    return {name: t.full_tensor() if hasattr(t, "full_tensor") else t.detach() for name, t in tensors(model).items()}


def _bits(t: torch.Tensor) -> bytes:
    """A tensor's bytes, to compare runs bit for bit (NaN included)."""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def check_zoo_model(build, init, *, tied=()):
    """The matrix's checks on one model; returns the number of tensors whose std was compared.

    Under ``strict=True`` (nothing may be left to torch): every tensor whose values change with the seed is
    served on its own name's stream (a record under that name, none left to torch) and the rest equal the
    framework's own values exactly (structural zeros and ones, computed buffers); two runs are bit-identical;
    stds are within 5% of the framework's own init on tensors of 10k elements or more, and rows the framework
    leaves zero (padding) stay zero; the manifest from the log verifies with no failure; ``tied`` pairs of
    names are one tensor, recorded under the first name only.
    """
    model, ctx = zoo_run(build, init, SEED)
    ours = _values(model)
    again = _values(zoo_run(build, init, SEED)[0])
    other = _values(zoo_run(build, init, SEED + 1)[0])
    theirs = _values(zoo_reference(build, init))
    assert ours.keys() == theirs.keys() == again.keys() == other.keys()
    served = {}
    for r in ctx.log:
        served.setdefault(r.stream, []).append(r)
    assert not [r for r in ctx.log if r.via == "torch"] and not ctx.left_to_torch
    compared = 0
    for name, value in ours.items():
        reference = theirs[name]
        assert _bits(value) == _bits(again[name]), f"{name}: two runs differ"
        if reference.isnan().any():  # the framework itself leaves it unwritten (e.g. a buffer it never sets)
            continue
        assert not value.isnan().any(), f"{name}: NaN left"
        if torch.equal(value, other[name]):  # deterministic: the framework's own values, exactly
            assert torch.equal(value, reference), f"{name}: deterministic values differ from the framework's"
            continue
        assert name in served, f"{name}: random values with no record under its own name (off its stream)"
        flat, ref = value.double().flatten(), reference.double().flatten()
        assert ref.min() != ref.max(), f"{name}: random where the framework writes a constant"
        if value.dim() >= 2:
            zero_rows = (reference == 0).flatten(1).all(1)
            if zero_rows.any() and not zero_rows.all():
                assert (value[zero_rows] == 0).all(), f"{name}: the rows the framework zeroes are not zero"
        if flat.numel() >= STD_MIN_NUMEL:
            ratio = flat.std().item() / ref.std().item()
            assert abs(ratio - 1) < STD_TOLERANCE, f"{name}: std {flat.std().item():.6g} vs {ref.std().item():.6g}"
            compared += 1
    for first, second in tied:
        assert model.get_parameter(first) is model.get_parameter(second), f"{first} and {second} are not tied"
        assert second not in served, f"{second} is recorded besides its first name {first}"
    report = triton_init.verify_(model, manifest_of(ctx.log), samples=64)
    assert not report.failures, report.table()
    return compared
