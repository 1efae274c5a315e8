"""triton_init: torch.nn.init as fused Triton kernels whose values depend only on (seed, stream, index).

CUDA tensors are filled by the kernels in ``triton_init.kernels``; CPU tensors by the vectorized reference
of the same stream format (``triton_init.reference``), which is also the oracle the tests use.

Names load on first use (``_EXPORTS`` says from where), so ``import triton_init.cli`` does not import
torch: the command line sets up the environment (``OMP_WAIT_POLICY``) before torch loads.
"""

import importlib

from ._version import __version__ as __version__

# public name -> the module that defines it
_EXPORTS = {
    "FORMAT_VERSION": "._format",
    "stream_id": "._format",
    "backend": "._dispatch",
    "current_backend": "._dispatch",
    "calculate_gain": "._fans",
    "uniform_": "._random",
    "normal_": "._random",
    "trunc_normal_": "._random",
    "constant_": "._nn_init",
    "ones_": "._nn_init",
    "zeros_": "._nn_init",
    "eye_": "._nn_init",
    "dirac_": "._nn_init",
    "xavier_uniform_": "._nn_init",
    "xavier_normal_": "._nn_init",
    "kaiming_uniform_": "._nn_init",
    "kaiming_normal_": "._nn_init",
    "variance_scaling_": "._nn_init",
    "lecun_normal_": "._nn_init",
    "lecun_uniform_": "._nn_init",
    "sparse_": "._nn_init",
    "orthogonal_": "._orthogonal",
    "Init": "._spec",
    "Segment": ".flat",
    "init_flat_": ".flat",
    "shard_segments": ".flat",
    "init_module_": ".module",
    "materialize_": ".module",
    "intercept": "._intercept",
    "Intercept": "._intercept",
    "Served": "._intercept",
    "Plan": ".plan",
    "record_plan": ".plan",
    "apply_plan": ".plan",
    "Manifest": ".manifest",
    "ManifestError": ".manifest",
    "Region": ".manifest",
    "verify_": ".verify",
    "regenerate_": ".manifest",
    "VerifyReport": ".verify",
    "VerificationError": ".verify",
    "ManifestReader": ".seed_checkpoint",
    "recipes": ".recipes",
    # torch.nn.init's deprecated names without the trailing underscore (each warns, then calls name + "_")
    "uniform": "._deprecated",
    "normal": "._deprecated",
    "constant": "._deprecated",
    "eye": "._deprecated",
    "dirac": "._deprecated",
    "xavier_uniform": "._deprecated",
    "xavier_normal": "._deprecated",
    "kaiming_uniform": "._deprecated",
    "kaiming_normal": "._deprecated",
    "orthogonal": "._deprecated",
    "sparse": "._deprecated",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """A public name from its module (then cached here), or a submodule such as ``triton_init.reference``."""
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name], __name__)
        value = module if module.__name__ == f"{__name__}.{name}" else getattr(module, name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
