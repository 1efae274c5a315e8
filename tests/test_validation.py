"""Bad input: a ValueError or TypeError that names the argument, raised before anything is written."""

import math

import numpy as np
import pytest
import torch
from _contract import FILLS, bits

import triton_init

NAN, INF = math.nan, math.inf

# (functions, kwargs, exception, pattern the message must contain)
CASES = {
    "std<0": (("normal", "trunc_normal"), dict(std=-0.5), ValueError, r"\bstd\b"),
    "std=-0.0 is fine, -1e-300 is not": (("normal", "trunc_normal"), dict(std=-1e-300), ValueError, r"\bstd\b"),
    "a>b uniform": (("uniform",), dict(a=1.0, b=0.5), ValueError, r"\ba\b.*\bb\b"),
    "a>b trunc": (("trunc_normal",), dict(a=0.5, b=-0.5), ValueError, r"\ba\b.*\bb\b"),
    "mean nan": (("normal", "trunc_normal"), dict(mean=NAN), ValueError, r"\bmean\b"),
    "mean inf": (("normal", "trunc_normal"), dict(mean=INF), ValueError, r"\bmean\b"),
    "mean -inf": (("normal", "trunc_normal"), dict(mean=-INF), ValueError, r"\bmean\b"),
    "std nan": (("normal", "trunc_normal"), dict(std=NAN), ValueError, r"\bstd\b"),
    "std inf": (("normal", "trunc_normal"), dict(std=INF), ValueError, r"\bstd\b"),
    "a nan": (("uniform", "trunc_normal"), dict(a=NAN), ValueError, r"\ba\b"),
    "b nan": (("uniform", "trunc_normal"), dict(b=NAN), ValueError, r"\bb\b"),
    "uniform a inf": (("uniform",), dict(a=-INF), ValueError, r"\ba\b"),
    "uniform b inf": (("uniform",), dict(b=INF), ValueError, r"\bb\b"),
    "mean str": (("normal", "trunc_normal"), dict(mean="0"), TypeError, r"\bmean\b"),
    "std tensor of 2": (("normal",), dict(std=torch.ones(2)), TypeError, r"\bstd\b"),
    "seed -1": (tuple(FILLS), dict(seed=-1), ValueError, r"\bseed\b"),
    "seed 2^64": (tuple(FILLS), dict(seed=2**64), ValueError, r"\bseed\b"),
    "seed float": (tuple(FILLS), dict(seed=1.0), TypeError, r"\bseed\b"),
    "seed str": (tuple(FILLS), dict(seed="7"), TypeError, r"\bseed\b"),
    "seed bool": (tuple(FILLS), dict(seed=True), TypeError, r"\bseed\b"),
    "stream -1": (tuple(FILLS), dict(stream=-1), ValueError, r"\bstream\b"),
    "stream 2^64": (tuple(FILLS), dict(stream=2**64), ValueError, r"\bstream\b"),
    "stream float": (tuple(FILLS), dict(stream=3.0), TypeError, r"\bstream\b"),
    "stream bytes": (tuple(FILLS), dict(stream=b"w"), TypeError, r"\bstream\b"),
    "generator": (tuple(FILLS), dict(generator=1234), TypeError, r"\bgenerator\b"),
    "block past the end": (tuple(FILLS), dict(global_shape=(9, 7), global_offset=(3, 1)), ValueError,
                           r"\bglobal_shape\b"),
    "block at a negative offset": (tuple(FILLS), dict(global_shape=(9, 9), global_offset=(-1, 0)), ValueError,
                                   r"\bglobal_shape\b"),
    "global_shape smaller than the block": (tuple(FILLS), dict(global_shape=(5, 7)), ValueError,
                                            r"\bglobal_shape\b"),
    "offset without global_shape": (tuple(FILLS), dict(global_offset=(1, 0)), ValueError, r"\bglobal_offset\b"),
    "global_shape rank": (tuple(FILLS), dict(global_shape=(6, 7, 1)), ValueError, r"\bglobal_shape\b.*rank"),
    "global_shape rank 1": (tuple(FILLS), dict(global_shape=(42,)), ValueError, r"\bglobal_shape\b.*rank"),
    "global_offset rank": (tuple(FILLS), dict(global_shape=(6, 7), global_offset=(0,)), ValueError,
                           r"\bglobal_offset\b.*rank"),
    "global_shape of floats": (tuple(FILLS), dict(global_shape=(6.0, 7.0)), TypeError, r"\bglobal_shape\b"),
    "global_offset not a sequence": (tuple(FILLS), dict(global_shape=(6, 7), global_offset=0.5), TypeError,
                                     r"\bglobal_offset\b"),
    "global_shape over 2^64 elements": (tuple(FILLS), dict(global_shape=(2**32 + 1, 2**32)), ValueError,
                                        r"\bglobal_shape\b"),
}
PARAMS = [(fn, name) for name, (fns, *_rest) in CASES.items() for fn in fns]


