"""The init manifest, verify_ and regenerate_: what is recorded, what verification catches, what is rebuilt."""

import functools
import json
import math

import pytest
import torch
import torch.nn as nn

import triton_init as ti
from triton_init import Init, Manifest, ManifestError, Region
from triton_init.contract import contract_units, normal_tolerance
from triton_init.models import build

SEED = 2024


def _random_calls():
    """name -> init call(tensor, *, seed, stream) for every random triton_init function (varied arguments)."""
    p = functools.partial
    return {
        "uniform_": p(ti.uniform_, a=-0.5, b=1.5),
        "normal_": p(ti.normal_, mean=0.25, std=0.5),
        "trunc_normal_": p(ti.trunc_normal_, std=0.02, a=-0.03, b=0.05),
        "trunc_normal_tail": p(ti.trunc_normal_, a=5.0, b=math.inf),
        "xavier_uniform_": p(ti.xavier_uniform_, gain=1.5),
        "xavier_normal_": ti.xavier_normal_,
        "kaiming_uniform_": p(ti.kaiming_uniform_, a=math.sqrt(5)),
        "kaiming_normal_": p(ti.kaiming_normal_, mode="fan_out", nonlinearity="relu"),
        "variance_scaling_": p(ti.variance_scaling_, scale=2.0, mode="fan_avg"),
        "variance_scaling_uniform": p(ti.variance_scaling_, distribution="uniform"),
        "lecun_normal_": ti.lecun_normal_,
        "lecun_uniform_": ti.lecun_uniform_,
    }


def _all_calls():
    p = functools.partial
    return {**_random_calls(),
            "orthogonal_": p(ti.orthogonal_, gain=2.0),
            "sparse_": p(ti.sparse_, sparsity=0.3, std=0.5),
            "constant_": p(ti.constant_, val=0.1),  # 0.1 rounds differently in each dtype
            "ones_": ti.ones_, "zeros_": ti.zeros_, "eye_": ti.eye_}


def _record(manifest, stream, tensor, init):
    """Apply an init call and record it, as init_module_ does."""
    keyed = {} if getattr(init, "func", init) in (ti.ones_, ti.zeros_, ti.eye_, ti.constant_) else \
        {"seed": SEED, "stream": stream}
    init(tensor, **keyed)
    manifest.record_init(stream, tuple(tensor.shape), tensor.dtype, init, SEED)
    return tensor


# ---- the manifest -------------------------------------------------------------------------------------


def test_manifest_json_round_trip_keeps_every_field():
    m = Manifest()
    m.record_init("emb", (10, 4), torch.bfloat16, Init.normal(0.0, 1.0), SEED)
    m.record("emb", (10, 4), torch.bfloat16, "zeros_", {}, SEED, Region(8, (4,), (1,)))
    m.record_init("w", (6, 5), torch.float32, functools.partial(ti.kaiming_normal_, mode="fan_out"), 7)
    m.record_init(12345678901234567890, (3,), torch.float16, Init.trunc_normal(0.0, 1.0, 1.5, math.inf), 1 << 63)
    m.record_init("mine", (2, 2), torch.float64, lambda t, *, seed, stream: t.zero_(), SEED)
    m.alias("head.weight", "emb")
    text = m.dumps()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    back = Manifest.loads(text)
    assert back == m and back.dumps() == text
    assert back.writes[1].region == Region(8, (4,), (1,)) and back.writes[3].args["b"] == math.inf
    # arguments after defaults, the triton_init function's name; a user callable by name, with no arguments
    assert back.writes[2].fn == "kaiming_normal_"
    assert back.writes[2].args == {"a": 0, "mode": "fan_out", "nonlinearity": "leaky_relu"}
    assert back.writes[4].fn.endswith("<lambda>") and back.writes[4].args is None and not back.writes[4].replayable
    assert back["head.weight"].stream == "emb" and len(back["emb"].writes) == 2
    assert back[12345678901234567890].dtype == torch.float16


