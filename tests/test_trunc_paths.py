"""trunc_normal's kernel paths: which one a call takes, when the clamp goes, and that every path meets the
contract wherever it is valid (kernels through the interpreter, against the exact oracle)."""

import math

import pytest
import torch
from _contract import assert_contract, exact
from conftest import ALL_DTYPES
from triton_init.kernels import fill, trunc_paths
from triton_init.kernels.target import INTERPRETER
from triton_init.kernels.trunc_paths import CENTRAL, TAIL, UNTRUNCATED, WIDE

from triton_init import reference
from triton_init._format import TRUNC_NORMAL
from triton_init._layout import make_layout

SEED = 0x5EED_0F_7A115
STREAM = 7


def _params(alpha, beta, mean=0.0, std=1.0, dtype=torch.float32):
    return reference.dist_params(TRUNC_NORMAL, dtype, mean=mean, std=std, a=mean + alpha * std, b=mean + beta * std)


# (alpha, beta) in units of std -> the path fill's launcher takes
CHOICES = [
    ((-2, 2), CENTRAL), ((-2.9, 2.9), CENTRAL), ((-0.3, 0.1), CENTRAL), ((0.5, 2.6), CENTRAL),
    ((-100, 100), UNTRUNCATED), ((-7.9, 8.5), UNTRUNCATED), ((-math.inf, math.inf), UNTRUNCATED),
    ((-3, 3), WIDE), ((-6, 6), WIDE), ((-5.7, 40), WIDE), ((-7.5, 7.5), WIDE), ((-0.01, 3), WIDE), ((-9, 0), WIDE),
    ((5, 7), TAIL), ((-9, -8), TAIL), ((-7, -1), TAIL), ((-40, -0.1), TAIL), ((10, 12), TAIL), ((2, 9), TAIL),
]


@pytest.mark.parametrize("interval, path", CHOICES, ids=str)
def test_path_choice(interval, path):
    params = _params(*interval)
    assert trunc_paths.choose(*params[2:5]) == path


def test_every_interval_around_the_mean_is_central_or_wide():
    """The tail path serves one-sided intervals only: anything around the mean stays in CENTRAL or WIDE."""
    for alpha in (-0.001, -0.5, -1.0, -2.9, -3.0, -5.0, -8.0, -40.0):
        for beta in (0.001, 0.5, 2.95, 4.0, 6.0, 12.0, math.inf):
            assert trunc_paths.choose(*_params(alpha, beta)[2:5]) in (CENTRAL, UNTRUNCATED, WIDE), (alpha, beta)


@pytest.mark.parametrize("interval, dtype, clamp", [
    ((-2, 2), torch.float32, True),  # z reaches +-2: values at the bounds
    ((-100, 100), torch.bfloat16, False),  # |z| <= 5.3 < 100
    ((-6, 6), torch.float32, False),
    ((-4.5, 4.5), torch.float32, False),  # the extreme u stop 5e-3 std inside: far beyond the error
    ((-3.5, 3.5), torch.float32, True),  # 7e-5 std inside: within the margin
    ((5, 7), torch.float32, True),
])
def test_clamp_only_where_a_value_can_reach_a_bound(interval, dtype, clamp):
    assert fill.trunc_choice(_params(*interval, dtype=dtype))[1] is clamp


def test_the_clamp_decision_counts_fp32_rounding_of_the_mean():
    """std 1e-6 around a mean of 1: +-6 std clears |z| <= 5.3 by 0.7e-6, less than fp32 rounding near 1 can move
    mean + std z (the decision's margin, 2^-20 of the mean), so the clamp stays; around 0 it goes."""
    assert fill.trunc_choice(_params(-6.0, 6.0, mean=1.0, std=1e-6))[1] is True
    assert fill.trunc_choice(_params(-6.0, 6.0, mean=0.0, std=1e-6))[1] is False


@pytest.mark.parametrize("interval, paths", [
    ((-2, 2), (CENTRAL, WIDE)),
    ((0.5, 2.6), (CENTRAL, WIDE, TAIL)),  # one-sided: the tail path serves it too
    ((-100, 100), (UNTRUNCATED, WIDE)),
    ((-6, 6), (WIDE,)),
    ((-9, -8), (TAIL,)),
    ((5, 7), (TAIL,)),
    ((-12, -11), (TAIL,)),  # p down to 1.8e-33
], ids=str)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_every_valid_path_meets_the_contract(interval, paths, dtype, poisoned):
    """Forcing each path a call's probabilities fit (the launcher takes the cheapest) gives values within the
    contract and inside [a, b], in every dtype."""
    mean, std = 0.25, 1.5
    a, b = mean + interval[0] * std, mean + interval[1] * std
    params = _params(*interval, mean=mean, std=std, dtype=dtype)
    z = exact(range(1001), "trunc_normal", SEED, STREAM, a=a, b=b, mean=mean, std=std)
    for path in paths:
        out = poisoned(1001, dtype=dtype)
        layout = make_layout(out)
        fill.fill_(out, TRUNC_NORMAL, params, SEED, STREAM, layout.sizes, layout.mem_strides, layout.logical_strides,
                   layout.base, trunc_path=path)
        assert_contract(out, z, mean=mean, std=std, interval=(a, b))
        assert ((out.double() >= a) & (out.double() <= b)).all(), trunc_paths.NAMES[path]


def test_torchtitan_default_takes_the_untruncated_path_without_clamp():
    """trunc_normal_(std=0.02) on torch's default [-2, 2]: +-100 std, the cheapest path, no clamp."""
    (launch,) = fill.fill_launches(torch.empty(0, dtype=torch.bfloat16), TRUNC_NORMAL,
                                   _params(-100, 100, std=0.02, dtype=torch.bfloat16), SEED, STREAM, (1 << 20,),
                                   (1,), (1,), 0, target=INTERPRETER)
    assert launch.constexprs["TRUNC_PATH"] == UNTRUNCATED and launch.constexprs["CLAMP"] is False
