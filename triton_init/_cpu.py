"""The executor of CPU tensors: the native C extension (``triton_init._native``, built from ``csrc/``) when the
install could compile it, else the torch-op reference after one warning.

The native code computes stream format v1 with the same pieces as the kernels (Philox4x32-10, u(w),
Box-Muller, trunc_normal's inverse-CDF paths as ``kernels/trunc_paths`` chooses them, with the polynomials of
``kernels/ndtri_coeffs`` compiled in from the generated ``csrc/ndtri_coeffs.h``) in vectorized C on
``torch.get_num_threads()`` threads; ``reference`` stays the tests' independent oracle.

The environment variable ``TRITON_INIT_CPU_ISA`` picks its instruction set, read at each call: "best" (the
default: AVX2 where the CPU has it) or "baseline" (the portable C every machine runs). Both give the same
bits; "baseline" is there to run the portable code on an AVX2 machine (the tests run both).
"""

import functools
import importlib.util
import os
import warnings

import torch

from . import reference
from ._format import TRUNC_NORMAL, kernel_exact
from ._layout import Layout
from .kernels import ndtri_coeffs, trunc_paths

INTERFACE_VERSION = 3  # the extension's own, bumped with its arguments: a stale build is not used
# trunc_normal's modes: the kernels' paths (trunc_paths.CENTRAL, UNTRUNCATED, WIDE, TAIL), or float64 for the
# calls the kernels leave to the float64 reference (not ``kernel_exact``)
TRUNC_GENERAL = 4
# Threads claim work in chunks of this many elements (a thread the OS delays holds up one chunk, not a
# static share).
CHUNK_ELEMENTS = 1 << 16
# Elements per thread below which a fill stays on one thread: a helper that another process's thread
# pushes off its core for a time slice (milliseconds) would hold up a fill that takes a fraction of that.
MIN_ELEMENTS_PER_THREAD = 1 << 18
OUT_CODES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2, torch.float16: 3}

try:
    from . import _native
except ImportError as exc:  # built without a C compiler, or a platform the build does not cover
    _native = None
    if importlib.util.find_spec(f"{__package__}._native") is None:
        unavailable_reason = "the extension triton_init._native was not built: the install found no working C compiler"
    else:
        unavailable_reason = f"{type(exc).__name__}: {exc}"
else:
    unavailable_reason = None
    if getattr(_native, "INTERFACE_VERSION", None) != INTERFACE_VERSION:
        unavailable_reason = (f"the built extension has interface {getattr(_native, 'INTERFACE_VERSION', None)}, "
                              f"this package needs {INTERFACE_VERSION}: reinstall to rebuild it")
        _native = None
    elif _native.ndtri_coeffs() != {name: getattr(ndtri_coeffs, name) for name in ("CENTRAL", "WIDE", "FAR")}:
        unavailable_reason = ("the built extension has other inverse-CDF coefficients than kernels/ndtri_coeffs.py: "
                              "regenerate csrc/ndtri_coeffs.h and reinstall to rebuild it")
        _native = None
_warned = False
ISA_ENV = "TRITON_INIT_CPU_ISA"
ISAS = ("best", "baseline")


def isa() -> str:
    """The instruction set CPU fills ask for: ``TRITON_INIT_CPU_ISA`` ("best" when unset)."""
    value = os.environ.get(ISA_ENV, "").strip().lower() or "best"
    if value not in ISAS:
        raise ValueError(f"{ISA_ENV} must be one of {ISAS}, got {value!r}")
    return value


def _isa_code(baseline_isa: bool | None) -> int:
    if baseline_isa is None:
        baseline_isa = isa() == "baseline"
    return _native.ISA_BASELINE if baseline_isa else _native.ISA_BEST


def available() -> bool:
    """Whether the native executor is built and loaded."""
    return _native is not None


def executor() -> str:
    """What runs CPU fills in this process, in words (for ``triton-init bench`` and ``init``)."""
    if _native is not None:
        return f"native C executor ({_native.isa_name(_isa_code(None))}, {torch.get_num_threads()} threads)"
    return f"torch-op reference (the native executor is unavailable: {unavailable_reason})"


