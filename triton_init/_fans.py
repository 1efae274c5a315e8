"""Fans, gains and scales: every std and bound of the fan-based inits comes from here.

Fans follow torch.nn.init on the (out, in, *kernel) layout: fan_in = size(1) * receptive field, fan_out =
size(0) * receptive field. They are taken from the logical (global) shape, so a shard gets the std of the
whole weight. Variance scaling follows JAX's ``variance_scaling`` on that same layout.
"""

import math
import warnings

LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
FAN_MODES = ["fan_in", "fan_out"]
SCALING_MODES = ("fan_in", "fan_out", "fan_avg")
SCALING_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
# std of the standard normal truncated to [-2, 2]: JAX divides by it so the truncated result keeps std 1.
TRUNCATED_STD_AT_2 = 0.87962566103423978


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

    linear/conv*/sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope^2)) with slope
    ``param`` (default 0.01); selu: 3/4. Anything else raises ValueError.
    """
    if nonlinearity in LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, float) or (isinstance(param, int) and not isinstance(param, bool)):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4  # torch's empirical value (pytorch#50664)
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def fan_in_and_fan_out(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape`` = (out, in, *kernel)."""
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive_field = 1
    for s in shape[2:]:
        receptive_field *= s
    return shape[1] * receptive_field, shape[0] * receptive_field


def correct_fan(shape, mode) -> int:
    """fan_in or fan_out by name (case-insensitive, as torch, whose message this keeps)."""
    if not isinstance(mode, str):
        raise ValueError(f"Mode {mode!r} not supported, please use one of {FAN_MODES}")
    mode = mode.lower()
    if mode not in FAN_MODES:
        raise ValueError(f"Mode {mode} not supported, please use one of {FAN_MODES}")
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


def warn_if_empty(shape) -> bool:
    """torch's kaiming behaviour: a shape with a zero dim warns and is a no-op. Returns whether it is."""
    if 0 in tuple(shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def xavier_std(shape, gain) -> float:
    """gain * sqrt(2 / (fan_in + fan_out)); the uniform bound is sqrt(3) times this."""
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def kaiming_std(shape, a, mode, nonlinearity) -> float:
    """gain(nonlinearity, a) / sqrt(fan_mode); the uniform bound is sqrt(3) times this."""
    fan = correct_fan(shape, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def variance_scaling_std(shape, scale, mode, distribution) -> float:
    """JAX's variance scaling: the std of the *result*, sqrt(scale / fan), checked arguments.

    fan is fan_in, fan_out or their mean (fan_avg). The caller turns it into the parameters of
    ``distribution``: for "truncated_normal" the pre-truncation std is this / TRUNCATED_STD_AT_2 and the
    cut is at +-2 of that std; for "uniform" the bound is sqrt(3) times this.
    """
    if mode not in SCALING_MODES:
        raise ValueError(f"mode must be one of {SCALING_MODES}, got {mode!r}")
    if distribution not in SCALING_DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {SCALING_DISTRIBUTIONS}, got {distribution!r}")
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    return math.sqrt(scale / fan) if fan else 0.0  # fan 0: a zero-size weight, nothing to write
