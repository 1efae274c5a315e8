"""Distribution tests on the reference path (the kernels match it element by element, see test_kernels):
KS against scipy.stats, moments, and the bf16 pile-up at the bounds that torch's trunc_normal_ suffers."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import triton_init

N = 1_000_003
P_MIN = 1e-3  # the draws are fixed by the seed, so this is a deterministic check, not a flaky one


def sample(fill, dtype=torch.float64, n=N, seed=20240613, **kwargs):
    out = torch.full((n,), float("nan"), dtype=dtype)
    with triton_init.backend("reference"):
        fill(out, **kwargs, seed=seed, stream="stats")
    assert not torch.isnan(out).any()
    return out.double().numpy()


def assert_moments(x, mean, std):
    """Sample mean within 5 standard errors; sample std within 5 of its standard errors (normal-ish)."""
    n = len(x)
    assert abs(x.mean() - mean) <= 5 * std / math.sqrt(n), (x.mean(), mean)
    assert abs(x.std() - std) <= 5 * std / math.sqrt(2 * n) * 1.5, (x.std(), std)


def assert_ks(x, dist):
    result = stats.kstest(x, dist.cdf)
    assert result.pvalue > P_MIN, result


def test_uniform():
    a, b = -0.3, 1.7
    x = sample(triton_init.uniform_, a=a, b=b)
    assert ((x > a) & (x < b)).all()
    assert_ks(x, stats.uniform(a, b - a))
    assert_moments(x, (a + b) / 2, (b - a) / math.sqrt(12))


def test_uniform_fp32_single_rounding_covers_the_range():
    x = sample(triton_init.uniform_, dtype=torch.float32, a=-1.0, b=1.0)
    assert x.min() < -0.999 and x.max() > 0.999 and ((x >= -1) & (x <= 1)).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_normal(dtype):
    mean, std = 0.5, 2.0
    x = sample(triton_init.normal_, dtype=dtype, mean=mean, std=std)
    assert_ks(x, stats.norm(mean, std))
    assert_moments(x, mean, std)
    # Tails: about 2.7e-3 of the mass beyond 3 std; Box-Muller from u in (0, 1) reaches about 5.8 std.
    beyond = np.abs(x - mean) > 3 * std
    expected = 2 * stats.norm.sf(3) * N
    assert abs(beyond.sum() - expected) < 5 * math.sqrt(expected)
    assert np.abs(x - mean).max() < 5.8 * std


@pytest.mark.parametrize("mean,std,alpha,beta", [
    (0.0, 1.0, -2.0, 2.0),
    (0.1, 0.02, -3.0, 1.0),
    (0.0, 1.0, -6.0, 6.0),
    (1.0, 0.5, 5.0, 7.0),
    (-2.0, 3.0, -9.0, -8.0),
], ids=["[-2,2]", "[-3,1]", "[-6,6]", "far[5,7]", "far[-9,-8]"])
def test_trunc_normal(mean, std, alpha, beta):
    a, b = mean + alpha * std, mean + beta * std
    x = sample(triton_init.trunc_normal_, mean=mean, std=std, a=a, b=b)
    assert ((x >= a) & (x <= b)).all()
    dist = stats.truncnorm(alpha, beta, loc=mean, scale=std)
    assert_ks(x, dist)
    assert_moments(x, dist.mean(), dist.std())


def test_trunc_normal_fp32_small_std_has_no_outliers():
    """pytorch#155588: fp32 trunc_normal_ with a small std produced 1000-sigma outliers."""
    x = sample(triton_init.trunc_normal_, dtype=torch.float32, std=1e-3, a=-2e-3, b=2e-3)
    assert ((x >= np.float32(-2e-3)) & (x <= np.float32(2e-3))).all()
    assert_moments(x, 0.0, stats.truncnorm(-2, 2, scale=1e-3).std())


def _bf16_values_between(lo, hi):
    """Every bf16 value in [lo, hi], ascending."""
    grid = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).double()
    grid = grid[torch.isfinite(grid)].unique()
    return grid[(grid >= lo) & (grid <= hi)].numpy()


