"""A stand-in for torchvision, enough for ``import timm`` and its model builders.

timm imports torchvision at import time (data transforms, ``FrozenBatchNorm2d``), and torchvision's PyPI
wheel is built against torch's CUDA build: with the CPU build its C++ ops do not load and the import fails.
Model construction and init never touch torchvision, so when the real one cannot be imported the timm test
installs this stub in ``sys.modules``: the names timm's import reaches, none of them functional.
"""

import enum
import sys
import types

import torch


def install() -> bool:
    """Install the stub unless a working torchvision imports; returns whether the stub is in use."""
    try:
        import torchvision  # noqa: F401
        return False
    except Exception:  # the wheel fails with RuntimeError/ImportError/OSError depending on the build
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        NEAREST_EXACT = "nearest-exact"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"
        BOX = "box"
        HAMMING = "hamming"
        LANCZOS = "lanczos"

    class FrozenBatchNorm2d(torch.nn.Module):
        def __init__(self, num_features, eps=1e-5):
            super().__init__()
            for name, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
                self.register_buffer(name, torch.full((num_features,), fill))
            self.eps = eps

    class _Anything(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {"__init__": lambda self, *a, **k: None})

    modules = {}
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
                 "torchvision.transforms.v2", "torchvision.datasets", "torchvision.ops", "torchvision.ops.misc",
                 "torchvision.models", "torchvision.models.feature_extraction", "torchvision.io", "torchvision.utils"):
        modules[name] = _Anything(name)
        modules[name].__path__ = []
    modules["torchvision"].__version__ = "0.0-stub"
    modules["torchvision.transforms.functional"].InterpolationMode = InterpolationMode
    modules["torchvision.transforms"].InterpolationMode = InterpolationMode
    modules["torchvision.ops.misc"].FrozenBatchNorm2d = FrozenBatchNorm2d
    for name, module in modules.items():
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
    sys.modules.update(modules)
    return True
