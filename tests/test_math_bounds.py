"""The GPU transcendental sets meet the accuracy contract given their documented error bounds, over every u.

Each kernel formula is replayed in numpy with the kernels' fp32 operations (an fma as one rounding: the
product is exact in float64, then one rounding to fp32 after the float64 add, which can differ from a fused
rounding by one fp32 ulp of that step only in rare double-rounding ties), and every transcendental result
moved by the most its documented bound allows, both ways (kernels/math_nvidia.py, kernels/math_amd.py):

- NVIDIA (PTX ISA): lg2.approx absolute 2^-22 on (0.5, 2), relative 2^-22 elsewhere; sqrt.approx relative
  2^-23; sin.approx and cos.approx absolute 2^-20.5 on [-2 pi, 2 pi];
- AMD: v_log_f32 and v_sqrt_f32 1 ulp; v_sin_f32 and v_cos_f32 18 ulp (HIP's __sinf, the worse of the two).

Every value of u (2^23) is checked against the float64 format: |dz| <= 2e-5 max(1, |z|), once for both sets:
with NVIDIA's bounds for log2 and sqrt (which contain AMD's 1 ulp) and the larger of the two for sin and cos.
"""

import math

import numpy as np
import pytest
import torch
from scipy import special
from triton_init.kernels import ndtri_coeffs, trunc_paths

from triton_init import reference
from triton_init._format import TRUNC_NORMAL

F32 = np.float32
U = ((np.arange(1 << 23, dtype=np.float64) + 0.5) * 2.0 ** -23)  # every u(w), exact in fp32


def ulp(y):
    y = np.abs(np.asarray(y, dtype=np.float64))
    return np.ldexp(1.0, np.floor(np.log2(np.maximum(y, 2.0 ** -126))).astype(int) - 23)


def log2_bound(x):
    """Both sets' log2 bound: NVIDIA's, which contains AMD's 1 ulp (|log2 x| < 1 on (0.5, 2))."""
    return np.where((x > 0.5) & (x < 2.0), 2.0 ** -22, 2.0 ** -22 * np.abs(np.log2(x)))


def sqrt_bound(y):
    """Both sets' sqrt bound: 2^-23 relative, NVIDIA's, and at least AMD's 1 ulp."""
    return 2.0 ** -23 * y


def trig_bound(y):
    """The larger of NVIDIA's 2^-20.5 and AMD's 18 ulp of the result."""
    return np.maximum(2.0 ** -20.5, 18 * ulp(y))


def test_nvidia_log2_and_sqrt_bounds_contain_amds():
    x = np.exp(np.linspace(-87.0, 5.0, 100001))
    assert (log2_bound(x) >= ulp(np.log2(x))).all()
    assert (sqrt_bound(np.sqrt(x)) >= ulp(np.sqrt(x))).all()


def fma(a, b, c):
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(F32) if np.ndim(a) or np.ndim(b) or np.ndim(c) \
        else F32(np.float64(a) * np.float64(b) + np.float64(c))


def perturbed(exact, bound):
    """The two fp32 results at the ends of [exact - bound, exact + bound]."""
    return [(exact + sign * bound).astype(F32) for sign in (-1.0, 1.0)]


def horner(coeffs, v):
    acc = np.full_like(v, F32(coeffs[-1]))
    for c in coeffs[-2::-1]:
        acc = fma(acc, v, F32(c))
    return acc


def excess(z, exact):
    """max |z - exact| / (2e-5 max(1, |exact|))."""
    return float(np.max(np.abs(z.astype(np.float64) - exact) / (2e-5 * np.maximum(1.0, np.abs(exact)))))


# ------------------------------------------------------------------------------------------------------
# Box-Muller: r(u1) and the angle's cos/sin(u2) independently, then every combination bounded


def test_box_muller_within_the_contract():
    u = U.astype(F32)
    r_exact = np.sqrt(-2.0 * np.log(U))
    series = ((F32(1.0) - u) * F32(1.4426950408889634)).astype(np.float64)
    neg_log2 = -np.log2(U)
    worst_r = np.zeros_like(U)
    for log_end in perturbed(neg_log2, log2_bound(U)):
        root_in = np.where(U > 1.0 - 2.0 ** -11, series, log_end.astype(np.float64))
        for root in perturbed(np.sqrt(root_in), sqrt_bound(np.sqrt(root_in))):
            r = (root * F32(1.1774100225154747)).astype(np.float64)  # sqrt(2 ln 2), folded into the scale
            worst_r = np.maximum(worst_r, np.abs(r - r_exact))
    # the angle t - pi = 2 pi (u - 1/2): radians from one fma (NVIDIA), exact revolutions (AMD)
    d = (u + F32(1.0 - 2.0 ** -24)) - F32(1.5)  # m - 3/2, exact
    turns = U - 0.5
    radians = fma(d, F32(2 * math.pi), F32(2 * math.pi * 2.0 ** -24)).astype(np.float64)
    angle_error = max(np.max(np.abs(radians - 2 * math.pi * turns)),
                      2 * math.pi * np.max(np.abs((d.astype(np.float64) + 2.0 ** -24) - turns)))
    assert angle_error <= 4e-7
    trig = angle_error + max(np.max(trig_bound(np.cos(2 * math.pi * turns))),
                             np.max(trig_bound(np.sin(2 * math.pi * turns))))
    # |dz| <= |dr| |c| + r (dc) + rounding of r c, for every |c| in [0, 1]: linear in |c| against a convex
    # allowance, so the corners |c| = 0, 1 / r, 1 decide
    for c in (np.zeros_like(U), np.minimum(1.0, 1.0 / r_exact), np.ones_like(U)):
        z = r_exact * c
        error = worst_r * c + r_exact * trig + 2.0 ** -23 * z
        assert np.max(error / (2e-5 * np.maximum(1.0, z))) <= 1.0


