"""The Triton kernels (through the interpreter on CPU) against the exact oracle and the reference: awkward
shapes, every dtype, strided views, blocks of huge logical tensors, and each inverse-CDF piece over the ends
of u. Outputs start NaN so an unwritten element fails. ``test_kernel_contract.py`` holds the properties
(bounds after rounding, counter carries, rounding ties, launch invariance).
"""

import math

import pytest
import torch
from _contract import (
    FILLS,
    check_against_oracle,
    distribution_cases,
    interpreter_fma_slack,
    logical_indices,
    trunc_constants,
    trunc_z_of_words,
    ulp,
)
from _probes import TRUNC_PIECES, trunc_piece_z
from conftest import ALL_DTYPES

import triton_init
from triton_init import reference
from triton_init._format import NORMAL, TRUNC_NORMAL, central_only

SEED = 0x9E3779B97F4A7C15  # above 2^63: both key words matter
STREAM = "layers.3.mlp.w1.weight"
SHAPES = [(1,), (3,), (7, 13), (2, 3, 5)]
MEAN, STD = 0.25, 1.5
CASES = distribution_cases(MEAN, STD, (-2, 2), (5, 7), (-9, -8), (-6, 6))


def fill(out, dist, kwargs, backend, **extra):
    with triton_init.backend(backend):
        result = FILLS[dist](out, **kwargs, seed=SEED, stream=STREAM, **extra)
    assert result is out
    return out


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernel_matches_oracle_and_reference(shape, case, dtype, poisoned):
    dist, kwargs = CASES[case]
    kernel = fill(poisoned(*shape, dtype=dtype), dist, kwargs, "triton")
    check_against_oracle(kernel, dist, kwargs, SEED, STREAM, range(math.prod(shape)))
    ref = fill(poisoned(*shape, dtype=dtype), dist, kwargs, "reference")
    check_against_oracle(ref, dist, kwargs, SEED, STREAM, range(math.prod(shape)))


@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-6,6]"])
def test_kernel_above_1e5_elements(case, poisoned):
    """One size above 1e5 that is not a multiple of 4, in fp32 (bf16 is covered by the 4099 case below)."""
    dist, kwargs = CASES[case]
    n = 100_003
    kernel = fill(poisoned(n), dist, kwargs, "triton")
    check_against_oracle(kernel, dist, kwargs, SEED, STREAM, range(n))
    ref = fill(poisoned(n), dist, kwargs, "reference")
    if dist == "uniform":
        slack = interpreter_fma_slack(kwargs["a"], kwargs["b"], ref.dtype)
        tol = torch.from_numpy(2 * ulp(ref.numpy(), torch.float32)) + slack
    else:
        tol = 4e-5 * STD * (1 + ref.abs())
    assert ((kernel.double() - ref.double()).abs() <= tol).all()


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_several_blocks_at_unaligned_offset(case, dtype, poisoned):
    """4099 elements from logical index 4 * 1000 + 3: several programs, a head and a tail group."""
    dist, kwargs = CASES[case]
    n, first = 4099, 4003
    kernel = fill(poisoned(n, dtype=dtype), dist, kwargs, "triton", global_shape=(10_000,), global_offset=(first,))
    check_against_oracle(kernel, dist, kwargs, SEED, STREAM, range(first, first + n))


PIECE_INTERVALS = [
    # (alpha, beta, pieces that serve it: central where ``central_only``, wide where ``wide_fits``)
    (-2.0, 2.0, {"central", "wide", "tail"}),
    (-2.9, 2.85, {"central", "wide", "tail"}),  # the central polynomial's edge
    (0.5, 2.6, {"central", "wide", "tail"}),
    (-6.0, 6.0, {"wide", "tail"}),
    (-100.0, 100.0, {"wide", "tail"}),  # std=0.02 on [-2, 2]
    (-5.7, 40.0, {"wide", "tail"}),
    (-3.1, 1.0, {"wide", "tail"}),  # just past the central polynomial's range
    (5.0, 7.0, {"tail"}),
    (-9.0, -8.0, {"tail"}),
    (-7.0, -1.0, {"tail"}),  # p down to 1e-12: past the wide polynomial's range
]


