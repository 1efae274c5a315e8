"""triton_init.intercept on plain torch modules: what a framework's own init calls write into the model equals
triton_init's values on each tensor's stream, however torch.nn.init was bound, into views too; temporaries
follow the documented rule; everything is restored on exit."""

import functools
import math
import re
import threading
import warnings

import pytest
import torch
import torch.nn as nn

import triton_init
from triton_init._intercept import TORCH_INIT_SIGNATURES, intercept
from triton_init.manifest import Region

SEED = 1234
# Bound before any intercept exists, as torchtitan and Megatron bind them at import.
BOUND_TRUNC_NORMAL = functools.partial(nn.init.trunc_normal_, std=0.02, a=-0.04, b=0.04)
TABLE = {"normal_": nn.init.normal_, "kaiming_uniform_": nn.init.kaiming_uniform_}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 6, padding_idx=3)
        self.proj = nn.Linear(6, 9)
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.LayerNorm(9)
        self.register_buffer("scale", torch.empty(9))


def poisoned_net():
    net = Net()
    with torch.no_grad():
        for t in list(net.parameters()) + list(net.buffers()):
            t.fill_(float("nan"))
    return net


def direct(fn, shape, stream, *args, **kwargs):
    return fn(torch.full(shape, float("nan")), *args, seed=SEED, stream=stream, **kwargs)


CALLS = [  # (torch.nn.init function, arguments, the tensor it targets)
    ("uniform_", (-0.5, 0.25), "proj.weight"),
    ("normal_", (0.1, 0.3), "proj.weight"),
    ("trunc_normal_", (0.0, 0.5, -0.4, 0.7), "proj.weight"),
    ("xavier_uniform_", (1.7,), "conv.weight"),
    ("xavier_normal_", (0.9,), "conv.weight"),
    ("kaiming_uniform_", (math.sqrt(5), "fan_in", "leaky_relu"), "conv.weight"),
    ("kaiming_normal_", (0, "fan_out", "relu"), "proj.weight"),
    ("orthogonal_", (1.5,), "proj.weight"),
    ("sparse_", (0.3, 0.02), "proj.weight"),
]


@pytest.mark.parametrize("name,args,target", CALLS)
def test_whole_tensor_calls_equal_triton_init(name, args, target):
    net = poisoned_net()
    tensor = net.get_parameter(target)
    with intercept(net, seed=SEED) as ctx:
        getattr(nn.init, name)(tensor, *args, generator=torch.Generator().manual_seed(7))
    expected = direct(getattr(triton_init, name), tuple(tensor.shape), target, *args)
    torch.testing.assert_close(tensor.detach(), expected, rtol=0, atol=0)
    (record,) = ctx.log
    assert (record.stream, record.function, record.seed, record.region, record.via) == (target, name, SEED, None,
                                                                                         "call")
    assert record.shape == tuple(tensor.shape) and record.dtype == torch.float32
    assert "generator" not in record.args and len(record.args) == len(TORCH_INIT_SIGNATURES[name]) - 2


def test_bound_functions_tables_and_tensor_methods_are_served():
    net = poisoned_net()
    with intercept(net, seed=SEED) as ctx:
        BOUND_TRUNC_NORMAL(net.proj.weight)
        TABLE["kaiming_uniform_"](net.conv.weight, a=math.sqrt(5))
        TABLE["normal_"](net.embed.weight)
        net.embed.weight.data[net.embed.padding_idx].zero_()
        net.proj.bias.data.uniform_(-0.1, 0.1)
        net.conv.bias.normal_(0.5, 2.0)
        net.norm.reset_parameters()  # torch's own ones_/zeros_
        net.scale.fill_(0.25)
    assert not any(t.isnan().any() for t in list(net.parameters()) + list(net.buffers()))
    ti = triton_init
    expect = {
        "proj.weight": direct(ti.trunc_normal_, (9, 6), "proj.weight", 0.0, 0.02, -0.04, 0.04),
        "conv.weight": direct(ti.kaiming_uniform_, (4, 3, 3, 3), "conv.weight", math.sqrt(5)),
        "embed.weight": direct(ti.normal_, (11, 6), "embed.weight").index_fill_(0, torch.tensor([3]), 0.0),
        "proj.bias": direct(ti.uniform_, (9,), "proj.bias", -0.1, 0.1),
        "conv.bias": direct(ti.normal_, (4,), "conv.bias", 0.5, 2.0),
        "norm.weight": torch.ones(9), "norm.bias": torch.zeros(9), "scale": torch.full((9,), 0.25),
    }
    state = net.state_dict()
    for name, value in expect.items():
        torch.testing.assert_close(state[name], value, rtol=0, atol=0, msg=name)
    assert [r.stream for r in ctx.log] == ["proj.weight", "conv.weight", "embed.weight", "embed.weight",
                                           "proj.bias", "conv.bias", "norm.weight", "norm.bias", "scale"]
    padding = ctx.log[3]
    assert padding.function == "constant_" and padding.args == {"val": 0.0}
    assert padding.region == Region(18, (6,), (1,))  # row 3