@functools.lru_cache(maxsize=1024)
def trunc_mode(params) -> int:
    """How the native code inverts the CDF for a trunc_normal call: the kernels' fp32 path
    (``trunc_paths.choose``) wherever the kernels serve the call, float64 otherwise."""
    if kernel_exact(TRUNC_NORMAL, params):
        return trunc_paths.choose(params[2], params[3], params[4])
    return TRUNC_GENERAL


def default_threads(numel: int) -> int:
    """torch's thread count, fewer for fills too small to gain from them."""
    return max(1, min(torch.get_num_threads(), numel // MIN_ELEMENTS_PER_THREAD))


def native_fill_(tensor: torch.Tensor, layout: Layout, dist: int, params, seed: int, stream: int, *,
                 threads: int | None = None, chunk: int = CHUNK_ELEMENTS, baseline_isa: bool | None = None) -> int:
    """Write the values of ``layout``'s logical indices into the CPU tensor through the extension; returns the
    threads used. ``threads`` (default ``default_threads``), ``chunk`` and ``baseline_isa`` (default: as
    ``TRITON_INIT_CPU_ISA`` says) never change a value."""
    mode = trunc_mode(params) if dist == TRUNC_NORMAL else trunc_paths.CENTRAL
    threads = default_threads(layout.numel) if threads is None else threads
    return _native.fill(tensor.data_ptr(), OUT_CODES[tensor.dtype], dist, mode, params, seed, stream, layout.sizes,
                        layout.mem_strides, layout.logical_strides, layout.base, threads, chunk,
                        _isa_code(baseline_isa))


def native_compare(stored: torch.Tensor, layout: Layout, dist: int, params, seed: int, stream: int,
                   positions: torch.Tensor, *, tolerance=None, threads: int | None = None,
                   chunk: int = CHUNK_ELEMENTS, baseline_isa: bool | None = None) -> int:
    """Compare the CPU tensor ``stored`` over ``layout`` with the values ``native_fill_`` would write there,
    regenerating them block by block (nothing the size of the tensor is allocated): elements equal bit for bit
    pass, and with ``tolerance`` (``contract.native_tolerance``) so do those that a float64 evaluation of the
    exact value, with a margin for its own error, puts within the contract. The local row-major positions of
    the others go to ``positions[:count]`` (a contiguous int64 CPU tensor of at least ``layout.numel``
    elements), in order; returns count. Any element alignment works."""
    if positions.dtype != torch.int64 or not positions.is_contiguous() or positions.numel() < layout.numel:
        raise ValueError("positions must be a contiguous int64 tensor with room for every element")
    mode = trunc_mode(params) if dist == TRUNC_NORMAL else trunc_paths.CENTRAL
    return _native.compare(stored.data_ptr(), OUT_CODES[stored.dtype], dist, mode, params, seed, stream,
                           layout.sizes, layout.mem_strides, layout.logical_strides, layout.base, tolerance,
                           positions.data_ptr(),
                           default_threads(layout.numel) if threads is None else threads, chunk,
                           _isa_code(baseline_isa))


def runs_natively(tensor: torch.Tensor) -> bool:
    """Whether ``fill_`` runs the native code on this CPU tensor: the extension is loaded and the tensor's
    address is a multiple of its element size (all but the odd ``torch.frombuffer`` view)."""
    return _native is not None and tensor.data_ptr() % tensor.element_size() == 0


def fill_(tensor: torch.Tensor, layout: Layout, dist: int, params, seed: int, stream: int) -> None:
    """Fill a CPU tensor: natively, or through the torch-op reference (one warning per process where the
    extension is missing)."""
    global _warned
    if runs_natively(tensor):
        native_fill_(tensor, layout, dist, params, seed, stream)
        return
    if _native is None and not _warned:
        _warned = True
        warnings.warn(f"triton_init: the native CPU executor is unavailable ({unavailable_reason}); CPU tensors "
                      "take the torch-op reference, several times slower than torch.nn.init. Reinstall where a C "
                      "compiler works to build it.", RuntimeWarning, stacklevel=2)
    reference.fill_(tensor, layout, dist, params, seed, stream)


__all__ = ["available", "executor", "fill_", "isa", "native_compare", "native_fill_", "runs_natively",
           "trunc_mode"]
