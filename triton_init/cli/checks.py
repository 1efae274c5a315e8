"""How ``triton-init bench`` checks values: errors in units of the stream format's contract, and the Triton
kernels on sampled logical indices (through the interpreter on a machine without a GPU).

The exact values come from the reference computing in float64 (uniform exactly, normal and trunc_normal
with float64 transcendentals), far more accurate than the contract, so the error is the checked output's.
"""

import importlib.util
import math
import os
import sys

import torch

from .. import _dispatch, reference
from .._format import TRUNC_NORMAL, UNIFORM
from ..contract import contract_units, normal_tolerance, ulp, uniform_tolerance

RUN = 32  # logical indices per sampled run in the kernel check
ORTHOGONAL_SHAPE = (48, 80)  # rows < cols: the transposed prep and epilogue
# max |QQᵀ - I| of an orthogonal_ output: fp32/fp64 from QR's own error, fp16/bf16 from rounding each entry
ORTHOGONALITY_LIMIT = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def contract_error(got: torch.Tensor, exact: torch.Tensor, dist: int, dtype: torch.dtype, *, mean=0.0, std=1.0,
                   a=None, b=None) -> float:
    """The largest error in contract units (``triton_init.contract.contract_units``): 0 is as close as the
    exact value rounded once to ``dtype``, 1 the contract's limit.

    allowed: normal and trunc_normal 2e-5 std max(1, |z|) plus the dtype's rounding, and one more ulp for
    trunc_normal values the clamp put at the outermost dtype value inside [a, b] (the exact values here are
    clamped to [a, b] itself); uniform 2 fp32 ulps, or one ulp of a coarser dtype.
    """
    got, exact = got.double().cpu(), exact.double().cpu()
    if dist == UNIFORM:
        allowed = uniform_tolerance(exact, dtype)
    else:
        allowed = normal_tolerance(exact, mean, std, dtype)
        if dist == TRUNC_NORMAL:
            step = ulp(exact, dtype)
            near_bound = torch.minimum((exact - a).abs(), (exact - b).abs()) <= step
            allowed = torch.where(near_bound, allowed + step, allowed)
    if not bool(torch.isfinite(got).all()):
        return math.inf
    return float(contract_units(got, exact, allowed, dtype).max())


def exact_values(logical: torch.Tensor, dist: int, dist_args: dict, seed: int, stream: int) -> torch.Tensor:
    """The float64 values of stream format v1 at ``logical`` (an int64 tensor of indices below 2^63)."""
    params = reference.dist_params(dist, torch.float64, **dist_args)
    return reference.values_at(logical, dist, params, seed, stream, torch.float64)


def orthogonality_error(out: torch.Tensor) -> float:
    """max |Q Qᵀ - I| (QᵀQ for a tall Q) in float64 on the output's device: the output's own error, so bf16
    shows its rounding."""
    q = out.reshape(out.shape[0], -1).double()
    gram = q @ q.t() if q.shape[0] <= q.shape[1] else q.t() @ q
    gram.diagonal().sub_(1.0)
    return float(gram.abs().max())


# ---- the kernel check ----------------------------------------------------------------------------------

_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_MASK32 = 0xFFFFFFFF
# Words of the group the check seeks: u(w0) = 2^-24 and u(w1) = u(w2) = 1 - 2^-24 (the two ends of
# uniform and of trunc_normal's inverse CDF), u(w3) = 1/2 + 2^-24. For normal, (w0, w1) is the largest
# radius, sqrt(48 ln 2) = 5.77, at angle 2 pi (1 - 2^-24): z = +5.77; (w2, w3) the smallest radius,
# 3.5e-4 (where an approximate log2 fails first), at angle pi: z = -3.5e-4.
_END_WORDS = (0x00000000, 0xFFFFFE00, 0xFFFFFE00, 0x80000000)


def _inverse_philox(words, seed: int) -> tuple[int, int, int, int]:
    """The counter that Philox4x32-10 with key ``seed`` maps to ``words`` (each round inverted)."""
    m0_inverse, m1_inverse = pow(_PHILOX_M[0], -1, 1 << 32), pow(_PHILOX_M[1], -1, 1 << 32)
    c0, c1, c2, c3 = words
    for r in reversed(range(10)):
        k0 = (seed + r * _PHILOX_W[0]) & _MASK32
        k1 = ((seed >> 32) + r * _PHILOX_W[1]) & _MASK32
        x0 = (c3 * m0_inverse) & _MASK32  # c3 was lo(x0 * M0), c1 was lo(x2 * M1)
        x2 = (c1 * m1_inverse) & _MASK32
        x1 = c0 ^ ((x2 * _PHILOX_M[1]) >> 32) ^ k0
        x3 = c2 ^ ((x0 * _PHILOX_M[0]) >> 32) ^ k1
        c0, c1, c2, c3 = x0, x1, x2, x3
    return c0, c1, c2, c3