# ------------------------------------------------------------------------------------------------------
# trunc_normal: each path's formula, fp32, over every u

CHUNK = 1 << 16  # values per step: the arrays stay in cache


def _path_values(path, p_lo, q_hi, mass, u):
    """The path's z at the fp32 values ``u``, at each end of the transcendentals' bounds (the paths are
    monotone in them over such small moves)."""
    out = []
    if path == trunc_paths.CENTRAL:
        two_mass = F32(2.0 * mass)
        x_at_one = F32((2.0 * p_lo - 1.0) - np.float64(two_mass) * (1.0 - 2.0 ** -24))
        x = fma(u + F32(1.0 - 2.0 ** -24), two_mass, x_at_one)
        t = fma(-x, x, F32(1.0)).astype(np.float64)
        for v in perturbed(np.log2(t), log2_bound(t)):
            out.append(fma(x, horner(ndtri_coeffs.CENTRAL, v), F32(0.0)))
    elif path == trunc_paths.UNTRUNCATED:
        x64 = u * F32(128.0) - F32(64.0)
        t = fma(-x64, x64, F32(4096.0)).astype(np.float64)
        for v in perturbed(np.log2(t), log2_bound(t)):
            out.append(fma(x64, horner(ndtri_coeffs.WIDE, v), F32(0.0)))
    elif path == trunc_paths.WIDE:
        p = fma(F32(128 * mass), u, F32(128 * p_lo))
        q = fma(F32(128 * mass), F32(1.0) - u, F32(128 * q_hi))
        t = (p * q).astype(np.float64)
        for v in perturbed(np.log2(t), log2_bound(t)):
            out.append(fma(p - F32(64.0), horner(ndtri_coeffs.WIDE, v), F32(0.0)))
    else:
        upper = q_hi < p_lo
        pp = fma(F32(128 * mass), F32(1.0) - u if upper else u, F32(128 * min(p_lo, q_hi)))
        t = ((F32(128.0) - pp) * pp).astype(np.float64)
        sign = F32(-1.0 if upper else 1.0)
        for v in perturbed(np.log2(t), log2_bound(t)):
            near = horner(ndtri_coeffs.WIDE, v)
            w = fma(v, F32(-math.log(2.0)), F32(12 * math.log(2.0))).astype(np.float64)
            for s in perturbed(np.sqrt(w), sqrt_bound(np.sqrt(w))):
                f = np.where(s >= F32(4.0), horner(ndtri_coeffs.FAR, s), near)
                out.append(fma(pp - F32(64.0), f * sign, F32(0.0)))
    return out


# (alpha, beta) of calls at the edges of each path's range
BOUND_CASES = [((-2.925, 2.925), "central"), ((0.5, 2.6), "central"), ((-100.0, 100.0), "untruncated"),
               ((-6.0, 6.0), "wide"), ((-0.001, 6.0), "wide"), ((5.0, 7.0), "tail"), ((-40.0, -0.1), "tail"),
               ((11.0, 12.0), "tail")]


@pytest.mark.parametrize("interval, path", BOUND_CASES, ids=str)
def test_trunc_normal_path_within_the_contract(interval, path):
    params = reference.dist_params(TRUNC_NORMAL, torch.float32, a=interval[0], b=interval[1])
    p_lo, q_hi, mass = params[2:5]
    code = {name: code for code, name in trunc_paths.NAMES.items()}[path]
    assert trunc_paths.choose(p_lo, q_hi, mass) == code
    p, q = p_lo + mass * U, q_hi + mass * (1.0 - U)  # the format's z, as reference._trunc_z
    exact = np.where(p <= 0.5, special.ndtri(p), -special.ndtri(q))
    worst = 0.0
    for start in range(0, 1 << 23, CHUNK):
        for z in _path_values(code, p_lo, q_hi, mass, U[start:start + CHUNK].astype(F32)):
            worst = max(worst, excess(z, exact[start:start + CHUNK]))
    assert worst <= 1.0
