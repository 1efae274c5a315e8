"""Stream format v1 as @triton.jit helpers: Philox4x32-10, u(w), Box-Muller and the inverse normal CDF.

Every kernel that produces random values builds on these, so the format lives in one place on the GPU
side (``triton_init.reference`` is its CPU twin). ``MATH`` (see ``target``) selects the transcendental
set: the vendor's proven approximations on a GPU, the accurate ``tl`` functions under ``TRITON_INTERPRET=1``.

trunc_normal has one helper per path (``trunc_paths`` chooses it per call, on the host): each is
straight-line code for the probabilities its calls can draw, with the inverse-CDF coefficients of
``ndtri_coeffs`` (fitted by ``fit_ndtri.py``) and the output's std folded into them.
"""

import triton
import triton.language as tl

from . import ndtri_coeffs as C
from .transcendentals import cos_angle, full_turn, log2, sin_angle, sqrt
from .trunc_paths import TAIL_FAR_FROM_S

# Philox4x32-10 constants (Salmon et al., Random123).
PHILOX_M0 = tl.constexpr(0xD2511F53)
PHILOX_M1 = tl.constexpr(0xCD9E8D57)
PHILOX_W0 = tl.constexpr(0x9E3779B9)
PHILOX_W1 = tl.constexpr(0xBB67AE85)

ONE_MINUS_HALF_ULP = tl.constexpr(0.99999994039535522)  # 1 - 2^-24, exact in fp32: u = m - (1 - 2^-24)
U_MIN = tl.constexpr(2.0 ** -24)  # the smallest u(w)
INV_LN2 = tl.constexpr(1.4426950408889634)
SQRT_2LN2 = tl.constexpr(1.1774100225154747)  # sqrt(2 ln 2): -2 ln u = 2 ln 2 * (-log2 u)
NEG_LN2 = tl.constexpr(-0.6931471805599453)
TWELVE_LN2 = tl.constexpr(12.0 * 0.6931471805599453)
# Above this u (1 - u below 2^-11), -ln(u) is taken as 1 - u (lg2.approx is only absolutely accurate).
SERIES_ABOVE = tl.constexpr(1.0 - 2.0 ** -11)

# Inverse-CDF pieces (see fit_ndtri.py): CENTRAL in log2(1 - x^2); WIDE in log2(4096 (1 - x^2)) and FAR in
# sqrt(w) = sqrt(-ln(1 - x^2)), both for 64 x; the tail path takes FAR from w = 16 (s = 4) on.
C0, C1, C2, C3, C4, C5, C6 = (tl.constexpr(c) for c in C.CENTRAL)
W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10 = (tl.constexpr(c) for c in C.WIDE)
F0, F1, F2, F3, F4, F5, F6 = (tl.constexpr(c) for c in C.FAR)
FAR_FROM_S = tl.constexpr(TAIL_FAR_FROM_S)


@triton.jit
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds; each product is one 64-bit multiply split into hi and lo words."""
    for _ in tl.static_range(10):
        prod0 = c0.to(tl.uint64) * PHILOX_M0
        prod1 = c2.to(tl.uint64) * PHILOX_M1
        c0 = (prod1 >> 32).to(tl.uint32) ^ c1 ^ k0
        c2 = (prod0 >> 32).to(tl.uint32) ^ c3 ^ k1
        c1 = prod1.to(tl.uint32)
        c3 = prod0.to(tl.uint32)
        k0 = k0 + PHILOX_W0
        k1 = k1 + PHILOX_W1
    return c0, c1, c2, c3


@triton.jit
def _mantissa(w):
    """1 + (w >> 9) * 2^-23 in [1, 2): the word's top 23 bits as an fp32 mantissa (one LEA.HI)."""
    return ((w >> 9) | 0x3F800000).to(tl.float32, bitcast=True)


@triton.jit
def uniform01(w):
    """u(w) = ((w >> 9) + 0.5) * 2^-23 in fp32, by the mantissa trick: exact, no int-to-float."""
    return _mantissa(w) - ONE_MINUS_HALF_ULP


@triton.jit
def uniform01_f64(w):
    """The same u(w), exact in fp64."""
    bits = ((w >> 9).to(tl.uint64) << 29) | 0x3FF0000000000000
    return bits.to(tl.float64, bitcast=True) - ONE_MINUS_HALF_ULP




@triton.jit
def box_muller_root(w_first, MATH: tl.constexpr):
    """sqrt(-log2 u(first)) = r / sqrt(2 ln 2): the radius before one constant factor (callers fold it).

    Near u = 1, lg2.approx is only absolutely accurate (about 2^-22), which the small radius there would
    amplify: below 1 - u = 2^-11, -log2 u is taken as (1 - u) / ln 2 instead, whose relative error
    (1 - u) / 2 moves z by under 4e-6.
    """
    u = uniform01(w_first)
    series = (1.0 - u) * INV_LN2  # 1 - u is exact: one rounding, fused or not
    neg_log2 = tl.where(u > SERIES_ABOVE, series, -log2(u, MATH))
    return sqrt(neg_log2, MATH)


@triton.jit
def box_muller_angle(w_second, MATH: tl.constexpr):
    """t - pi = 2 pi (u(second) - 1/2) in the angle unit of ``MATH``'s sin and cos (radians or turns).

    With m = u + 1 - 2^-24 in [1, 2) (the mantissa), u - 1/2 = (m - 3/2) + 2^-24, and m - 3/2 is exact:
    one add and one fma (an add alone when the unit is a turn).
    """
    turn = full_turn(MATH)
    return tl.fma(_mantissa(w_second) - 1.5, turn, turn * U_MIN)


