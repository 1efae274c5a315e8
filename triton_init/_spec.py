"""``Init``: what one parameter gets, as data: a stream-format distribution or a constant.

Recipes resolve to ``Init`` values; the same value fills a whole tensor, a DTensor shard (``fill_``) or a
flat-buffer segment (``flat_family``), so all three paths give the same values.
"""

from dataclasses import dataclass

import torch

from . import _random
from ._format import CONSTANT, NORMAL, TRUNC_NORMAL, UNIFORM
from ._layout import logical_block
from ._validate import check_interval, check_real, check_std, check_trunc_interval
from .reference import call_params, dist_params

KINDS = ("uniform", "normal", "trunc_normal", "constant")


@dataclass(frozen=True)
class Init:
    """One init call: ``kind`` with its float arguments (unused ones keep their defaults)."""

    kind: str
    a: float = 0.0
    b: float = 1.0
    mean: float = 0.0
    std: float = 1.0
    value: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Init kind must be one of {KINDS}, got {self.kind!r}")
        check_std(self.std)
        check_real(self.mean, "mean")
        check_real(self.value, "value")
        check_interval(self.a, self.b, allow_inf=self.kind == "trunc_normal")
        if self.kind == "trunc_normal":
            check_trunc_interval(self.mean, self.std, self.a, self.b)

    @classmethod
    def uniform(cls, a=0.0, b=1.0):
        return cls("uniform", a=float(a), b=float(b))

    @classmethod
    def normal(cls, mean=0.0, std=1.0):
        return cls("normal", mean=float(mean), std=float(std))

    @classmethod
    def trunc_normal(cls, mean=0.0, std=1.0, a=-2.0, b=2.0):
        return cls("trunc_normal", mean=float(mean), std=float(std), a=float(a), b=float(b))

    @classmethod
    def constant(cls, value):
        return cls("constant", value=float(value))

    @classmethod
    def zeros(cls):
        return cls.constant(0.0)

    @classmethod
    def ones(cls):
        return cls.constant(1.0)

    def __repr__(self):
        if self.kind == "uniform":
            return f"uniform(a={self.a:g}, b={self.b:g})"
        if self.kind == "normal":
            return f"normal(mean={self.mean:g}, std={self.std:g})"
        if self.kind == "trunc_normal":
            return f"trunc_normal(mean={self.mean:g}, std={self.std:g}, a={self.a:g}, b={self.b:g})"
        return f"constant({self.value:g})"

    def fill_(self, tensor, *, seed, stream, global_shape=None, global_offset=None):
        """Fill ``tensor`` (a tensor, a block of a logical tensor, or a DTensor) and return it."""
        if self.kind == "uniform":
            return _random.uniform_(tensor, self.a, self.b, seed=seed, stream=stream, global_shape=global_shape,
                                    global_offset=global_offset)
        if self.kind == "normal":
            return _random.normal_(tensor, self.mean, self.std, seed=seed, stream=stream,
                                   global_shape=global_shape, global_offset=global_offset)
        if self.kind == "trunc_normal":
            return _random.trunc_normal_(tensor, self.mean, self.std, self.a, self.b, seed=seed, stream=stream,
                                         global_shape=global_shape, global_offset=global_offset)
        local, global_shape, global_offset = _random.resolve_block(tensor, global_shape, global_offset)
        logical_block(local.shape, global_shape, global_offset)
        if local.device.type != "meta" and local.numel():
            with torch.no_grad():
                local.fill_(self.value)
        return tensor

    def flat_family(self, dtype: torch.dtype):
        """(family, params) for the flat kernel and its reference, for a ``dtype`` buffer."""
        if self.kind == "constant":
            return CONSTANT, (self.value,)
        if self.kind == "uniform":
            return UNIFORM, dist_params(UNIFORM, dtype, a=self.a, b=self.b)
        if self.kind == "normal":
            return NORMAL, dist_params(NORMAL, dtype, mean=self.mean, std=self.std)
        return call_params(TRUNC_NORMAL, dtype, mean=self.mean, std=self.std, a=self.a, b=self.b)
