"""Every property the kernels must hold, checked on the kernel path (the Triton interpreter on CPU tensors).

- counters carry from the low word into the high one: flat, strided and tiled runs across multiples of
  2^32 groups, and up to logical index 2^64 - 1, in the per-tensor and the flat-buffer kernels;
- fp32 -> bf16/fp16 rounds to nearest even, bit for bit, on constructed ties;
- trunc_normal values lie in [a, b] after the rounding to every output dtype, on each inverse-CDF path
  (central, wide, tail), each path shown to be the one the kernel took (no float64 reference fallback);
- the values do not depend on the block size. The interpreter runs a program as whole-tensor numpy ops,
  so ``num_warps`` has no effect there: its invariance is checked on a GPU (``tests/test_gpu.py``,
  ``tests/test_gpu_perf_paths.py``).
"""

import math

import pytest
import torch
from _contract import DIST_IDS, FILLS, bits, check_against_oracle, logical_indices, ulp
from _probes import store_rounded, trunc_piece_z
from conftest import ALL_DTYPES
from triton_init.kernels import flat as flat_kernels
from triton_init.kernels import interface

import triton_init
from triton_init import reference
from triton_init._format import NORMAL, TRUNC_NORMAL, UNIFORM, central_only, inner_bounds, kernel_exact
from triton_init._layout import make_layout
from triton_init._spec import Init
from triton_init.flat import Segment, init_flat_

SEED = 0xB5DEECE6_6D00000B  # above 2^63: both key words matter
STREAM = "kernel.contract"


@pytest.fixture
def kernel_launches(monkeypatch):
    """The fill kernel's launches in this test, as (dist, params, central_only); the float64 reference
    fallback fails the test, so every value checked came from the kernel."""
    fill = triton_init._dispatch.kernel_module("fill")
    real, launches = fill.fill_, []

    def recorded(out, dist, params, *args, central_only=False, **kwargs):
        launches.append((dist, tuple(params), central_only))
        return real(out, dist, params, *args, central_only=central_only, **kwargs)

    def refused(*args, **kwargs):
        raise AssertionError("served by the float64 reference, not the kernel")

    monkeypatch.setattr(fill, "fill_", recorded)
    monkeypatch.setattr(reference, "fill_", refused)
    return launches


def trunc_path(params) -> str:
    """The inverse-CDF path the fill kernel takes for trunc_normal ``params``: "central" (the launcher's
    CENTRAL_ONLY), "wide" (``wide_fits`` evaluated by the kernels' own function on the fp32 constants)
    or "tail"."""
    assert kernel_exact(TRUNC_NORMAL, params)
    if central_only(params[2], params[3]):
        return "central"
    _, fits = trunc_piece_z(torch.zeros(1, dtype=torch.int64), *params[2:5], "wide")
    return "wide" if fits else "tail"


# ---- counters: the carry into the high word, up to 2^64 - 1 ---------------------------------------------

ROW = 2**20 + 4  # a row length that is a multiple of 4: column-major blocks of it take the tile path


def _rows_from(first: int, row: int, rows: int) -> tuple:
    """(global_shape, global_offset) of a (rows, 40) block of a (2^24, row) tensor whose row 0 starts at
    logical index ``first``."""
    offset = divmod(first, row)
    assert offset[1] + 40 <= row
    return (2**24, row), offset


COUNTER_BLOCKS = {
    # name: (global_shape, global_offset, local shape, storage)
    "flat across group 2^32": ((2**40,), (2**34 - 21,), (40,), "flat"),
    "flat across group 2^34": ((2**40,), (2**36 - 20,), (40,), "flat"),  # a block starting at group 2^34 - 5
    "flat across the high word's last carry": ((2**64,), (2**64 - 2**34 - 18,), (40,), "flat"),
    "flat up to 2^64 - 1": ((2**64,), (2**64 - 37,), (37,), "flat"),
    "strided across group 2^32": (*_rows_from(2**34 - 19, ROW - 1, 3), (3, 40), "column-major"),
    "tiles across group 2^32": (*_rows_from(2**34 - 20, ROW, 3), (3, 40), "column-major"),
    "rows up to 2^64 - 1": ((2**32, 2**32), (2**32 - 3, 2**32 - 40), (3, 40), "padded rows"),
    "tiles up to 2^64 - 1": ((2**32, 2**32), (2**32 - 3, 2**32 - 40), (3, 40), "column-major"),
}
# The counters are the same for every distribution: one per dtype, 4-byte (one group per value tensor) and
# 2-byte (two groups per thread, paired) outputs.
COUNTER_CASES = {
    "normal": ("normal", dict(mean=0.5, std=2.0), torch.float32),
    "trunc wide": ("trunc_normal", dict(mean=0.0, std=0.02, a=-2.0, b=2.0), torch.bfloat16),
    # a, b - a not exact in fp32 (and their fp32 roundings not proportional, so the error does not cancel)
    "uniform, fp64 math": ("uniform", dict(a=-0.3, b=0.1), torch.float32),
}


