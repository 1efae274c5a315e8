"""``intercept(model, seed=...)``: a framework's own init code, with every value it writes into ``model`` served
by triton_init on that tensor's stream, so that it does not depend on the sharding or the world size.

What is intercepted while the context is active (in the thread that entered it; other threads run torch):
- torch.nn.init's functions, however they were bound (``functools.partial`` at import, transformers' table
  of the originals, ``from torch.nn.init import ...``): for the duration each function object runs a
  trampoline into this module instead of its own code (``_TorchInit``), so every reference reaches it;
- tensor methods on model tensors, and every write into the model, through a ``TorchFunctionMode``;
- timm's own truncated normals (``timm.layers.weight_init``) when timm is imported.
The rule for random inits into tensors that are not in the model (temporaries) is in ``Intercept``.
"""

import builtins
import functools
import math
import os
import sys
import threading
import types
import warnings
from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_unflatten

from . import _dispatch
from ._fans import kaiming_std, xavier_std
from ._format import NORMAL, TRUNC_NORMAL, UNIFORM, resolve_seed, stream_id
from ._lazy import Fill, Lazy, covers_storage, storage_key
from ._nn_init import SQRT3
from ._orthogonal import orthogonal_
from ._random import capture_fills, normal_, trunc_normal_, uniform_
from ._replay import NOT_VERIFIABLE, RESCALES
from ._validate import check_interval, check_real, check_std, check_tensor
from .manifest import Region
from .reference import call_params
from .streams import TensorIndex, UnmappedView

# torch.nn.init's functions and the parameters this module knows them by (torch 2.5 to 2.13).
TORCH_INIT_SIGNATURES = {
    "uniform_": ("tensor", "a", "b", "generator"),
    "normal_": ("tensor", "mean", "std", "generator"),
    "trunc_normal_": ("tensor", "mean", "std", "a", "b", "generator"),
    "constant_": ("tensor", "val"),
    "ones_": ("tensor",),
    "zeros_": ("tensor",),
    "eye_": ("tensor",),
    "dirac_": ("tensor", "groups"),
    "xavier_uniform_": ("tensor", "gain", "generator"),
    "xavier_normal_": ("tensor", "gain", "generator"),
    "kaiming_uniform_": ("tensor", "a", "mode", "nonlinearity", "generator"),
    "kaiming_normal_": ("tensor", "a", "mode", "nonlinearity", "generator"),
    "orthogonal_": ("tensor", "gain", "generator"),
    "sparse_": ("tensor", "sparsity", "std", "generator"),
}
TIMM_MODULE = "timm.layers.weight_init"
_PACKAGE_DIRS = (os.path.dirname(torch.__file__), os.path.dirname(__file__), "<triton_init.intercept")


@dataclass(frozen=True)
class Served:
    """One write triton_init served: ``function(tensor, **args, seed=seed, stream=stream)`` gives its values.

    ``shape`` is the tensor's logical (global) shape. ``region`` is None when the write was the whole tensor
    in its own layout; otherwise the logical indices it covered (a ``manifest.Region``: offset, shape,
    strides), and ``function`` is then the distribution
    written there (uniform_, normal_, trunc_normal_ or constant_, with fans already applied), whose values
    at those indices are the ones written. ``via`` is "call" for an init call on the tensor, "copy" for a
    copy from a temporary that an init had filled (re-served on this tensor's stream), "computed" for values
    computed from one random temporary (redrawn on this tensor's stream, then computed as the framework
    does), "later" for a later write by the framework, "torch" for random values left to torch.

    Besides triton_init's init functions, ``function`` is one of the manifest's later writes
    (``triton_init.manifest``): "mul_"/"div_" (the write named by ``args["init"]`` with the rest of
    ``args``, then multiplied or divided by the scalar ``args["other"]`` in the tensor's dtype), or
    "not_verifiable" (values no recorded call gives: a copy of values the framework computed, arithmetic
    other than a scalar rescale, torch's random values; ``args["reason"]`` says which, and where).
    """

    stream: str
    shape: tuple
    dtype: torch.dtype
    function: str
    args: dict
    seed: int
    region: Region | None
    via: str = "call"


@dataclass(frozen=True)
class _Pending:
    """A random init into a temporary: what any copy of its values into the model is re-served with."""

    function: str  # the call on the temporary
    args: tuple  # its arguments, as sorted (name, value) items
    distribution: tuple | None  # (function, args) per element, None for orthogonal_/sparse_
    shape: tuple  # the temporary's logical shape
    site: str


@dataclass(frozen=True)
class _Taint:
    """Where a tensor's values came from: random inits into temporaries (``pending``), passed on by ops that
    only move values (``pure``), or changed by others or drawn by torch (not pure)."""

    pending: tuple
    pure: bool
    sites: tuple
    node: object = field(default=None, compare=False)  # how to compute the values again: _Leaf or _Op


class _Leaf:
    """A random temporary of known distribution (``pending``): drawn again on the stream of the parameter its
    values flow into."""

    __slots__ = ("pending", "shape", "dtype", "device")

    def __init__(self, pending, tensor):
        self.pending, self.shape, self.dtype, self.device = pending, tuple(tensor.shape), tensor.dtype, tensor.device


class _Op:
    """An op on tensors computed from one or more ``_Leaf``s: ``func`` with the flat arguments ``items``
    (a node where a computed tensor was, anything else as it was), run in place on a copy of the first
    argument when ``in_place``."""

    __slots__ = ("func", "spec", "items", "in_place")

    def __init__(self, func, spec, items, in_place):
        self.func, self.spec, self.items, self.in_place = func, spec, items, in_place

    def leaves(self) -> set:
        found, stack, seen = set(), [self], set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, _Leaf):
                found.add(node)
            else:
                stack.extend(x for x in node.items if isinstance(x, (_Leaf, _Op)))
        return found