def patterned(shape=(6, 7), dtype=torch.float32):
    return torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape).mul_(0.37).to(dtype)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("fn,case", PARAMS, ids=[f"{fn}-{case}" for fn, case in PARAMS])
def test_bad_argument_raises_and_leaves_the_tensor_untouched(fn, case, backend):
    _, kwargs, exc, pattern = CASES[case]
    kwargs = {"seed": 1, **kwargs} if "generator" not in kwargs else {**kwargs}
    t = patterned()
    before = t.clone()
    with triton_init.backend(backend), pytest.raises(exc, match=pattern):
        FILLS[fn](t, **kwargs)
    assert torch.equal(bits(t), bits(before))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64,
                                   torch.float8_e4m3fn], ids=str)
@pytest.mark.parametrize("fn", list(FILLS))
def test_unsupported_dtype(fn, dtype):
    t = torch.arange(12).reshape(3, 4).to(dtype)
    before = t.clone()
    with pytest.raises(TypeError, match=r"\btensor\b"):
        FILLS[fn](t, seed=0)
    assert torch.equal(t.view(torch.uint8), before.view(torch.uint8))


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("fn", list(FILLS))
def test_expanded_view_is_rejected(fn, backend):
    """Elements sharing memory (stride 0) cannot each hold their own value: torch's in-place ops refuse too."""
    base = patterned((1, 7))
    before = base.clone()
    with triton_init.backend(backend), pytest.raises(ValueError, match=r"\btensor\b.*stride 0"):
        FILLS[fn](base.expand(6, 7), seed=1)
    assert torch.equal(bits(base), bits(before))
    FILLS[fn](base.expand(1, 7), seed=1)  # a stride-0 dim of size 1 overlaps nothing


@pytest.mark.parametrize("fn", list(FILLS))
def test_sparse_tensor_is_rejected(fn):
    with pytest.raises(TypeError, match=r"\btensor\b.*layout"):
        FILLS[fn](torch.eye(3).to_sparse(), seed=1)


@pytest.mark.parametrize("fn", list(FILLS))
def test_not_a_tensor(fn):
    with pytest.raises(TypeError, match=r"\btensor\b"):
        FILLS[fn]([0.0, 1.0], seed=0)
    with pytest.raises(TypeError, match=r"\btensor\b"):
        FILLS[fn](np.zeros(3), seed=0)


@pytest.mark.parametrize("fn", list(FILLS))
def test_bad_arguments_raise_even_for_empty_and_meta_tensors(fn):
    """Validation does not depend on whether there is anything to write."""
    for t in (torch.empty(0, 3), torch.empty(4, 3, device="meta")):
        with pytest.raises(ValueError, match=r"\bseed\b"):
            FILLS[fn](t, seed=-3)
        with pytest.raises(ValueError, match=r"\bglobal_shape\b"):
            FILLS[fn](t, seed=1, global_shape=(t.shape[0], 2))


def test_edge_values_that_are_valid():
    """The ends of the valid ranges are accepted: std=0, a == b, seed/stream 0 and 2^64 - 1, numpy ints."""
    t = patterned()
    triton_init.normal_(t, std=0.0, mean=1.5, seed=2**64 - 1, stream=2**64 - 1)
    assert (t == 1.5).all()
    triton_init.uniform_(t, a=-2.0, b=-2.0, seed=0, stream=0)
    assert (t == -2.0).all()
    triton_init.trunc_normal_(t, mean=5.0, std=0.0, a=-1.0, b=1.0, seed=np.uint64(2**64 - 1), stream=np.int64(3))
    assert (t == 1.0).all()  # the point mass at mean, clamped into [a, b]
    triton_init.trunc_normal_(t, std=1.0, a=-INF, b=INF, seed=3)
    assert torch.isfinite(t).all() and t.std() > 0.5