def _crosses(indices) -> bool:
    """Whether the groups of these logical indices lie on both sides of a multiple of 2^32, or reach the last
    group (2^62 - 1, whose words are all ones)."""
    groups = [i >> 2 for i in indices]
    return len({g >> 32 for g in groups}) > 1 or max(groups) == 2**62 - 1


@pytest.mark.parametrize("case", list(COUNTER_CASES))
@pytest.mark.parametrize("block", list(COUNTER_BLOCKS))
def test_counters_carry_into_the_high_word(block, case, poisoned):
    dist, kwargs, dtype = COUNTER_CASES[case]
    gshape, offset, shape, storage = COUNTER_BLOCKS[block]
    indices = logical_indices(shape, gshape, offset)
    assert _crosses(indices)
    if storage == "column-major":
        out = poisoned(*shape[::-1], dtype=dtype).t()
    elif storage == "padded rows":
        out = poisoned(shape[0], shape[1] + 9, dtype=dtype)[:, :shape[1]]
    else:
        out = poisoned(*shape, dtype=dtype)
    with triton_init.backend("triton"):
        FILLS[dist](out, **kwargs, seed=SEED, stream=STREAM, global_shape=gshape, global_offset=offset)
    check_against_oracle(out, dist, kwargs, SEED, STREAM, indices)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("aligned", [True, False], ids=["16-byte segments", "mid-group segments"])
def test_flat_buffer_counters_carry_into_the_high_word(aligned, dtype, triton_backend, poisoned):
    """The segment-table kernel, its whole-group (VEC) layout and the general one, across 2^32 groups. The
    mid-group segments are 16-byte aligned and whole 16-byte vectors long: only their start (2 mod 4)
    rules the whole-group layout out."""
    cases = [("uniform", dict(a=-0.75, b=2.5)), ("normal", dict(mean=0.5, std=2.0)),
             ("trunc_normal", dict(mean=0.0, std=1.0, a=-2.0, b=2.0))]
    if aligned:
        numel, starts = 40, [((2**40,), 2**34 - 24), ((2**64,), 2**64 - 2**34 - 16), ((2**64,), 2**64 - 40)]
    else:
        numel, starts = 32, [((2**40,), 2**34 - 22), ((2**64,), 2**64 - 2**34 - 14), ((2**64,), 2**64 - 34)]
    segments, expected = [], []
    for dist, kwargs in cases:
        for gshape, start in starts:
            segments.append(Segment(getattr(Init, dist)(**kwargs), dist, gshape, start, numel, 48 * len(segments)))
            expected.append((dist, kwargs, logical_indices((numel,), gshape, (start,))))
    buffer = poisoned(48 * len(segments), dtype=dtype)
    init_flat_(buffer, segments, seed=SEED)
    for segment, (dist, kwargs, indices) in zip(segments, expected, strict=True):
        assert _crosses(indices)
        piece = buffer[segment.offset:segment.offset + segment.numel]
        check_against_oracle(piece, dist, kwargs, SEED, dist, indices)


# ---- rounding to bf16 / fp16: nearest even, bit for bit -------------------------------------------------