def test_trunc_normal_bf16_std_001_has_no_pile_up_at_the_bounds():
    """pytorch#145498: bf16 trunc_normal_(std=0.01, a=-0.02, b=0.02) piled values at the bounds.

    Here each bf16 value must receive the truncated normal's mass of its rounding bin, the outermost
    bins included; the whole histogram is checked with a chi-square test.
    """
    mean, std, a, b = 0.0, 0.01, -0.02, 0.02
    x = sample(triton_init.trunc_normal_, dtype=torch.bfloat16, mean=mean, std=std, a=a, b=b)
    values = _bf16_values_between(a, b)
    assert x.min() >= values[0] and x.max() <= values[-1]  # stored values lie in [a, b]
    dist = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    edges = np.concatenate([[a], (values[1:] + values[:-1]) / 2, [b]])
    mass = np.diff(dist.cdf(edges))
    counts = np.searchsorted(values, x)  # x is exactly one of ``values``
    assert (values[counts] == x).all()
    observed = np.bincount(counts, minlength=len(values))
    for end in (0, -1):
        expected = N * mass[end]
        assert abs(observed[end] - expected) <= 5 * math.sqrt(expected) + 1, (end, observed[end], expected)
    # Pool neighbouring bins (the bins near 0 are tiny) until each expects at least 50 values.
    pooled_obs, pooled_exp, acc_o, acc_e = [], [], 0, 0.0
    for o, m in zip(observed, mass * N, strict=True):
        acc_o, acc_e = acc_o + o, acc_e + m
        if acc_e >= 50:
            pooled_obs.append(acc_o)
            pooled_exp.append(acc_e)
            acc_o, acc_e = 0, 0.0
    pooled_obs[-1] += acc_o
    pooled_exp[-1] += acc_e
    result = stats.chisquare(pooled_obs, np.array(pooled_exp) * N / sum(pooled_exp))
    assert result.pvalue > P_MIN, result


def test_trunc_normal_bf16_far_tail_bins():
    """A far-tail interval in bf16: [5, 7] std units has bins that the rounding must fill in proportion."""
    mean, std = 0.0, 1.0
    a, b = 5.0, 7.0
    x = sample(triton_init.trunc_normal_, dtype=torch.bfloat16, n=200_003, mean=mean, std=std, a=a, b=b)
    values = _bf16_values_between(a, b)
    dist = stats.truncnorm(a, b)
    edges = np.concatenate([[a], (values[1:] + values[:-1]) / 2, [b]])
    mass = np.diff(dist.cdf(edges))
    observed = np.bincount(np.searchsorted(values, x), minlength=len(values))
    keep = mass * len(x) >= 20
    expected = mass[keep] * len(x)
    result = stats.chisquare(observed[keep], expected * observed[keep].sum() / expected.sum())
    assert result.pvalue > P_MIN, result


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("mean,std,a,b", [
    (0.0, 1.0, -0.0213, 0.0197),  # nearly uniform: much mass right at bounds that no dtype represents
    (0.0, 0.01, -0.02, 0.02),
    (0.3, 1e-4, 0.29995, 0.30007),  # bounds closer than a bf16 ulp
    (1000.0, 3.0, 990.1, 1009.9),  # fp16/bf16 ulps of 0.5 and 4 at this magnitude
], ids=["near-uniform", "std0.01", "sub-ulp", "large-mean"])
def test_trunc_normal_stored_values_lie_in_the_interval(dtype, mean, std, a, b):
    if dtype == torch.bfloat16 and b - a < 1e-3:
        pytest.skip("no bf16 value lies in [a, b]: see the test below")
    x = sample(triton_init.trunc_normal_, dtype=dtype, n=300_007, mean=mean, std=std, a=a, b=b)
    assert x.min() >= a and x.max() <= b, (x.min(), x.max())


def test_trunc_normal_interval_without_a_dtype_value():
    """[0.29995, 0.30007] holds no bf16 value: every element gets the bf16 value nearest to a (documented)."""
    a, b = 0.29995, 0.30007
    x = sample(triton_init.trunc_normal_, dtype=torch.bfloat16, n=1001, mean=0.3, std=1e-4, a=a, b=b)
    assert len(_bf16_values_between(a, b)) == 0
    assert (x == float(torch.tensor(a).to(torch.bfloat16))).all()