def _resolve(function: str, shape, args: dict):
    """(function, args) of the elementwise distribution ``function(tensor of shape, **args)`` draws, the same
    numbers triton_init's function computes; (None, None) for a no-op (a kaiming init with a zero dim)."""
    if function == "uniform_":
        a, b = check_interval(args["a"], args["b"])
        return "uniform_", {"a": a, "b": b}
    if function == "normal_":
        return "normal_", {"mean": check_real(args["mean"], "mean"), "std": check_std(args["std"])}
    if function == "trunc_normal_":
        a, b = check_interval(args["a"], args["b"], allow_inf=True)
        return "trunc_normal_", {"mean": check_real(args["mean"], "mean"), "std": check_std(args["std"]),
                                 "a": a, "b": b}
    if function in ("constant_", "ones_", "zeros_"):
        return "constant_", {"val": {"ones_": 1.0, "zeros_": 0.0}.get(function, args.get("val"))}
    if function.startswith("xavier_"):
        gain = check_std(args["gain"], "gain")
        if function == "xavier_uniform_":
            bound = SQRT3 * xavier_std(shape, 1.0) * gain
            return "uniform_", {"a": -bound, "b": bound}
        return "normal_", {"mean": 0.0, "std": xavier_std(shape, 1.0) * gain}
    if function.startswith("kaiming_"):
        if 0 in tuple(shape):
            return None, None
        std = check_std(kaiming_std(shape, args["a"], args["mode"], args["nonlinearity"]),
                        "gain(nonlinearity, a) / sqrt(fan)")
        if function == "kaiming_uniform_":
            return "uniform_", {"a": -SQRT3 * std, "b": SQRT3 * std}
        return "normal_", {"mean": 0.0, "std": std}
    raise KeyError(function)


ELEMENTWISE = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "xavier_uniform_",
               "xavier_normal_", "kaiming_uniform_", "kaiming_normal_")
DETERMINISTIC = ("constant_", "ones_", "zeros_", "eye_", "dirac_")
_DISTRIBUTIONS = {"uniform_": UNIFORM, "normal_": NORMAL, "trunc_normal_": TRUNC_NORMAL}


def _fill(local: torch.Tensor, layout, function: str, args: dict, seed: int, stream: str) -> None:
    """Write ``function``'s values (a resolved distribution) at the logical indices ``layout`` gives."""
    with torch.no_grad():
        if function == "constant_":
            local.fill_(args["val"])
            return
        check_tensor(local)
        if local.device.type == "meta":  # a plan recorded on the meta device: nothing to write
            return
        dist, params = call_params(_DISTRIBUTIONS[function], local.dtype, **args)
        _dispatch.fill_random_(local, dist, params, seed, stream_id(stream), layout)


def _api(function: str):
    from . import _nn_init

    return {"uniform_": uniform_, "normal_": normal_, "trunc_normal_": trunc_normal_,
            "orthogonal_": orthogonal_}.get(function) or getattr(_nn_init, function)


def call_site() -> str:
    """file:line (function) of the innermost frame outside torch and triton_init."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIRS):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name})"


# ---- what the context patches -------------------------------------------------------------------------------

_local = threading.local()


def _active():
    """The intercept serving this thread's init calls, or None (none active, or it is writing itself)."""
    active = getattr(_local, "active", None)
    return None if active is None or active._serving else active


def _init_call(name: str, args: dict):
    """Where the trampolines of torch.nn.init's functions lead."""
    active = _active()
    if active is None:
        return _TORCH_INIT.originals[name](**args)
    return active._serve_call(name, args, _TORCH_INIT.originals[name])


class _TorchInit:
    """torch.nn.init's function objects, their code swapped for trampolines while any intercept is active
    (a process-wide count), and timm's ``_trunc_normal_``; restored when the last one exits."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.originals = {}  # name -> a function with torch's own code
        self.saved_code = {}
        self.timm = None  # (module, {name: original}) while patched

    def install(self) -> None:
        with self.lock:
            if self.count == 0:
                self._check()
                for name, params in TORCH_INIT_SIGNATURES.items():
                    fn = getattr(torch.nn.init, name)
                    self.saved_code[name] = fn.__code__
                    self.originals[name] = _copy_function(fn)
                    fn.__code__ = _trampoline_code(name, params)
                self._patch_timm()
            self.count += 1

    def uninstall(self) -> None:
        with self.lock:
            self.count -= 1
            if self.count == 0:
                for name, code in self.saved_code.items():
                    getattr(torch.nn.init, name).__code__ = code
                self.saved_code.clear()
                if self.timm is not None:
                    module, patched = self.timm
                    for name, original in patched.items():
                        setattr(module, name, original)
                    self.timm = None

    @staticmethod
    def _check() -> None:
        import inspect

        for name, params in TORCH_INIT_SIGNATURES.items():
            fn = getattr(torch.nn.init, name, None)
            found = None
            if isinstance(fn, types.FunctionType) and not fn.__closure__:
                signature = inspect.signature(fn).parameters.values()
                if all(p.kind == p.POSITIONAL_OR_KEYWORD for p in signature):
                    found = tuple(p.name for p in signature)
            if found != params:
                raise RuntimeError(
                    f"triton_init.intercept does not support torch {torch.__version__}: torch.nn.init.{name} is "
                    f"{'missing' if fn is None else 'a ' + type(fn).__name__ + ' with parameters ' + str(found)}, "
                    f"expected a plain function with parameters {params} (as in torch 2.5 to 2.13)")

    def _patch_timm(self) -> None:
        module = sys.modules.get(TIMM_MODULE)
        if module is None:
            return
        patched = {}
        for name, as_trunc_normal in TIMM_TRUNCATED_NORMALS.items():
            original = getattr(module, name, None)
            if not callable(original):
                version = getattr(sys.modules.get("timm"), "__version__", "?")
                raise RuntimeError(f"triton_init.intercept does not support timm {version}: {TIMM_MODULE} has no "
                                   f"{name} (timm 0.9 to 1.0.31 have it)")
            patched[name] = original
            setattr(module, name, _timm_wrapper(original, as_trunc_normal))
        self.timm = (module, patched)


def _timm_wrapper(original, as_trunc_normal):
    import inspect

    signature = inspect.signature(original)

    def wrapper(*args, **kwargs):
        active = _active()
        if active is None:
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        tensor, mean, std, a, b = (bound.arguments[k] for k in ("tensor", "mean", "std", "a", "b"))
        args = {"tensor": tensor, **as_trunc_normal(mean, std, a, b)}
        return active._serve_call("trunc_normal_", args, lambda **_: original(*bound.args, **bound.kwargs))

    return wrapper


# timm's truncated normals, as torch.nn.init.trunc_normal_'s arguments: ``_trunc_normal_`` is behind
# ``trunc_normal_`` everywhere; ``trunc_normal_tf_`` (bounds in units of std around 0, then scaled and
# shifted) is behind ``variance_scaling_``/``lecun_normal_``.
TIMM_TRUNCATED_NORMALS = {
    "_trunc_normal_": lambda mean, std, a, b: {"mean": mean, "std": std, "a": a, "b": b},
    "trunc_normal_tf_": lambda mean, std, a, b: {"mean": mean, "std": std, "a": mean + a * std, "b": mean + b * std},
}


def _copy_function(fn):
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


def _trampoline_code(name: str, params: tuple):
    """A code object with ``params`` (the function keeps its defaults) calling ``_init_call``; it reaches
    this module through ``__import__``, a builtin, so torch.nn.init's globals are left alone."""
    items = ", ".join(f"{p!r}: {p}" for p in params)
    source = (f"def {name}({', '.join(params)}):\n"
              f"    return __import__({__name__!r}, fromlist=('_',))._init_call({name!r}, {{{items}}})\n")
    namespace = {}
    exec(compile(source, f"<triton_init.intercept: torch.nn.init.{name}>", "exec"),
         {"__builtins__": builtins}, namespace)
    return namespace[name].__code__