@pytest.mark.parametrize("text, message", [
    ('{"kind": "triton_init.manifest", "manifest_version": 1, "writes": [', "not valid JSON"),
    ('[1, 2]', "not a triton_init manifest"),
    ('{"kind": "triton_init.manifest", "manifest_version": 9, "writes": []}', "version 9"),
    ('{"kind": "triton_init.manifest", "manifest_version": 1, "writes": [{"stream": "w"}]}', "writes[0] lacks"),
    ('{"kind": "triton_init.manifest", "manifest_version": 1, "writes": [{"stream": "w", "shape": [2], '
     '"dtype": "float99", "fn": "normal_", "args": {}, "seed": 1}]}', "unknown dtype"),
    ('{"kind": "triton_init.manifest", "manifest_version": 1, "writes": [{"stream": "w", "shape": [2], '
     '"dtype": "float32", "fn": "normal_", "args": {}, "seed": -1}]}', "seed"),
    ('{"kind": "triton_init.manifest", "manifest_version": 1, "writes": [{"stream": "w", "shape": [2], '
     '"dtype": "float32", "fn": "zeros_", "args": {}, "seed": 1, "region": {"offset": 1, "shape": [2], '
     '"strides": [1]}}]}', "reaches index 2"),
])
def test_invalid_manifests_raise_one_clear_error(text, message):
    with pytest.raises(ManifestError, match=message.replace("[", r"\[")):
        Manifest.loads(text)


def test_region_of_views_and_membership():
    base = torch.arange(60).reshape(5, 12)
    for view in (base[3], base[:, 4], base[1:4, 2:9:3], base.t()[2:5], base[4:5, 11:]):
        region = Region.of_view(view, base)
        inside = region.contains(torch.arange(60))
        assert sorted(torch.nonzero(inside).flatten().tolist()) == sorted(view.flatten().tolist())
        assert Region.from_indices(view) == region  # a view's logical indices, as an interception log has them
        m = Manifest()
        m.record("t", (5, 12), torch.float32, "zeros_", {}, 1, view)
        logged = type("Logged", (), {"offset": region.offset, "sizes": region.shape, "strides": region.strides})
        m.record("t", (5, 12), torch.float32, "ones_", {}, 1, logged)
        assert m.writes[0].region == m.writes[1].region == region
    with pytest.raises(ValueError, match="overlap"):
        Region(0, (4, 3), (2, 1))
    with pytest.raises(ValueError, match="not the elements of a view"):
        Region.from_indices(torch.tensor([[0, 1], [2, 4]]))


def test_init_module_records_every_write_in_order_with_padding_rows_and_ties():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 6, padding_idx=7)
            self.fc = nn.Linear(6, 4)
            self.head = nn.Linear(6, 10, bias=False)
            self.head.weight = self.emb.weight  # tied

    m = Manifest()
    rules = {"fc.weight": functools.partial(ti.kaiming_normal_, mode="fan_out")}
    model = ti.init_module_(Net(), ti.recipes.get("torch").extend(rules), seed=SEED, manifest=m)
    assert [(w.stream, w.fn) for w in m.writes] == [("emb.weight", "normal_"), ("emb.weight", "zeros_"),
                                                   ("fc.weight", "kaiming_normal_"), ("fc.bias", "uniform_")]
    assert m.writes[1].region == Region(42, (6,), (1,)) and m.aliases == {"head.weight": "emb.weight"}
    assert m.writes[2].args == {"a": 0, "mode": "fan_out", "nonlinearity": "leaky_relu"}
    bound = 1 / math.sqrt(6)
    assert m.writes[3].args == {"a": -bound, "b": bound} and m.writes[0].seed == SEED
    report = ti.verify_(model, m, samples=None)
    assert report.ok, report.table()
    assert [(t.name, t.checked) for t in report.tensors] == [("emb.weight", 60), ("head.weight", 60),
                                                            ("fc.weight", 24), ("fc.bias", 4)]


def test_materialize_and_init_flat_record_the_same_logical_writes():
    whole, flat = Manifest(), Manifest()
    ti.materialize_(build("nano"), "cpu", "gpt2", seed=SEED, manifest=whole)
    from triton_init.flat import module_segments

    segments = module_segments(build("nano"), "gpt2", 1000, 9000)
    ti.init_flat_(torch.empty(8000), segments, seed=SEED, manifest=flat)
    assert flat.writes == [w for w in whole.writes if w.stream in {s.stream for s in segments}]


