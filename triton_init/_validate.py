"""Argument checks shared by every public function: each runs before anything is written."""

import math
import numbers

import torch

from ._format import normal_mass

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# What a manifest may record and a checkpoint may hold: the init dtypes, and the int and bool dtypes of
# buffers. Not float8, complex or quantized ones: no init writes them, and verify cannot compare them.
STORED_DTYPES = SUPPORTED_DTYPES + (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.uint16,
                                    torch.uint32, torch.uint64, torch.bool)


def check_tensor(tensor, name: str = "tensor") -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.dtype.is_floating_point:
        raise TypeError(f"{name} must have a floating-point dtype, got {tensor.dtype}")
    if tensor.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} has dtype {tensor.dtype}; supported: float32, float16, bfloat16, float64")
    if tensor.layout != torch.strided:
        raise TypeError(f"{name} must be a strided (dense) tensor, got layout {tensor.layout}")
    # A contiguous tensor with elements has no stride-0 dim of size > 1 (only an empty one may).
    if not (tensor.is_contiguous() and tensor.numel()) and any(
            size > 1 and stride == 0 for size, stride in zip(tensor.shape, tensor.stride(), strict=True)):
        # As torch's in-place ops: several elements share one memory location (expand()), so no value is theirs.
        raise ValueError(f"{name} has a dim of size > 1 with stride 0 (an expanded view): its elements overlap")
    return tensor


def check_real(value, name: str, *, finite: bool = True, allow_inf: bool = False) -> float:
    """A real number (python or 0-d tensor); NaN is always rejected, inf unless ``allow_inf``."""
    if type(value) is not float and type(value) is not int:  # the common cases skip the ABC checks
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise TypeError(f"{name} must be a real number, got a tensor of shape {tuple(value.shape)}")
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if finite and not allow_inf and math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_std(std, name: str = "std") -> float:
    std = check_real(std, name)
    if std < 0:
        raise ValueError(f"{name} must be non-negative, got {std}")
    return std


def check_interval(a, b, names=("a", "b"), allow_inf: bool = False) -> tuple[float, float]:
    """[a, b] with a <= b; without ``allow_inf`` both ends and the width b - a are finite floats."""
    a = check_real(a, names[0], allow_inf=allow_inf)
    b = check_real(b, names[1], allow_inf=allow_inf)
    if a > b:
        raise ValueError(f"{names[0]} must not exceed {names[1]}, got {names[0]}={a} > {names[1]}={b}")
    if not allow_inf and math.isinf(b - a):
        raise ValueError(f"{names[1]} - {names[0]} overflows float64: {names[0]}={a}, {names[1]}={b}")
    return a, b


def check_trunc_interval(mean: float, std: float, a: float, b: float) -> None:
    """trunc_normal's checked arguments: a non-empty [a, b] must hold probability mass in float64 (it
    does up to about 37 std from the mean; beyond, every draw would land on a bound)."""
    if std > 0.0 and a < b and normal_mass((a - mean) / std, (b - mean) / std) == 0.0:
        side = a if a > mean else b
        raise ValueError(f"[a, b] = [{a}, {b}] holds no probability mass in float64: it lies "
                         f"{abs(side - mean) / std:.3g} std from mean={mean} (std={std})")
