"""variance_scaling_ with JAX's semantics on torch's (out, in, *kernel) layout, and lecun_normal_/lecun_uniform_."""

import inspect
import math

import pytest
import torch
from scipy import stats

import triton_init
from triton_init._fans import TRUNCATED_STD_AT_2

SHAPE = (256, 128, 3)  # fan_in 384, fan_out 768, fan_avg 576
FANS = {"fan_in": 384, "fan_out": 768, "fan_avg": 576}
STD_RTOL = 0.01  # ~98k samples: the sample std is within about 0.25% of the true one


def test_signature():
    params = inspect.signature(triton_init.variance_scaling_).parameters
    assert [(p.name, p.default) for p in params.values()][:4] == [
        ("tensor", inspect.Parameter.empty), ("scale", 1.0), ("mode", "fan_in"), ("distribution", "truncated_normal")]
    assert {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY} == {
        "seed", "stream", "global_shape", "global_offset", "generator"}


def test_truncation_constant_is_the_std_of_the_unit_normal_cut_at_2():
    assert TRUNCATED_STD_AT_2 == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-15)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
@pytest.mark.parametrize("scale", [1.0, 2.0, 0.1])
def test_result_std_is_sqrt_scale_over_fan(mode, distribution, scale):
    out = triton_init.variance_scaling_(torch.empty(SHAPE), scale, mode, distribution, seed=1, stream=mode)
    std = math.sqrt(scale / FANS[mode])
    assert out.std().item() == pytest.approx(std, rel=STD_RTOL)
    if distribution == "truncated_normal":
        assert out.abs().max().item() <= 2 * std / TRUNCATED_STD_AT_2
    if distribution == "uniform":
        assert out.abs().max().item() <= math.sqrt(3) * std
        assert out.abs().max().item() >= 0.999 * math.sqrt(3) * std


def test_truncated_normal_has_the_truncnorm_law():
    out = triton_init.variance_scaling_(torch.empty(SHAPE), 2.0, "fan_avg", seed=2)
    sigma = math.sqrt(2.0 / 576) / TRUNCATED_STD_AT_2
    assert stats.kstest(out.reshape(-1).double().numpy(), stats.truncnorm(-2, 2, scale=sigma).cdf).pvalue > 1e-3


def test_fans_come_from_the_logical_shape():
    whole = triton_init.variance_scaling_(torch.empty(64, 48), 1.0, "fan_out", "normal", seed=3)
    shard = triton_init.variance_scaling_(torch.empty(64, 12), 1.0, "fan_out", "normal", seed=3,
                                          global_shape=(64, 48), global_offset=(0, 36))
    assert torch.equal(shard, whole[:, 36:])


@pytest.mark.parametrize("lecun, distribution", [("lecun_normal_", "truncated_normal"), ("lecun_uniform_", "uniform")])
def test_lecun_is_variance_scaling_1_fan_in(lecun, distribution):
    ours = getattr(triton_init, lecun)(torch.empty(32, 16, 3), seed=4, stream="l")
    expected = triton_init.variance_scaling_(torch.empty(32, 16, 3), 1.0, "fan_in", distribution, seed=4, stream="l")
    assert torch.equal(ours, expected)


def test_generator_is_keyword_only_and_reproducible():
    a = triton_init.lecun_normal_(torch.empty(8, 8), generator=torch.Generator().manual_seed(1))
    b = triton_init.variance_scaling_(torch.empty(8, 8), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize("args, error, match", [
    ((1.0, "fan_sum"), ValueError, "mode"),
    ((1.0, "FAN_IN"), ValueError, "mode"),  # JAX's names are exact
    ((1.0, "fan_in", "gaussian"), ValueError, "distribution"),
    ((0.0,), ValueError, "scale"),
    ((-1.0,), ValueError, "scale"),
    ((math.nan,), ValueError, "scale"),
    (("1",), TypeError, "scale"),
])
def test_bad_arguments(args, error, match):
    tensor = torch.zeros(4, 4)
    with pytest.raises(error, match=match):
        triton_init.variance_scaling_(tensor, *args)
    assert not tensor.any()


@pytest.mark.parametrize("fn", [triton_init.variance_scaling_, triton_init.lecun_normal_, triton_init.lecun_uniform_])
def test_fewer_than_2_dims_is_torchs_fan_error(fn):
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        fn(torch.zeros(5))


def test_zero_size_is_a_no_op():
    assert triton_init.variance_scaling_(torch.empty(0, 4), mode="fan_out").shape == (0, 4)


def test_kernels_equal_the_reference(poisoned, triton_backend):
    out = triton_init.variance_scaling_(poisoned(9, 7, 2), 0.5, "fan_avg", seed=6)
    with triton_init.backend("reference"):
        expected = triton_init.variance_scaling_(torch.empty(9, 7, 2), 0.5, "fan_avg", seed=6)
    std = math.sqrt(0.5 / 31.5) / TRUNCATED_STD_AT_2
    torch.testing.assert_close(out, expected, rtol=2 ** -23, atol=2e-5 * std * 4)
