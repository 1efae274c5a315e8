"""What PyTorch's own test/nn/test_init.py asks of torch.nn.init, restated for triton_init where the other
tests do not already cover it: the deprecated names without the trailing underscore, trunc_normal's spread
over many distinct values away from the bounds, a narrow interval in half precision, and orthogonal_'s
gain on weights with a kernel."""

import math
import warnings

import pytest
import torch
from conftest import INTERPRET
from scipy import stats

import triton_init

TORCH_ALIASES = sorted(name for name in torch.nn.init.__all__ if not name.endswith("_") and name != "calculate_gain")
BACKENDS = ["reference"] + (["triton"] if INTERPRET or torch.cuda.is_available() else [])

# alias -> (shape, extra arguments); random ones also get seed=, and must equal name + "_" bit for bit
ALIAS_CALLS = {
    "uniform": ((40, 30), (-0.5, 0.5)),
    "normal": ((40, 30), (0.1, 2.0)),
    "constant": ((4, 5), (0.25,)),
    "eye": ((4, 6), ()),
    "dirac": ((6, 3, 3), (2,)),
    "xavier_uniform": ((40, 30), (1.5,)),
    "xavier_normal": ((40, 30), (0.5,)),
    "kaiming_uniform": ((40, 30, 3), (0.3,)),
    "kaiming_normal": ((40, 30, 3), (0.3, "fan_out")),
    "orthogonal": ((12, 20), (2.0,)),
    "sparse": ((40, 30), (0.25,)),
}
DETERMINISTIC = {"constant", "eye", "dirac"}


def test_the_deprecated_names_are_torchs():
    assert sorted(ALIAS_CALLS) == TORCH_ALIASES
    assert set(TORCH_ALIASES) <= set(triton_init.__all__)


@pytest.mark.parametrize("name", sorted(ALIAS_CALLS))
def test_a_deprecated_name_warns_then_does_what_the_underscore_function_does(name):
    shape, args = ALIAS_CALLS[name]
    keywords = {} if name in DETERMINISTIC else {"seed": 7, "stream": name}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = getattr(triton_init, name)(torch.full(shape, math.nan), *args, **keywords)
    assert [w.category for w in caught] == [FutureWarning]
    assert f"`triton_init.{name}` is now deprecated in favor of `triton_init.{name}_`" in str(caught[0].message)
    assert caught[0].filename == __file__  # the warning points at the caller, as torch's does
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = getattr(triton_init, name + "_")(torch.full(shape, math.nan), *args, **keywords)
    assert not old.isnan().any() and torch.equal(old, new)
    assert getattr(triton_init, name).__name__ == name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, at_least", [(torch.float32, 5000), (torch.float64, 5000), (torch.float16, 3000),
                                             (torch.bfloat16, 1000)], ids=str)
def test_trunc_normal_draws_many_distinct_values_and_none_on_the_bounds(backend, dtype, at_least):
    """10,000 draws of N(0, 1) on [-2, 2] take many distinct values; with std 0.1 (bounds 20 std away) not
    one lands on a bound, which a rounding or clamping slip would put there."""
    with triton_init.backend(backend):
        wide = triton_init.trunc_normal_(torch.empty(10_000, dtype=dtype), 0.0, 1.0, -2.0, 2.0, seed=1)
        narrow = triton_init.trunc_normal_(torch.empty(10_000, dtype=dtype), 0.0, 0.1, -2.0, 2.0, seed=2)
    assert wide.min() >= -2.0 and wide.max() <= 2.0 and wide.isfinite().all()
    assert wide.unique().numel() > at_least
    assert not ((narrow == -2.0) | (narrow == 2.0)).any()
    assert narrow.abs().max() < 0.7  # 7 std


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
def test_trunc_normal_on_a_narrow_interval_follows_the_truncated_law(dtype):
    """[2, 3] std of N(0, 1): all 10,000 values inside, and a KS test against scipy's truncnorm (fp16 still
    has 257 values there)."""
    x = triton_init.trunc_normal_(torch.empty(10_000, dtype=dtype), 0.0, 1.0, 2.0, 3.0, seed=3).double()
    assert x.min() >= 2.0 and x.max() <= 3.0
    assert stats.kstest(x.numpy(), stats.truncnorm(2.0, 3.0).cdf).pvalue > 1e-4


@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (20, 2, 3, 4), (2, 3, 4, 5)])
def test_orthogonal_with_a_gain_on_weights_with_a_kernel(shape):
    """The flattened (rows, numel / rows) matrix has orthogonal rows (or columns) of norm gain (torch's
    tolerance, 1e-6, relative to gain^2: the fp32 rounding of each entry scales with it)."""
    gain = 1.7
    out = triton_init.orthogonal_(torch.zeros(shape), gain=gain, seed=5)
    q = out.reshape(shape[0], -1).double()
    gram = q @ q.t() if q.shape[0] <= q.shape[1] else q.t() @ q
    expected = gain**2 * torch.eye(gram.shape[0], dtype=torch.float64)
    torch.testing.assert_close(gram, expected, atol=1e-6 * gain**2, rtol=0)