def test_views_get_their_logical_indices_and_fans_of_their_own_shape():
    net = poisoned_net()
    w = net.conv.weight  # (4, 3, 3, 3)
    with intercept(net, seed=SEED) as ctx:
        nn.init.normal_(net.proj.weight[:, 2:5], 0.0, 0.3)  # a column slice
        nn.init.normal_(net.proj.weight[:, :2], 0.0, 0.3)
        nn.init.normal_(net.proj.weight[:, 5:].t(), 0.0, 0.3)  # a transposed view
        for i in range(4):
            nn.init.kaiming_uniform_(w[i].view(3, 9), a=1.0)  # a reshaped view, fans from (3, 9)
    full = direct(triton_init.normal_, (9, 6), "proj.weight", 0.0, 0.3)
    torch.testing.assert_close(net.proj.weight.detach(), full, rtol=0, atol=0)
    bound = math.sqrt(3.0) * math.sqrt(2.0 / (1 + 1.0)) / math.sqrt(9)
    whole_u = direct(triton_init.uniform_, (4, 3, 3, 3), "conv.weight", -bound, bound)
    torch.testing.assert_close(w.detach(), whole_u, rtol=0, atol=0)
    assert ctx.log[0].region == Region(2, (9, 3), (6, 1))  # columns 2:5
    assert ctx.log[2].region == Region(5, (9,), (6,))  # column 5, all 9 rows
    assert all(r.function == "uniform_" and r.args["b"] == pytest.approx(bound) for r in ctx.log[3:])


def test_streams_use_init_module_names_wrappers_dropped_tied_once():
    inner = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    inner[1].weight = inner[0].weight  # tied: initialized under its first name
    model = nn.Module()
    model._orig_mod = inner
    with intercept(model, seed=SEED, prefix="stage1.") as ctx:
        nn.init.normal_(inner[1].weight)
    assert ctx.log[0].stream == "stage1.0.weight"
    torch.testing.assert_close(inner[0].weight.detach(), direct(triton_init.normal_, (4, 4), "stage1.0.weight"),
                               rtol=0, atol=0)


def test_meta_to_empty_and_no_grad():
    with torch.device("meta"):
        net = Net()
    net.to_empty(device="cpu")
    with torch.no_grad(), intercept(net, seed=SEED) as ctx:
        nn.init.trunc_normal_(net.proj.weight, std=0.02)
    assert ctx.log[0].stream == "proj.weight"
    torch.testing.assert_close(net.proj.weight.detach(),
                               direct(triton_init.trunc_normal_, (9, 6), "proj.weight", 0.0, 0.02), rtol=0, atol=0)


