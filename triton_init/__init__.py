"""triton_init: torch.nn.init as fused Triton kernels whose values depend only on (seed, stream, index).

CUDA tensors are filled by the kernels in ``triton_init.kernels``; CPU tensors by the vectorized reference
of the same stream format (``triton_init.reference``), which is also the oracle the tests use.
"""

from . import recipes
from ._dispatch import backend, current_backend
from ._fans import calculate_gain
from ._format import FORMAT_VERSION, stream_id
from ._nn_init import (
    constant_,
    dirac_,
    eye_,
    kaiming_normal_,
    kaiming_uniform_,
    lecun_normal_,
    lecun_uniform_,
    ones_,
    sparse_,
    variance_scaling_,
    xavier_normal_,
    xavier_uniform_,
    zeros_,
)
from ._orthogonal import orthogonal_
from ._random import normal_, trunc_normal_, uniform_
from ._spec import Init
from .flat import Segment, init_flat_, shard_segments
from .intercept import Intercept, Served, intercept
from .module import init_module_, materialize_

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "Init",
    "Intercept",
    "Segment",
    "backend",
    "calculate_gain",
    "constant_",
    "current_backend",
    "dirac_",
    "eye_",
    "init_flat_",
    "init_module_",
    "intercept",
    "kaiming_normal_",
    "kaiming_uniform_",
    "lecun_normal_",
    "lecun_uniform_",
    "materialize_",
    "normal_",
    "ones_",
    "orthogonal_",
    "recipes",
    "Served",
    "shard_segments",
    "sparse_",
    "stream_id",
    "trunc_normal_",
    "uniform_",
    "variance_scaling_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]
