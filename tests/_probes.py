"""Probe kernels: one piece of ``kernels/`` run on given words or values, for tests that check that piece
directly (every value u(w) can take, constructed rounding ties) rather than through a whole fill.

Each host function runs on the device of its input tensor. ``fast=True`` (approximate PTX math) needs a
CUDA tensor; ``fast=False`` is the plain math that the interpreter runs.
"""

import torch
import triton
import triton.language as tl
from triton_init.kernels.fill import _store_values
from triton_init.kernels.philox import box_muller, trunc_normal_z, trunc_normal_z_wide, wide_fits

BLOCK = 1024
# The inverse-CDF pieces of trunc_normal: what the fill kernel runs for CENTRAL_ONLY launches, for the
# launches where ``wide_fits`` holds, and otherwise (the general path with its tail pieces).
TRUNC_PIECES = ("central", "wide", "tail")


@triton.jit
def _load_words(words_ptr, offs, mask):
    """Words held as int64 (values below 2^32), as the kernels' uint32."""
    return tl.load(words_ptr + offs, mask=mask, other=0).to(tl.uint32)


@triton.jit
def _trunc_probe(words_ptr, z_ptr, fits_ptr, n, p_lo, q_hi, mass, PIECE: tl.constexpr, FAST: tl.constexpr,
                 BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    w = _load_words(words_ptr, offs, mask)
    if PIECE == 0:
        z = trunc_normal_z(w, p_lo, q_hi, mass, True, FAST)
    elif PIECE == 1:
        z = trunc_normal_z_wide(w, p_lo, q_hi, mass, FAST)
    else:
        z = trunc_normal_z(w, p_lo, q_hi, mass, False, FAST)
    tl.store(z_ptr + offs, z, mask=mask)
    tl.store(fits_ptr, wide_fits(p_lo, q_hi, mass).to(tl.int32))


@triton.jit
def _box_muller_probe(first_ptr, second_ptr, z0_ptr, z1_ptr, n, FAST: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    z0, z1 = box_muller(_load_words(first_ptr, offs, mask), _load_words(second_ptr, offs, mask), FAST)
    tl.store(z0_ptr + offs, z0, mask=mask)
    tl.store(z1_ptr + offs, z1, mask=mask)


@triton.jit
def _store_probe(x_ptr, out_ptr, n, EXACT_BF16: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    _store_values(out_ptr, out_ptr + offs, tl.load(x_ptr + offs, mask=mask, other=0.0), mask, EXACT_BF16)


def _grid(n: int) -> tuple:
    return (max(1, triton.cdiv(n, BLOCK)),)


def trunc_piece_z(words: torch.Tensor, p_lo: float, q_hi: float, mass: float, piece: str, fast: bool = False):
    """(fp32 z of each word through ``piece`` of ``TRUNC_PIECES``, whether ``wide_fits`` holds for the call).

    ``words`` is an int64 tensor of uint32 values; p_lo, q_hi and mass go in as fp32, as the fill passes them.
    """
    z = torch.full(words.shape, float("nan"), dtype=torch.float32, device=words.device)
    fits = torch.full((1,), -1, dtype=torch.int32, device=words.device)
    _trunc_probe[_grid(words.numel())](words, z, fits, words.numel(), p_lo, q_hi, mass,
                                       PIECE=TRUNC_PIECES.index(piece), FAST=fast, BLOCK=BLOCK)
    return z, bool(fits.item())


def box_muller_z(first: torch.Tensor, second: torch.Tensor, fast: bool = False):
    """(r cos t, r sin t) in fp32 for word pairs (int64 tensors of uint32 values)."""
    z0 = torch.full(first.shape, float("nan"), dtype=torch.float32, device=first.device)
    z1 = torch.full_like(z0, float("nan"))
    _box_muller_probe[_grid(first.numel())](first, second, z0, z1, first.numel(), FAST=fast, BLOCK=BLOCK)
    return z0, z1


def store_rounded(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """fp32 ``values`` stored into a ``dtype`` tensor by the kernels' store (cast and rounding) alone."""
    out = torch.full(values.shape, float("nan"), dtype=dtype, device=values.device)
    _store_probe[_grid(values.numel())](values, out, values.numel(), EXACT_BF16=not values.is_cuda, BLOCK=BLOCK)
    return out