def _ties(dtype: torch.dtype) -> torch.Tensor:
    """fp32 values exactly halfway between neighbouring ``dtype`` values (normal and subnormal, both signs),
    with the values just below and above each tie."""
    patterns = torch.arange(0, 0x7C00 if dtype == torch.float16 else 0x7F80, 7, dtype=torch.int32)
    values = patterns.to(torch.int16).view(dtype).float()
    above = (patterns + 1).to(torch.int16).view(dtype).float()
    ties = (values.double() + above.double()) / 2
    assert torch.equal(ties.float().double(), ties)  # exact in fp32
    ties = ties.float()
    near = torch.cat([ties, torch.nextafter(ties, torch.full_like(ties, -1.0)),
                      torch.nextafter(ties, torch.full_like(ties, 2.0**20))])
    return torch.cat([near, -near])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_store_rounds_ties_to_even(dtype):
    """The kernels' store (``_store_values``: the cast, with bf16 rounded by hand under the interpreter)
    against torch's round-to-nearest-even cast, on every seventh tie of the dtype's range."""
    values = _ties(dtype)
    expected = values.to(dtype)
    stored = store_rounded(values, dtype)
    assert torch.equal(bits(stored), bits(expected))
    ties = values[: values.numel() // 6]
    down = stored[: ties.numel()].float().abs() < ties.abs()
    assert 0.3 < down.float().mean() < 0.7  # ties go both ways: to the even neighbour, not away from zero


def _tie_above(x: float, dtype: torch.dtype, ulps: int = 0) -> float:
    """The fp32 value halfway between the dtype values x + ulps ulp and x + (ulps + 1) ulp (x a dtype value)."""
    u = float(ulp(x, dtype))
    return math.copysign(abs(x) + (ulps + 0.5) * u, x)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_fills_round_ties_to_even(dtype, poisoned):
    """The fill kernels end to end: a zero-width uniform and a std-0 normal (every value the tie itself) in
    the per-tensor kernel, and a constant segment in the flat-buffer kernel."""
    layout = make_layout(poisoned(101))
    fill = triton_init._dispatch.kernel_module("fill")
    ties = [_tie_above(1.0, dtype), _tie_above(1.0, dtype, 1), _tie_above(-1.0, dtype), _tie_above(1000.0, dtype),
            _tie_above(-3.0, dtype, 1)]  # rounding down, up, down (toward 0), down, up (away from 0)
    for tie in ties:
        expected = torch.tensor(tie, dtype=torch.float32).to(dtype)
        for dist in (UNIFORM, NORMAL):
            out = poisoned(101, dtype=dtype)
            fill.fill_(out, dist, (tie, 0.0), SEED, 1, layout.sizes, layout.mem_strides, layout.logical_strides,
                       layout.base)
            assert torch.equal(bits(out), bits(expected.expand(101))), (dist, tie)
        with triton_init.backend("triton"):
            out = init_flat_(poisoned(101, dtype=dtype), [Segment(Init.constant(tie), "c", (101,), 0, 101, 0)],
                             seed=SEED)
        assert torch.equal(bits(out), bits(expected.expand(101))), ("constant", tie)


# ---- trunc_normal values lie in [a, b] after rounding, on every path ------------------------------------

MAGNITUDE = 1000.0  # fp16/bf16/fp32 ulps of 0.5, 4 and 2^-14 here


def _constructed(case: str, dtype: torch.dtype):
    """(mean, std, a, b) in units of the dtype's ulp at ``MAGNITUDE``, so that many values would round past
    a bound without the clamp: bounds a fraction of an ulp inside a rounding midpoint."""
    u = float(ulp(MAGNITUDE, dtype))
    m = MAGNITUDE
    return {
        # nearly uniform over three ulps: ~7% of values in the bins that round below a or above b
        "central, three ulps": (m, 20 * u, m - 1.7 * u, m + 1.6 * u),
        # +-3.2 std with std half an ulp: the bins beyond the bounds hold ~0.07% each
        "wide, 3.2 std": (m, 0.5 * u, m - 1.6 * u, m + 1.6 * u),
        # [5, 7] std with std 4 ulps: a fifth of the mass rounds below a
        "tail, [5, 7] std": (m, 4 * u, m + 20.3 * u, m + 28.6 * u),
        # [-9, -8] std: the mass piles up at b
        "tail, [-9, -8] std": (m, 4 * u, m - 36.6 * u, m - 31.4 * u),
    }[case]


INTERVAL_CASES = [
    # (name, dtype, (mean, std, a, b) or None for the constructed one, path, n)
    *((case, dtype, None, case.split(",")[0], 4099) for case in
      ("central, three ulps", "tail, [5, 7] std", "tail, [-9, -8] std") for dtype in ALL_DTYPES),
    *(("wide, 3.2 std", dtype, None, "wide", 20_011) for dtype in (torch.float32, torch.float16, torch.bfloat16)),
    # an interval narrower than fp32's resolution of z: its values straddle both bounds
    ("narrower than fp32 z", torch.float32, (0.0, 1.0, 0.3, 0.3 + 1e-7), "central", 4099),
    ("narrower than fp32 z", torch.float64, (0.0, 1.0, 0.3, 0.3 + 1e-7), "central", 4099),
    # the cases a review found unclamped output in: bf16 std 0.01 on [-2, 2] std, fp16 at mean 1000
    ("bf16 std 0.01", torch.bfloat16, (0.0, 0.01, -0.02, 0.02), "central", 20_011),
    ("fp16 mean 1000", torch.float16, (1000.0, 3.0, 990.1, 1009.9), "wide", 20_011),
    ("torchtitan std 0.02 on [-2, 2]", torch.bfloat16, (0.0, 0.02, -2.0, 2.0), "wide", 4099),
]


@pytest.mark.parametrize("name, dtype, interval, path, n", INTERVAL_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in INTERVAL_CASES])
def test_trunc_normal_values_lie_in_the_interval_on_each_path(name, dtype, interval, path, n, kernel_launches,
                                                             poisoned):
    mean, std, a, b = interval or _constructed(name, dtype)
    kwargs = dict(mean=mean, std=std, a=a, b=b)
    with triton_init.backend("triton"):
        out = triton_init.trunc_normal_(poisoned(n, dtype=dtype), **kwargs, seed=SEED, stream=name)
    [(dist, params, _)] = kernel_launches
    assert dist == TRUNC_NORMAL and trunc_path(params) == path
    check_against_oracle(out, "trunc_normal", kwargs, SEED, name, range(n))