_TORCH_INIT = _TorchInit()


# ---- the tensor-level view: a TorchFunctionMode ------------------------------------------------------------------

# Tensor methods served on model tensors and temporaries: method -> (torch.nn.init name, parameters, defaults).
_METHODS = {
    torch.Tensor.normal_: ("normal_", ("mean", "std"), (0.0, 1.0)),
    torch.Tensor.uniform_: ("uniform_", ("from", "to"), (0.0, 1.0)),
    torch.Tensor.zero_: ("zeros_", (), ()),
    torch.Tensor.fill_: ("constant_", ("value",), ()),
}
_RANDOM_IN_PLACE = frozenset(getattr(torch.Tensor, n) for n in (
    "bernoulli_", "exponential_", "geometric_", "log_normal_", "cauchy_", "random_"))
# Factories whose values are a known distribution, and the other random factories.
_RANDOM_FACTORIES = {torch.randn: ("normal_", {"mean": 0.0, "std": 1.0}),
                     torch.randn_like: ("normal_", {"mean": 0.0, "std": 1.0}),
                     torch.rand: ("uniform_", {"a": 0.0, "b": 1.0}),
                     torch.rand_like: ("uniform_", {"a": 0.0, "b": 1.0})}
_OTHER_RANDOM = frozenset((torch.randint, torch.randint_like, torch.randperm, torch.normal, torch.bernoulli,
                           torch.multinomial, torch.poisson))
# Ops that only move, select or cast values: what they return holds values of their inputs.
_MOVES = frozenset((
    "view", "view_as", "reshape", "reshape_as", "__getitem__", "__get__", "contiguous", "clone", "detach", "to",
    "type", "float", "double", "half", "bfloat16", "cpu", "cuda", "t", "transpose", "permute", "narrow", "split",
    "split_with_sizes", "chunk", "tensor_split", "unbind", "flatten", "unflatten", "squeeze", "unsqueeze", "cat",
    "concat", "concatenate", "stack", "hstack", "vstack", "movedim", "moveaxis", "swapaxes", "swapdims", "select",
    "index_select", "copy_", "__setitem__", "requires_grad_", "detach_", "to_dense", "to_local", "redistribute",
    "full_tensor", "from_local", "distribute_tensor"))
# In-place methods that change no value.
_KEEP_VALUES = frozenset(("requires_grad_", "detach_", "share_memory_", "retain_grad", "pin_memory_"))
# Ops that read no values of their tensor arguments (attributes, sizes, new tensors of a shape), and ops that
# return views when they can: an unfilled temporary (``_lazy``) stays unfilled through them.
_READS_NOTHING = frozenset(("__get__", "size", "dim", "ndimension", "stride", "numel", "nelement",
                            "storage_offset", "is_contiguous", "element_size", "new_empty", "new_zeros",
                            "new_ones", "new_full", "empty_like", "zeros_like", "ones_like", "full_like",
                            "__len__")) | _KEEP_VALUES
_VIEWS = frozenset(("view", "view_as", "reshape", "reshape_as", "__getitem__", "t", "transpose", "permute",
                    "narrow", "split", "split_with_sizes", "chunk", "tensor_split", "unbind", "flatten",
                    "unflatten", "squeeze", "unsqueeze", "movedim", "moveaxis", "swapaxes", "swapdims", "select",
                    "detach", "expand", "expand_as", "contiguous", "as_strided", "to", "type"))
_CATS = frozenset(("cat", "concat", "concatenate"))
# In-place scalar rescales recorded as replayable writes: method -> manifest fn.
_RESCALE_OPS = {"mul_": "mul_", "__imul__": "mul_", "div_": "div_", "__itruediv__": "div_"}
_IN_PLACE_DUNDERS = frozenset(("__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__",
                               "__imod__", "__ipow__", "__iand__", "__ior__", "__ixor__", "__ilshift__",
                               "__irshift__"))


def _writes_into(func, args, kwargs):
    """The tensor ``func`` writes into, or None."""
    out = kwargs.get("out")
    if isinstance(out, torch.Tensor):
        return out
    name = getattr(func, "__name__", "")
    if args and isinstance(args[0], torch.Tensor) and (
            name in _IN_PLACE_DUNDERS or (name.endswith("_") and not name.startswith("__"))):
        return args[0]
    return None


class _Mode(TorchFunctionMode):
    def __init__(self, owner: "Intercept"):
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        owner = self.owner
        if owner._serving:
            return func(*args, **kwargs)
        method = _METHODS.get(func)
        if method is not None and args and isinstance(args[0], torch.Tensor):
            owner._realize([*args[1:], *kwargs.values()])  # a value it reads (``fill_(tensor)``)
            return owner._serve_method(func, method, args, kwargs)
        return owner._watch(func, args, kwargs)


