"""Which inverse-CDF path a trunc_normal call takes in the kernels, and whether its values need the clamp.

Chosen per call on the host from (Phi(alpha), Phi(-beta), mass), so that every kernel specialisation is one
straight-line path (``philox.trunc_normal_*``), valid for every probability the call can draw:

- CENTRAL: every p and 1 - p above about 0.0034 (intervals within about +-2.9 std, e.g. +-2 std);
- UNTRUNCATED: Phi(alpha) and Phi(-beta) at most 2^-48 (beyond about +-7.8 std, e.g. std 0.02 on
  [-2, 2]): the whole mass is 1 in fp32, p = u exactly;
- WIDE: every p and q at least about 2.8e-8 (w <= 16), which includes every interval containing the mean;
- TAIL: the rest, all one-sided (every draw in one tail), down to p = 2^-126 (``kernel_exact``).

Plain Python (no triton): the launchers and ``triton_init`` import it.
"""

import math
from statistics import NormalDist

from . import ndtri_coeffs

CENTRAL = 0
UNTRUNCATED = 1
WIDE = 2
TAIL = 3
NAMES = {CENTRAL: "central", UNTRUNCATED: "untruncated", WIDE: "wide", TAIL: "tail"}

U_MIN = 2.0 ** -24  # the smallest u(w), and 1 - the largest
# w = -ln(4 p (1 - p)) limits of the pieces, a little inside the ranges they were fitted on.
CENTRAL_W_LIMIT = 4.99
WIDE_W_LIMIT = 16.0
# The TAIL path takes the FAR piece from s = sqrt(w) = 4 (w = 16) on, the WIDE piece below.
TAIL_FAR_FROM_S = 4.0
# Phi^-1(u) instead of Phi^-1(Phi(alpha) + mass u) moves p by at most 2^-48 + 2^-47 u, under 2^-23 of p.
UNTRUNCATED_TAIL = 2.0 ** -48
# Margins of the clamp decision: the contract's 2e-5 max(1, |z|) five times over, and fp32 rounding of
# mean, std and mean + std z (a few 2^-24 of |mean| + std |z|).
Z_MARGIN = 1e-4
ROUNDING_MARGIN = 2.0 ** -20

assert CENTRAL_W_LIMIT < ndtri_coeffs.CENTRAL_W[1] and WIDE_W_LIMIT < ndtri_coeffs.WIDE_W[1]
assert ndtri_coeffs.FAR_W[0] < TAIL_FAR_FROM_S ** 2 <= WIDE_W_LIMIT


def _w(p: float) -> float:
    return -math.log(4.0 * p * (1.0 - p))


def choose(p_lo: float, q_hi: float, mass: float) -> int:
    """The path for p = p_lo + mass u and q = q_hi + mass (1 - u) (p_lo = Phi(alpha), q_hi = Phi(-beta))."""
    smallest = min(p_lo, q_hi)
    if smallest > 0.0 and _w(smallest) < CENTRAL_W_LIMIT:
        return CENTRAL
    if max(p_lo, q_hi) <= UNTRUNCATED_TAIL:
        return UNTRUNCATED
    if _w(smallest + mass * U_MIN) <= WIDE_W_LIMIT:
        return WIDE
    # An interval around the mean has mass >= 1/2 - 0.0034 once a bound leaves the central range, so its
    # smallest p is at least 0.49 * 2^-24, inside WIDE: what is left lies in one tail.
    assert min(p_lo + mass, q_hi + mass) <= 0.5, "trunc_normal tail path for an interval around the mean"
    return TAIL


def z_range(path: int, p_lo: float, q_hi: float, mass: float) -> tuple[float, float]:
    """The smallest and largest exact z the path draws (u from 2^-24 to 1 - 2^-24)."""
    if path == UNTRUNCATED:
        p_lo = q_hi = 0.0
        mass = 1.0
    inverse = NormalDist().inv_cdf

    def z_at(p: float, q: float) -> float:  # Phi^-1(p) = -Phi^-1(q), from whichever is below 1/2
        return inverse(p) if p < 0.5 else -inverse(q)

    return (z_at(p_lo + mass * U_MIN, q_hi + mass * (1.0 - U_MIN)),
            z_at(p_lo + mass * (1.0 - U_MIN), q_hi + mass * U_MIN))


def needs_clamp(path: int, mean: float, std: float, p_lo: float, q_hi: float, mass: float, lo: float,
                hi: float) -> bool:
    """Whether some value the path can produce, with its error, may fall outside [lo, hi] (the outermost
    output-dtype values inside [a, b]); when not, the kernels skip the clamp."""
    z_lo, z_hi = z_range(path, p_lo, q_hi, mass)
    spread = [mean + std * z + sign * (Z_MARGIN * std * max(1.0, abs(z)) + ROUNDING_MARGIN * (abs(mean) + std * abs(z)))
              for z, sign in ((z_lo, -1.0), (z_hi, 1.0))]
    return not (lo <= spread[0] and spread[1] <= hi)
