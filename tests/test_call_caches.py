"""The per-call caches (layouts, block checks, trunc_normal's constants, stream ids) hold only pure functions
of shapes, dtypes and arguments: a cached entry never skips a check, nor serves a call whose arguments
merely compare equal (a float for an int, -0.0 for 0.0, another dtype or stride)."""

import math

import pytest
import torch

import triton_init
from triton_init import _layout
from triton_init._format import TRUNC_NORMAL
from triton_init.reference import call_params


def test_a_cached_block_does_not_admit_equal_non_int_offsets():
    t = torch.empty(2, 3)
    triton_init.normal_(t, global_shape=(4, 3), global_offset=(2, 0), seed=1)  # cached: ints
    with pytest.raises(TypeError, match="global_offset must be a sequence of ints"):
        triton_init.normal_(t, global_shape=(4, 3), global_offset=(2.0, 0), seed=1)
    with pytest.raises(TypeError, match="global_shape must be a sequence of ints"):
        triton_init.normal_(t, global_shape=(4.0, 3), global_offset=(2, 0), seed=1)
    with pytest.raises(ValueError, match="lies outside"):
        triton_init.normal_(t, global_shape=(4, 3), global_offset=(3, 0), seed=1)


def test_a_cached_shape_does_not_admit_an_expanded_view():
    triton_init.uniform_(torch.empty(4, 3), seed=1)
    with pytest.raises(ValueError, match="stride 0"):
        triton_init.uniform_(torch.empty(1, 3).expand(4, 3), seed=1)


def test_same_shape_other_strides_gets_its_own_layout(poisoned):
    """A transposed view after a contiguous tensor of the same shape: values at its own logical indices."""
    contiguous = poisoned(5, 7)
    triton_init.normal_(contiguous, seed=3, stream="w")
    transposed = poisoned(7, 5).t()
    triton_init.normal_(transposed, seed=3, stream="w")
    torch.testing.assert_close(transposed, contiguous, rtol=0, atol=0)
    assert _layout.make_layout(transposed) != _layout.make_layout(contiguous)


def test_trunc_constants_keep_the_sign_of_zero_and_the_dtype():
    def lower_bound(a, dtype):
        return call_params(TRUNC_NORMAL, dtype, mean=0.0, std=1.0, a=a, b=1.0)[1][5]

    assert math.copysign(1.0, lower_bound(-0.0, torch.float32)) == -1.0
    assert math.copysign(1.0, lower_bound(0.0, torch.float32)) == 1.0  # not the cached -0.0
    assert math.copysign(1.0, lower_bound(-0.0, torch.float32)) == -1.0
    # a bound between bf16 values rounds inward per dtype
    a = 1.0 + 2.0 ** -12
    fp32 = call_params(TRUNC_NORMAL, torch.float32, mean=0.0, std=1.0, a=a, b=2.0)[1][5]
    bf16 = call_params(TRUNC_NORMAL, torch.bfloat16, mean=0.0, std=1.0, a=a, b=2.0)[1][5]
    assert fp32 == a and bf16 == 1.0 + 2.0 ** -7


def test_point_mass_trunc_is_cached_apart_from_the_normal_one():
    """std 0 is the point mass at the clamped mean (a uniform of zero width), std > 0 a truncated normal."""
    point = call_params(TRUNC_NORMAL, torch.float32, mean=5.0, std=0.0, a=-1.0, b=1.0)
    spread = call_params(TRUNC_NORMAL, torch.float32, mean=5.0, std=1.0, a=-1.0, b=1.0)
    assert point[0] != TRUNC_NORMAL and point[1] == (1.0, 0.0)
    assert spread[0] == TRUNC_NORMAL


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_parameters_fill_outside_autograd(backend):
    """Fills write through autograd's back (the native executor by pointer, the reference under no_grad)."""
    weight = torch.nn.Parameter(torch.empty(6, 4))
    with triton_init.backend(backend):
        triton_init.trunc_normal_(weight, std=0.02, a=-0.04, b=0.04, seed=5)
        expected = triton_init.trunc_normal_(torch.empty(6, 4), std=0.02, a=-0.04, b=0.04, seed=5)
    assert weight.requires_grad and weight.grad_fn is None and weight.abs().max() <= 0.04
    torch.testing.assert_close(weight.detach(), expected, rtol=0, atol=0)


def test_stream_names_hash_the_same_after_caching():
    import hashlib

    name = "layers.0.attention.wq.weight"
    expected = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    assert triton_init.stream_id(name) == expected == triton_init.stream_id(name)