# ---- verify_ ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_verify_passes_every_init_and_catches_one_changed_element(dtype):
    m = Manifest()
    tensors = {name: _record(m, name, torch.full((24, 20), math.nan, dtype=dtype), init)
               for name, init in _all_calls().items()}
    report = ti.verify_(tensors, m, samples=None, seed=1)
    assert report.ok, report.table()
    assert all(t.checked == 480 for t in report.tensors)
    changed = {}
    for k, (name, tensor) in enumerate(tensors.items()):  # one element changed in each, each at its own place
        changed[name] = tensor.clone()
        changed[name][k, 19 - k] = 3.0 if tensor[k, 19 - k] != 3.0 else -3.0
    bad = ti.verify_(changed, m, samples=None, seed=1)
    assert [t.name for t in bad.failures] == list(tensors)
    for k, t in enumerate(bad.tensors):
        assert t.verdict == "mismatch" and t.mismatches == 1 and t.max_error > 1
        assert t.first_mismatch["index"] == k * 20 + 19 - k and t.first_mismatch["coords"] == [k, 19 - k]


def test_verify_sees_another_seed_in_every_random_init():
    m = Manifest()
    tensors = {}
    for name, init in _random_calls().items():
        tensors[name] = init(torch.empty(16, 12), seed=SEED + 1, stream=name)
        m.record_init(name, (16, 12), torch.float32, init, SEED)
    report = ti.verify_(tensors, m, samples=None)
    assert all(t.verdict == "mismatch" and t.mismatches > 150 for t in report.tensors), report.table()
    assert any("another seed" in note for note in report.notes)


def test_contract_units_are_the_contract():
    expected = torch.tensor([0.3, -2.7, 4.1], dtype=torch.float64)
    tolerance = normal_tolerance(expected, 0.0, 1.0, torch.float32)
    assert contract_units(expected.float(), expected, tolerance, torch.float32).max() == 0  # correctly rounded
    assert (contract_units(expected.half(), expected, tolerance, torch.float32) > 1).all()  # rounded to fp16
    tolerance = normal_tolerance(expected, 0.0, 1.0, torch.float64)
    for scale, lo, hi in ((1.0, 0.999, 1.0), (0.5, 0.499, 0.5), (1.01, 1.009, 1.01)):
        units = contract_units(expected + scale * tolerance, expected, tolerance, torch.float64)
        assert ((units > lo) & (units <= hi + 1e-9)).all(), (scale, units)
    zero = torch.zeros(3, dtype=torch.float64)
    assert contract_units(torch.tensor([0.0, 1e-30, math.nan]), zero, zero, torch.float32).tolist() == \
        [0.0, math.inf, math.inf]


def test_verify_kernel_path_through_the_interpreter(triton_backend):
    m = Manifest()
    with torch.device("meta"):
        model = nn.Sequential(nn.Embedding(64, 16, padding_idx=2), nn.Linear(16, 48), nn.LayerNorm(48)).bfloat16()
    recipe = ti.recipes.get("torch").extend({"1.weight": Init.trunc_normal(0.0, 0.02)})
    ti.materialize_(model, "cpu", recipe, seed=SEED, manifest=m)
    report = ti.verify_(model, m, samples=None)
    assert report.ok and sum(t.checked for t in report.tensors) == sum(p.numel() for p in model.parameters())
    assert [w.fn for w in m.writes] == ["normal_", "zeros_", "trunc_normal_", "uniform_", "constant_", "constant_"]
    buffer = torch.full((3000,), math.nan)
    segments = ti.shard_segments([(Init.trunc_normal(0.0, 0.02), "a", (40, 50)), (Init.ones(), "b", (50,)),
                                  (Init.uniform(-1, 1), "c", (7, 300))], 1900, 4900)
    flat = Manifest()
    ti.init_flat_(buffer, segments, seed=SEED, manifest=flat)
    report = ti.verify_(buffer, flat, segments=segments, samples=None)
    assert report.ok and [t.checked for t in report.tensors] == [100, 50, 2100], report.table()
    buffer[2100] += 1.0  # flattened index 2100 - 150 = 1950 of "c"
    bad = ti.verify_(buffer, flat, segments=segments, samples=None)
    assert [(t.name, t.first_mismatch["index"]) for t in bad.failures] == [("c", 1950)]


