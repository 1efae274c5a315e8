"""Test helpers: the golden values, an independent float64 oracle of stream format v1, the contract checks,
and the public fills by distribution name.

The oracle is written from the format's statement alone (numpy uint64 Philox, scipy's ndtr/ndtri), so it
checks the reference as much as the kernels, and it reaches logical indices up to 2^64 - 1.
"""

import json
import math
from pathlib import Path

import numpy as np
import torch
from scipy import special

import triton_init
from triton_init import contract
from triton_init._format import NORMAL, TRUNC_NORMAL, UNIFORM

# The repository's own copy of the golden values (its "provenance" field says where they come from).
GOLDEN_PATH = Path(__file__).resolve().parent / "data" / "stream_v1.json"

MASK32 = np.uint64(0xFFFFFFFF)
PHILOX_M0, PHILOX_M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85

# The public fills and the format's distribution codes, by distribution name.
FILLS = {"uniform": triton_init.uniform_, "normal": triton_init.normal_, "trunc_normal": triton_init.trunc_normal_}
DIST_IDS = {"uniform": UNIFORM, "normal": NORMAL, "trunc_normal": TRUNC_NORMAL}


def load_golden() -> dict:
    return json.loads(GOLDEN_PATH.read_text())


def philox(c0, c1, c2, c3, k0: int, k1: int):
    """Philox4x32-10 on numpy uint64 arrays holding 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    for _ in range(10):
        prod0 = c0 * PHILOX_M0
        prod1 = c2 * PHILOX_M1
        c0, c1, c2, c3 = (prod1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), prod1 & MASK32, \
            (prod0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), prod0 & MASK32
        k0 = (k0 + PHILOX_W0) & 0xFFFFFFFF
        k1 = (k1 + PHILOX_W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def words_of_groups(groups, seed: int, stream: int):
    groups = np.asarray(groups, dtype=np.uint64)
    zeros = np.zeros_like(groups)
    return philox(groups & MASK32, groups >> np.uint64(32), zeros + np.uint64(stream & 0xFFFFFFFF),
                  zeros + np.uint64(stream >> 32), seed & 0xFFFFFFFF, seed >> 32)


def u_of(words) -> np.ndarray:
    return ((words >> np.uint64(9)).astype(np.float64) + 0.5) * 2.0 ** -23


def exact(indices, dist: str, seed: int, stream: int, *, a=0.0, b=1.0, mean=0.0, std=1.0) -> np.ndarray:
    """The exact float64 math of the format at logical ``indices`` (python ints below 2^64, or a numpy array).

    Returns the value for "uniform", and z (in units of std, before scale, shift and clamp) otherwise.
    """
    if isinstance(indices, np.ndarray):
        idx = indices.astype(np.uint64)
    else:
        idx = np.array([int(i) for i in indices], dtype=np.uint64)
    w = np.stack(words_of_groups(idx >> np.uint64(2), seed, stream), axis=-1)
    lane = (idx & np.uint64(3)).astype(np.int64)
    rows = np.arange(len(idx))
    if dist == "uniform":
        return a + (b - a) * u_of(w[rows, lane])
    if dist == "normal":
        first, second = w[rows, lane & 2], w[rows, (lane & 2) + 1]
        radius = np.sqrt(-2.0 * np.log(u_of(first)))
        angle = 2.0 * math.pi * u_of(second)
        return np.where(lane % 2 == 0, radius * np.cos(angle), radius * np.sin(angle))
    assert dist == "trunc_normal"
    return trunc_z_of_words(w[rows, lane], *trunc_constants((a - mean) / std, (b - mean) / std))


def trunc_constants(alpha: float, beta: float) -> tuple:
    """(Phi(alpha), Phi(-beta), Phi(beta) - Phi(alpha)) in float64, from scipy."""
    p_lo, q_hi = special.ndtr(alpha), special.ndtr(-beta)
    if beta <= 0:
        mass = special.ndtr(beta) - p_lo
    elif alpha >= 0:
        mass = special.ndtr(-alpha) - q_hi
    else:
        mass = 1.0 - p_lo - q_hi
    return p_lo, q_hi, mass


def trunc_z_of_words(words, p_lo: float, q_hi: float, mass: float) -> np.ndarray:
    """The exact trunc_normal z of each word: Phi^-1(p_lo + mass u(w)), through the complement above 1/2."""
    words = np.asarray(words, dtype=np.uint64)
    p = p_lo + mass * u_of(words)
    q = q_hi + mass * u_of(words ^ MASK32)
    return np.where(p <= 0.5, special.ndtri(p), -special.ndtri(q))


def distribution_cases(mean: float, std: float, *trunc_intervals) -> dict:
    """name -> (distribution, kwargs): uniform, normal, and trunc_normal on [alpha, beta] in units of std
    (torch's bounds are absolute, so a = mean + alpha std)."""
    cases = {"uniform": ("uniform", dict(a=-0.75, b=2.5)), "normal": ("normal", dict(mean=mean, std=std))}
    for alpha, beta in trunc_intervals:
        cases[f"trunc[{alpha:g},{beta:g}]"] = ("trunc_normal", dict(mean=mean, std=std, a=mean + alpha * std,
                                                                    b=mean + beta * std))
    return cases


def interval_of(dist: str, kwargs):
    return (kwargs["a"], kwargs["b"]) if dist == "trunc_normal" else None


def ulp(x, dtype: torch.dtype) -> np.ndarray:
    """The spacing of ``dtype`` values at |x| (``triton_init.contract.ulp`` on numpy values)."""
    return contract.ulp(torch.from_numpy(np.asarray(x, dtype=np.float64)), dtype).numpy()


def _report(actual, expected, err, tol):
    bad = np.flatnonzero(err > tol)
    k = bad[np.argmax((err - tol)[bad])]
    return (f"{len(bad)} of {err.size} values out of tolerance; worst at flat position {k}: "
            f"got {actual[k]!r}, exact {expected[k]!r}, error {err[k]:.3g} > {tol[k]:.3g}")


def assert_contract(actual: torch.Tensor, z_exact, *, mean=0.0, std=1.0, interval=None) -> None:
    """|x - (mean + std z_exact)| within ``triton_init.contract.normal_tolerance``: 2e-5 std max(1, |z|), the
    arithmetic of mean + std z, and half an ulp for the one rounding to float16/bfloat16.

    With ``interval`` (trunc_normal's absolute [a, b]) a value within one ulp of a bound may instead be the
    outermost dtype value inside [a, b], where the clamp put it rather than rounding past the bound.
    """
    got = actual.detach().cpu().double().numpy().ravel()
    z = np.asarray(z_exact, dtype=np.float64).ravel()
    expected = mean + std * z
    assert np.isfinite(got).all(), f"{(~np.isfinite(got)).sum()} non-finite values"
    err = np.abs(got - expected)
    tol = contract.normal_tolerance(torch.from_numpy(expected), mean, std, actual.dtype).numpy()
    if interval is not None:
        a, b = interval
        step = ulp(expected, actual.dtype)
        clamped = (got >= a) & (got <= b) & (np.minimum(np.abs(expected - a), np.abs(expected - b)) <= step)
        tol = np.where(clamped, tol + step, tol)
    assert (err <= tol).all(), _report(got, expected, err, tol)


def assert_uniform(actual: torch.Tensor, exact_values, slack: float = 0.0) -> None:
    """Within ``triton_init.contract.uniform_tolerance``: 2 fp32 ulps of the exact value, plus half an ulp of the
    one rounding to float16/bfloat16 (plus ``slack``, see ``interpreter_fma_slack``)."""
    got = actual.detach().cpu().double().numpy().ravel()
    expected = np.asarray(exact_values, dtype=np.float64).ravel()
    err = np.abs(got - expected)
    tol = contract.uniform_tolerance(torch.from_numpy(expected), actual.dtype).numpy() + slack
    assert (err <= tol).all(), _report(got, expected, err, tol)


def check_against_oracle(out: torch.Tensor, dist: str, kwargs, seed: int, stream, indices) -> None:
    """``out`` holds the values of logical ``indices`` (local row-major order) within the contract, and
    trunc_normal values lie in [a, b]."""
    z = exact(indices, dist, seed, triton_init.stream_id(stream), **kwargs)
    if dist == "uniform":
        assert_uniform(out, z, slack=interpreter_fma_slack(kwargs["a"], kwargs["b"], out.dtype))
        return
    assert_contract(out, z, mean=kwargs["mean"], std=kwargs["std"], interval=interval_of(dist, kwargs))
    if dist == "trunc_normal":
        x = out.detach().cpu().double()
        outside = (x < kwargs["a"]) | (x > kwargs["b"])
        assert not outside.any(), f"{int(outside.sum())} of {x.numel()} values outside [a, b]"


def logical_indices(shape, global_shape, global_offset) -> list:
    """Row-major logical indices (python ints) of the block ``shape`` at ``global_offset``, in local order."""
    strides, acc = [], 1
    for g in reversed(global_shape):
        strides.append(acc)
        acc *= g
    strides.reverse()
    out = [0]
    for size, offset, stride in zip(shape, global_offset, strides, strict=True):
        out = [base + (offset + k) * stride for base in out for k in range(size)]
    return out


def bits(t: torch.Tensor) -> torch.Tensor:
    """The bit patterns of a float tensor, for bit-exact comparisons."""
    return t.contiguous().view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])


