"""torch.nn.init's deprecated names without the trailing underscore (``normal``, ``uniform``, ...).

As in torch, each warns with a FutureWarning and calls the function of the same name with the
underscore, with every argument passed through (triton_init's keywords too).
"""

import functools
import warnings

from ._nn_init import (
    constant_,
    dirac_,
    eye_,
    kaiming_normal_,
    kaiming_uniform_,
    sparse_,
    xavier_normal_,
    xavier_uniform_,
)
from ._orthogonal import orthogonal_
from ._random import normal_, uniform_


def _deprecated(function):
    new_name = function.__name__
    old_name = new_name[:-1]

    @functools.wraps(function)
    def alias(*args, **kwargs):
        warnings.warn(f"`triton_init.{old_name}` is now deprecated in favor of `triton_init.{new_name}`.",
                      FutureWarning, stacklevel=2)
        return function(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name
    alias.__doc__ = f"Deprecated (as in torch.nn.init): use ``{new_name}``, which this calls after a FutureWarning."
    return alias


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)
