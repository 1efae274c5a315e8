"""The GPU a launch compiles for, resolved once per device: vendor backend, architecture, warp size, and which
set of transcendental functions the kernels use there (the ``MATH`` constexpr of every kernel).

This is the one place that tells vendors apart. NVIDIA ("cuda") takes the PTX approximations
(``math_nvidia``), AMD ("hip") its native instructions (``math_amd``); any other backend, and the Triton
interpreter, the accurate ``tl`` functions (``math_accurate``). Each set is proven against the format's
accuracy contract (see its module). Plain Python: importing this needs no GPU.
"""

import functools
import os
from dataclasses import dataclass

# The MATH constexpr: which module of jit helpers ``transcendentals`` dispatches to.
MATH_ACCURATE = 0
MATH_NVIDIA = 1
MATH_AMD = 2
MATH_NAMES = {MATH_ACCURATE: "accurate", MATH_NVIDIA: "nvidia", MATH_AMD: "amd"}


# Archs whose fp32 -> bf16 cast costs more than rounding to nearest even with integer ops: CDNA1-3 have no
# conversion instruction (gfx942's cast is four VALU ops with a NaN check the kernels' finite values never need,
# against three by hand); gfx950 and NVIDIA convert in one.
BF16_ROUNDED_BY_HAND = ("gfx908", "gfx90a", "gfx942")


@dataclass(frozen=True)
class Target:
    """A compilation target: Triton's backend name ("cuda", "hip", ...), its arch (90, "gfx942"), warp size."""

    backend: str
    arch: object
    warp_size: int

    @property
    def math(self) -> int:
        """The transcendental set for this target: the vendor's proven approximations, else accurate math."""
        return {"cuda": MATH_NVIDIA, "hip": MATH_AMD}.get(self.backend, MATH_ACCURATE)

    @property
    def rounds_bf16_by_hand(self) -> bool:
        """Whether bf16 outputs are rounded with integer ops: the interpreter's cast truncates, and some
        AMD archs have no conversion instruction."""
        return self.backend == "interpreter" or (self.backend == "hip" and str(self.arch) in BF16_ROUNDED_BY_HAND)

    @property
    def name(self) -> str:
        """sm_90, gfx942, ... (the arch as the vendor's tools spell it)."""
        return f"sm_{self.arch}" if self.backend == "cuda" else str(self.arch)

    def gpu_target(self):
        """The ``triton.backends.compiler.GPUTarget`` to compile for this target offline."""
        from triton.backends.compiler import GPUTarget

        return GPUTarget(self.backend, self.arch, self.warp_size)


INTERPRETER = Target("interpreter", "", 32)

# The targets the ISA report and the offline compile test cover: A100, H100/H200, B200, MI300X, MI355X.
OFFLINE_TARGETS = (Target("cuda", 80, 32), Target("cuda", 90, 32), Target("cuda", 100, 32),
                   Target("hip", "gfx942", 64), Target("hip", "gfx950", 64))


def interpreter_active() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def of_device(device) -> Target:
    """The target kernels launched on ``device`` (a torch.device) compile for: the interpreter's for CPU
    tensors or when ``TRITON_INTERPRET`` is set, else the GPU's, resolved once per device."""
    if interpreter_active() or device.type != "cuda":
        return INTERPRETER
    import torch

    return _gpu_target(torch.cuda.current_device() if device.index is None else device.index)


@functools.cache
def _gpu_target(index: int) -> Target:
    """Triton's active target on GPU ``index``; the vendor checked against torch's build (ROCm builds of torch
    report "cuda" devices too: ``torch.version.hip`` tells them apart)."""
    import torch
    from triton.runtime import driver

    with torch.cuda.device(index):
        found = driver.active.get_current_target()
    vendor = "hip" if torch.version.hip else "cuda"
    if found.backend != vendor:
        raise RuntimeError(f"triton targets {found.backend!r} but torch was built for {vendor!r}")
    return Target(found.backend, found.arch, found.warp_size)