def _sub_ulp(near: float, dtype: torch.dtype) -> tuple:
    """[x + 0.2 ulp, x + 0.7 ulp] for the dtype value x nearest to ``near``: no dtype value inside."""
    x = float(torch.tensor(near).to(dtype))
    u = float(ulp(x, dtype))
    return x + 0.2 * u, x + 0.7 * u


SUB_ULP_CASES = [(*_sub_ulp(near, dtype), dtype) for near in (0.3, MAGNITUDE)
                 for dtype in (torch.float32, torch.float16, torch.bfloat16)]
SUB_ULP_CASES.append((0.29995, 0.30007, torch.bfloat16))  # the interval a review found unclamped


@pytest.mark.parametrize("a, b, dtype", SUB_ULP_CASES, ids=[f"[{a:.9g},{b:.9g}]-{d}" for a, b, d in SUB_ULP_CASES])
def test_interval_without_a_dtype_value_gets_the_value_nearest_a(a, b, dtype, kernel_launches, poisoned):
    """Where no dtype value lies in [a, b] (narrower than one ulp), every element is the one nearest to a."""
    lo, hi = inner_bounds(a, b, dtype)
    assert lo == hi and not a <= lo <= b
    with triton_init.backend("triton"):
        out = triton_init.trunc_normal_(poisoned(1001, dtype=dtype), (a + b) / 2, (b - a) / 4, a, b, seed=SEED)
    assert (out.double() == lo).all()
    assert len(kernel_launches) == 1


FAR_TAILS = [(10.0, 12.0), (-11.5, -11.0), (11.4, 11.6), (-12.0, -11.4)]  # mass down to 2e-30
BEYOND_REACH = [(-13.0, -12.0), (14.0, 20.0), (-30.0, -29.0)]  # mass below 2^-102: the float64 reference


@pytest.mark.parametrize("alpha, beta", FAR_TAILS)
def test_far_tails_on_the_kernel(alpha, beta, kernel_launches, poisoned):
    """Probabilities down to about 1e-30 through the kernel's tail pieces, within the contract."""
    kwargs = dict(mean=0.25, std=1.5, a=0.25 + alpha * 1.5, b=0.25 + beta * 1.5)
    with triton_init.backend("triton"):
        out = triton_init.trunc_normal_(poisoned(1031), **kwargs, seed=SEED, stream=STREAM)
    [(_, params, _)] = kernel_launches
    assert trunc_path(params) == "tail"
    check_against_oracle(out, "trunc_normal", kwargs, SEED, STREAM, range(1031))


@pytest.mark.parametrize("alpha, beta", BEYOND_REACH)
def test_beyond_the_kernels_reach_the_reference_serves(alpha, beta, monkeypatch, poisoned):
    """Where p no longer fits fp32's normal range (``kernel_exact``), the triton backend takes the float64
    reference, and the values still meet the contract."""
    kwargs = dict(mean=0.25, std=1.5, a=0.25 + alpha * 1.5, b=0.25 + beta * 1.5)
    fill = triton_init._dispatch.kernel_module("fill")
    monkeypatch.setattr(fill, "fill_", lambda *args, **kw: pytest.fail("the kernel took a call beyond its reach"))
    with triton_init.backend("triton"):
        out = triton_init.trunc_normal_(poisoned(1031), **kwargs, seed=SEED, stream=STREAM)
    check_against_oracle(out, "trunc_normal", kwargs, SEED, STREAM, range(1031))