@triton.jit
def box_muller(w_first, w_second, MATH: tl.constexpr):
    """(r cos t, r sin t) with r = sqrt(-2 ln u(first)) and t = 2 pi u(second), as -r cos(t - pi), -r sin(t - pi)."""
    radius = box_muller_root(w_first, MATH) * SQRT_2LN2
    angle = box_muller_angle(w_second, MATH)
    return -radius * cos_angle(angle, MATH), -radius * sin_angle(angle, MATH)


@triton.jit
def _poly6(v, c0, c1, c2, c3, c4, c5, c6, scale):
    """(c0 + c1 v + ... + c6 v^6) * scale by Horner's rule: one fma per step on the GPU (fp fusion)."""
    acc = (c6 * scale) * v + c5 * scale
    acc = acc * v + c4 * scale
    acc = acc * v + c3 * scale
    acc = acc * v + c2 * scale
    acc = acc * v + c1 * scale
    return acc * v + c0 * scale


@triton.jit
def _wide_poly(v, scale):
    """The WIDE piece times ``scale``: F(w) / 64 for v = log2(4096 (1 - x^2)), w <= 16.1."""
    acc = (W10 * scale) * v + W9 * scale
    acc = acc * v + W8 * scale
    acc = acc * v + W7 * scale
    acc = acc * v + W6 * scale
    acc = acc * v + W5 * scale
    acc = acc * v + W4 * scale
    acc = acc * v + W3 * scale
    acc = acc * v + W2 * scale
    acc = acc * v + W1 * scale
    return acc * v + W0 * scale


@triton.jit
def trunc_normal_central(w, x_at_one, two_mass, scale, shift, MATH: tl.constexpr):
    """shift + scale Phi^-1(p), p = Phi(alpha) + mass u, when every p and 1 - p stays above about 0.0034.

    x = 2p - 1 = x_at_one + two_mass m in one fma of the mantissa m (x_at_one = 2 Phi(alpha) - 1 - 2 mass
    (1 - 2^-24), rounded once), and Phi^-1(p) = x F(w) on both sides of 1/2 with w = -ln(1 - x^2): no
    complement, no select. Rounding x costs under 2e-7 in x, which moves z by under 2e-5 there
    (1 / phi(2.93) ~ 180), within 2e-5 max(1, |z|).
    """
    x = _mantissa(w) * two_mass + x_at_one
    v = log2(1.0 - x * x, MATH)
    return x * _poly6(v, C0, C1, C2, C3, C4, C5, C6, scale) + shift


@triton.jit
def trunc_normal_untruncated(w, scale, shift, MATH: tl.constexpr):
    """shift + scale Phi^-1(u) for calls whose whole mass is 1 in fp32 (Phi(alpha), Phi(-beta) <= 2^-48).

    x = 2u - 1 is exact (64 x from u in one fma), 4096 (1 - x^2) is rounded once, and Phi^-1(u) = 64 x
    F(w) / 64 with the WIDE piece: p = u and q = 1 - u exactly, no select, no complement.
    """
    x64 = uniform01(w) * 128.0 - 64.0  # exact
    v = log2(tl.fma(-x64, x64, 4096.0), MATH)  # one rounding, also in the interpreter
    return x64 * _wide_poly(v, scale) + shift


@triton.jit
def trunc_normal_wide(w, p128, q128, mass128, scale, shift, MATH: tl.constexpr):
    """shift + scale Phi^-1(p) when every p and q = 1 - p of the call is at least about 2.8e-8 (w <= 16).

    p = Phi(alpha) + mass u and q = Phi(-beta) + mass (1 - u), both times 128 (exact scalings: p128 =
    128 Phi(alpha), ...), keep their relative precision in either tail. Phi^-1(p) = x F(w) holds on both
    sides of 1/2 with x = 2p - 1 (64 x = 128 p - 64, accurate wherever |x| matters) and 1 - x^2 = 4 p q
    (4096 (1 - x^2) = 128 p * 128 q, accurate in both tails): no select, no sign.
    """
    u = uniform01(w)
    p = mass128 * u + p128
    q = mass128 * (1.0 - u) + q128  # 1 - u is exact
    v = log2(p * q, MATH)
    return (p - 64.0) * _wide_poly(v, scale) + shift


@triton.jit
def trunc_normal_tail(w, base128, mass128, flip, scale, shift, MATH: tl.constexpr):
    """shift + scale Phi^-1(pp) for one-sided calls (every draw in one tail), pp = base + mass v down to 2^-126.

    v = u (lower tail, flip 0) or 1 - u (upper tail, flip 1; the caller negates ``scale``): no per-element
    select of p or q. The WIDE piece serves w < 16, the FAR piece in s = sqrt(w) the rest (both computed).
    """
    u = uniform01(w)
    pp = mass128 * (u * (1.0 - 2.0 * flip) + flip) + base128  # 128 pp: u or 1 - u (exact), then one fma
    v = log2((128.0 - pp) * pp, MATH)
    s = sqrt(v * NEG_LN2 + TWELVE_LN2, MATH)
    far = _poly6(s, F0, F1, F2, F3, F4, F5, F6, scale)
    f = tl.where(s >= FAR_FROM_S, far, _wide_poly(v, scale))
    return (pp - 64.0) * f + shift
