"""triton_init: torch.nn.init as fused Triton kernels whose values depend only on (seed, stream, index).

CUDA tensors are filled by the kernels in ``triton_init.kernels``; CPU tensors by the vectorized reference
of the same stream format (``triton_init.reference``), which is also the oracle the tests use.
"""

from ._dispatch import backend, current_backend
from ._format import FORMAT_VERSION, stream_id
from ._random import normal_, trunc_normal_, uniform_

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "backend",
    "current_backend",
    "normal_",
    "stream_id",
    "trunc_normal_",
    "uniform_",
]