def test_seed_changes_values_and_runs_reproduce():
    def run(seed):
        net = poisoned_net()
        with intercept(net, seed=seed):
            nn.init.normal_(net.proj.weight)
        return net.proj.weight.detach().clone()

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_temporaries_copied_into_the_model_are_served_on_the_parameters_stream():
    net = poisoned_net()
    with intercept(net, seed=SEED) as ctx:
        # torchtitan's fused QKV: three temporaries, concatenated and reshaped, then copied.
        parts = [net.proj.weight.new_empty(n, 6) for n in (5, 2, 2)]
        for part in parts:
            nn.init.trunc_normal_(part, std=0.02)
        fused = torch.cat([p.view(1, -1, 6) for p in parts], dim=1)
        with torch.no_grad():
            net.proj.weight.copy_(fused.view(9, 6))
        # Megatron's CPU master weight: split, then cat(out=) into the parameter.
        master = torch.empty(4, 3, 3, 3)
        nn.init.normal_(master, 0.0, 0.1)
        with torch.no_grad():
            torch.cat(torch.split(master, 2, dim=0), dim=0, out=net.conv.weight.data)
        # OLMo-core's full tensor, cast and copied.
        full = torch.zeros(11, 6, dtype=torch.float64)
        nn.init.uniform_(full, -0.2, 0.2)
        with torch.no_grad():
            net.embed.weight.copy_(full.to(torch.float32))
        # a torch.randn source is normal(0, 1)
        with torch.no_grad():
            net.scale.copy_(torch.randn(9))
    ti = triton_init
    torch.testing.assert_close(net.proj.weight.detach(), direct(ti.trunc_normal_, (9, 6), "proj.weight", 0.0, 0.02),
                               rtol=0, atol=0)
    torch.testing.assert_close(net.conv.weight.detach(), direct(ti.normal_, (4, 3, 3, 3), "conv.weight", 0.0, 0.1),
                               rtol=0, atol=0)
    torch.testing.assert_close(net.embed.weight.detach(), direct(ti.uniform_, (11, 6), "embed.weight", -0.2, 0.2),
                               rtol=0, atol=0)
    torch.testing.assert_close(net.scale, direct(ti.normal_, (9,), "scale"), rtol=0, atol=0)
    assert [(r.stream, r.via) for r in ctx.log] == [(s, "copy") for s in
                                                   ("proj.weight", "conv.weight", "embed.weight", "scale")]
    assert not ctx.left_to_torch


def test_orthogonal_temporary_in_float32_is_served_whole():
    """transformers' orthogonal_ for bf16: an fp32 temporary, then copied."""
    lin = nn.Linear(6, 5).to(torch.bfloat16)
    with intercept(lin, seed=SEED) as ctx:
        tmp = torch.empty_like(lin.weight, dtype=torch.float32)
        nn.init.orthogonal_(tmp, gain=2.0)
        with torch.no_grad():
            lin.weight.copy_(tmp)
    expected = triton_init.orthogonal_(torch.empty(5, 6, dtype=torch.bfloat16), gain=2.0, seed=SEED, stream="weight")
    torch.testing.assert_close(lin.weight.detach(), expected, rtol=0, atol=0)
    assert ctx.log[0].function == "orthogonal_" and ctx.log[0].via == "copy"


def test_random_values_that_cannot_be_served_warn_once_or_raise_when_strict():
    net = poisoned_net()
    with pytest.warns(UserWarning, match=r"2 write\(s\) of random values .*test_intercept.py") as record:
        with intercept(net, seed=SEED) as ctx:
            tmp = torch.empty(9, 6)
            nn.init.normal_(tmp)
            with torch.no_grad():
                net.proj.weight.copy_(tmp * torch.rand(9, 6))  # arithmetic on two random temporaries
                net.proj.bias.bernoulli_(0.5)  # a random op triton_init does not serve
    assert len(record) == 1 and sum(ctx.left_to_torch.values()) == 2
    assert [(r.stream, r.function, r.via) for r in ctx.log] == [("proj.weight", "not_verifiable", "torch"),
                                                                ("proj.bias", "not_verifiable", "torch")]
    assert "left to torch" in ctx.log[0].args["reason"]
    net = poisoned_net()
    with pytest.raises(RuntimeError, match="strict=True"), intercept(net, seed=SEED, strict=True):
        tmp = torch.empty(9, 6)
        nn.init.normal_(tmp)
        with torch.no_grad():
            net.proj.weight.copy_(tmp.exp() + torch.randn(9, 6))
    assert net.proj.weight.isnan().all()  # raised before the write
    assert nn.init.normal_.__code__.co_filename.endswith("init.py")


def test_deterministic_copies_pass_silently():
    net = poisoned_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with intercept(net, seed=SEED) as ctx:
            tmp = torch.empty(9)
            nn.init.normal_(tmp)  # a temporary that never reaches the model
            with torch.no_grad():
                net.scale.copy_(torch.arange(9.0) / 2)  # e.g. rotary frequencies
    assert torch.equal(net.scale, torch.arange(9.0) / 2) and ctx.log == []


