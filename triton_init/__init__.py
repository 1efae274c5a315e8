"""triton_init: torch.nn.init as fused Triton kernels whose values depend only on (seed, stream, index).

CUDA tensors are filled by the kernels in ``triton_init.kernels``; CPU tensors by the vectorized reference
of the same stream format (``triton_init.reference``), which is also the oracle the tests use.
"""

from . import recipes
from ._dispatch import backend, current_backend
from ._format import FORMAT_VERSION, stream_id
from ._random import normal_, trunc_normal_, uniform_
from ._spec import Init
from .flat import Segment, init_flat_, shard_segments
from .module import init_module_, materialize_

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "Init",
    "Segment",
    "backend",
    "current_backend",
    "init_flat_",
    "init_module_",
    "materialize_",
    "normal_",
    "recipes",
    "shard_segments",
    "stream_id",
    "trunc_normal_",
    "uniform_",
]
