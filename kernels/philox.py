"""Stream format v1 as @triton.jit helpers: Philox4x32-10, u(w), Box-Muller and the inverse normal CDF.

Every kernel that produces random values builds on these, so the format lives in one place on the GPU
side (``triton_init.reference`` is its CPU twin). ``FAST`` selects approximate PTX transcendentals
(GPU only); the plain ``tl`` math variant is what runs under ``TRITON_INTERPRET=1``.
"""

import triton
import triton.language as tl

from . import ndtri_coeffs as C

# Philox4x32-10 constants (Salmon et al., Random123).
PHILOX_M0 = tl.constexpr(0xD2511F53)
PHILOX_M1 = tl.constexpr(0xCD9E8D57)
PHILOX_W0 = tl.constexpr(0x9E3779B9)
PHILOX_W1 = tl.constexpr(0xBB67AE85)

ONE_MINUS_HALF_ULP = tl.constexpr(0.99999994039535522)  # 1 - 2^-24, exact in fp32
LN2 = tl.constexpr(0.6931471805599453)
NEG_LN2 = tl.constexpr(-0.6931471805599453)
INV_LN2 = tl.constexpr(1.4426950408889634)
SQRT_2LN2 = tl.constexpr(1.1774100225154747)  # sqrt(2 ln 2): -2 ln u = 2 ln 2 * (-log2 u)
TWO_PI = tl.constexpr(6.283185307179586)
TWO_PI_ULP = tl.constexpr(6.283185307179586 / 2 ** 24)  # 2 pi * 2^-24
SQRT2 = tl.constexpr(1.4142135623730951)
# Above this u (1 - u below 2^-11), -ln(u) is taken as 1 - u (lg2.approx is only absolutely accurate).
SERIES_ABOVE = tl.constexpr(1.0 - 2.0 ** -11)

CENTRAL_MID = tl.constexpr(C.CENTRAL_MID)
TAIL_NEAR_MID = tl.constexpr(C.TAIL_NEAR_MID)
TAIL_FAR_MID = tl.constexpr(C.TAIL_FAR_MID)
TAIL_SPLIT = tl.constexpr(C.TAIL_SPLIT)
C0, C1, C2, C3, C4, C5, C6 = (tl.constexpr(c) for c in C.CENTRAL)
N0, N1, N2, N3, N4, N5, N6, N7, N8 = (tl.constexpr(c) for c in C.TAIL_NEAR)
F0, F1, F2, F3, F4, F5, F6, F7, F8 = (tl.constexpr(c) for c in C.TAIL_FAR)
# The central polynomial times sqrt(2): Phi^-1(p) = x * (sqrt(2) f(w)) with one multiply fewer.
S0, S1, S2, S3, S4, S5, S6 = (tl.constexpr(c * 1.4142135623730951) for c in C.CENTRAL)
# The WIDE piece (degree 13 in w - WIDE_MID, sqrt(2) folded in) and the smallest min(p, q) it serves:
# w = -ln(4 p (1 - p)) <= 17 (the fit reaches 17.5), i.e. p >= e^-17 / 4.
WIDE_MID = tl.constexpr(C.WIDE_MID)
(WD0, WD1, WD2, WD3, WD4, WD5, WD6, WD7, WD8, WD9, WD10, WD11, WD12, WD13) = (
    tl.constexpr(c * 1.4142135623730951) for c in C.WIDE)
WIDE_P_MIN = tl.constexpr(1.0e-8)
U_MIN = tl.constexpr(2.0 ** -24)  # the smallest u(w)


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
def _log2(x, FAST: tl.constexpr):
    if FAST:
        return tl.inline_asm_elementwise("lg2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32,
                                         is_pure=True, pack=1)
    else:
        return tl.log2(x)


@triton.jit
def _sqrt(x, FAST: tl.constexpr):
    if FAST:
        return tl.inline_asm_elementwise("sqrt.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32,
                                         is_pure=True, pack=1)
    else:
        return tl.sqrt(x)