def test_everything_is_restored_also_after_an_exception():
    codes = {name: getattr(nn.init, name).__code__ for name in TORCH_INIT_SIGNATURES}
    net = poisoned_net()
    with pytest.raises(KeyError), intercept(net, seed=SEED):
        nn.init.normal_(net.proj.weight)
        raise KeyError("framework error")
    assert all(getattr(nn.init, name).__code__ is code for name, code in codes.items())
    assert not torch._C._is_torch_function_mode_enabled()
    gen = torch.Generator().manual_seed(5)
    reference = torch.empty(9, 6).normal_(generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(nn.init.normal_(torch.empty(9, 6), generator=gen), reference, rtol=0, atol=0)


def test_nested_use_is_rejected_and_other_threads_run_torch():
    net = poisoned_net()
    with intercept(net, seed=SEED):
        with pytest.raises(RuntimeError, match="already active in this thread"), intercept(net, seed=1):
            pass
        out = {}

        def other_thread():
            lin = nn.Linear(6, 9)
            nn.init.normal_(lin.weight, generator=torch.Generator().manual_seed(3))
            out["w"] = lin.weight.detach().clone()

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    torch.testing.assert_close(out["w"], torch.empty(9, 6).normal_(generator=torch.Generator().manual_seed(3)),
                               rtol=0, atol=0)


def test_concurrent_intercepts_in_two_threads():
    results = {}

    def run(seed):
        net = poisoned_net()
        with intercept(net, seed=seed):
            for _ in range(20):
                nn.init.normal_(net.proj.weight)
        results[seed] = net.proj.weight.detach().clone()

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (1, 2):
        torch.testing.assert_close(results[seed], triton_init.normal_(torch.empty(9, 6), seed=seed,
                                                                      stream="proj.weight"), rtol=0, atol=0)


def test_unsupported_torch_is_a_clear_error_and_patches_nothing(monkeypatch):
    monkeypatch.setitem(TORCH_INIT_SIGNATURES, "normal_", ("tensor", "mean", "std", "generator", "extra"))
    code = nn.init.uniform_.__code__
    message = re.escape(f"torch {torch.__version__}") + ".*normal_"
    with pytest.raises(RuntimeError, match=message), intercept(poisoned_net(), seed=1):
        pass
    assert nn.init.uniform_.__code__ is code and not torch._C._is_torch_function_mode_enabled()


def test_bad_arguments():
    with pytest.raises(TypeError, match="model"):
        intercept(torch.empty(3), seed=1)
    with pytest.raises((TypeError, ValueError), match="seed"):
        intercept(nn.Linear(2, 2), seed=-1)
    with pytest.raises(TypeError, match="strict"):
        intercept(nn.Linear(2, 2), seed=1, strict="yes")


def test_the_log_is_a_manifest_that_verifies_the_model():
    from triton_init.manifest import Manifest

    net = poisoned_net()
    with intercept(net, seed=SEED) as ctx:
        BOUND_TRUNC_NORMAL(net.proj.weight)
        nn.init.xavier_uniform_(net.conv.weight, gain=0.5)
        nn.init.normal_(net.embed.weight)
        nn.init.zeros_(net.embed.weight[net.embed.padding_idx])
        tmp = torch.empty(9)
        nn.init.uniform_(tmp, -1.0, 1.0)
        with torch.no_grad():
            net.proj.bias.copy_(tmp)
            net.conv.bias.zero_()
            net.scale.fill_(2.0)
        net.norm.reset_parameters()
    manifest = Manifest()
    for r in ctx.log:
        manifest.record(r.stream, r.shape, r.dtype, r.function, r.args, r.seed, r.region)
    report = triton_init.verify_(net, manifest, samples=None)
    assert not report.failures and len(report.tensors) == 8
    with torch.no_grad():
        net.embed.weight[3, 2] += 1e-3
    assert [t.name for t in triton_init.verify_(net, manifest, samples=None).failures] == ["embed.weight"]


class BuiltAndInitialized(nn.Module):
    """A model that initializes in its constructor, Megatron's way: a master weight drawn, split and copied
    into each parameter, before any model exists."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(6, 4))
        master = torch.empty(6, 4)
        nn.init.normal_(master, 0.0, 0.5)
        with torch.no_grad():
            self.weight.data.copy_(torch.cat(torch.split(master, 3, dim=0)))
        self.bias = nn.Parameter(torch.empty(6))
        nn.init.zeros_(self.bias)
        self.gate = nn.Parameter(torch.empty(3, 4))
        nn.init.kaiming_uniform_(self.gate, a=1.0)


def test_a_model_that_initializes_in_its_constructor_is_attached():
    with intercept(None, seed=SEED, prefix="m.") as ctx:
        model = BuiltAndInitialized()
        ctx.attach(model)
    torch.testing.assert_close(model.weight.detach(), direct(triton_init.normal_, (6, 4), "m.weight", 0.0, 0.5),
                               rtol=0, atol=0)
    torch.testing.assert_close(model.gate.detach(), direct(triton_init.kaiming_uniform_, (3, 4), "m.gate", 1.0),
                               rtol=0, atol=0)
    assert torch.equal(model.bias.detach(), torch.zeros(6))
    assert sorted((r.stream, r.function, r.via) for r in ctx.log) == [
        ("m.bias", "zeros_", "call"), ("m.gate", "uniform_", "copy"), ("m.weight", "normal_", "copy")]
    with pytest.warns(UserWarning, match="attach"), intercept(None, seed=SEED):
        BuiltAndInitialized()
    with pytest.raises(RuntimeError, match="attach"), intercept(model, seed=SEED) as ctx:
        ctx.attach(model)


# ---- ties, later writes, parameters built inside the context, computed temporaries (issue 19) ---------------


class Tied(nn.Module):
    def __init__(self, tie=True):
        super().__init__()
        self.emb = nn.Embedding(12, 8)
        self.mid = nn.Linear(8, 8)
        self.head = nn.Linear(8, 12, bias=False)
        if tie:
            self.emb.weight = self.head.weight


def init_tied(model):
    nn.init.normal_(model.emb.weight, std=1.0)
    nn.init.normal_(model.mid.weight, std=0.1)
    nn.init.normal_(model.head.weight, std=0.02)


def manifest_of(ctx):
    manifest = triton_init.Manifest()
    for r in ctx.log:
        manifest.record(r.stream, r.shape, r.dtype, r.function, r.args, r.seed, r.region)
    return triton_init.Manifest.loads(manifest.dumps())


def verified(model, ctx):
    report = triton_init.verify_(model, manifest_of(ctx), samples=None)
    assert not report.failures, report.table()
    return report


def test_tied_tensor_served_on_its_first_name_whatever_order_it_is_retied_in():
    expected = direct(triton_init.normal_, (12, 8), "emb.weight", 0.0, 0.02)  # the last write, first name
    runs = {}
    built = Tied()  # tied when built: both writes land in the one tensor, served on "emb.weight"
    with intercept(built, seed=SEED) as ctx:
        init_tied(built)
    runs["tied when built"] = (built, ctx)
    with torch.device("meta"):
        before = Tied()
    before.to_empty(device="cpu")  # to_empty unties
    with intercept(before, seed=SEED) as ctx:
        before.emb.weight = before.head.weight  # torchtitan's re-tie in init_states: the index is stale
        init_tied(before)
    runs["re-tied before the init"] = (before, ctx)
    with torch.device("meta"):
        after = Tied()
    after.to_empty(device="cpu")
    with intercept(after, seed=SEED) as ctx:
        init_tied(after)  # untied: head's values on "head.weight", emb's on "emb.weight"
        after.emb.weight = after.head.weight  # re-tied keeping head's tensor: its values move to "emb.weight"
    runs["re-tied after the init"] = (after, ctx)
    for what, (model, ctx) in runs.items():
        assert model.emb.weight is model.head.weight, what
        torch.testing.assert_close(model.head.weight.detach(), expected, rtol=0, atol=0, msg=what)
        assert {r.stream for r in ctx.log} == {"emb.weight", "mid.weight"}, (what, ctx.log)
        verified(model, ctx)
    # transformers' tie_weights keeps the input embedding's tensor: its own values, on its own name
    with torch.device("meta"):
        kept = Tied()
    kept.to_empty(device="cpu")
    with intercept(kept, seed=SEED) as ctx:
        init_tied(kept)
        kept.head.weight = kept.emb.weight
    torch.testing.assert_close(kept.head.weight.detach(), direct(triton_init.normal_, (12, 8), "emb.weight", 0.0,
                                                                  1.0), rtol=0, atol=0)
    assert "head.weight" not in {r.stream for r in ctx.log}
    verified(kept, ctx)


def test_later_writes_are_recorded_and_a_manifest_from_the_log_never_mismatches():
    net = poisoned_net()
    with intercept(net, seed=SEED) as ctx:
        nn.init.trunc_normal_(net.proj.weight, std=0.5)
        nn.init.zeros_(net.embed.weight)
        nn.init.uniform_(net.conv.weight, -1.0, 1.0)
        nn.init.ones_(net.norm.weight)
        nn.init.normal_(net.norm.bias)
        with torch.no_grad():
            net.proj.weight.div_(math.sqrt(2 * 3))  # BEiT's rescale: replayable
            net.conv.weight[1].mul_(3.0)  # a rescale of part of a tensor
            net.embed.weight.copy_(torch.arange(66.0).reshape(11, 6) / 7)  # a sinusoid table: computed values
            net.norm.bias[:4].clamp_(-0.5, 0.5)  # arithmetic other than a rescale, on part of it
            net.norm.weight[4] = 2.0  # a constant into one element
    rescaled = direct(triton_init.trunc_normal_, (9, 6), "proj.weight", 0.0, 0.5).div_(math.sqrt(6))
    assert torch.equal(net.proj.weight.detach(), rescaled)
    by_stream = {}
    for r in ctx.log:
        by_stream.setdefault(r.stream, []).append((r.function, r.via))
    assert by_stream["proj.weight"] == [("trunc_normal_", "call"), ("div_", "later")]
    assert by_stream["conv.weight"] == [("uniform_", "call"), ("mul_", "later")]
    assert by_stream["embed.weight"][-1] == ("not_verifiable", "later")
    assert by_stream["norm.bias"][-1] == ("not_verifiable", "later")
    assert by_stream["norm.weight"][-1] == ("constant_", "later")
    report = verified(net, ctx)
    verdicts = {t.name: t.verdict for t in report.tensors}
    assert verdicts["proj.weight"] == verdicts["norm.weight"] == verdicts["conv.weight"] == "ok"
    assert verdicts["embed.weight"] == verdicts["norm.bias"] == "not verifiable"
    # the rescale replays exactly: regenerate_ rebuilds the tensor from the manifest alone
    again = torch.full((9, 6), float("nan"))
    triton_init.regenerate_(again, manifest_of(ctx)["proj.weight"])
    assert torch.equal(again, rescaled)
    net.proj.weight.data[0, 0] += 0.25  # a wrong value is still found
    assert {t.name: t.verdict for t in triton_init.verify_(net, manifest_of(ctx)).tensors}["proj.weight"] == "mismatch"


def test_rescale_write_replays_in_the_dtype_arithmetic():
    from triton_init._replay import NotReplayable, replay
    from triton_init.manifest import Write

    for dtype in (torch.float32, torch.bfloat16):
        for fn, other in (("mul_", 0.37), ("div_", 3.0)):
            write = Write("w", (64, 33), dtype, fn, {"other": other, "init": "normal_", "mean": 0.1, "std": 0.7}, 5)
            logical = torch.arange(64 * 33)
            base = Write("w", (64, 33), dtype, "normal_", {"mean": 0.1, "std": 0.7}, 5)
            assert torch.equal(replay(write).values(logical), getattr(replay(base).values(logical), fn)(other))
            written = getattr(triton_init.normal_(torch.empty(64, 33, dtype=dtype), 0.1, 0.7, seed=5, stream="w"),
                              fn)(other)  # what an init then the rescale wrote
            expected, tolerance = replay(write).expected(logical)
            error = (expected - written.reshape(-1).double()).abs()
            assert (error <= tolerance).all() and (tolerance > 0).all()
            wrong = getattr(triton_init.normal_(torch.empty(64, 33, dtype=dtype), 0.1, 0.7, seed=5, stream="w"),
                            fn)(other * 1.01)  # another factor is found
            assert ((expected - wrong.reshape(-1).double()).abs() > tolerance).any()
    with pytest.raises(NotReplayable, match="a copy") as raised:
        replay(Write("w", (3,), torch.float32, "not_verifiable", {"reason": "a copy"}, 0))
    assert raised.value.verdict == "not verifiable"
    with pytest.raises(NotReplayable, match="rescales"):
        replay(Write("w", (3,), torch.float32, "mul_", {"other": 2.0, "init": "mul_"}, 0))


def test_parameter_built_inside_and_changed_in_place_stays_on_its_stream():
    """timm's convnext: head weights drawn in the constructor, then ``mul_(head_init_scale)`` before attach."""
    with intercept(None, seed=SEED, strict=True) as ctx:
        net = nn.Sequential(nn.Linear(6, 9), nn.Linear(9, 4))  # reset_parameters: kaiming_uniform_, served
        nn.init.trunc_normal_(net[0].weight, std=0.02)
        nn.init.zeros_(net[0].bias)
        with torch.no_grad():
            net[0].weight.data.mul_(0.5)  # replayed after serving, recorded as a rescale
            net[0].bias.data.add_(0.125)  # deterministic: recorded, not verifiable
            net[1].weight.data.clamp_(-0.1, 0.1)  # replayed after serving, not verifiable
        ctx.attach(net)
    expected = direct(triton_init.trunc_normal_, (9, 6), "0.weight", 0.0, 0.02).mul_(0.5)
    assert torch.equal(net[0].weight.detach(), expected)
    kaiming = direct(triton_init.kaiming_uniform_, (4, 9), "1.weight", math.sqrt(5))
    assert torch.equal(net[1].weight.detach(), kaiming.clamp(-0.1, 0.1))
    assert torch.equal(net[0].bias.detach(), torch.full((9,), 0.125))
    log = [(r.stream, r.function, r.via) for r in ctx.log]
    assert log[:5] == [("0.weight", "trunc_normal_", "copy"), ("0.weight", "mul_", "later"),
                       ("0.bias", "zeros_", "call"), ("0.bias", "not_verifiable", "later"),
                       ("1.weight", "uniform_", "copy")], log
    assert ("1.weight", "not_verifiable", "later") in log
    verified(net, ctx)
    with pytest.raises(RuntimeError, match=r"strict=True.*1\.weight.*mul_"), intercept(None, seed=SEED,
                                                                                       strict=True) as ctx:
        net = nn.Sequential(nn.Linear(6, 9), nn.Linear(9, 4))
        with torch.no_grad():
            net[1].weight.data.mul_(torch.arange(9.0))  # by a tensor: not replayed, so torch's values stay
        ctx.attach(net)


def mamba_like(bias):
    """Mamba's dt_proj.bias: torch.rand through exp/clamp/log, then copy_."""
    dt = torch.exp(torch.rand(9) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
    with torch.no_grad():
        bias.copy_(dt + torch.log(-torch.expm1(-dt)))


def test_random_temporary_through_arithmetic_is_served_on_the_parameter_stream():
    values = {}
    for seed in (SEED, SEED, SEED + 1):  # the same twice, another with another seed
        net = poisoned_net()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with intercept(net, seed=seed, strict=True) as ctx:
                nn.init.zeros_(net.proj.bias)
                mamba_like(net.proj.bias)
        values.setdefault(seed, []).append(net.proj.bias.detach().clone())
    assert torch.equal(*values[SEED]) and not torch.equal(values[SEED][0], values[SEED + 1][0])
    u = triton_init.uniform_(torch.empty(9), 0.0, 1.0, seed=SEED + 1, stream="proj.bias")
    dt = torch.exp(u * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
    assert torch.equal(values[SEED + 1][0], dt + torch.log(-torch.expm1(-dt)))
    assert [(r.function, r.via) for r in ctx.log] == [("zeros_", "call"), ("not_verifiable", "computed")]
    assert "rand temporary" in ctx.log[1].args["reason"]
    # the same built inside the context: the parameter is made from the computed temporary, with no write
    with intercept(None, seed=SEED, strict=True) as ctx:
        a = torch.empty(5).uniform_(0.01, 16)
        net = nn.Module()
        net.A_log = nn.Parameter(torch.log(a))
        net.w = nn.Parameter(torch.empty(3, 4).normal_(0.0, 0.5))  # an init on a temporary, made a parameter
        ctx.attach(net)
    assert torch.equal(net.A_log.detach(), triton_init.uniform_(torch.empty(5), 0.01, 16, seed=SEED,
                                                                stream="A_log").log())
    assert torch.equal(net.w.detach(), direct(triton_init.normal_, (3, 4), "w", 0.0, 0.5))
    # Qwen3-Next's A_log: an init on a temporary, through an in-place log_, copied into the parameter
    net = poisoned_net()
    with intercept(net, seed=SEED, strict=True) as ctx:
        with torch.no_grad():
            net.scale.copy_(torch.empty(9).uniform_(0.01, 16).log_())
    expected = triton_init.uniform_(torch.empty(9), 0.01, 16, seed=SEED, stream="scale").log()
    assert torch.equal(net.scale, expected) and ctx.log[0].via == "computed"
