"""uniform_, normal_ and trunc_normal_: torch.nn.init's signatures, values from stream format v1.

Every other random init (kaiming, xavier, variance scaling, ...) computes its bounds or std and calls one
of these through ``random_fill_``.
"""

import threading
from contextlib import contextmanager

from . import _dispatch
from ._format import NORMAL, TRUNC_NORMAL, UNIFORM, resolve_seed, stream_id
from ._layout import block_layout, logical_block
from ._sharding import dtensor_block, is_dtensor
from ._validate import check_interval, check_real, check_std, check_tensor, check_trunc_interval
from .reference import call_params


def resolve_block(tensor, global_shape, global_offset):
    """(local tensor, global_shape, global_offset) of the block ``tensor`` stands for.

    A DTensor stands for its local shard: the offsets come from its mesh and placements (see
    ``_sharding``), composed with ``global_shape``/``global_offset`` when those are given too.
    """
    if is_dtensor(tensor):
        return dtensor_block(tensor, global_shape, global_offset)
    return tensor, global_shape, global_offset


def random_block(tensor, seed, stream, global_shape, global_offset):
    """The checks every random init makes before writing anything: returns (local tensor, global_shape,
    global_offset, stream id), the block validated; ``seed`` is range-checked if given."""
    local, global_shape, global_offset = resolve_block(tensor, global_shape, global_offset)
    check_tensor(local)
    global_shape, global_offset = logical_block(local.shape, global_shape, global_offset)
    stream = stream_id(stream)
    if seed is not None:
        resolve_seed(seed, None)
    return local, global_shape, global_offset, stream


_capture = threading.local()


@contextmanager
def capture_fills():
    """Inside, ``random_fill_`` validates its call and appends (dist, dist_args) to the yielded list instead of
    writing: what an init call draws, for ``verify_`` to evaluate at chosen logical indices."""
    previous = getattr(_capture, "calls", None)
    _capture.calls = []
    try:
        yield _capture.calls
    finally:
        _capture.calls = previous


def random_fill_(tensor, dist: int, *, seed, stream, generator, global_shape, global_offset, **dist_args):
    """Validate everything, then fill ``tensor`` with ``dist`` (UNIFORM/NORMAL/TRUNC_NORMAL).

    ``dist_args`` are already-checked floats: a, b for UNIFORM; mean, std for NORMAL; all four for
    TRUNC_NORMAL. Returns ``tensor``.
    """
    local, global_shape, global_offset, stream = random_block(tensor, seed, stream, global_shape, global_offset)
    if getattr(_capture, "calls", None) is not None:
        _capture.calls.append((dist, dist_args))
        return tensor
    if local.is_meta or local.numel() == 0:
        return tensor
    seed = resolve_seed(seed, generator)
    dist, params = call_params(dist, local.dtype, **dist_args)
    _dispatch.fill_random_(local, dist, params, seed, stream,
                           block_layout(tuple(local.shape), local.stride(), global_shape, global_offset))
    return tensor


def uniform_(tensor, a=0.0, b=1.0, generator=None, *, seed=None, stream=None, global_shape=None,
             global_offset=None):
    """Fill with U(a, b): ``a + (b - a) * u`` with u in (0, 1) from stream format v1."""
    a, b = check_interval(a, b)
    return random_fill_(tensor, UNIFORM, a=a, b=b, seed=seed, stream=stream, generator=generator,
                        global_shape=global_shape, global_offset=global_offset)


def normal_(tensor, mean=0.0, std=1.0, generator=None, *, seed=None, stream=None, global_shape=None,
            global_offset=None):
    """Fill with N(mean, std^2) by Box-Muller on the Philox word pairs of stream format v1."""
    mean = check_real(mean, "mean")
    std = check_std(std)
    return random_fill_(tensor, NORMAL, mean=mean, std=std, seed=seed, stream=stream, generator=generator,
                        global_shape=global_shape, global_offset=global_offset)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None, *, seed=None, stream=None,
                  global_shape=None, global_offset=None):
    """Fill with N(mean, std^2) truncated to [a, b] (absolute bounds, as in torch), by the inverse CDF.

    Exact in far tails and in low precision: every stored value lies in [a, b] after rounding.
    """
    mean = check_real(mean, "mean")
    std = check_std(std)
    a, b = check_interval(a, b, allow_inf=True)
    check_trunc_interval(mean, std, a, b)
    return random_fill_(tensor, TRUNC_NORMAL, mean=mean, std=std, a=a, b=b, seed=seed, stream=stream,
                        generator=generator, global_shape=global_shape, global_offset=global_offset)