def test_samples_include_both_ends_and_indices_past_2_32():
    shape = (1 << 20, 1 << 13)  # 2^33 elements; rows [2^19 - 2, 2^19 + 2) straddle 2^32
    offset = ((1 << 19) - 2, 0)
    block = ti.normal_(torch.empty(4, 1 << 13), seed=SEED, stream="big", global_shape=shape, global_offset=offset)
    m = Manifest()
    m.record("big", shape, torch.float32, "normal_", {"mean": 0.0, "std": 1.0}, SEED)
    assert ti.verify_({"big": block}, m, offsets={"big": offset}, samples=16).ok
    for position in (0, 2 * (1 << 13) + 5, 4 * (1 << 13) - 1):  # first, 2^32 + 5, last
        changed = block.clone()
        changed.view(-1)[position] *= -1.5
        report = ti.verify_({"big": changed}, m, offsets={"big": offset}, samples=16, seed=3)
        assert report.tensors[0].mismatches == 1
        assert report.tensors[0].first_mismatch["index"] == offset[0] * (1 << 13) + position


def test_verify_reports_missing_shape_dtype_unrecorded_and_user_callables():
    m = Manifest()
    tensors = {n: _record(m, n, torch.empty(8, 6), ti.normal_) for n in ("a", "b", "c", "d")}
    _record(m, "mine", torch.empty(3), lambda t, *, seed, stream: t.fill_(2.0))
    tensors["mine"] = torch.full((3,), 2.0)
    del tensors["a"]
    tensors["b"] = tensors["b"][:7]
    tensors["c"] = tensors["c"].double()
    tensors["extra"] = torch.zeros(2)
    report = ti.verify_(tensors, m)
    assert {t.name: t.verdict for t in report.tensors} == {
        "a": "missing", "b": "shape mismatch", "c": "dtype mismatch", "d": "ok", "mine": "not verifiable",
        "extra": "unrecorded"}
    assert not report.ok and {t.name for t in report.failures} == {"a", "b", "c"}
    assert "user callable" in {t.name: t for t in report.tensors}["mine"].detail
    with pytest.raises(ti.VerificationError, match="missing"):
        ti.verify_(tensors, m, raise_on_failure=True)
    only_mine = ti.verify_(tensors["mine"], m["mine"])
    assert not only_mine.ok and not only_mine.failures and only_mine.unverified


def test_writes_that_cannot_be_replayed_leave_the_rest_checked():
    m = Manifest()
    w = _record(m, "w", torch.empty(5, 4), lambda t, *, seed, stream: t.fill_(2.0))
    m.record("w", (5, 4), torch.float32, "zeros_", {}, SEED, Region(4, (4,), (1,)))  # row 1 zeroed after
    w[1] = 0.0
    m.record("r", (3, 4), torch.float32, "ones_", {}, SEED, Region(0, (3,), (4,)))  # only column 0 recorded
    r = torch.zeros(3, 4)
    r[:, 0] = 1.0
    report = ti.verify_({"w": w, "r": r}, m, samples=None)
    assert [(t.verdict, t.checked) for t in report.tensors] == [("not verifiable", 4), ("not verifiable", 3)]
    assert "4 other elements checked: ok" in report.tensors[0].detail
    assert "covered by no recorded write" in report.tensors[1].detail
    w[1, 2], r[2, 0] = 1.0, 0.5
    report = ti.verify_({"w": w, "r": r}, m, samples=None)
    assert [(t.verdict, t.first_mismatch["index"]) for t in report.tensors] == [("mismatch", 6), ("mismatch", 8)]


def test_sparse_samples_whole_columns_within_a_key_budget(monkeypatch):
    from triton_init import _replay

    m = Manifest()
    w = _record(m, "s", torch.empty(40, 300), functools.partial(ti.sparse_, sparsity=0.5))
    monkeypatch.setattr(_replay, "SPARSE_KEY_BUDGET", 40 * 10)
    sampled = ti.verify_({"s": w}, m, samples=2000, seed=4)
    assert sampled.ok and 0 < sampled.tensors[0].checked <= 12 * 40  # 10 random columns and both ends'
    full = ti.verify_({"s": w}, m, samples=None)
    assert full.ok and full.tensors[0].checked == 40 * 300
    w[17, 250] = 0.0 if w[17, 250] != 0 else 1.0
    assert ti.verify_({"s": w}, m, samples=None).tensors[0].first_mismatch["index"] == 17 * 300 + 250