class Intercept:
    """The context ``intercept`` returns; ``log`` lists what it served, in order (``Served`` records).

    Temporaries. A random init into a tensor that is not in the model (a temporary) is served by triton_init
    too, on the stream ``"temporary/<n>"`` (n counts them), and remembered with its distribution. When the
    framework then copies values of such temporaries into the model through ops that only move values
    (views, reshapes, ``cat``/``stack``/``split``/``chunk``, ``clone``/``contiguous``, dtype and device
    casts, DTensor distribution), and they all came from inits of one distribution, the model region written
    is re-served: it gets that distribution's values at its own logical indices on its own stream, as if the
    init had been called on the parameter (``orthogonal_``/``sparse_`` only when the temporary has the
    parameter's shape and the copy covers it whole). This serves torchtitan's fused QKV, OLMo-core's
    full-tensor DTensor path, Megatron's CPU master weights and transformers' fp32 ``orthogonal_``.

    Values computed from one random temporary through any ops (``torch.rand`` -> exp/clamp/log, an init then
    ``log_``) and written whole into one tensor are computed again with that temporary drawn on the tensor's
    stream (logged ``via="computed"``, "not_verifiable": the ops are not recorded).

    A random init into a whole plain temporary is validated at the call and written when something first reads
    it (``triton_init._lazy``): ops that only view it, read its sizes or concatenate such temporaries leave it
    unwritten, and a copy into the model that is re-served is skipped; what is still unwritten at exit is
    written then. Every read sees the values the call would have written.

    Anything else that puts random values into the model (a mix of random temporaries, torch's random ops
    other than these, a computed write into part of a tensor, a view of the model that is no regular set of
    its indices) is left as torch computes it: counted, listed in the log ("not_verifiable", ``via="torch"``)
    and reported by one warning on exit that names each call site; ``strict=True`` raises ``RuntimeError``
    at the write instead, before it happens.

    Later writes. Each write into a tensor that already has records is logged too (``via="later"``): a scalar
    ``mul_``/``div_`` as a rescale of the recorded writes, a scalar stored through indexing as ``constant_``,
    anything else as "not_verifiable" with its call site.

    Ties. A tied tensor is served on its first name in the module tree as the model is when the write
    happens (a parameter, buffer or submodule registered inside the context makes the next lookup re-read
    the model); on exit and at ``attach`` the log is brought in line with the model as it is then: records of
    tensors that left it (the other half of a re-tie) are dropped, and those of a tensor now tied under an
    earlier name are served again on that name's stream.
    """

    def __init__(self, model: nn.Module | None, *, seed, strict: bool = False, prefix: str = ""):
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module (or None, then attach it), got {type(model).__name__}")
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool, got {type(strict).__name__}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        self.model = model
        self.seed = resolve_seed(seed, None)
        self.strict = strict
        self.prefix = prefix
        self.log: list[Served] = []
        self.left_to_torch: dict = {}  # call site -> number of writes into the model left to torch
        self._serving = 0
        self._entered = False

    # ---- context -------------------------------------------------------------------------------------------

    def __enter__(self) -> "Intercept":
        active = getattr(_local, "active", None)
        if active is not None:
            raise RuntimeError("triton_init.intercept is already active in this thread: nested intercepts are not "
                               "supported (one intercept serves the whole model; other threads may have their own)")
        self._index = TensorIndex(self.model if self.model is not None else nn.Module(), self.prefix)
        self._taints = _Taints()
        self._lazy = Lazy()
        self._temporaries = 0
        self._created = {} if self.model is None else None  # id -> parameter created inside the context
        self._constructed = {}  # id -> (created parameter, the taint of its values, in-place ops after it)
        self._targets = []  # the Target each record of ``log`` wrote, in step with it
        self._recorded = set()  # ids of model tensors with records
        registration = nn.modules.module
        self._hooks = [registration.register_module_parameter_registration_hook(self._parameter_created),
                       registration.register_module_buffer_registration_hook(self._buffer_registered),
                       registration.register_module_module_registration_hook(self._registered)]
        _TORCH_INIT.install()
        try:
            self._mode = _Mode(self)
            self._mode.__enter__()
        except BaseException:
            _TORCH_INIT.uninstall()
            self._remove_hook()
            raise
        _local.active = self
        self._entered = True
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self._serving += 1
            try:
                self._lazy.realize_all()  # temporaries that outlive the context hold their values
            finally:
                self._serving -= 1
        finally:
            _local.active = None
            self._entered = False
        try:
            self._mode.__exit__(None, None, None)
        finally:
            _TORCH_INIT.uninstall()
            self._remove_hook()
            self._taints = _Taints()
        if self.model is not None and exc_type is None:
            self._retie()
        self._targets, self._recorded = [], set()
        if self.model is None and exc_type is None:
            warnings.warn("triton_init.intercept(None, ...): attach(model) was not called, so nothing built inside "
                          "was served on its stream", stacklevel=2)
        if self.left_to_torch and exc_type is None:
            total = sum(self.left_to_torch.values())
            sites = "; ".join(f"{count} at {site}" for site, count in self.left_to_torch.items())
            warnings.warn(f"triton_init.intercept: {total} write(s) of random values into the model were left to "
                          f"torch (not shard-invariant): {sites}. strict=True raises at such a write.", stacklevel=2)
        return False

    # ---- models that initialize in their constructors -------------------------------------------------------

    def attach(self, model: nn.Module) -> None:
        """The model built inside ``intercept(None, seed=...)``, before leaving the context: each of its
        parameters created inside gets, on its own stream, the values of the init that filled it (whole,
        at its own logical indices: e.g. Megatron's constructors, which fill each parameter from a master
        weight or directly, before any model exists)."""
        if not self._entered or self._created is None:
            raise RuntimeError("attach(model) is for a model built inside an active intercept(None, seed=...)")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self._serving += 1
        try:
            self._index = TensorIndex(model, self.prefix)
            for ident, param in self._created.items():  # made from a temporary (nn.Parameter(x)): no write
                held = self._taints.get(param) or self._taints.of_storage(param)
                if ident not in self._constructed and held is not None:
                    self._constructed[ident] = (param, held, ())
            for param, source, ops in self._constructed.values():
                target = self._index.locate(param)
                if target is None:
                    continue
                if isinstance(source, _Taint):
                    self._serve_constructed(target, source, ops)
                elif not isinstance(ops, str):  # written whole by deterministic code: already right, recorded
                    self._record(target, *source)
                    self._record_ops(target, ops)
        finally:
            self._serving -= 1
            self._constructed = {}
            self._created = None
        self._retie()

    def _serve_constructed(self, target, taint, ops) -> None:
        self._realize([target.local])
        distributions = {p.distribution for p in taint.pending}
        pending = taint.pending[0] if taint.pending else None
        if isinstance(ops, str):
            self._left_to_torch(f"{target.stream}: built from random values ({', '.join(taint.sites)}), then "
                                f"{ops}", target)
            return
        if not taint.pure or len(distributions) != 1:
            if not self._computed_into(target, taint.node, lambda values: target.local.copy_(values.reshape(
                    target.local.shape))):
                self._left_to_torch(f"{target.stream}: built from random values that are no single init's "
                                    f"({', '.join(taint.sites)})", target)
                return
        elif pending.distribution is not None:
            function, params = pending.distribution[0], dict(pending.distribution[1])
            _fill(target.local, target.layout, function, params, self.seed, target.stream)
            self._record(target, function, params, via="copy")
        elif pending.shape == target.logical_shape:
            params = dict(pending.args)
            _api(pending.function)(target.tensor, **params, seed=self.seed, stream=target.stream)
            self._record(target, pending.function, params, via="copy")
        else:
            self._left_to_torch(f"{target.stream}: built from a {pending.function} of shape {pending.shape}", target)
            return
        with torch.no_grad():
            for func, rest, kwargs, _ in ops:  # the framework's in-place ops on it, again on the served values
                func(target.local, *rest, **kwargs)
        self._record_ops(target, ops)

    def _record_ops(self, target, ops) -> None:
        """Record the in-place scalar ops a parameter built inside the context went through after its init."""
        for func, rest, kwargs, site in ops:
            name = getattr(func, "__name__", "")
            if name in _RESCALE_OPS and len(rest) == 1 and not kwargs:
                self._record_rescale(target, _RESCALE_OPS[name], rest[0], site)
            else:
                self._record(target, NOT_VERIFIABLE, {"reason": f"{name}{rest} at {site}"}, via="later",
                             region=target.region)

    def _parameter_created(self, module, name, param):
        if getattr(_local, "active", None) is not self:
            return
        self._index.registered(module, name, module._parameters, param)
        if param is not None and self._created is not None:
            self._created[id(param)] = param

    def _buffer_registered(self, module, name, buffer):
        """A buffer registered while active: the index takes it in at its next lookup (re-reading the model
        when it may be a re-tie)."""
        if getattr(_local, "active", None) is self:
            self._index.registered(module, name, module._buffers, buffer)

    def _registered(self, *_):
        """A submodule registered while active: the index re-reads the model."""
        if getattr(_local, "active", None) is self:
            self._index.stale = True

    def _remove_hook(self) -> None:
        for hook in getattr(self, "_hooks", ()):
            hook.remove()
        self._hooks = []

    def _retie(self) -> None:
        """Bring the log in line with the model as it is now: a record whose tensor left the model (replaced
        by a re-tie) is dropped; one whose tensor is now tied under an earlier name is re-served on that
        name's stream (the values it would have got had the tie been there all along)."""
        if self.model is None or not self.log:
            return
        first = TensorIndex(self.model, self.prefix).first_names()
        log, targets = [], []
        self._serving += 1
        try:
            for record, target in zip(self.log, self._targets, strict=True):
                stream = first.get(id(target.tensor))
                if stream is None:
                    continue
                if stream != record.stream:
                    record = replace(record, stream=stream)
                    self._refill(record, target)
                log.append(record)
                targets.append(target)
        finally:
            self._serving -= 1
        self.log[:], self._targets[:] = log, targets
        self._recorded = {id(t.tensor) for t in targets}

    def _refill(self, record, target) -> None:
        """Write ``record``'s values again (on its stream now) where ``target`` says it wrote them."""
        self._realize([target.local])
        function, args = record.function, dict(record.args)
        if function in RESCALES:
            function, other = args.pop("init"), args.pop("other")
        if function in DETERMINISTIC or function == NOT_VERIFIABLE:
            return
        with torch.no_grad():
            if record.region is None and function not in _DISTRIBUTIONS:
                _api(function)(target.tensor, **args, seed=self.seed, stream=record.stream)
            else:
                _fill(target.local, target.layout, function, args, self.seed, record.stream)
            if record.function in RESCALES:
                getattr(target.local, record.function)(other)

    def _note_construction(self, dest, taint, deterministic=None, op=None) -> None:
        """A write into a temporary: if it is (a view of) a parameter created inside the context, remember
        where its values come from: ``taint`` (random), or None (``deterministic``: the (function, args)
        that wrote it whole, recorded when the model is attached). ``op``: the write was an in-place op on
        the values it held, (func, other args, kwargs, site), replayed after serving them when its other
        arguments are scalars and it covers the parameter; else it says what changed them."""
        if not self._created or dest.device.type == "meta":
            return
        key = _Taints._key(dest)
        for param in self._created.values():
            if _Taints._key(param) == key:
                covers = getattr(dest, "_local_tensor", dest).numel() == param.numel()
                entry = self._constructed.get(id(param))
                if op is not None and entry is not None:  # its values changed in place
                    _, source, ops = entry
                    if isinstance(ops, str):
                        pass
                    elif covers and all(a is None or isinstance(a, (bool, str)) or _is_scalar(a)
                                        for a in (*op[1], *op[2].values())):
                        ops = (*ops, op)
                    else:
                        ops = f"{getattr(op[0], '__name__', 'an op')} at {op[3]}"
                    self._constructed[id(param)] = (param, source, ops)
                elif taint is None and covers and deterministic is not None:
                    self._constructed[id(param)] = (param, deterministic, ())
                elif taint is None and covers:
                    self._constructed.pop(id(param), None)
                elif taint is not None and covers:
                    self._constructed[id(param)] = (param, taint, ())
                elif entry is not None and isinstance(entry[1], _Taint):
                    held = entry[1]  # part of it written: no longer one init's values
                    self._constructed[id(param)] = (param, _Taint(held.pending, False, held.sites), entry[2])
                else:
                    self._constructed.pop(id(param), None)
                return

    # ---- serving ---------------------------------------------------------------------------------------------

    def _serve_call(self, name: str, args: dict, original):
        """An init function called while active: serve it on the model tensor it writes, or as a temporary."""
        tensor = args["tensor"]
        if not isinstance(tensor, torch.Tensor):
            return original(**args)
        params = {k: v for k, v in args.items() if k not in ("tensor", "generator")}
        self._serving += 1
        try:
            self._realize([tensor, *params.values()])  # what the call reads, and what it writes into
            target = self._locate(tensor, name, original, args)
            if target is False:
                return tensor
            if target is None:
                self._serve_temporary(name, tensor, params, original, args)
            else:
                self._serve_target(name, tensor, params, target, original, args)
            return tensor
        finally:
            self._serving -= 1

    def _serve_method(self, func, method, args, kwargs):
        name, names, defaults = method
        tensor = args[0]
        values = dict(zip(names, defaults, strict=False))
        values.update(zip(names, args[1:], strict=False))
        values.update((k, v) for k, v in kwargs.items() if k in names)
        if name == "uniform_":
            params = {"a": values["from"], "b": values["to"]}
        elif name == "constant_":
            value = values["value"]
            params = {"val": value.item() if isinstance(value, torch.Tensor) else value}
        else:
            params = values
        return self._serve_call(name, {"tensor": tensor, **params}, lambda **_: func(*args, **kwargs))

    def _locate(self, tensor, name, original, args):
        """The tensor's ``Target``, None for a temporary, False when it was handled here (unmappable)."""
        try:
            target = self._index.locate(tensor, refresh=name not in DETERMINISTIC)
        except UnmappedView as err:
            self._left_to_torch(str(err))
            original(**args)
            return False
        return target

    def _record(self, target, function, args, via="call", region=None) -> None:
        self.log.append(Served(target.stream, target.logical_shape, target.local.dtype, function, dict(args),
                               self.seed, region, via))
        self._targets.append(target)
        self._recorded.add(id(target.tensor))

    def _record_rescale(self, target, op: str, other, site: str) -> None:
        """A later ``op`` (mul_/div_) by the scalar ``other`` on ``target``: each recorded write it changes
        again, rescaled (replayable), or "not_verifiable" where that write cannot be rescaled."""
        other = other.item() if isinstance(other, torch.Tensor) else other
        records = [r for r, t in zip(self.log, self._targets, strict=True)
                   if r.stream == target.stream and t.tensor is target.tensor]
        whole = [k for k, r in enumerate(records) if r.region is None]
        records = records[whole[-1]:] if whole else records
        if target.region is not None and (len(records) != 1 or records[0].region is not None):
            records = [None]  # part of a tensor written by several calls: no one write to rescale
        for record in records:
            region = target.region if target.region is not None else record.region
            if record is None or record.function in RESCALES or record.function == NOT_VERIFIABLE:
                self._record(target, NOT_VERIFIABLE, {"reason": f"{op}({other}) at {site} of values that are no "
                                                                "single recorded call's"}, "later", region)
            else:
                self._record(target, op, {"other": other, "init": record.function, **record.args}, "later", region)

    def _later_write(self, func, dest, args, kwargs, name: str) -> None:
        """A deterministic write into a model tensor that already has records: record it."""
        target = self._write_target(func, dest, args)
        if target is None or isinstance(target, UnmappedView) or id(target.tensor) not in self._recorded:
            return
        site = call_site()
        if name in _RESCALE_OPS and len(args) == 2 and not kwargs and _is_scalar(args[1]):
            self._record_rescale(target, _RESCALE_OPS[name], args[1], site)
        elif name == "__setitem__" and len(args) == 3 and _is_scalar(args[2]):
            value = args[2].item() if isinstance(args[2], torch.Tensor) else args[2]
            self._record(target, "constant_", {"val": value}, "later", target.region)
        else:
            self._record(target, NOT_VERIFIABLE, {"reason": f"{name} at {site}: values the framework computed"},
                         "later", target.region)

    def _serve_target(self, name, tensor, params, target, original, args) -> None:
        if target.region is None:
            keys = {} if name in DETERMINISTIC else {"seed": self.seed, "stream": target.stream}
            _api(name)(tensor, **params, **keys)
            self._record(target, name, params)
        elif name in ELEMENTWISE:
            function, resolved = _resolve(name, tuple(tensor.shape), params)
            if function is not None:
                _fill(target.local, target.layout, function, resolved, self.seed, target.stream)
                self._record(target, function, resolved, region=target.region)
        elif name in DETERMINISTIC:
            original(**args)
            self._record(target, name, params, region=target.region)
        else:
            self._left_to_torch(f"{name} on part of {target.stream} (region {target.region.to_json()})", target)
            original(**args)

    def _serve_temporary(self, name, tensor, params, original, args) -> None:
        if name in DETERMINISTIC:
            original(**args)
            self._taints.discard(tensor)
            self._note_construction(tensor, None, (name, params))
            return
        shape = tuple(tensor.shape)
        stream = f"temporary/{self._temporaries}"
        try:
            if name in ELEMENTWISE and covers_storage(tensor):
                with capture_fills() as fills:  # validates the call and writes nothing
                    _api(name)(tensor, **params, seed=self.seed, stream=stream)
                if fills:  # filled when something reads it (``_lazy``)
                    self._lazy.defer(tensor, Fill(tensor, functools.partial(_api(name), **params, seed=self.seed,
                                                                           stream=stream)))
            else:
                _api(name)(tensor, **params, seed=self.seed, stream=stream)
        except TypeError:  # a dtype triton_init does not fill: torch draws it
            original(**args)
            taint = _Taint((), False, (call_site(),))
            self._taints.set(tensor, taint)
            self._note_construction(tensor, taint)
            return
        self._temporaries += 1
        distribution = None
        if name in ELEMENTWISE:
            function, resolved = _resolve(name, shape, params)
            if function is None:  # a no-op
                return
            distribution = (function, tuple(resolved.items()))
        pending = _Pending(name, tuple(sorted(params.items())), distribution, shape, call_site())
        taint = _Taint((pending,), True, (pending.site,), _Leaf(pending, tensor) if distribution else None)
        self._taints.set(tensor, taint)
        self._note_construction(tensor, taint)

    # ---- values computed from one random temporary ---------------------------------------------------------

    def _node(self, func, args, kwargs, in_place=False):
        """An ``_Op`` for ``func`` on these arguments, or None when a random input has no node."""
        flat, spec = tree_flatten((args, kwargs))
        items = []
        for x in flat:
            taint = self._taints.get(x) if isinstance(x, torch.Tensor) else None
            if taint is not None and taint.node is None:
                return None
            items.append(taint.node if taint is not None else x)
        if in_place and not isinstance(items[0], (_Leaf, _Op)):
            return None  # an in-place op into a tensor whose own values are not tracked
        return _Op(func, spec, items, in_place)

    def _evaluate(self, node, stream: str):
        """``node``'s values with its one random leaf drawn again on ``stream``, or None (several leaves, a
        distribution triton_init does not draw in that dtype)."""
        leaves = node.leaves() if isinstance(node, _Op) else {node}
        if len(leaves) != 1:
            return None
        (leaf,) = leaves
        if leaf.pending.distribution is None:
            return None
        function, params = leaf.pending.distribution
        drawn = torch.empty(leaf.shape, dtype=leaf.dtype, device=leaf.device)
        self._serving += 1
        try:
            try:
                _api(function)(drawn, **dict(params), seed=self.seed, stream=stream)
            except TypeError:
                return None
            memo = {id(leaf): drawn}

            def value(x):
                if not isinstance(x, _Op):
                    return memo[id(x)] if isinstance(x, _Leaf) else x
                if id(x) not in memo:
                    items = [value(i) for i in x.items]
                    if x.in_place:
                        items[0] = items[0].clone()
                    call_args, call_kwargs = tree_unflatten(items, x.spec)
                    with torch.no_grad():
                        memo[id(x)] = x.func(*call_args, **call_kwargs)
                return memo[id(x)]

            return value(node)
        finally:
            self._serving -= 1

    def _computed_into(self, target, node, write) -> bool:
        """Values computed from one random temporary go whole into ``target``: draw it again on the target's
        stream, compute them as the framework did, ``write(values)`` them; False when that cannot be done."""
        if target.region is not None or node is None:
            return False
        values = self._evaluate(node, target.stream)
        if not isinstance(values, torch.Tensor) or math.prod(values.shape) != math.prod(target.logical_shape):
            return False
        (leaf,) = node.leaves() if isinstance(node, _Op) else {node}
        self._serving += 1
        try:
            with torch.no_grad():
                write(values)
        finally:
            self._serving -= 1
        self._record(target, NOT_VERIFIABLE, {
            "reason": f"computed by the framework from a {leaf.pending.function} temporary ({leaf.pending.site}), "
                      "drawn on this tensor's stream"}, "computed")
        return True

    # ---- watching every other op ----------------------------------------------------------------------------

    def _realize(self, tensors) -> None:
        """Fill the unfilled temporaries (``_lazy``) among ``tensors``, now."""
        if self._lazy:
            self._serving += 1
            try:
                self._lazy.realize(tensors)
            finally:
                self._serving -= 1

    def _lazy_call(self, func, args, kwargs):
        """How to run ``func`` when some of its arguments are unfilled temporaries (``_lazy``): a callable
        that fills the ones it reads first, or returns their deferred result (a view of one, a ``cat`` of
        them); None when none of its arguments is unfilled."""
        flat = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        unfilled = [t for t in flat if self._lazy.recipe(t) is not None]
        if not unfilled:
            return None
        name = getattr(func, "__name__", "")
        dest = None if name in _KEEP_VALUES else _writes_into(func, args, kwargs)
        if dest is None and name in _READS_NOTHING:
            return lambda: func(*args, **kwargs)
        if dest is None and name in _CATS and "out" not in kwargs and isinstance(args[0], (list, tuple)):
            made = self._lazy.cat(list(args[0]), args[1] if len(args) > 1 else kwargs.get("dim", 0))
            if made is not None:
                return lambda: made
        if dest is None and name in _VIEWS:
            result = func(*args, **kwargs)
            keys = {storage_key(t) for t in unfilled}
            if all(storage_key(out) in keys for out in tree_flatten(result)[0] if isinstance(out, torch.Tensor)):
                return lambda: result  # views of the unfilled storages: nothing was read
        if dest is not None:
            self._realize([dest])

        def call():
            self._realize(unfilled)
            return func(*args, **kwargs)

        return call

    def _watch(self, func, args, kwargs):
        call = self._lazy_call(func, args, kwargs) if self._lazy else None
        if call is None:
            def call():
                return func(*args, **kwargs)
        if func in _RANDOM_IN_PLACE or func in _RANDOM_FACTORIES or func in _OTHER_RANDOM:
            return self._random_op(func, args, kwargs, call)
        if not self._taints and not self._constructed and not self._recorded:
            return call()
        name = getattr(func, "__name__", "")
        dest = None if name in _KEEP_VALUES else _writes_into(func, args, kwargs)
        if dest is not None and not self._taints and not self._constructed:  # only later writes to record
            result = call()
            if self._index.shares_storage(dest):
                self._later_write(func, dest, args, kwargs, name)
            return result
        if dest is None and not self._taints and not self._constructed:
            return call()
        flat, _ = tree_flatten((args, kwargs))
        taint = self._taints.union(t for t in flat if isinstance(t, torch.Tensor) and t is not dest)
        if dest is None:
            result = call()
            if taint is not None:
                outputs, _ = tree_flatten(result)
                node = self._node(func, args, kwargs) if isinstance(result, torch.Tensor) else None
                moved = _Taint(taint.pending, taint.pure and name in _MOVES, taint.sites, node)
                for out in outputs:
                    if isinstance(out, torch.Tensor):
                        self._taints.set(out, moved)
            return result
        held = self._taints.get(dest)
        if taint is None:  # nothing random is written: deterministic, or arithmetic on a temporary
            node = self._node(func, args, kwargs, in_place=True) if held is not None else None
            result = call()
            if held is not None and name not in _MOVES:
                self._taints.set(dest, _Taint(held.pending, False, held.sites, node))
            if self._created:
                overwrites = name == "copy_" or (name == "__setitem__" and dest[args[1]].numel() == dest.numel())
                op = None if overwrites else (func, tuple(args[1:]), dict(kwargs), call_site())
                self._note_construction(dest, None, op=op)
            elif self._recorded and self._index.shares_storage(dest):
                self._later_write(func, dest, args, kwargs, name)
            return result
        target = self._write_target(func, dest, args)
        if target is not None:
            return self._copy_into_model(func, args, kwargs, target, taint, name, call)
        # a temporary: it now holds what was written, and what it held unless all of it was overwritten
        overwritten = name == "copy_" and len(args) > 1 and dest.shape == args[1].shape
        node = None
        if overwritten:
            source = self._taints.get(args[1])
            node = source.node if source is not None and dest.dtype == args[1].dtype else None
        elif held is not None:
            node = self._node(func, args, kwargs, in_place=True)
        result = call()
        parts = [taint] if overwritten or held is None else [taint, held]
        written = _Taint(tuple(dict.fromkeys(p for t in parts for p in t.pending)),
                         all(t.pure for t in parts) and name in _MOVES,
                         tuple(dict.fromkeys(s for t in parts for s in t.sites)), node)
        self._taints.set(dest, written)
        self._note_construction(dest, written)
        return result

    def _write_target(self, func, dest, args):
        """The model ``Target`` a write into ``dest`` lands in (``dest[index]`` for ``__setitem__``), or None.
        The tensor ops this takes (indexing, views) run as the context's own (``_serving``)."""
        self._serving += 1
        try:
            region = dest
            if getattr(func, "__name__", "") == "__setitem__":
                region = dest[args[1]]
                if not self._index.shares_storage(region) and self._index.shares_storage(dest):
                    return UnmappedView(f"an indexed write into {tuple(dest.shape)} elements of the model")
            try:
                return self._index.locate(region)
            except UnmappedView as err:
                return err
        finally:
            self._serving -= 1

    def _copy_into_model(self, func, args, kwargs, target, taint, name, call):
        distributions = {p.distribution for p in taint.pending}
        pending = taint.pending[0] if taint.pending else None
        reason = None
        if isinstance(target, UnmappedView):
            reason = str(target)
        elif not taint.pure or not taint.pending:
            reason = f"{name} of values computed from random ones ({', '.join(taint.sites)}) into {target.stream}"
        elif len(distributions) > 1:
            reason = f"{name} of values of different inits ({', '.join(taint.sites)}) into {target.stream}"
        elif pending.distribution is None and (target.region is not None or pending.shape != target.logical_shape):
            reason = f"{name} of a {pending.function} temporary {pending.shape} into part of {target.stream}"
        if reason is not None and not isinstance(target, UnmappedView) and not taint.pure:
            flat, spec = tree_flatten((args, kwargs))
            sources = [k for k, t in enumerate(flat) if k > 0 and isinstance(t, torch.Tensor)
                       and self._taints.get(t) is not None]
            outcome = []

            def write(values):
                swapped = [values if k in sources else t for k, t in enumerate(flat)]
                call_args, call_kwargs = tree_unflatten(swapped, spec)
                outcome.append(func(*call_args, **call_kwargs))

            if len(sources) == 1 and self._computed_into(target, self._taints.get(flat[sources[0]]).node, write):
                return outcome[0]
        if reason is not None:
            self._left_to_torch(reason, target)
            return call()
        dest = args[0]
        if name == "copy_" and len(args) > 1 and _broadcasts(args[1], dest):
            result = dest  # what it would copy is overwritten below: skip it (the source may be unfilled)
        else:
            result = call()
        self._serving += 1
        try:
            self._realize([target.local])
            if pending.distribution is None:
                params = dict(pending.args)
                _api(pending.function)(target.tensor, **params, seed=self.seed, stream=target.stream)
                self._record(target, pending.function, params, via="copy")
            else:
                function, params = pending.distribution[0], dict(pending.distribution[1])
                _fill(target.local, target.layout, function, params, self.seed, target.stream)
                self._record(target, function, params, via="copy", region=target.region)
        finally:
            self._serving -= 1
        return result

    def _random_op(self, func, args, kwargs, call):
        dest = args[0] if func in _RANDOM_IN_PLACE else None
        if dest is not None:
            target = self._write_target(func, dest, args)
            if target is not None:
                what = target.stream if not isinstance(target, UnmappedView) else "the model"
                self._left_to_torch(f"{func.__name__} into {what}", target)
                return call()
        result = call()
        known = _RANDOM_FACTORIES.get(func)
        outputs = [dest] if dest is not None else [t for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor)]
        site = call_site()
        for out in outputs:
            if known is None:
                self._taints.set(out, _Taint((), False, (site,)))
            else:
                distribution = (known[0], tuple(known[1].items()))
                pending = _Pending(getattr(func, "__name__", "random"), (), distribution, tuple(out.shape), site)
                self._taints.set(out, _Taint((pending,), True, (site,), _Leaf(pending, out)))
        return result

    def _left_to_torch(self, what: str, target=None) -> None:
        """Random values of torch's go into the model: count them (listed in the log as "not_verifiable"
        where they land in a known tensor), or raise under ``strict``."""
        site = call_site()
        if self.strict:
            raise RuntimeError(f"triton_init.intercept(strict=True): {what} at {site} would leave random values "
                               "of torch's in the model")
        self.left_to_torch[f"{site}: {what}"] = self.left_to_torch.get(f"{site}: {what}", 0) + 1
        if target is not None and not isinstance(target, UnmappedView):
            self._record(target, NOT_VERIFIABLE, {"reason": f"left to torch: {what} at {site}"}, "torch",
                         target.region)