_fma_rounds_twice = None


def interpreter_fma_slack(a: float, b: float, dtype: torch.dtype) -> float:
    """Extra uniform tolerance where triton's interpreter emulates tl.fma as a multiply then an add.

    triton 3.6's interpreter does (3.9's and every GPU fuse it): the kernels' fp32 uniform a + (b - a) u
    then carries the product's rounding, half an fp32 ulp of max(|a|, |b|), which near 0 is many ulps.
    """
    global _fma_rounds_twice
    if dtype == torch.float64 or torch.cuda.is_available():
        return 0.0
    if _fma_rounds_twice is None:
        import triton
        import triton.language as tl

        @triton.jit
        def _probe(x_ptr, out_ptr):
            x = tl.load(x_ptr + tl.arange(0, 2))
            tl.store(out_ptr + tl.arange(0, 2), tl.fma(x, x, -(x + x - 1.0)))

        x = torch.full((2,), 1.0 + 2.0 ** -12)
        out = torch.zeros(2)
        _probe[(1,)](x, out)
        _fma_rounds_twice = float(out[0]) != 2.0 ** -24  # exact: (1 + e)^2 - (1 + 2e) = e^2
    return 0.5 * float(ulp(max(abs(a), abs(b)), torch.float32)) if _fma_rounds_twice else 0.0
