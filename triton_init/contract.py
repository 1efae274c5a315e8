"""The stream-format accuracy contract as numbers: how far a stored value may lie from the exact one.

- normal and trunc_normal: |z_impl - z_exact| <= 2e-5 * max(1, |z_exact|) before the single rounding to the
  output dtype, i.e. 2e-5 * std * max(1, |z|) in value, plus ``COMPUTE_ULPS`` ulps of the compute dtype at
  |x| + |mean| (the arithmetic of mean + std * z) and ``ROUNDING_ULPS`` ulps of the output dtype at |x|
  (the one rounding of an fp32 result to float16/bfloat16: half an ulp, so a truncating cast fails);
- uniform: 2 fp32 ulps of the exact value before that same rounding;
- deterministic inits (constant, eye, dirac, ...): exactly torch's values.

``verify_`` measures errors in these units (0: as close as the exact value rounded once; 1: the edge of
the contract); the tests use the same table.
"""

import torch

Z_TOLERANCE = 2e-5  # relative accuracy of z before the output rounding
UNIFORM_FP32_ULPS = 2.0
# ulps of the compute dtype (fp64 for float64 outputs, else fp32) at |x| + |mean| for normal and trunc_normal:
# mean, std and std * z each rounded, then the sum (fp32 results are stored as computed).
COMPUTE_ULPS = {torch.float64: 4.0, torch.float32: 2.0, torch.float16: 2.0, torch.bfloat16: 2.0}
# ulps of the output dtype at |x|: the one rounding of the fp32 result to float16/bfloat16.
ROUNDING_ULPS = {torch.float64: 0.0, torch.float32: 0.0, torch.float16: 0.5, torch.bfloat16: 0.5}
MANTISSA_BITS = {torch.float64: 52, torch.float32: 23, torch.float16: 10, torch.bfloat16: 7}
MIN_NORMAL_EXPONENT = {torch.float64: -1022, torch.float32: -126, torch.float16: -14, torch.bfloat16: -126}


def ulp(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of ``dtype`` values at |x| (a float64 tensor; subnormal spacing below the normal range)."""
    x = x.double().abs()
    exponent = torch.floor(torch.log2(torch.where(x > 0, x, torch.ones_like(x))))
    exponent = exponent.clamp(min=MIN_NORMAL_EXPONENT[dtype])
    return torch.exp2(exponent - MANTISSA_BITS[dtype])


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """What the kernels and the reference compute a ``dtype`` output in (before its one rounding)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def normal_tolerance(expected: torch.Tensor, mean: float, std: float, dtype: torch.dtype) -> torch.Tensor:
    """The allowed |x - expected| of normal and trunc_normal values (float64 ``expected``, exact math)."""
    z = (expected - mean) / std if std > 0 else torch.zeros_like(expected)
    return (Z_TOLERANCE * std * z.abs().clamp(min=1.0)
            + COMPUTE_ULPS[dtype] * ulp(expected.abs() + abs(mean), compute_dtype(dtype))
            + ROUNDING_ULPS[dtype] * ulp(expected, dtype))


def uniform_tolerance(expected: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The allowed |x - expected| of uniform values: 2 fp32 ulps, then the one rounding to the output dtype."""
    return UNIFORM_FP32_ULPS * ulp(expected, torch.float32) + ROUNDING_ULPS[dtype] * ulp(expected, dtype)


def contract_units(actual: torch.Tensor, expected: torch.Tensor, tolerance: torch.Tensor,
                   dtype: torch.dtype) -> torch.Tensor:
    """Errors in contract units, elementwise (float64): at most 1 meets the contract.

    The half ulp of ``dtype`` that even the exactly rounded value may lie from ``expected`` is not counted:
    units = max(0, |actual - expected| - ulp/2) / (tolerance - ulp/2), so 0 means "as close as the exact
    value rounded once" and 1 is the edge of ``tolerance`` (the pass/fail line is |actual - expected| <=
    tolerance either way). Where the tolerance is 0 (deterministic inits) an exact match is 0 and anything
    else inf; a NaN or an infinity where a finite value is expected is inf.
    """
    actual = actual.double()
    diff = (actual - expected).abs()
    rounding = 0.5 * ulp(expected, dtype) if dtype.is_floating_point else torch.zeros_like(expected)
    rounding = torch.minimum(rounding, tolerance)
    allowance = tolerance - rounding
    beyond = (diff - rounding).clamp(min=0.0)
    units = torch.where(allowance > 0, beyond / torch.where(allowance > 0, allowance, torch.ones_like(allowance)),
                        torch.where(beyond > 0, torch.full_like(diff, float("inf")), torch.zeros_like(diff)))
    same = (actual == expected) | (torch.isnan(actual) & torch.isnan(expected))
    units = torch.where(torch.isnan(diff) | torch.isnan(units), torch.full_like(units, float("inf")), units)
    return torch.where(same, torch.zeros_like(units), units)


def native_tolerance(dtype: torch.dtype) -> tuple:
    """This table for the native executor's float64 check of ``dtype`` outputs (csrc ``ti_tolerance``)."""
    compute = compute_dtype(dtype)
    return (Z_TOLERANCE, COMPUTE_ULPS[dtype], ROUNDING_ULPS[dtype], UNIFORM_FP32_ULPS, MANTISSA_BITS[compute],
            MIN_NORMAL_EXPONENT[compute], MANTISSA_BITS[dtype], MIN_NORMAL_EXPONENT[dtype])
