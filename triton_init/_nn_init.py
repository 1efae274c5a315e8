"""The rest of torch.nn.init, with torch's names, signatures, values and errors, plus JAX's variance scaling.

Random inits compute their std or bound from the logical shape (``_fans``) and call ``random_fill_``;
deterministic ones write torch's exact values, also into a block of a logical tensor. ``orthogonal_``
lives in ``_orthogonal``.
"""

import math
import numbers

import torch

from . import _dispatch
from ._fans import (
    TRUNCATED_STD_AT_2,
    kaiming_std,
    variance_scaling_std,
    warn_if_empty,
    xavier_std,
)
from ._format import NORMAL, TRUNC_NORMAL, UNIFORM, resolve_seed, stream_id
from ._layout import logical_block, make_layout
from ._random import random_block, random_fill_, resolve_block
from ._validate import check_real, check_std
from .reference import dist_params

SQRT3 = math.sqrt(3.0)
# Sort keys per chunk in sparse_: about 16 bytes each (fp32 key, sorted fp32 key, int64 order).
SPARSE_CHUNK_KEYS = 1 << 22


def _block(tensor, global_shape, global_offset):
    """(local tensor, global_shape, global_offset), validated: the block ``tensor`` stands for."""
    local, global_shape, global_offset = resolve_block(tensor, global_shape, global_offset)
    global_shape, global_offset = logical_block(local.shape, global_shape, global_offset)
    return local, global_shape, global_offset


def logical_shape(tensor, global_shape, global_offset) -> tuple:
    """The shape fans come from: the logical tensor's (a DTensor's global shape, or ``global_shape``)."""
    return _block(tensor, global_shape, global_offset)[1]


# ---- deterministic -------------------------------------------------------------------------------------


def constant_(tensor, val, *, global_shape=None, global_offset=None):
    """Fill with ``val``. ``global_shape``/``global_offset`` are accepted (and checked) for symmetry."""
    local, _, _ = _block(tensor, global_shape, global_offset)
    with torch.no_grad():
        local.fill_(val)
    return tensor


def ones_(tensor, *, global_shape=None, global_offset=None):
    """Fill with 1."""
    return constant_(tensor, 1.0, global_shape=global_shape, global_offset=global_offset)


def zeros_(tensor, *, global_shape=None, global_offset=None):
    """Fill with 0."""
    local, _, _ = _block(tensor, global_shape, global_offset)
    with torch.no_grad():
        local.zero_()
    return tensor


def eye_(tensor, *, global_shape=None, global_offset=None):
    """The identity of a 2-D tensor; for a block of a logical (R, C) tensor, that block of the identity:
    local (i, j) is 1 where i + global_offset[0] == j + global_offset[1]."""
    if tensor.ndimension() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    local, _, offset = _block(tensor, global_shape, global_offset)
    with torch.no_grad():
        local.zero_()
        local.diagonal(offset[0] - offset[1]).fill_(1)
    return tensor