def _broadcasts(source, dest) -> bool:
    """``dest.copy_(source)`` is a valid copy (``source`` broadcasts to ``dest``'s shape)."""
    if not isinstance(source, torch.Tensor):
        return False
    try:
        return torch.broadcast_shapes(source.shape, dest.shape) == dest.shape
    except RuntimeError:
        return False


def _is_scalar(value) -> bool:
    """A Python number or a one-element tensor: an in-place op's argument that can be replayed and recorded."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.device.type != "meta"
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Taints:
    """Taints of live tensors, by object and by storage (a view made where no op was seen shares it); the
    last taint set in each storage also lives as long as the storage (``of_storage``: a parameter made from
    a temporary, ``nn.Parameter(torch.log(a))``, outlives the temporary's tensor object)."""

    def __init__(self):
        self._by_id: dict = {}  # id -> (weakref, taint, storage key)
        self._by_storage: dict = {}  # storage key -> (weakref to the storage, taint)

    def __bool__(self) -> bool:
        return bool(self._by_id)

    @staticmethod
    def _key(tensor):
        local = getattr(tensor, "_local_tensor", tensor)
        if local.device.type == "meta" or local.numel() == 0:
            return None
        return local.device, local.untyped_storage().data_ptr()

    def set(self, tensor, taint: _Taint) -> None:
        import weakref

        ident = id(tensor)
        try:
            ref = weakref.ref(tensor, lambda _, ident=ident, table=self._by_id: table.pop(ident, None))
        except TypeError:
            return
        key = self._key(tensor)
        self._by_id[ident] = (ref, taint, key)
        if key is not None:
            storage = getattr(tensor, "_local_tensor", tensor).untyped_storage()
            table = self._by_storage
            sref = weakref.ref(storage, lambda r, key=key: table.pop(key) if table.get(key, (None,))[0] is r else None)
            table[key] = (sref, taint)

    def discard(self, tensor) -> None:
        self._by_id.pop(id(tensor), None)
        self._by_storage.pop(self._key(tensor), None)

    def of_storage(self, tensor):
        """The last taint set in ``tensor``'s storage while it lives, or None."""
        entry = self._by_storage.get(self._key(tensor))
        return entry[1] if entry is not None and entry[0]() is not None else None

    def get(self, tensor):
        entry = self._by_id.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1]
        key = self._key(tensor)
        if key is None:
            return None
        for ref, taint, other in list(self._by_id.values()):
            if other == key and ref() is not None:
                return taint
        return None

    def union(self, tensors):
        found = [t for t in (self.get(x) for x in tensors) if t is not None]
        if not found:
            return None
        return _Taint(tuple(dict.fromkeys(p for t in found for p in t.pending)), all(t.pure for t in found),
                      tuple(dict.fromkeys(s for t in found for s in t.sites)))


def intercept(model: nn.Module | None, *, seed, strict: bool = False, prefix: str = "") -> Intercept:
    """Serve ``model``'s own init code by triton_init: ``with triton_init.intercept(model, seed=0): init(model)``.

    ``model=None`` is for models that initialize in their constructors: build the model inside the context and
    ``attach`` it before leaving (see ``Intercept.attach``).

    Every init write that lands in a parameter or buffer of ``model`` gets triton_init's values for
    ``seed`` and that tensor's stream: ``prefix`` + its fully qualified name without wrapper components (tied
    tensors under their first name), as ``init_module_`` names it. A call on a whole tensor equals the same
    triton_init function with ``seed=seed, stream=<name>``; a write into a view (a row, a slice, ``.data``,
    a reshaped view, a DTensor's local shard) gets the values of the view's logical indices in the tensor;
    fans come from the logical (global) shape. ``generator=`` arguments are ignored in favour of ``seed``.
    See ``Intercept`` for temporaries and what is left to torch (``strict``). Everything patched is restored
    on exit, also after an exception; one intercept per thread at a time.
    """
    return Intercept(model, seed=seed, strict=strict, prefix=prefix)


__all__ = ["Intercept", "Served", "intercept"]
