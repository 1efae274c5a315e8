"""The transcendental set for AMD GPUs: the native VALU instructions, through the LLVM intrinsics that select
them (so the compiler sees them and inserts the wait states transcendental results need).

Documented accuracy, which the format's accuracy analysis uses (``tests/test_math_bounds.py``) and
``tests/test_gpu_perf_paths.py`` checks on the GPU over every u:

- ``v_log_f32`` (``llvm.amdgcn.log``, log2): 1 ulp (LLVM's AMDGPUUsage, "Hardware provides 1ULP accuracy
  for float"; HIP's math reference lists ``__log2f`` at 1 ulp); no denormal inputs, and every caller's
  argument is a normal number;
- ``v_sqrt_f32`` (``llvm.amdgcn.sqrt``): 1 ulp (ROCm device libraries: OCML's 1-ulp ``sqrt`` is this
  instruction with denormal scaling);
- ``v_sin_f32``, ``v_cos_f32`` (``llvm.amdgcn.sin``/``cos``): the input is in revolutions (sin 2 pi a), valid
  for |a| <= 256; HIP's math reference measures ``__sinf``/``__cosf`` (these instructions after a multiply
  by 1 / 2 pi) at 18 and 4 ulp on [-pi, pi].

Same names as ``math_nvidia`` and ``math_accurate``; compiled only for the "hip" backend (see ``target``).
"""

import triton
import triton.language as tl
from triton.language import core

FULL_TURN = tl.constexpr(1.0)  # angles in revolutions: v_sin_f32 and v_cos_f32 take sin(2 pi a) as a


def _intrinsic(name: str):
    """An elementwise fp32 call of the LLVM intrinsic ``name`` (the AMDGPU backend selects one instruction)."""

    @core.extern
    def call(x, _semantic=None):
        return core.extern_elementwise("", "", [x], {(core.float32,): (name, core.float32)}, is_pure=True,
                                       _semantic=_semantic)

    return call


_log = _intrinsic("llvm.amdgcn.log.f32")
_sqrt = _intrinsic("llvm.amdgcn.sqrt.f32")
_cos = _intrinsic("llvm.amdgcn.cos.f32")
_sin = _intrinsic("llvm.amdgcn.sin.f32")


@triton.jit
def log2(x):
    return _log(x)


@triton.jit
def sqrt(x):
    return _sqrt(x)


@triton.jit
def cos_angle(x):
    """cos(2 pi x): x in revolutions, |x| <= 1/2."""
    return _cos(x)


@triton.jit
def sin_angle(x):
    """sin(2 pi x): x in revolutions, |x| <= 1/2."""
    return _sin(x)
