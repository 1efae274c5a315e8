"""The GPU-only fast paths against the format: approximate MUFU math (FAST), the fp32 uniform fma.

Under TRITON_INTERPRET=1 CI runs the plain-math variant of the same formulas; these tests check what
only a GPU runs: lg2/sqrt/sin/cos.approx, exhaustively over every u(w) a word can give (2^23 values),
and the tuned kernels end to end, bit-identical across launch configurations.
"""

import pytest
import torch
from _contract import assert_contract, assert_uniform, interval_of

from triton_init import reference
from triton_init._format import NORMAL, TRUNC_NORMAL, UNIFORM, central_only

pytestmark = pytest.mark.gpu

if torch.cuda.is_available():
    from _probes import box_muller_z, trunc_piece_z
    from triton_init.kernels import fill


def _every_u_word(device="cuda") -> torch.Tensor:
    """One word for each of the 2^23 values of u(w) (random low 9 bits), as int64 holding uint32."""
    top = torch.arange(1 << 23, dtype=torch.int64, device=device) << 9
    low = torch.randint(0, 1 << 9, (1 << 23,), dtype=torch.int64, device=device)
    return top | low


def _contract_excess(z, exact) -> float:
    """max |z - exact| / (2e-5 max(1, |exact|)): at most 1 within the format's accuracy contract."""
    return ((z.double() - exact).abs() / (2e-5 * exact.abs().clamp(min=1.0))).max().item()


def test_fast_box_muller_every_u():
    first = _every_u_word()
    second = first[torch.randperm(first.numel(), device="cuda")]
    z0, z1 = box_muller_z(first, second, fast=True)
    e0, e1 = reference._box_muller(first, second, torch.float64)
    assert _contract_excess(z0, e0) <= 1.0
    assert _contract_excess(z1, e1) <= 1.0


@pytest.mark.parametrize("a, b", [(-2.0, 2.0), (-2.7, 2.7), (0.5, 2.6), (5.0, 7.0), (-9.0, -8.0), (-6.0, 6.0),
                                  (-0.3, 0.1)])
@pytest.mark.parametrize("central", [True, False])
def test_fast_trunc_normal_every_u(a, b, central):
    params = reference.dist_params(TRUNC_NORMAL, torch.float32, a=a, b=b)
    p_lo, q_hi, mass = params[2:5]
    if central and not central_only(p_lo, q_hi):
        pytest.skip("interval outside the central polynomial's range")
    words = _every_u_word()
    z, _ = trunc_piece_z(words, p_lo, q_hi, mass, "central" if central else "tail", fast=True)
    exact = reference._trunc_z(words, p_lo, q_hi, mass)
    assert _contract_excess(z, exact) <= 1.0


@pytest.mark.parametrize("a, b", [(-100.0, 100.0), (-6.0, 6.0), (-5.7, 40.0), (-2.0, 2.0)])
def test_fast_trunc_normal_wide_every_u(a, b):
    """The one-polynomial path that wide intervals (e.g. std=0.02 on [-2, 2]) take, over every u."""
    params = reference.dist_params(TRUNC_NORMAL, torch.float32, a=a, b=b)
    p_lo, q_hi, mass = params[2:5]
    words = _every_u_word()
    z, fits = trunc_piece_z(words, p_lo, q_hi, mass, "wide", fast=True)
    assert fits
    exact = reference._trunc_z(words, p_lo, q_hi, mass)
    assert _contract_excess(z, exact) <= 1.0


CASES = [
    (UNIFORM, dict(a=-1.0, b=1.0)),  # fp32 fma path
    (UNIFORM, dict(a=0.1, b=0.7)),  # b - a not exact in fp32: fp64 path
    (NORMAL, dict(mean=0.5, std=2.0)),
    (TRUNC_NORMAL, dict(mean=0.0, std=0.02, a=-0.04, b=0.04)),  # central
    (TRUNC_NORMAL, dict(mean=0.0, std=1.0, a=5.0, b=7.0)),  # far tail
    (TRUNC_NORMAL, dict(mean=0.0, std=0.02, a=-2.0, b=2.0)),  # +-100 std: the wide path
]


def _fill(dist, params, dtype, n, base, **launch):
    central = dist == TRUNC_NORMAL and central_only(params[2], params[3])
    out = torch.full((n,), float("nan"), dtype=dtype, device="cuda")
    fill.fill_(out, dist, params, 99, 7, (n,), (1,), (1,), base, central_only=central, fast=True, **launch)
    return out


# Every case in every dtype from logical index 0, and normal / central trunc_normal from offsets that
# cross 2^32 groups and start mid-group (kept short: each combination is a kernel compile on the device).
MATCH = [(dist, kw, dtype, 0) for dist, kw in CASES
         for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64)]
MATCH += [(dist, kw, dtype, base) for dist, kw in (CASES[2], CASES[3])
          for dtype, base in ((torch.float32, (1 << 34) - 4 * 700 + 1), (torch.bfloat16, 4 * 1024 * 5 + 2))]


@pytest.mark.parametrize("dist, kw, dtype, base", MATCH)
def test_fast_kernels_match_reference(dist, kw, dtype, base):
    """Every element of the tuned kernels within the format's tolerance (the one rounding to the output dtype
    within half an ulp: a truncating cast fails), also across 2^32 groups."""
    n = (1 << 20) + 37
    params = reference.dist_params(dist, dtype, **kw)
    got = _fill(dist, params, dtype, n, base).cpu()
    exact = reference.values_at(torch.arange(n, dtype=torch.int64) + base, dist, params, 99, 7, torch.float64)
    if dist == UNIFORM:
        assert_uniform(got, exact.numpy())
    else:
        mean, std = kw.get("mean", 0.0), kw.get("std", 1.0)
        name = "normal" if dist == NORMAL else "trunc_normal"
        assert_contract(got, ((exact - mean) / std).numpy(), mean=mean, std=std, interval=interval_of(name, kw))
    if dist == TRUNC_NORMAL:
        assert (got.double() >= kw["a"]).all() and (got.double() <= kw["b"]).all()


@pytest.mark.parametrize("dist, kw, dtype", [(*CASES[2], torch.bfloat16), (*CASES[3], torch.float32),
                                             (*CASES[0], torch.bfloat16)])
def test_fast_kernels_launch_invariant(dist, kw, dtype):
    n = (1 << 18) + 5
    params = reference.dist_params(dist, dtype, **kw)
    outs = [_fill(dist, params, dtype, n, 12, block_groups=bg, num_warps=nw)
            for bg, nw in ((None, None), (256, 2), (32, 1))]
    for other in outs[1:]:
        assert torch.equal(other.view(torch.uint8), outs[0].view(torch.uint8)), "values depend on the launch"


@pytest.mark.parametrize("dist, kw", [CASES[0], CASES[2], CASES[3]])
def test_fast_column_major_tiles_match_flat(dist, kw):
    """The column-major tile path (orthogonal_'s prep) gives the flat path's bits."""
    rows, cols, base = 300, 200, 4 * 12345
    params = reference.dist_params(dist, torch.float32, **kw)
    view = torch.full((cols, rows + 3), float("nan"), device="cuda").t()[:rows]  # strides (1, rows + 3)
    assert fill._transposed_tiles((rows, cols), view.stride(), (cols, 1), base)
    central = dist == TRUNC_NORMAL and central_only(params[2], params[3])
    fill.fill_(view, dist, params, 99, 7, (rows, cols), view.stride(), (cols, 1), base, central_only=central,
               fast=True)
    flat = _fill(dist, params, torch.float32, rows * cols, base)
    assert torch.equal(view.contiguous().reshape(-1), flat)
