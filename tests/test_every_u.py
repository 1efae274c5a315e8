"""Every value u(w) can take (2^23), through the kernels' own helpers in the interpreter: the accurate
transcendental set (numpy's log2, sqrt, sin, cos) with each inverse-CDF path and Box-Muller, against the
float64 format. The GPU sets are covered by their documented bounds (test_math_bounds.py) and by the same
check on a GPU (test_gpu_perf_paths.py)."""

import os

import pytest
import torch

from triton_init import reference
from triton_init._format import TRUNC_NORMAL

pytestmark = pytest.mark.skipif(not os.environ.get("TRITON_INTERPRET"), reason="the interpreter's accurate set")

if os.environ.get("TRITON_INTERPRET"):
    import triton
    import triton.language as tl
    from triton_init.kernels import fill, trunc_paths
    from triton_init.kernels.fill import _f64, _trunc_setup, _trunc_value
    from triton_init.kernels.philox import box_muller
    from triton_init.kernels.target import MATH_ACCURATE

    @triton.jit
    def _trunc_probe(words_ptr, z_ptr, p_lo_bits, q_hi_bits, mass_bits, TRUNC_PATH: tl.constexpr,
                     BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        w = tl.load(words_ptr + offs).to(tl.uint32)
        k0, k1, k2, sign = _trunc_setup(_f64(p_lo_bits), _f64(q_hi_bits), _f64(mass_bits), TRUNC_PATH)
        tl.store(z_ptr + offs, _trunc_value(w, k0, k1, k2, sign, 0.0, TRUNC_PATH, MATH_ACCURATE))

    @triton.jit
    def _box_muller_probe(first_ptr, second_ptr, z0_ptr, z1_ptr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        z0, z1 = box_muller(tl.load(first_ptr + offs).to(tl.uint32), tl.load(second_ptr + offs).to(tl.uint32),
                            MATH_ACCURATE)
        tl.store(z0_ptr + offs, z0)
        tl.store(z1_ptr + offs, z1)

BLOCK = 1 << 20  # few programs: the interpreter's cost is per operation, not per element


def _every_u_word(low: int) -> torch.Tensor:
    """One word for each of the 2^23 values of u(w), with ``low`` in the 9 bits u ignores."""
    return (torch.arange(1 << 23, dtype=torch.int64) << 9) | low


def _contract_excess(z: torch.Tensor, exact: torch.Tensor) -> float:
    """max |z - exact| / (2e-5 max(1, |exact|)): at most 1 within the format's accuracy contract."""
    return ((z.double() - exact).abs() / (2e-5 * exact.abs().clamp(min=1.0))).max().item()


# The most demanding call of each path: the central edge (w up to 4.99), the untruncated whole mass, a
# two-sided WIDE call whose smallest p is next to its limit (w up to 15.9), a tail straddling both pieces.
EDGES = {"central": (-2.925, 2.925), "untruncated": (-100.0, 100.0), "wide": (-0.001, 6.0), "tail": (5.0, 7.0)}


@pytest.mark.parametrize("path", list(EDGES))
def test_trunc_normal_path_every_u(path):
    a, b = EDGES[path]
    params = reference.dist_params(TRUNC_NORMAL, torch.float32, a=a, b=b)
    p_lo, q_hi, mass = params[2:5]
    code = {name: code for code, name in trunc_paths.NAMES.items()}[path]
    assert trunc_paths.choose(p_lo, q_hi, mass) == code
    words = _every_u_word(0x1A5)
    z = torch.full((words.numel(),), float("nan"))
    _trunc_probe[(words.numel() // BLOCK,)](words, z, *(fill._bits(p) for p in (p_lo, q_hi, mass)),
                                            TRUNC_PATH=code, BLOCK=BLOCK)
    assert _contract_excess(z, reference._trunc_z(words, p_lo, q_hi, mass)) <= 1.0


def test_box_muller_every_u():
    """Every u of the radius's word against a permutation of every u of the angle's."""
    first = _every_u_word(0x0F3)
    second = first[torch.randperm(first.numel(), generator=torch.Generator().manual_seed(11))] ^ 0x1FF
    z0, z1 = torch.full((first.numel(),), float("nan")), torch.full((first.numel(),), float("nan"))
    _box_muller_probe[(first.numel() // BLOCK,)](first, second, z0, z1, BLOCK=BLOCK)
    e0, e1 = reference._box_muller(first, second, torch.float64)
    assert _contract_excess(z0, e0) <= 1.0
    assert _contract_excess(z1, e1) <= 1.0