def _words_at_both_ends_of_u():
    """Words for the 2048 smallest and largest u(w) (the largest |z|) and 4096 between."""
    ends = torch.cat([torch.arange(2048), (1 << 23) - 1 - torch.arange(2048)])
    middle = torch.randint(0, 1 << 23, (4096,), generator=torch.Generator().manual_seed(3))
    return (torch.cat([ends, middle]) << 9) | torch.randint(0, 512, (8192,), generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("alpha, beta, pieces", PIECE_INTERVALS)
def test_trunc_normal_pieces_over_the_ends_of_u(alpha, beta, pieces):
    """Each inverse-CDF piece of the kernels that serves an interval meets the contract there, against the
    scipy oracle, over both ends of u; the launcher's CENTRAL_ONLY and the kernel's ``wide_fits`` choose
    exactly the pieces that serve."""
    params = reference.dist_params(TRUNC_NORMAL, torch.float64, a=alpha, b=beta)
    assert central_only(params[2], params[3]) == ("central" in pieces)
    words = _words_at_both_ends_of_u()
    exact_z = trunc_z_of_words(words.numpy(), *trunc_constants(alpha, beta))
    for piece in (p for p in TRUNC_PIECES if p in pieces):
        z, fits = trunc_piece_z(words, *params[2:5], piece)
        assert fits == ("wide" in pieces)
        err = (z.double().numpy() - exact_z) / (2e-5 * abs(exact_z).clip(min=1.0))
        assert abs(err).max() <= 1.0, (piece, abs(err).max())


def test_wide_interval_through_the_kernel(poisoned):
    """torchtitan's trunc_normal_(std=0.02) on the default [-2, 2] through the whole kernel, every dtype."""
    kwargs = dict(mean=0.0, std=0.02, a=-2.0, b=2.0)
    for dtype in ALL_DTYPES:
        kernel = fill(poisoned(4099, dtype=dtype), "trunc_normal", kwargs, "triton")
        check_against_oracle(kernel, "trunc_normal", kwargs, SEED, STREAM, range(4099))


@pytest.mark.parametrize("backend", ["triton", "reference"])
@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-2,2]"])
def test_strided_views_get_their_own_logical_values(case, backend, poisoned):
    dist, kwargs = CASES[case]
    views = {
        "transpose": (poisoned(13, 7).t(), (7, 13)),
        "transpose, rows of whole groups": (poisoned(12, 9).t(), (9, 12)),  # the launcher's column-major tiles
        "column slice": (poisoned(11, 29)[:, 3:17], (11, 14)),
        "3-D permute": (poisoned(4, 5, 6).permute(2, 0, 1), (6, 4, 5)),
        "5-D permute": (poisoned(2, 2, 2, 2, 3).permute(4, 2, 0, 3, 1), (3, 2, 2, 2, 2)),  # > 3 outer dims
        "stepped": (poisoned(9, 40)[1::2, ::3], (4, 14)),
    }
    for name, (view, shape) in views.items():
        assert tuple(view.shape) == shape and not view.is_contiguous()
        fill(view, dist, kwargs, backend)
        dense = fill(poisoned(*shape), dist, kwargs, backend)
        assert torch.equal(view, dense), name


@pytest.mark.parametrize("backend", ["triton", "reference"])
@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-2,2]"])
def test_canary_view_writes_all_of_itself_and_nothing_else(case, backend, poisoned):
    dist, kwargs = CASES[case]
    big = poisoned(8, 9)
    view = big[2:5, 1:4]
    fill(view, dist, kwargs, backend)
    inside = torch.zeros_like(big, dtype=torch.bool)
    inside[2:5, 1:4] = True
    assert not torch.isnan(big[inside]).any(), "an element of the view was left unwritten"
    assert torch.isnan(big[~inside]).all(), "an element outside the view was written"
    assert torch.equal(view, fill(poisoned(3, 3), dist, kwargs, backend))


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_canary_storage_around_a_flat_slice(backend, poisoned):
    """A contiguous slice in the middle of a buffer (the flat fast path) stops at its own ends."""
    storage = poisoned(1000, dtype=torch.bfloat16)
    piece = storage[101:898]
    fill(piece, "normal", CASES["normal"][1], backend)
    assert not torch.isnan(piece).any()
    assert torch.isnan(storage[:101]).all() and torch.isnan(storage[898:]).all()


@pytest.mark.parametrize("case", ["normal", "trunc[-2,2]"])
def test_column_major_block_in_tiles(case, poisoned):
    """A column-major block whose rows start on group boundaries (the launcher's tiled path), over two
    tiles each way, as a block of a larger logical tensor."""
    dist, kwargs = CASES[case]
    gshape, offset = (100, 200), (5, 8)
    view = poisoned(72, 67).t()
    fill(view, dist, kwargs, "triton", global_shape=gshape, global_offset=offset)
    check_against_oracle(view, dist, kwargs, SEED, STREAM, logical_indices((67, 72), gshape, offset))


