"""Stream format v1 on the host: seed and stream ids, and the per-call constants of each distribution.

The per-element math lives in ``kernels/philox.py`` (GPU) and ``triton_init/reference.py`` (CPU); this
module holds what both take as scalars, so that both see the same numbers.
"""

import functools
import hashlib
import math
from dataclasses import dataclass

import torch

from .kernels.interface import CONSTANT, NORMAL, TRUNC_NORMAL, UNIFORM  # noqa: F401  (re-exported)

FORMAT_VERSION = 1
UINT64_LIMIT = 1 << 64


def stream_id(stream) -> int:
    """A stream as an int in [0, 2^64): None -> 0, a str -> the first 8 bytes of BLAKE2b, little-endian."""
    if stream is None:
        return 0
    if isinstance(stream, str):
        return _name_id(stream)
    return _uint64(stream, "stream")


@functools.lru_cache(maxsize=1 << 16)
def _name_id(name: str) -> int:
    """A str stream's id, remembered: a model's names come back at every init."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


def _uint64(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
        except ImportError:  # pragma: no cover
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in [0, 2**64) (or None), got {type(value).__name__}")
    if not 0 <= value < UINT64_LIMIT:
        raise ValueError(f"{name} must lie in [0, 2**64), got {value}")
    return value


def resolve_seed(seed, generator) -> int:
    """The key: ``seed`` itself, or 64 bits drawn from ``generator`` (torch's default one if None)."""
    if seed is not None:
        return _uint64(seed, "seed")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    device = generator.device if generator is not None else "cpu"
    lo, hi = torch.randint(0, 1 << 32, (2,), dtype=torch.int64, generator=generator, device=device).tolist()
    return lo | (hi << 32)


def std_normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_mass(alpha: float, beta: float) -> float:
    """Phi(beta) - Phi(alpha) in float64 without cancellation."""
    r = math.sqrt(0.5)
    if beta <= 0.0:
        return 0.5 * (math.erfc(-beta * r) - math.erfc(-alpha * r))
    if alpha >= 0.0:
        return 0.5 * (math.erfc(alpha * r) - math.erfc(beta * r))
    return 0.5 * (math.erf(beta * r) - math.erf(alpha * r))


@dataclass(frozen=True)
class TruncParams:
    """Per-call constants of trunc_normal: p = p_lo + mass * u, q = q_hi + mass * (1 - u)."""

    p_lo: float  # Phi(alpha)
    q_hi: float  # Phi(-beta) = 1 - Phi(beta)
    mass: float  # Phi(beta) - Phi(alpha)


def kernel_exact(dist: int, params) -> bool:
    """Whether the fp32 kernels meet the format's contract for this call.

    trunc_normal needs every p = Phi(alpha) + mass * u to be a normal fp32 number (the GPU flushes
    subnormals): mass * 2^-24 >= 2^-126, i.e. intervals out to about 12 std in one tail. Farther
    intervals go to the float64 reference, which stays accurate to about 37 std.
    """
    return dist != TRUNC_NORMAL or params[4] * 2.0 ** -24 >= 2.0 ** -126


def trunc_params(mean: float, std: float, a: float, b: float) -> TruncParams:
    alpha = (a - mean) / std
    beta = (b - mean) / std
    p_lo = std_normal_cdf(alpha)
    q_hi = std_normal_cdf(-beta)
    return TruncParams(p_lo, q_hi, normal_mass(alpha, beta))


def inner_bounds(a: float, b: float, dtype: torch.dtype) -> tuple[float, float]:
    """The smallest ``dtype`` value >= a and the largest <= b, so clamped values round into [a, b]."""
    if dtype == torch.float64:
        return a, b
    return _inner_bounds(a, b, dtype, math.copysign(1.0, a), math.copysign(1.0, b))


@functools.lru_cache(maxsize=1024)
def _inner_bounds(a: float, b: float, dtype: torch.dtype, _sign_a: float, _sign_b: float) -> tuple[float, float]:
    """``inner_bounds``, remembered: its torch conversions cost a small fill's time, and models repeat their
    bounds. The signs are in the key because -0.0 == 0.0 would otherwise share an entry."""
    lo = _round_to(a, dtype)
    hi = _round_to(b, dtype)
    if lo < a:
        lo = _next_toward(lo, math.inf, dtype)
    if hi > b:
        hi = _next_toward(hi, -math.inf, dtype)
    if lo > hi:  # no dtype value inside [a, b]: the nearest one to a it is
        lo = hi = _round_to(a, dtype)
    return lo, hi


def _round_to(x: float, dtype: torch.dtype) -> float:
    return float(torch.tensor(x, dtype=torch.float64).to(dtype))


def _next_toward(x: float, direction: float, dtype: torch.dtype) -> float:
    """The neighbour of the ``dtype`` value x toward ``direction``."""
    t = torch.tensor(x, dtype=torch.float32).to(dtype)
    if dtype == torch.float32:
        return float(torch.nextafter(t, torch.tensor(direction, dtype=dtype)))
    # fp16/bf16: step the 16-bit pattern (sign-magnitude), with +-0 handled by going through fp32.
    bits = int(t.view(torch.int16)) & 0xFFFF
    magnitude, negative = bits & 0x7FFF, bool(bits & 0x8000)
    toward_larger = direction > x
    if magnitude == 0:
        magnitude, negative = 1, not toward_larger
    elif toward_larger != negative:
        magnitude += 1
    else:
        magnitude -= 1
    pattern = magnitude | (0x8000 if negative else 0)
    return float(torch.tensor(pattern - (1 << 16) if pattern >= 1 << 15 else pattern,
                              dtype=torch.int16).view(dtype))
