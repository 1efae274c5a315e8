"""triton_init against torch.nn.init, function by function: signatures, gains, std/bound formulas (empirical
std on large tensors), exact deterministic values (also for blocks of a logical tensor), and errors."""

import inspect
import math
import warnings

import pytest
import torch

import triton_init
from triton_init import reference
from triton_init._format import NORMAL, UNIFORM
from triton_init._nn_init import sparse_rows_stream

TORCH_FUNCTIONS = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
]
ADDED_RANDOM = {"seed", "stream", "global_shape", "global_offset"}
ADDED_DETERMINISTIC = {"global_shape", "global_offset"}
NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
# Samples per empirical-std check: the sample std's relative error is about 1 / sqrt(2 n) = 0.1%.
BIG = (512, 256)
STD_RTOL = 0.01


def _params(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", TORCH_FUNCTIONS)
def test_signature_is_torchs_plus_keyword_only_additions(name):
    ours, theirs = getattr(triton_init, name), getattr(torch.nn.init, name)
    added = [p for p in _params(ours) if p not in _params(theirs)]
    assert [p for p in _params(ours) if p not in added] == _params(theirs)
    assert all(kind == inspect.Parameter.KEYWORD_ONLY for _, kind, _ in added)
    names = {n for n, _, _ in added}
    if name == "calculate_gain":
        assert names == set()
    elif name in ("constant_", "ones_", "zeros_", "eye_", "dirac_"):
        assert names == ADDED_DETERMINISTIC
    else:
        assert names == ADDED_RANDOM


def test_everything_is_exported():
    for name in TORCH_FUNCTIONS + ["variance_scaling_", "lecun_normal_", "lecun_uniform_"]:
        assert name in triton_init.__all__ and callable(getattr(triton_init, name))


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("param", [None, 0.2, 1, 3.5])
def test_calculate_gain_matches_torch(nonlinearity, param):
    ours = triton_init.calculate_gain(nonlinearity, param)
    theirs = torch.nn.init.calculate_gain(nonlinearity, param)
    assert ours == theirs and type(ours) is type(theirs)


@pytest.mark.parametrize("args", [("leaky_relu", True), ("leaky_relu", "0.1"), ("softmax", None), ("ReLU", None)])
def test_calculate_gain_errors_match_torch(args):
    with pytest.raises(ValueError) as theirs:
        torch.nn.init.calculate_gain(*args)
    with pytest.raises(ValueError) as ours:
        triton_init.calculate_gain(*args)
    assert str(ours.value) == str(theirs.value)


# ---- fan-based std and bounds ------------------------------------------------------------------------

# (name, shape, kwargs, expected std, uniform bound or None): the formulas as torch documents them.
FAN_CASES = [
    ("xavier_uniform_", BIG, {"gain": 1.5}, 1.5 * math.sqrt(2 / (512 + 256)), 1.5 * math.sqrt(6 / (512 + 256))),
    ("xavier_normal_", (128, 64, 3, 3), {}, math.sqrt(2 / (9 * (128 + 64))), None),
    ("kaiming_uniform_", (256, 64, 3, 3), {"a": math.sqrt(5)}, math.sqrt(2 / 6) / math.sqrt(576),
     math.sqrt(3) * math.sqrt(2 / 6) / math.sqrt(576)),
    ("kaiming_uniform_", BIG, {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(2 / 512),
     math.sqrt(6 / 512)),
    ("kaiming_normal_", BIG, {"nonlinearity": "relu"}, math.sqrt(2 / 256), None),
    ("kaiming_normal_", (256, 32, 5, 5), {"mode": "FAN_OUT", "nonlinearity": "tanh"}, 5 / 3 / math.sqrt(6400),
     None),
    ("kaiming_normal_", BIG, {"nonlinearity": "selu"}, 0.75 / math.sqrt(256), None),
]


@pytest.mark.parametrize("name, shape, kwargs, std, bound", FAN_CASES)
def test_fan_based_std_and_bound_match_torch(name, shape, kwargs, std, bound):
    ours = getattr(triton_init, name)(torch.empty(shape), **kwargs, seed=11, stream=name)
    torch.manual_seed(0)
    theirs = getattr(torch.nn.init, name)(torch.empty(shape), **kwargs)
    for t in (ours, theirs):
        assert t.std().item() == pytest.approx(std, rel=STD_RTOL)
        assert abs(t.mean().item()) < 5 * std / math.sqrt(t.numel())
        if bound is not None:
            assert t.abs().max().item() <= bound * (1 + 1e-6)
            assert t.abs().max().item() >= bound * 0.999


@pytest.mark.parametrize("name, plain, kwargs, dist_args", [
    ("xavier_uniform_", "uniform_", {"gain": 2.0}, lambda s: {"a": -2 * math.sqrt(6 / s), "b": 2 * math.sqrt(6 / s)}),
    ("xavier_normal_", "normal_", {}, lambda s: {"std": math.sqrt(2 / s)}),
    ("kaiming_uniform_", "uniform_", {"nonlinearity": "relu"},
     lambda s: {"a": -math.sqrt(6 / 48), "b": math.sqrt(6 / 48)}),
    ("kaiming_normal_", "normal_", {"mode": "fan_out"}, lambda s: {"std": math.sqrt(2.0) / math.sqrt(120)}),
])
@pytest.mark.parametrize("use_kernels", [False, True])
def test_fan_based_init_is_one_plain_fill(name, plain, kwargs, dist_args, use_kernels, poisoned):
    """kaiming/xavier are the plain uniform_/normal_ of the same stream with torch's bound or std: the same
    bits, no extra pass (also through the kernels)."""
    shape = (40, 16, 3)  # fan_in 48, fan_out 120
    ours, plain_fill = poisoned(*shape), poisoned(*shape)
    with triton_init.backend("triton" if use_kernels else "reference"):
        getattr(triton_init, name)(ours, **kwargs, seed=5, stream="w")
        getattr(triton_init, plain)(plain_fill, **dist_args(48 + 120), seed=5, stream="w")
    assert not ours.isnan().any()
    torch.testing.assert_close(ours, plain_fill, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"])
def test_fans_come_from_global_shape_and_a_shard_is_a_slice(name):
    full = getattr(triton_init, name)(torch.empty(96, 40), seed=3, stream=7)
    shard = getattr(triton_init, name)(torch.empty(32, 40), seed=3, stream=7, global_shape=(96, 40),
                                       global_offset=(32, 0))
    assert torch.equal(shard, full[32:64])
    col = getattr(triton_init, name)(torch.empty(96, 10), seed=3, stream=7, global_shape=(96, 40),
                                     global_offset=(0, 30))
    assert torch.equal(col, full[:, 30:])


def test_generator_and_manual_seed_make_runs_reproducible():
    torch.manual_seed(123)
    a = triton_init.kaiming_uniform_(torch.empty(8, 8))
    torch.manual_seed(123)
    b = triton_init.kaiming_uniform_(torch.empty(8, 8))
    c = triton_init.kaiming_uniform_(torch.empty(8, 8), generator=torch.Generator().manual_seed(123))
    d = triton_init.kaiming_uniform_(torch.empty(8, 8), generator=torch.Generator().manual_seed(123))
    assert torch.equal(a, b) and torch.equal(c, d) and not torch.equal(a, torch.zeros(8, 8))


@pytest.mark.parametrize("name", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
                                  "orthogonal_", "sparse_"])
def test_random_inits_return_the_tensor_and_leave_grad_alone(name):
    w = torch.nn.Parameter(torch.empty(6, 4))
    args = (0.5,) if name == "sparse_" else ()
    out = getattr(triton_init, name)(w, *args, seed=1)
    assert out is w and w.grad is None and w.requires_grad


# ---- errors -------------------------------------------------------------------------------------------

# (name, shape, args, kwargs): bad arguments on which torch raises a ValueError; ours must raise the same.
ERROR_CASES = [
    ("xavier_uniform_", (5,), (), {}),
    ("xavier_normal_", (), (), {}),
    ("kaiming_uniform_", (7,), (), {}),
    ("kaiming_normal_", (3, 4), (), {"mode": "fan_avg"}),
    ("kaiming_uniform_", (3, 4), (), {"nonlinearity": "gelu"}),
    ("kaiming_normal_", (3, 4), (), {"a": "0.1"}),
    ("kaiming_normal_", (3, 4), (), {"a": True}),
    ("eye_", (3, 4, 5), (), {}),
    ("eye_", (3,), (), {}),
    ("dirac_", (3, 4), (), {}),
    ("dirac_", (2, 3, 4, 5, 6, 7), (), {}),
    ("dirac_", (6, 4, 3), (4,), {}),
    ("orthogonal_", (5,), (), {}),
    ("sparse_", (4, 5, 6), (0.5,), {}),
    ("sparse_", (5,), (0.5,), {}),
]


@pytest.mark.parametrize("name, shape, args, kwargs", ERROR_CASES)
def test_errors_match_torch(name, shape, args, kwargs):
    with pytest.raises(ValueError) as theirs:
        getattr(torch.nn.init, name)(torch.zeros(shape), *args, **kwargs)
    tensor = torch.zeros(shape)
    with pytest.raises(ValueError) as ours:
        getattr(triton_init, name)(tensor, *args, **kwargs)
    assert str(ours.value) == str(theirs.value)
    assert not tensor.any()  # nothing written


@pytest.mark.parametrize("name", ["kaiming_uniform_", "kaiming_normal_"])
def test_kaiming_on_zero_size_warns_like_torch(name):
    for fn in (getattr(torch.nn.init, name), getattr(triton_init, name)):
        with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
            fn(torch.empty(0, 3), mode="not checked")


@pytest.mark.parametrize("name, kwargs, message", [
    ("xavier_uniform_", {"gain": -1.0}, "gain must be non-negative, got -1.0"),
    ("xavier_normal_", {"gain": -1.0}, "gain must be non-negative, got -1.0"),
    ("xavier_normal_", {"gain": math.nan}, "gain must not be NaN"),
    ("kaiming_normal_", {"a": math.nan}, "a must not be NaN"),
    ("kaiming_uniform_", {"a": math.nan, "nonlinearity": "leaky_relu"}, "a must not be NaN"),
])
def test_a_negative_or_nan_std_is_a_value_error(name, kwargs, message):
    """torch fails inside uniform_/normal_ (RuntimeError); we raise a ValueError naming the argument the user
    passed (not the std derived from it) before writing anything."""
    with pytest.raises(RuntimeError):
        getattr(torch.nn.init, name)(torch.zeros(4, 4), **kwargs)
    tensor = torch.zeros(4, 4)
    with pytest.raises(ValueError, match=message):
        getattr(triton_init, name)(tensor, **kwargs)
    assert not tensor.any()


@pytest.mark.parametrize("name", ["xavier_uniform_", "kaiming_normal_", "sparse_", "orthogonal_"])
def test_bad_block_and_dtype_are_rejected_before_writing(name):
    args = (0.5,) if name == "sparse_" else ()
    tensor = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="outside"):
        getattr(triton_init, name)(tensor, *args, global_shape=(6, 4), global_offset=(3, 0))
    with pytest.raises(ValueError, match="ranks must match"):
        getattr(triton_init, name)(tensor, *args, global_shape=(4, 4, 1))
    assert not tensor.any()
    with pytest.raises(TypeError, match="floating-point"):
        getattr(triton_init, name)(torch.zeros(4, 4, dtype=torch.int32), *args, seed=0)


# ---- deterministic inits: exactly torch's values ------------------------------------------------------

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.int64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, args", [("constant_", (0.3,)), ("ones_", ()), ("zeros_", ())])
def test_constant_ones_zeros_match_torch(name, args, dtype):
    ours = getattr(triton_init, name)(torch.full((5, 7), 9, dtype=dtype), *args)
    theirs = getattr(torch.nn.init, name)(torch.full((5, 7), 9, dtype=dtype), *args)
    assert torch.equal(ours, theirs)
    view = torch.full((6, 9), 9, dtype=dtype)
    getattr(triton_init, name)(view[1:4, 2:7], *args, global_shape=(3, 10), global_offset=(0, 3))
    assert torch.equal(view[1:4, 2:7], theirs[:3, :5]) and (view[0] == 9).all() and (view[:, :2] == 9).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (3, 7), (8, 2), (1, 5)])