def ends_of_the_distributions(seed: int) -> tuple[int, int]:
    """(group index j, stream) whose words are ``_END_WORDS`` but for their low 9 bits (which u ignores),
    with 3 * 2^32 <= j < 2^60: logical indices 4j .. 4j + 3 between 2^35.5 and 2^62."""
    for tweak in range(1 << 18):
        words = [w | ((tweak >> (9 * k)) & 511) if k < 2 else w for k, w in enumerate(_END_WORDS)]
        c0, c1, c2, c3 = _inverse_philox(words, seed)
        if 3 <= c1 < 1 << 28:
            group, stream = c0 | (c1 << 32), c2 | (c3 << 32)
            found = reference.group_words(torch.tensor([group]), seed, stream)
            if [int(w) for w in found] != words:
                raise AssertionError("inverting Philox4x32-10 disagrees with the reference")
            return group, stream
    raise AssertionError("no group found")  # 1 in 16 tweaks qualifies


def sample_block(seed: int):
    """(global_shape, global_offset, stream, logical indices) of a (2, RUN) block of a (2, C) tensor: row 0
    crosses logical index 2^34 (Philox's counter word j >> 32 changes), row 1 holds the group of
    ``ends_of_the_distributions`` in its middle."""
    group, stream = ends_of_the_distributions(seed)
    col0 = (1 << 34) - RUN // 2
    cols = 4 * group - RUN // 2 - col0
    shape, offset = (2, cols), (0, col0)
    logical = torch.stack([col0 + torch.arange(RUN), cols + col0 + torch.arange(RUN)])
    return shape, offset, stream, logical


def kernel_device() -> tuple[str | None, str]:
    """Where the kernel check runs: ("cuda", ""), ("cpu", "") through the Triton interpreter, or (None, why
    not). The interpreter needs TRITON_INTERPRET=1 before triton is imported (triton.language's own
    helpers are defined then), and numpy."""
    if torch.cuda.is_available():
        return "cuda", ""
    missing = [name for name in ("triton", "numpy") if importlib.util.find_spec(name) is None]
    if missing:
        return None, f"{' and '.join(missing)} not installed (pip install 'triton-init[test]')"
    if "triton" in sys.modules and not _dispatch.interpreter_active():
        return None, ("triton was imported before TRITON_INTERPRET=1 could be set "
                      "(run: TRITON_INTERPRET=1 triton-init bench)")
    return "cpu", ""


def check_kernels(ops, dtypes, seed: int) -> dict:
    """Each op's fill through the Triton kernels on ``sample_block``'s indices, against the exact values.

    Returns {"device", "rows"} ({"device": None, "skipped": why} where it cannot run); each row has the op,
    dtype, indices, the largest index and the max error in contract units (orthogonal: the kernel path
    against the reference path, and max |QQᵀ - I|).
    """
    device, why_not = kernel_device()
    if device is None:
        return {"device": None, "skipped": why_not, "rows": []}
    if device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    shape, offset, stream, logical = sample_block(seed)
    rows = []
    with _dispatch.backend("triton"):
        for op in ops:
            for dtype in dtypes:
                if op.dist_args is None:
                    rows.append(_check_orthogonal(op, dtype, device, seed))
                    continue
                out = torch.full((2, RUN), math.nan, dtype=dtype, device=device)
                op.ours(out, seed=seed, stream=stream, global_shape=shape, global_offset=offset)
                args = op.dist_args(shape)
                error = contract_error(out, exact_values(logical, op.dist, args, seed, stream), op.dist, dtype,
                                       **args)
                rows.append({"op": op.name, "dtype": dtype_str(dtype), "indices": logical.numel(),
                             "largest_index": int(logical.max()), "error": error, "error_kind": "contract",
                             "ok": error <= 1.0})
    return {"device": device, "rows": rows}


def _check_orthogonal(op, dtype, device: str, seed: int) -> dict:
    """orthogonal_ through the kernels (prep fill and epilogue) against the reference path."""
    kernel = op.ours(torch.full(ORTHOGONAL_SHAPE, math.nan, dtype=dtype, device=device), seed=seed)
    with _dispatch.backend("reference"):
        expected = op.ours(torch.full(ORTHOGONAL_SHAPE, math.nan, dtype=dtype), seed=seed)
    difference = float((kernel.cpu().double() - expected.double()).abs().max())
    gram = orthogonality_error(kernel.cpu())
    # The prep values differ within the contract, and the QR passes that on; the result rounds once.
    limit = max(1e-5, 2 * float(ulp(torch.tensor(1.0, dtype=torch.float64), dtype)))
    return {"op": op.name, "dtype": dtype_str(dtype), "indices": kernel.numel(), "largest_index": kernel.numel() - 1,
            "error": difference, "error_kind": "max|kernel - reference|", "limit": limit,
            "orthogonality_error": gram, "ok": difference <= limit and gram <= ORTHOGONALITY_LIMIT[dtype]}


def dtype_str(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
