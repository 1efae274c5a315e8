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
TWO_PI = tl.constexpr(6.283185307179586)
SQRT2 = tl.constexpr(1.4142135623730951)
# Below this 1 - u, -ln(u) comes from its series in v = 1 - u (lg2.approx is only absolutely accurate).
LOG_SERIES_CUTOFF = tl.constexpr(0.0078125)

CENTRAL_MID = tl.constexpr(C.CENTRAL_MID)
TAIL_NEAR_MID = tl.constexpr(C.TAIL_NEAR_MID)
TAIL_FAR_MID = tl.constexpr(C.TAIL_FAR_MID)
TAIL_SPLIT = tl.constexpr(C.TAIL_SPLIT)
C0, C1, C2, C3, C4, C5, C6, C7, C8 = (tl.constexpr(c) for c in C.CENTRAL)
N0, N1, N2, N3, N4, N5, N6, N7, N8 = (tl.constexpr(c) for c in C.TAIL_NEAR)
F0, F1, F2, F3, F4, F5, F6, F7, F8 = (tl.constexpr(c) for c in C.TAIL_FAR)


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
def uniform01(w):
    """u(w) = ((w >> 9) + 0.5) * 2^-23 in fp32, by the mantissa trick: exact, no int-to-float."""
    bits = (w >> 9) | 0x3F800000
    return bits.to(tl.float32, bitcast=True) - ONE_MINUS_HALF_ULP


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
def box_muller(w_first, w_second, FAST: tl.constexpr):
    """(r cos t, r sin t) with r = sqrt(-2 ln u(first)) and t = 2 pi u(second)."""
    u = uniform01(w_first)
    v = uniform01(w_first ^ 0xFFFFFFFF)  # 1 - u, exact (not ~w: triton 3.6's interpreter rejects ~ on uint32)
    neg_log_u = -LN2 * _log2(u, FAST)
    series = v * (1.0 + v * (0.5 + v * 0.3333333333333333))  # -ln(1 - v), accurate for small v
    neg_log_u = tl.where(v < LOG_SERIES_CUTOFF, series, neg_log_u)
    radius = _sqrt(2.0 * neg_log_u, FAST)
    # t - pi lies in (-pi, pi), where the approximate sin/cos are accurate; cos(t) = -cos(t - pi).
    angle = TWO_PI * (uniform01(w_second) - 0.5)
    return -radius * _cos(angle, FAST), -radius * _sin(angle, FAST)


@triton.jit
def _horner8(x, c0, c1, c2, c3, c4, c5, c6, c7, c8):
    acc = c8 * x + c7
    acc = acc * x + c6
    acc = acc * x + c5
    acc = acc * x + c4
    acc = acc * x + c3
    acc = acc * x + c2
    acc = acc * x + c1
    return acc * x + c0


@triton.jit
def ndtri_lower(p, CENTRAL_ONLY: tl.constexpr, FAST: tl.constexpr):
    """Phi^-1(p) for p in (0, 1/2]: sqrt(2) * x * f(w), x = 2p - 1, w = -ln(4 p (1 - p)).

    With CENTRAL_ONLY the caller guarantees w < 5 (p above about 0.0034), so the tail pieces go.
    """
    x = 2.0 * p - 1.0
    w = -LN2 * _log2(4.0 * p * (1.0 - p), FAST)
    f = _horner8(w - CENTRAL_MID, C0, C1, C2, C3, C4, C5, C6, C7, C8)
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
def trunc_normal_z(w, p_lo, q_hi, mass, CENTRAL_ONLY: tl.constexpr, FAST: tl.constexpr):
    """Phi^-1(Phi(alpha) + mass * u) without cancellation in either tail.

    p = Phi(alpha) + mass * u and q = Phi(-beta) + mass * (1 - u) are the probability and its
    complement; whichever is below 1/2 goes through ``ndtri_lower``.
    """
    p = p_lo + mass * uniform01(w)
    q = q_hi + mass * uniform01(w ^ 0xFFFFFFFF)
    lower = p <= 0.5
    z = ndtri_lower(tl.where(lower, p, q), CENTRAL_ONLY, FAST)
    return tl.where(lower, z, -z)