def dirac_(tensor, groups=1, *, global_shape=None, global_offset=None):
    """The Dirac delta of a {3, 4, 5}-D conv weight, per group as torch; for a block of a logical tensor,
    that block of it: the ones sit at (g * out_per_group + d, d, centre...) of the global shape."""
    dimensions = tensor.ndimension()
    if dimensions not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    local, shape, offset = _block(tensor, global_shape, global_offset)
    if shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    if local.device.type == "meta":
        return tensor
    out_per_group = shape[0] // groups
    channels = torch.arange(min(out_per_group, shape[1]), dtype=torch.int64)
    out_channels = (torch.arange(groups, dtype=torch.int64)[:, None] * out_per_group + channels[None, :]).reshape(-1)
    in_channels = channels.repeat(groups)
    coords = [out_channels, in_channels] + [torch.full_like(in_channels, s // 2) for s in shape[2:]]
    local_coords = [c - o for c, o in zip(coords, offset, strict=True)]
    inside = torch.ones_like(in_channels, dtype=torch.bool)
    for c, s in zip(local_coords, local.shape, strict=True):
        inside &= (c >= 0) & (c < s)
    index = tuple(c[inside].to(local.device) for c in local_coords)
    with torch.no_grad():
        local.zero_()
        local.index_put_(index, torch.ones((), dtype=local.dtype, device=local.device))
    return tensor


# ---- fan-based -----------------------------------------------------------------------------------------


def _check_gain(gain) -> float:
    """A finite, non-negative gain: torch's underlying uniform_/normal_ reject the std a negative or NaN
    gain gives (RuntimeError); here it is a ValueError before anything is written."""
    gain = check_real(gain, "gain")
    if gain < 0:
        raise ValueError(f"gain must be non-negative, got {gain}")
    return gain


def xavier_uniform_(tensor, gain=1.0, generator=None, *, seed=None, stream=None, global_shape=None,
                    global_offset=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot), fans of the logical shape."""
    bound = SQRT3 * xavier_std(logical_shape(tensor, global_shape, global_offset), 1.0) * _check_gain(gain)
    return random_fill_(tensor, UNIFORM, a=-bound, b=bound, seed=seed, stream=stream, generator=generator,
                        global_shape=global_shape, global_offset=global_offset)


def xavier_normal_(tensor, gain=1.0, generator=None, *, seed=None, stream=None, global_shape=None,
                   global_offset=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot), fans of the logical shape."""
    std = xavier_std(logical_shape(tensor, global_shape, global_offset), 1.0) * _check_gain(gain)
    return random_fill_(tensor, NORMAL, mean=0.0, std=std, seed=seed, stream=stream, generator=generator,
                        global_shape=global_shape, global_offset=global_offset)


def _kaiming_std(tensor, a, mode, nonlinearity, global_shape, global_offset):
    """gain(nonlinearity, a) / sqrt(fan_mode) of the logical shape, or None (with torch's warning) when
    the shape has a zero dim: torch returns before looking at the arguments then."""
    shape = logical_shape(tensor, global_shape, global_offset)
    if warn_if_empty(shape):
        return None
    if nonlinearity == "leaky_relu" and isinstance(a, float) and math.isnan(a):  # other nonlinearities ignore a
        raise ValueError("a must not be NaN (it is leaky_relu's negative slope)")
    return kaiming_std(shape, a, mode, nonlinearity)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=None,
                     stream=None, global_shape=None, global_offset=None):
    """U(-bound, bound) with bound = gain * sqrt(3 / fan_mode) (He); a zero-size tensor warns, as torch."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, global_shape, global_offset)
    if std is None:
        return tensor
    return random_fill_(tensor, UNIFORM, a=-SQRT3 * std, b=SQRT3 * std, seed=seed, stream=stream,
                        generator=generator, global_shape=global_shape, global_offset=global_offset)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=None,
                    stream=None, global_shape=None, global_offset=None):
    """N(0, std^2) with std = gain / sqrt(fan_mode) (He); a zero-size tensor warns, as torch."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, global_shape, global_offset)
    if std is None:
        return tensor
    return random_fill_(tensor, NORMAL, mean=0.0, std=std, seed=seed, stream=stream, generator=generator,
                        global_shape=global_shape, global_offset=global_offset)


def variance_scaling_(tensor, scale=1.0, mode="fan_in", distribution="truncated_normal", *, seed=None,
                      stream=None, global_shape=None, global_offset=None, generator=None):
    """JAX's ``variance_scaling`` on torch's (out, in, *kernel) layout: the result has std sqrt(scale / fan).

    mode: "fan_in", "fan_out" or "fan_avg" (their mean). distribution: "truncated_normal" (a normal cut at
    +-2 of its own std, that std being sqrt(scale / fan) / 0.87962566103423978), "normal", or "uniform"
    (bound sqrt(3 * scale / fan)).
    """
    scale = check_real(scale, "scale")
    if scale <= 0.0:
        raise ValueError(f"scale must be positive, got {scale}")
    std = variance_scaling_std(logical_shape(tensor, global_shape, global_offset), scale, mode, distribution)
    common = dict(seed=seed, stream=stream, generator=generator, global_shape=global_shape,
                  global_offset=global_offset)
    if distribution == "uniform":
        return random_fill_(tensor, UNIFORM, a=-SQRT3 * std, b=SQRT3 * std, **common)
    if distribution == "normal":
        return random_fill_(tensor, NORMAL, mean=0.0, std=std, **common)
    std /= TRUNCATED_STD_AT_2
    return random_fill_(tensor, TRUNC_NORMAL, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std, **common)


def lecun_normal_(tensor, *, seed=None, stream=None, global_shape=None, global_offset=None, generator=None):
    """LeCun normal (JAX, timm): variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal")."""
    return variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal", seed=seed, stream=stream,
                             global_shape=global_shape, global_offset=global_offset, generator=generator)


