"""Probe kernels: one piece of ``kernels/`` run on given words or values, for tests that check that piece
directly (every value u(w) can take, both ends of u, constructed rounding ties) rather than through a whole
fill.

Each host function runs on the device of its input tensor with what the fill would use there
(``target.of_device``): the accurate transcendental set and bf16 rounded by hand under the interpreter, the
GPU's own set on a GPU.
"""

import torch
import triton
import triton.language as tl
from triton_init.kernels import trunc_paths
from triton_init.kernels.fill import _f64, _store_values, _trunc_setup, _trunc_value
from triton_init.kernels.interface import float_bits
from triton_init.kernels.philox import box_muller
from triton_init.kernels.target import of_device

# trunc_normal's kernel paths by name: "central", "untruncated", "wide", "tail" (see ``trunc_paths``).
TRUNC_PATHS = {name: code for code, name in trunc_paths.NAMES.items()}


@triton.jit
def _load_words(words_ptr, offs, mask):
    """Words held as int64 (values below 2^32), as the kernels' uint32."""
    return tl.load(words_ptr + offs, mask=mask, other=0).to(tl.uint32)


@triton.jit
def _trunc_probe(words_ptr, z_ptr, n, p_lo_bits, q_hi_bits, mass_bits, TRUNC_PATH: tl.constexpr,
                 MATH: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    k0, k1, k2, sign = _trunc_setup(_f64(p_lo_bits), _f64(q_hi_bits), _f64(mass_bits), TRUNC_PATH)
    z = _trunc_value(_load_words(words_ptr, offs, mask), k0, k1, k2, sign, 0.0, TRUNC_PATH, MATH)
    tl.store(z_ptr + offs, z, mask=mask)


@triton.jit
def _box_muller_probe(first_ptr, second_ptr, z0_ptr, z1_ptr, n, MATH: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    z0, z1 = box_muller(_load_words(first_ptr, offs, mask), _load_words(second_ptr, offs, mask), MATH)
    tl.store(z0_ptr + offs, z0, mask=mask)
    tl.store(z1_ptr + offs, z1, mask=mask)


@triton.jit
def _store_probe(x_ptr, out_ptr, n, EXACT_BF16: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    _store_values(out_ptr, out_ptr + offs, tl.load(x_ptr + offs, mask=mask, other=0.0), mask, EXACT_BF16)


def _block(t: torch.Tensor) -> int:
    """Elements per program: the interpreter's cost is per operation, so few large programs there."""
    return 1024 if t.is_cuda else min(1 << 20, triton.next_power_of_2(max(1, t.numel())))


def _grid(t: torch.Tensor) -> tuple:
    return (max(1, triton.cdiv(t.numel(), _block(t))),)


def trunc_path_z(words: torch.Tensor, p_lo: float, q_hi: float, mass: float, path: str) -> torch.Tensor:
    """The fp32 z of each word through trunc_normal's kernel ``path`` (a name of ``TRUNC_PATHS``), with the
    path's constants set up from float64 Phi(alpha), Phi(-beta) and mass as the fill does.

    ``words`` is an int64 tensor of uint32 values.
    """
    z = torch.full(words.shape, float("nan"), dtype=torch.float32, device=words.device)
    _trunc_probe[_grid(words)](words, z, words.numel(), *(float_bits(p) for p in (p_lo, q_hi, mass)),
                               TRUNC_PATH=TRUNC_PATHS[path], MATH=of_device(words.device).math, BLOCK=_block(words))
    return z


def box_muller_z(first: torch.Tensor, second: torch.Tensor):
    """(r cos t, r sin t) in fp32 for word pairs (int64 tensors of uint32 values)."""
    z0 = torch.full(first.shape, float("nan"), dtype=torch.float32, device=first.device)
    z1 = torch.full_like(z0, float("nan"))
    _box_muller_probe[_grid(first)](first, second, z0, z1, first.numel(), MATH=of_device(first.device).math,
                                    BLOCK=_block(first))
    return z0, z1


def store_rounded(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """fp32 ``values`` stored into a ``dtype`` tensor by the kernels' store (cast and rounding) alone."""
    out = torch.full(values.shape, float("nan"), dtype=dtype, device=values.device)
    _store_probe[_grid(values)](values, out, values.numel(), EXACT_BF16=of_device(values.device).rounds_bf16_by_hand,
                                BLOCK=_block(values))
    return out


def every_u_words(low, device="cpu") -> torch.Tensor:
    """One word for each of the 2^23 values of u(w), as int64 holding uint32, with ``low`` (an int or a tensor)
    in the 9 bits u ignores."""
    return (torch.arange(1 << 23, dtype=torch.int64, device=device) << 9) | low


def contract_excess(z: torch.Tensor, exact: torch.Tensor) -> float:
    """max |z - exact| / (2e-5 max(1, |exact|)): at most 1 within the format's accuracy contract."""
    return ((z.double() - exact).abs() / (2e-5 * exact.abs().clamp(min=1.0))).max().item()