def test_a_pipeline_stage_checks_its_own_tensors():
    m = Manifest()
    model = ti.materialize_(build("nano"), "cpu", "llama", seed=SEED, manifest=m)
    report = ti.verify_(model.layers["1"], m, prefix="layers.1.")
    assert report.ok and len(report.tensors) == 9
    assert all(t.stream.startswith("layers.1.") for t in report.tensors)


def test_verify_names_the_tensor_whose_values_a_swapped_one_holds():
    m = Manifest()
    model = ti.materialize_(build("nano"), "cpu", "llama", seed=SEED, manifest=m)
    state = dict(model.state_dict())
    a, b = "layers.0.attention.wq.weight", "layers.1.attention.wq.weight"
    state[a], state[b] = state[b], state[a]
    report = ti.verify_(state, m, seed=0)
    assert {t.name for t in report.failures} == {a, b}
    details = {t.name: t.detail for t in report.failures}
    assert f"values of {b}" in details[a] and f"values of {a}" in details[b]


def test_large_orthogonal_is_not_sample_verifiable(monkeypatch):
    from triton_init import _replay

    m = Manifest()
    w = _record(m, "q", torch.empty(40, 30), functools.partial(ti.orthogonal_, gain=1.0))
    monkeypatch.setattr(_replay, "ORTHOGONAL_FULL_LIMIT", 1000)
    report = ti.verify_({"q": w}, m)
    assert report.tensors[0].verdict == "not sample-verifiable" and "QR" in report.tensors[0].detail


# ---- regenerate_ --------------------------------------------------------------------------------------


def test_regenerate_rebuilds_any_block_from_the_manifest_alone():
    m = Manifest()
    model = ti.init_module_(nn.Embedding(30, 8, padding_idx=11), "torch", seed=SEED, manifest=m)
    tensors = {"weight": model.weight.detach()}
    for name, init in _all_calls().items():
        tensors[name] = _record(m, name, torch.empty(24, 20), init)
    for name, original in tensors.items():
        record = m[name]
        whole = ti.regenerate_(torch.full_like(original, math.nan), record)
        assert torch.equal(whole, original), name
        rows, cols = original.shape
        for r0, r1, c0, c1 in ((0, rows // 2, 0, cols), (5, rows, 3, 7), (11, 12, 0, cols)):
            block = ti.regenerate_(torch.full((r1 - r0, c1 - c0), math.nan), record, global_offset=(r0, c0))
            assert torch.equal(block, original[r0:r1, c0:c1]), (name, r0, c0)


def test_regenerate_refuses_what_it_cannot_replay_and_writes_nothing():
    m = Manifest()
    _record(m, "w", torch.empty(4, 4), ti.normal_)
    _record(m, "w", torch.empty(4, 4), lambda t, *, seed, stream: t.mul_(2))
    target = torch.full((4, 4), math.nan)
    with pytest.raises(ValueError, match="user callable"):
        ti.regenerate_(target, m["w"])
    assert target.isnan().all()
    with pytest.raises(TypeError, match="float64"):
        ti.regenerate_(torch.empty(4, 4, dtype=torch.float64), m["w"].writes[0])
    with pytest.raises(ValueError, match="outside"):
        ti.regenerate_(torch.empty(2, 4), m["w"].writes[0], global_offset=(3, 0))


def test_manifest_regenerate_by_name():
    m = Manifest()
    model = ti.materialize_(build("nano"), "cpu", "llama", seed=SEED, manifest=m)
    lost = torch.zeros(16, 32)
    m.regenerate_(lost, "layers.1.feed_forward.w2.weight", global_offset=(16, 64))
    assert torch.equal(lost, model.layers["1"].feed_forward.w2.weight.detach()[16:, 64:96])


@pytest.mark.gpu
def test_cuda_kernels_verify_and_regenerate_on_the_device():
    m = Manifest()
    tensors = {}
    for dtype in (torch.float32, torch.bfloat16):
        for name, init in _all_calls().items():
            stream = f"{name}/{dtype}"
            tensors[stream] = _record(m, stream, torch.full((300, 257), math.nan, dtype=dtype, device="cuda"), init)
    report = ti.verify_(tensors, m, samples=None)
    assert report.ok, report.table()
    for stream, original in tensors.items():
        block = torch.full((100, 57), math.nan, dtype=original.dtype, device="cuda")
        ti.regenerate_(block, m[stream], global_offset=(150, 200))
        assert torch.equal(block, original[150:250, 200:257]), stream