def _split(n, cuts):
    edges = [0, *cuts, n]
    return list(zip(edges[:-1], edges[1:], strict=True))


@pytest.mark.parametrize("backend", ["triton", "reference"])
@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-2,2]"])
@pytest.mark.parametrize("global_shape,cuts", [
    ((23, 41), ([7, 8], [21])),
    ((4, 5, 6), ([1], [2], [4])),
], ids=["2d", "3d"])
def test_sub_blocks_reassemble_to_the_whole(global_shape, cuts, case, backend, poisoned):
    dist, kwargs = CASES[case]
    whole = fill(poisoned(*global_shape), dist, kwargs, backend)
    assembled = poisoned(*global_shape)
    blocks = [[]]
    for n, dim_cuts in zip(global_shape, cuts, strict=True):
        blocks = [prev + [span] for prev in blocks for span in _split(n, dim_cuts)]
    for spans in blocks:
        shape = tuple(b - a for a, b in spans)
        block = fill(poisoned(*shape), dist, kwargs, backend, global_shape=global_shape,
                     global_offset=tuple(a for a, _ in spans))
        assembled[tuple(slice(a, b) for a, b in spans)] = block
    assert torch.equal(assembled, whole)


@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-2,2]"])
def test_kernel_and_reference_blocks_agree(case, poisoned):
    dist, kwargs = CASES[case]
    gshape, offset, shape = (37, 53), (11, 21), (19, 32)
    k = fill(poisoned(*shape), dist, kwargs, "triton", global_shape=gshape, global_offset=offset)
    r = fill(poisoned(*shape), dist, kwargs, "reference", global_shape=gshape, global_offset=offset)
    check_against_oracle(k, dist, kwargs, SEED, STREAM, logical_indices(shape, gshape, offset))
    check_against_oracle(r, dist, kwargs, SEED, STREAM, logical_indices(shape, gshape, offset))


HUGE_BLOCKS = {
    # (global_shape, global_offset, local shape): first logical index, and why
    "1-D past 2^32": ((2**33 + 11,), (2**32 + 1,), (101,)),
    "1-D past 2^40": ((2**41 + 3,), (2**40 + 3,), (77,)),
    "2-D 2^41 elements": ((2**20 + 7, 2**21 + 3), (2**20 - 2, 2**21 - 31), (4, 33)),
    "3-D past 2^40": ((2**13 + 1, 2**14 + 3, 2**14 + 5), (2**12 + 7, 2**14 - 1, 9), (2, 3, 13)),
    "2-D near 2^64": ((2**32 + 1, 2**32 - 1), (2**32 - 1, 2**32 - 15), (2, 11)),
    "1-D up to 2^64 - 1": ((2**64,), (2**64 - 7,), (7,)),
}


@pytest.mark.parametrize("backend", ["triton", "reference"])
@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-2,2]", "trunc[-9,-8]"])
@pytest.mark.parametrize("block", list(HUGE_BLOCKS))
def test_huge_logical_tensors_in_small_blocks(block, case, backend, poisoned):
    """Logical indices past 2^32, 2^40 and up to 2^64 - 1, unaligned, without allocating the logical tensor."""
    dist, kwargs = CASES[case]
    gshape, offset, shape = HUGE_BLOCKS[block]
    indices = logical_indices(shape, gshape, offset)
    assert max(indices) >= 2**32 and (indices[0] % 4 != 0 or max(indices) == 2**64 - 1)
    out = fill(poisoned(*shape, dtype=torch.float32), dist, kwargs, backend, global_shape=gshape,
               global_offset=offset)
    check_against_oracle(out, dist, kwargs, SEED, STREAM, indices)


def test_values_at_agrees_with_fills_past_2_to_the_40():
    kwargs = CASES["normal"][1]
    gshape, offset, shape = HUGE_BLOCKS["2-D 2^41 elements"]
    indices = torch.tensor(logical_indices(shape, gshape, offset), dtype=torch.int64)
    params = reference.dist_params(NORMAL, torch.float32, **kwargs)
    at = reference.values_at(indices, NORMAL, params, SEED, triton_init.stream_id(STREAM), torch.float32)
    out = fill(torch.empty(shape), "normal", kwargs, "reference", global_shape=gshape, global_offset=offset)
    assert torch.equal(at.reshape(shape), out)