def lecun_uniform_(tensor, *, seed=None, stream=None, global_shape=None, global_offset=None, generator=None):
    """LeCun uniform (JAX): variance_scaling_(tensor, 1.0, "fan_in", "uniform")."""
    return variance_scaling_(tensor, 1.0, "fan_in", "uniform", seed=seed, stream=stream,
                             global_shape=global_shape, global_offset=global_offset, generator=generator)


# ---- sparse --------------------------------------------------------------------------------------------


def sparse_rows_stream(stream: int) -> int:
    """The stream whose uniform values rank the rows of each column in sparse_: the stream id of the
    string ``f"sparse_/{stream}"`` (``stream`` as its decimal 64-bit id)."""
    return stream_id(f"sparse_/{stream}")


def sparse_zero_rows(column_start: int, n_columns: int, rows: int, cols: int, num_zeros: int, seed: int,
                     stream: int, device) -> torch.Tensor:
    """(n_columns, num_zeros) int64: the zero rows of logical columns [column_start, + n_columns).

    Column c's keys are the uniform values of the logical (cols, rows) matrix at (c, r), i.e. logical
    indices c * rows + r, in stream ``sparse_rows_stream(stream)``; the zero rows are the num_zeros rows
    with the smallest keys, ties going to the smaller row (a stable sort).
    """
    keys = torch.empty((n_columns, rows), dtype=torch.float32, device=device)
    layout = make_layout(keys, (cols, rows), (column_start, 0))
    _dispatch.fill_random_(keys, UNIFORM, dist_params(UNIFORM, torch.float32, a=0.0, b=1.0), seed,
                           sparse_rows_stream(stream), layout)
    return torch.sort(keys, dim=1, stable=True).indices[:, :num_zeros]


def sparse_(tensor, sparsity, std=0.01, generator=None, *, seed=None, stream=None, global_shape=None,
            global_offset=None):
    """A 2-D sparse matrix, as torch: in each column ceil(sparsity * rows) zeros at random rows, the other
    entries N(0, std^2).

    The values are normal_(tensor, 0, std) of (seed, stream); the zero rows of each column come from
    ``sparse_zero_rows``. For a block of a logical tensor the keys of its columns' full height are
    generated and the zeros that fall inside the block are kept.
    """
    if tensor.ndimension() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    sparsity = check_real(sparsity, "sparsity")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    std = check_std(std)
    local, global_shape, global_offset, stream = random_block(tensor, seed, stream, global_shape, global_offset)
    if local.numel() == 0 or local.device.type == "meta":
        return tensor
    seed = resolve_seed(seed, generator)
    random_fill_(local, NORMAL, mean=0.0, std=std, seed=seed, stream=stream, generator=None,
                 global_shape=global_shape, global_offset=global_offset)
    rows, cols = global_shape
    num_zeros = math.ceil(sparsity * rows)
    if num_zeros == 0:
        return tensor
    (row0, col0), (n_rows, n_cols) = global_offset, local.shape
    chunk = max(1, SPARSE_CHUNK_KEYS // rows)
    zero = torch.zeros((), dtype=local.dtype, device=local.device)
    with torch.no_grad():
        for c0 in range(0, n_cols, chunk):
            c1 = min(n_cols, c0 + chunk)
            zero_rows = sparse_zero_rows(col0 + c0, c1 - c0, rows, cols, num_zeros, seed, stream, local.device)
            local_rows = zero_rows - row0
            local_cols = torch.arange(c0, c1, device=local.device)[:, None].expand_as(local_rows)
            inside = (local_rows >= 0) & (local_rows < n_rows)
            local.index_put_((local_rows[inside], local_cols[inside]), zero)
    return tensor