@triton.jit
def _sin(x, FAST: tl.constexpr):
    if FAST:
        return tl.inline_asm_elementwise("sin.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32,
                                         is_pure=True, pack=1)
    else:
        return tl.sin(x)


@triton.jit
def _cos(x, FAST: tl.constexpr):
    if FAST:
        return tl.inline_asm_elementwise("cos.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32,
                                         is_pure=True, pack=1)
    else:
        return tl.cos(x)


@triton.jit
def box_muller_root(w_first, FAST: tl.constexpr):
    """sqrt(-log2 u(first)) = r / sqrt(2 ln 2): the radius before one constant factor (callers fold it).

    Near u = 1, lg2.approx is only absolutely accurate (about 2^-22), which the small radius there would
    amplify: below 1 - u = 2^-11, -log2 u is taken as (1 - u) / ln 2 instead, whose relative error
    (1 - u) / 2 moves z by under 4e-6.
    """
    u = uniform01(w_first)
    series = (1.0 - u) * INV_LN2  # 1 - u is exact: one rounding, fused or not
    neg_log2 = tl.where(u > SERIES_ABOVE, series, -_log2(u, FAST))
    return _sqrt(neg_log2, FAST)


@triton.jit
def box_muller_angle(w_second):
    """t - pi = 2 pi (u(second) - 1/2) in (-pi, pi), where the approximate sin/cos are accurate.

    With m = u + 1 - 2^-24 in [1, 2) (the mantissa), 2 pi (u - 1/2) = 2 pi (m - 3/2) + 2 pi 2^-24, and
    m - 3/2 is exact: one add and one fma.
    """
    return (_mantissa(w_second) - 1.5) * TWO_PI + TWO_PI_ULP


@triton.jit
def box_muller_polar(w_first, w_second, FAST: tl.constexpr):
    """(r, t - pi) with r = sqrt(-2 ln u(first)) and t = 2 pi u(second): z = (-r cos(t - pi), -r sin(t - pi))."""
    return box_muller_root(w_first, FAST) * SQRT_2LN2, box_muller_angle(w_second)


@triton.jit
def box_muller(w_first, w_second, FAST: tl.constexpr):
    """(r cos t, r sin t) with r = sqrt(-2 ln u(first)) and t = 2 pi u(second)."""
    radius, angle = box_muller_polar(w_first, w_second, FAST)
    return -radius * _cos(angle, FAST), -radius * _sin(angle, FAST)


@triton.jit
def _horner6(x, c0, c1, c2, c3, c4, c5, c6):
    acc = c6 * x + c5
    acc = acc * x + c4
    acc = acc * x + c3
    acc = acc * x + c2
    acc = acc * x + c1
    return acc * x + c0


@triton.jit
def _horner8(x, c0, c1, c2, c3, c4, c5, c6, c7, c8):
    return (_horner6(x, c2, c3, c4, c5, c6, c7, c8) * x + c1) * x + c0


@triton.jit
def ndtri_lower(p, CENTRAL_ONLY: tl.constexpr, FAST: tl.constexpr):
    """Phi^-1(p) for p in (0, 1/2]: sqrt(2) * x * f(w), x = 2p - 1, w = -ln(4 p (1 - p)).

    With CENTRAL_ONLY the caller guarantees w < 5 (p above about 0.0034), so the tail pieces go.
    """
    x = 2.0 * p - 1.0
    w = -LN2 * _log2(4.0 * p * (1.0 - p), FAST)
    f = _horner6(w - CENTRAL_MID, C0, C1, C2, C3, C4, C5, C6)
    if not CENTRAL_ONLY:
        s = _sqrt(w, FAST)
        far = s >= TAIL_SPLIT
        tail = _horner8(s - tl.where(far, TAIL_FAR_MID, TAIL_NEAR_MID),
                        tl.where(far, F0, N0), tl.where(far, F1, N1), tl.where(far, F2, N2),
                        tl.where(far, F3, N3), tl.where(far, F4, N4), tl.where(far, F5, N5),
                        tl.where(far, F6, N6), tl.where(far, F7, N7), tl.where(far, F8, N8))
        f = tl.where(w < 5.0, f, tail)
    return SQRT2 * x * f