# ---- launch configuration: the block size never changes a bit -------------------------------------------

BLOCK_GROUPS = [None, 1, 2, 4]  # None: the launcher's default; 1: bf16/fp16 without paired groups
LAUNCH_CASES = [
    ("uniform", dict(a=-0.75, b=2.5), torch.float32),
    ("normal", dict(mean=0.5, std=2.0), torch.bfloat16),
    ("trunc_normal", dict(mean=0.0, std=1.0, a=-2.0, b=2.0), torch.float16),
    ("trunc_normal", dict(mean=0.0, std=0.02, a=-2.0, b=2.0), torch.float32),
    ("trunc_normal", dict(mean=0.0, std=1.0, a=5.0, b=7.0), torch.bfloat16),
]


def _launch(t, dist, kwargs, layout, block_groups):
    params = reference.dist_params(DIST_IDS[dist], t.dtype, **kwargs)
    central = dist == "trunc_normal" and central_only(params[2], params[3])
    triton_init._dispatch.kernel_module("fill").fill_(
        t, DIST_IDS[dist], params, SEED, 5, layout.sizes, layout.mem_strides, layout.logical_strides,
        layout.base, central_only=central, block_groups=block_groups)
    return t


@pytest.mark.parametrize("dist, kwargs, dtype", LAUNCH_CASES, ids=[f"{c[0]}-{c[2]}" for c in LAUNCH_CASES])
def test_block_size_does_not_change_bits(dist, kwargs, dtype, poisoned):
    """A flat run from an offset past 2^32 with a head of 3 and a ragged end (it straddles one more group
    than its length suggests), a strided 2-D block, and a column-major block whose default is tiles."""
    layouts = [
        (lambda: poisoned(30, dtype=dtype), (2**33 + 5000,), (2**32 + 3,)),
        (lambda: poisoned(10, 3, dtype=dtype).t(), (40, 97), (3, 45)),
        (lambda: poisoned(8, 3, dtype=dtype).t(), (40, 96), (4, 8)),
    ]
    for make, gshape, offset in layouts:
        layout = make_layout(make(), gshape, offset)
        results = [_launch(make(), dist, kwargs, layout, bg) for bg in BLOCK_GROUPS]
        assert not torch.isnan(results[0]).any()
        for block_groups, other in zip(BLOCK_GROUPS[1:], results[1:], strict=True):
            assert torch.equal(bits(results[0]), bits(other)), (gshape, block_groups)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_flat_buffer_block_size_does_not_change_bits(dtype, poisoned):
    """The segment-table kernel at several block sizes, with whole-group (VEC) segments and without."""
    params = reference.dist_params(NORMAL, dtype, mean=0.5, std=2.0)
    for segments in ([(0, 2**33, 16, 7, params), (16, 8, 24, 9, params)],  # 16-byte aligned: VEC
                     [(0, 2**33 + 1, 15, 7, params), (19, 9, 18, 9, params)]):  # mid-group starts
        results = []
        for block_groups in (None, 1, 2):
            out = poisoned(48, dtype=dtype)
            flat_kernels.flat_fill_(out, NORMAL, segments, SEED, block_groups=block_groups)
            results.append(out)
        written = sum(n for _, _, n, _, _ in segments)
        assert int((~results[0].isnan()).sum()) == written
        for other in results[1:]:
            assert torch.equal(bits(results[0]), bits(other))


def test_default_size_programs_across_group_2_to_the_32(poisoned):
    """Three programs of the default size from a start that is not a multiple of the block: the carry into
    the high word falls inside the second program."""
    groups = interface.DEFAULT_BLOCK_GROUPS
    n, first = 3 * 4 * groups - 7, 4 * (2**32 - groups - 5) + 1
    kwargs = dict(mean=0.0, std=1.0)
    with triton_init.backend("triton"):
        out = FILLS["normal"](poisoned(n), **kwargs, seed=SEED, stream=STREAM, global_shape=(2**40,),
                              global_offset=(first,))
    check_against_oracle(out, "normal", kwargs, SEED, STREAM, range(first, first + n))
