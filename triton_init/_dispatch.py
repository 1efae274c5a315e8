"""Backend choice and the one entry every random fill goes through.

CUDA tensors go to the Triton kernels, CPU tensors to the native executor (``_cpu``), "reference" to the
torch-op reference. ``backend(...)`` and the environment variable ``TRITON_INIT_BACKEND`` override the
choice; with ``TRITON_INTERPRET=1`` the "triton" backend runs the kernels on CPU tensors.
"""

import importlib
import os
import threading
from contextlib import contextmanager, nullcontext

import torch

from . import _cpu, reference
from ._format import kernel_exact
from ._layout import Layout, make_layout
from .kernels.target import interpreter_active

BACKENDS = ("auto", "reference", "triton")
_override = threading.local()


def _check_backend(name) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


@contextmanager
def backend(name: str):
    """Force the backend inside the block: "reference", "triton" or "auto"."""
    _check_backend(name)
    stack = _override.__dict__.setdefault("stack", [])
    stack.append(name)
    try:
        yield
    finally:
        stack.pop()


def current_backend() -> str:
    stack = _override.__dict__.get("stack")
    if stack:
        return stack[-1]
    env = os.environ.get("TRITON_INIT_BACKEND")
    if env:
        env = env.strip().lower()
        if env not in BACKENDS:
            raise ValueError(f"TRITON_INIT_BACKEND must be one of {BACKENDS}, got {env!r}")
        return env
    return "auto"


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def kernel_module(name: str):
    """``triton_init.kernels.<name>``, imported on first use: importing it imports triton."""
    try:
        return importlib.import_module(f"{__package__}.kernels.{name}")
    except ImportError as exc:  # no triton on this platform
        raise RuntimeError(f"the triton backend is unavailable: {exc}") from exc


def uses_triton(tensor: torch.Tensor, choice: str | None = None) -> bool:
    """Whether a fill of ``tensor`` runs the Triton kernels (else the CPU reference), under the backend
    ``choice`` (default: ``current_backend()``)."""
    choice = choice or current_backend()
    if choice == "reference":
        return False
    if choice == "triton":
        if not (tensor.is_cuda or (tensor.is_cpu and interpreter_active())):
            raise RuntimeError("backend 'triton' needs a CUDA tensor, or TRITON_INTERPRET=1 for CPU tensors")
        return True
    return tensor.is_cuda and triton_available()


EXECUTORS = {
    "triton": "the Triton kernels",
    "triton-interpreter": "the Triton kernels through the interpreter (TRITON_INTERPRET=1)",
    "native": "the native C executor of the stream format (csrc/stream_v1.c, vectorized, multi-threaded)",
    "reference-eager": "the stream-format reference in eager torch ops (the tests' oracle)",
}


def executor(tensor: torch.Tensor, dist: int, params=None) -> str:
    """What a fill of the whole tensor ``tensor`` with ``dist`` (and ``params``, if given) runs now: a key
    of ``EXECUTORS``. ``triton-init bench`` labels its rows with it."""
    if uses_triton(tensor) and (params is None or kernel_exact(dist, params)):
        return "triton" if tensor.is_cuda else "triton-interpreter"
    if tensor.device.type == "cpu" and current_backend() != "reference" and _cpu.runs_natively(tensor):
        return "native"
    return "reference-eager"


def fill_random_(tensor: torch.Tensor, dist: int, params, seed: int, stream: int, layout: Layout) -> None:
    """Write the values of ``layout``'s logical indices; arguments are already validated.

    The rare calls the fp32 kernels cannot serve within the contract (``kernel_exact``) take the
    reference on CUDA tensors and the native executor (whose float64 path serves them) on CPU tensors."""
    choice = current_backend()
    if uses_triton(tensor, choice) and kernel_exact(dist, params):
        with torch.no_grad(), torch.cuda.device(tensor.device) if tensor.is_cuda else nullcontext():
            kernel_module("fill").fill_(tensor, dist, params, seed, stream, layout.sizes, layout.mem_strides,
                                        layout.logical_strides, layout.base)
    elif tensor.is_cpu and choice != "reference":
        _cpu.fill_(tensor, layout, dist, params, seed, stream)
    else:
        reference.fill_(tensor, layout, dist, params, seed, stream)


__all__ = ["backend", "current_backend", "executor", "fill_random_", "make_layout", "uses_triton"]