@triton.jit
def trunc_normal_z_central(w, x_lo, two_mass, FAST: tl.constexpr):
    """Phi^-1(p) for p = Phi(alpha) + mass * u when every p and 1 - p stays above about 0.0034.

    With x = 2p - 1 = x_lo + two_mass * u (x_lo = 2 Phi(alpha) - 1, two_mass = 2 mass) and
    w = -ln(1 - x^2), Phi^-1(p) = x * sqrt(2) f(w) on both sides of 1/2: no complement, no select.
    Rounding x costs under 1e-7 in p, which moves z by under 1e-5 there (1 / phi(2.7) ~ 100).
    """
    x = uniform01(w) * two_mass + x_lo
    arg = _log2(1.0 - x * x, FAST) * NEG_LN2 - CENTRAL_MID
    return x * _horner6(arg, S0, S1, S2, S3, S4, S5, S6)


@triton.jit
def wide_fits(p_lo, q_hi, mass):
    """Whether every p and q of a call stays where the WIDE polynomial serves (a scalar condition)."""
    return tl.minimum(p_lo, q_hi) + mass * U_MIN >= WIDE_P_MIN


@triton.jit
def trunc_normal_z_wide(w, p_lo, q_hi, mass, FAST: tl.constexpr):
    """``trunc_normal_z`` for calls where ``wide_fits``: one polynomial in w, no square root, no tail pieces.

    This is the case of every interval wider than about +-5.6 std, such as trunc_normal_(std=0.02) on
    torch's default bounds [-2, 2].
    """
    u = uniform01(w)
    p = p_lo + mass * u
    q = q_hi + mass * (1.0 - u)  # 1 - u is exact
    lower = p <= 0.5
    pp = tl.where(lower, p, q)
    x = 2.0 * pp - 1.0
    arg = _log2(4.0 * pp * (1.0 - pp), FAST) * NEG_LN2 - WIDE_MID
    f = _horner8(arg, WD5, WD6, WD7, WD8, WD9, WD10, WD11, WD12, WD13)
    f = (((((f * arg + WD4) * arg + WD3) * arg + WD2) * arg + WD1) * arg) + WD0
    return tl.where(lower, x * f, -(x * f))


@triton.jit
def trunc_normal_central_value(w, x_lo, two_mass, mean, std, FAST: tl.constexpr):
    """mean + std * ``trunc_normal_z_central`` as one fma per element: std rides in the coefficients."""
    x = uniform01(w) * two_mass + x_lo
    arg = _log2(1.0 - x * x, FAST) * NEG_LN2 - CENTRAL_MID
    return x * _horner6(arg, S0 * std, S1 * std, S2 * std, S3 * std, S4 * std, S5 * std, S6 * std) + mean


@triton.jit
def trunc_normal_z(w, p_lo, q_hi, mass, CENTRAL_ONLY: tl.constexpr, FAST: tl.constexpr):
    """Phi^-1(Phi(alpha) + mass * u) without cancellation in either tail.

    p = Phi(alpha) + mass * u and q = Phi(-beta) + mass * (1 - u) are the probability and its
    complement; whichever is below 1/2 goes through ``ndtri_lower``. CENTRAL_ONLY (every p and q above
    about 0.0034) takes ``trunc_normal_z_central``.
    """
    if CENTRAL_ONLY:
        return trunc_normal_z_central(w, p_lo + p_lo - 1.0, mass + mass, FAST)
    else:
        u = uniform01(w)
        p = p_lo + mass * u
        q = q_hi + mass * (1.0 - u)  # 1 - u is exact
        lower = p <= 0.5
        z = ndtri_lower(tl.where(lower, p, q), CENTRAL_ONLY, FAST)
        return tl.where(lower, z, -z)