def test_eye_matches_torch(shape, dtype):
    ours = triton_init.eye_(torch.full(shape, 7, dtype=dtype))
    assert torch.equal(ours, torch.nn.init.eye_(torch.full(shape, 7, dtype=dtype)))


@pytest.mark.parametrize("block", [((2, 0), (3, 7)), ((0, 3), (8, 4)), ((5, 4), (3, 3)), ((7, 0), (1, 7)),
                                   ((0, 0), (8, 7))])
def test_eye_on_a_block_is_that_block_of_the_identity(block):
    (r0, c0), (rows, cols) = block
    full = torch.nn.init.eye_(torch.empty(8, 7))
    shard = triton_init.eye_(torch.full((rows, cols), 5.0), global_shape=(8, 7), global_offset=(r0, c0))
    assert torch.equal(shard, full[r0:r0 + rows, c0:c0 + cols])
    strided = torch.full((cols, rows), 5.0).t()  # a transposed view
    triton_init.eye_(strided, global_shape=(8, 7), global_offset=(r0, c0))
    assert torch.equal(strided, full[r0:r0 + rows, c0:c0 + cols])


@pytest.mark.parametrize("shape, groups", [((4, 4, 3), 1), ((6, 2, 5), 3), ((8, 3, 3, 3), 2), ((2, 5, 4, 4), 1),
                                           ((6, 4, 3, 2, 5), 2), ((4, 6, 3), 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int32])
def test_dirac_matches_torch(shape, groups, dtype):
    ours = triton_init.dirac_(torch.full(shape, 3, dtype=dtype), groups)
    assert torch.equal(ours, torch.nn.init.dirac_(torch.full(shape, 3, dtype=dtype), groups))


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_dirac_on_a_block_is_that_block_of_the_whole(groups):
    shape = (8, 6, 3, 4)
    full = torch.nn.init.dirac_(torch.empty(shape), groups)
    for offset, size in [((2, 0, 0, 0), (4, 6, 3, 4)), ((0, 3, 0, 0), (8, 3, 3, 4)), ((1, 1, 1, 2), (5, 4, 1, 2)),
                         ((0, 0, 0, 0), (8, 6, 2, 2))]:
        block = triton_init.dirac_(torch.full(size, 9.0), groups, global_shape=shape, global_offset=offset)
        index = tuple(slice(o, o + s) for o, s in zip(offset, size, strict=True))
        assert torch.equal(block, full[index])


def test_deterministic_inits_leave_meta_tensors_alone():
    for fn, args in [(triton_init.eye_, ()), (triton_init.zeros_, ()), (triton_init.constant_, (2.0,))]:
        assert fn(torch.empty(3, 3, device="meta"), *args).is_meta
    assert triton_init.dirac_(torch.empty(4, 4, 3, device="meta"), 2).is_meta
    assert triton_init.orthogonal_(torch.empty(4, 4, device="meta")).is_meta
    assert triton_init.sparse_(torch.empty(4, 4, device="meta"), 0.5).is_meta


# ---- sparse_ -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, sparsity", [((100, 30), 0.1), ((57, 13), 0.33), ((10, 4), 1.0), ((10, 4), 0.0)])
def test_sparse_zero_count_per_column_matches_torch(shape, sparsity):
    torch.manual_seed(0)
    theirs = torch.nn.init.sparse_(torch.empty(shape), sparsity)
    ours = triton_init.sparse_(torch.empty(shape), sparsity, seed=4, stream="s")
    assert torch.equal((ours == 0).sum(0), (theirs == 0).sum(0))
    assert ((ours == 0).sum(0) == math.ceil(sparsity * shape[0])).all()


def test_sparse_std_matches_torch():
    torch.manual_seed(0)
    theirs = torch.nn.init.sparse_(torch.empty(400, 300), 0.25, std=0.05)
    ours = triton_init.sparse_(torch.empty(400, 300), 0.25, std=0.05, seed=1)
    for t in (ours, theirs):
        assert t[t != 0].std().item() == pytest.approx(0.05, rel=STD_RTOL)


def test_sparse_follows_the_documented_derivation():
    """Values: normal_(0, std) of (seed, stream). Zero rows of column c: the ceil(sparsity * rows) smallest
    uniform values at logical (c, r) of the (cols, rows) matrix in stream sparse_rows_stream(stream)."""
    rows, cols, sparsity, seed, stream = 37, 11, 0.4, 99, 1234
    ours = triton_init.sparse_(torch.empty(rows, cols), sparsity, std=0.2, seed=seed, stream=stream)
    dense = triton_init.normal_(torch.empty(rows, cols), 0.0, 0.2, seed=seed, stream=stream)
    logical = torch.arange(cols * rows).reshape(cols, rows)
    keys = reference.values_at(logical, UNIFORM, reference.dist_params(UNIFORM, torch.float32), seed,
                               sparse_rows_stream(stream), torch.float32)
    zero_rows = torch.sort(keys, dim=1, stable=True).indices[:, :math.ceil(sparsity * rows)]
    expected = dense.clone()
    expected[zero_rows, torch.arange(cols)[:, None]] = 0
    assert torch.equal(ours, expected)
    assert sparse_rows_stream(stream) == triton_init.stream_id(f"sparse_/{stream}")


def test_sparse_block_is_the_slice_of_the_whole():
    full = triton_init.sparse_(torch.empty(30, 12), 0.3, seed=8)
    for offset, size in [((10, 0), (10, 12)), ((0, 5), (30, 4)), ((7, 3), (9, 6))]:
        block = triton_init.sparse_(torch.empty(size), 0.3, seed=8, global_shape=(30, 12), global_offset=offset)
        assert torch.equal(block, full[offset[0]:offset[0] + size[0], offset[1]:offset[1] + size[1]])


def test_sparse_kernels_equal_the_reference(poisoned, triton_backend):
    out = poisoned(23, 9)
    triton_init.sparse_(out, 0.5, std=0.1, seed=2, stream=3)
    with triton_init.backend("reference"):
        expected = triton_init.sparse_(torch.empty(23, 9), 0.5, std=0.1, seed=2, stream=3)
    assert torch.equal(out == 0, expected == 0)
    torch.testing.assert_close(out, expected, rtol=2 ** -23, atol=2e-5 * 0.1)


@pytest.mark.parametrize("sparsity", [-0.1, 1.5, math.nan])
def test_sparse_rejects_a_sparsity_outside_0_1(sparsity):
    """torch accepts these silently (a negative sparsity zeroes most of each column); we raise."""
    tensor = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="sparsity"):
        triton_init.sparse_(tensor, sparsity)
    assert not tensor.any()


def test_warning_free_on_ordinary_calls():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        triton_init.kaiming_uniform_(torch.empty(4, 4), seed=0)
        triton_init.orthogonal_(torch.empty(4, 4), seed=0)
        triton_init.eye_(torch.empty(4, 4))


def test_normal_values_are_the_stream_format():
    """A spot check that the fan-based inits write format values: kaiming_normal_ at index 0..7."""
    out = triton_init.kaiming_normal_(torch.empty(2, 4), seed=77, stream=3)
    std = math.sqrt(2.0) / 2  # leaky_relu with a=0: slope 0
    expected = reference.values_at(torch.arange(8), NORMAL, reference.dist_params(NORMAL, torch.float32, std=std),
                                   77, 3, torch.float32)
    torch.testing.assert_close(out.reshape(-1), expected, rtol=2 ** -23, atol=2e-5 * std)
