"""The init manifest: which init call wrote which tensor, in order, as a small JSON file a checkpoint carries.

A ``Manifest`` is an ordered list of ``Write`` records, one per init call applied to a tensor (or to a
region of it: the padding row zeroed after an embedding's normal_), plus aliases (tied tensors). Each
write holds exactly what is needed to recompute any element alone: the tensor's stream, logical shape and
dtype, the triton_init function's name and its arguments after defaults, the seed and the stream-format
version. ``init_module_``, ``materialize_`` and ``init_flat_`` append to one when given ``manifest=``;
``Manifest.record`` takes a write's fields directly (an interception log converts entry by entry).
``triton_init.verify_`` checks tensors against it and ``triton_init.regenerate_`` rebuilds any block.

JSON schema (``manifest_version`` 1)::

    {"kind": "triton_init.manifest", "manifest_version": 1, "format_version": 1, "library": "0.1.0",
     "aliases": {"lm_head.weight": "tok_embeddings.weight"},           # name -> recorded stream
     "writes": [                                                        # in the order applied
       {"stream": "tok_embeddings.weight",      # str (a name) or int in [0, 2^64)
        "shape": [8192, 256],                   # the logical (global) shape
        "dtype": "bfloat16",                    # torch dtype name
        "fn": "normal_",                        # a triton_init function, or a user callable's qualified name
        "args": {"mean": 0.0, "std": 1.0},      # every argument after defaults (not tensor/seed/stream/
                                                #   generator/global_*); null: a user callable, not recordable
        "seed": 0, "format": 1,
        "region": {"offset": 768, "shape": [256], "strides": [1]}},   # optional; absent: the whole tensor
       ...]}

Later writes (what a framework does to a tensor after its init, recorded by ``intercept``'s log) use
three more ``fn`` values, in the same schema::

       {"fn": "mul_", "args": {"other": 0.5, "init": "trunc_normal_", "mean": 0.0, "std": 0.02,
                               "a": -2.0, "b": 2.0}, ...}            # or "div_"
       {"fn": "not_verifiable", "args": {"reason": "copy_ at model.py:12 (init): ..."}, ...}

``mul_``/``div_``: the write ``{"fn": args["init"], "args": the other args}`` (same stream, shape, dtype,
seed, region), then multiplied or divided by the scalar ``args["other"]`` in the tensor's dtype, as
``tensor.mul_(other)`` computes it (a rescale after an init: BEiT's ``div_(sqrt(2 * layer))``).
``not_verifiable``: values that no recorded call gives (a copy of values the framework computed, arithmetic
other than a scalar rescale, torch's own random values); ``args["reason"]`` says which and where. The
indices it covers are reported "not verifiable", never "mismatch", and cannot be regenerated.

A region is the set of logical row-major indices ``offset + sum(k_d * strides_d)``, ``0 <= k_d < shape_d``:
any view of the tensor (a row, a column, a slice with steps, a transpose). The values a region gets are
the call's values at those logical indices of the whole tensor. Non-finite float arguments are written as
the strings "inf", "-inf" and "nan".
"""

import functools
import inspect
import json
import math
from dataclasses import dataclass, field

import torch

from ._format import FORMAT_VERSION, resolve_seed, stream_id
from ._layout import _as_int_tuple
from ._replay import DETERMINISTIC, NotReplayable, _block_of, _write_region, init_functions, replay
from ._spec import Init
from ._validate import STORED_DTYPES
from ._version import __version__

MANIFEST_KIND = "triton_init.manifest"
MANIFEST_VERSION = 1
# Arguments that say where and with which key, not what: the write's own fields hold them.
NOT_ARGS = ("tensor", "generator", "seed", "stream", "global_shape", "global_offset")
NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
NUMEL_LIMIT = 1 << 63  # a tensor's elements (and so every dim, offset and stride) are indexed in int64
TEXT_PROBE = 4096  # bytes of a manifest file read before deciding whether it is one


class ManifestError(ValueError):
    """A manifest that cannot be read or does not describe valid writes."""


def _short(value) -> str:
    """``repr(value)``, cut short: a manifest's numbers may have thousands of digits."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]} ({len(text)} characters)"


def _json_value(value, where: str):
    """An argument as a JSON value: None, bool, int, str, or a float (non-finite ones as strings)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, int):
        if not -2 ** 1024 < value < 2 ** 1024:  # beyond every float: no init argument can be one
            raise ValueError(f"{where}: {_short(value)} is beyond the float64 range")
        return int(value)
    try:
        as_float = float(value)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{where}: {value!r} is not a number, a str, a bool or None: it cannot be recorded") from None
    return as_float if math.isfinite(as_float) else ("nan" if math.isnan(as_float) else
                                                     ("inf" if as_float > 0 else "-inf"))


def _arg_value(value):
    return NON_FINITE[value] if isinstance(value, str) and value in NON_FINITE else value


def call_of(init):
    """(fn, args) of an init: an ``Init``, a triton_init function, or a ``functools.partial`` of one.

    Anything else (a user's own callable) gives (its qualified name, None): its arguments and code are not
    recordable, so its writes can be neither verified nor regenerated from the manifest.
    """
    if isinstance(init, Init):
        if init.kind == "uniform":
            return "uniform_", {"a": init.a, "b": init.b}
        if init.kind == "normal":
            return "normal_", {"mean": init.mean, "std": init.std}
        if init.kind == "trunc_normal":
            return "trunc_normal_", {"mean": init.mean, "std": init.std, "a": init.a, "b": init.b}
        return "constant_", {"val": init.value}
    fn, args, keywords = init, (), {}
    while isinstance(fn, functools.partial):
        args, keywords = fn.args + args, {**fn.keywords, **keywords}
        fn = fn.func
    name = getattr(fn, "__name__", None)
    if init_functions().get(name) is not fn:
        module = getattr(fn, "__module__", None) or type(fn).__module__
        qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        return f"{module}.{qualname}", None
    bound = inspect.signature(fn).bind_partial(None, *args, **keywords)
    bound.apply_defaults()
    return name, {k: v for k, v in bound.arguments.items() if k not in NOT_ARGS}


@dataclass(frozen=True)
class Region:
    """Logical row-major indices ``offset + sum(k_d * strides_d)``, ``0 <= k_d < shape_d``: a view's elements.

    Strides must nest (sorted from the largest, each exceeds the span of the smaller ones), as they do for
    every view of a row-major tensor, so that each index has one decomposition.
    """

    offset: int
    shape: tuple
    strides: tuple

    def __post_init__(self):
        object.__setattr__(self, "shape", _as_int_tuple(self.shape, "region shape"))
        object.__setattr__(self, "strides", _as_int_tuple(self.strides, "region strides"))
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise ValueError(f"region offset must be a non-negative int, got {self.offset!r}")
        if len(self.shape) != len(self.strides):
            raise ValueError(f"region shape {self.shape} and strides {self.strides} differ in length")
        if any(s < 0 for s in self.shape) or any(s < 0 for s in self.strides):
            raise ValueError(f"region shape {self.shape} and strides {self.strides} must be non-negative")
        if self.numel <= 1:  # one canonical form per set of indices: no dim steps anywhere
            object.__setattr__(self, "strides", (0,) * len(self.shape))
        else:
            object.__setattr__(self, "strides", tuple(0 if n == 1 else s
                                                      for n, s in zip(self.shape, self.strides, strict=True)))
        span = 0
        for size, stride in sorted(self.dims(), key=lambda d: d[1]):
            if stride <= span:
                raise ValueError(f"region strides {self.strides} with shape {self.shape} overlap: not a view of "
                                 "distinct elements")
            span += (size - 1) * stride

    def dims(self) -> list:
        """(size, stride) of the dims that index more than one element."""
        return [(n, s) for n, s in zip(self.shape, self.strides, strict=True) if n > 1]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def last(self) -> int:
        """The largest logical index in the region (the offset for an empty one)."""
        return self.offset + sum((n - 1) * s for n, s in self.dims()) if self.numel else self.offset

    @classmethod
    def of_view(cls, view: torch.Tensor, base: torch.Tensor) -> "Region":
        """The region a view of the contiguous tensor ``base`` (e.g. ``base[3]``, ``base[:, 2:5]``) covers."""
        if not base.is_contiguous():
            raise ValueError("Region.of_view needs a contiguous base tensor (memory order = logical order)")
        return cls(view.storage_offset() - base.storage_offset(), tuple(view.shape), tuple(view.stride()))

    @classmethod
    def from_indices(cls, indices: torch.Tensor) -> "Region":
        """The region whose elements are ``indices``, an integer tensor shaped like the view that holds
        them (element k of the view at logical index indices[k]). Raises ValueError unless they are
        ``offset + sum(k_d * strides_d)`` for some strides, as every view's indices are."""
        indices = indices.to(torch.int64).cpu()
        if indices.numel() == 0:
            return cls(0, tuple(indices.shape), (0,) * indices.dim())
        offset = int(indices[(0,) * indices.dim()])
        strides = []
        for d, size in enumerate(indices.shape):
            step = [0] * indices.dim()
            step[d] = 1 if size > 1 else 0
            strides.append(int(indices[tuple(step)]) - offset if size > 1 else 0)
        region = cls(offset, tuple(indices.shape), tuple(strides))
        grid = torch.full(indices.shape, offset, dtype=torch.int64)
        for d, stride in enumerate(strides):
            shape = [1] * indices.dim()
            shape[d] = indices.shape[d]
            grid = grid + torch.arange(indices.shape[d]).reshape(shape) * stride
        if not torch.equal(grid, indices):
            raise ValueError("the indices are not the elements of a view (offset + sum(k_d * strides_d))")
        return region

    def contains(self, logical: torch.Tensor) -> torch.Tensor:
        """A bool tensor: which of the int64 ``logical`` indices lie in the region."""
        if self.numel == 0:
            return torch.zeros_like(logical, dtype=torch.bool)
        rest = logical - self.offset
        inside = rest >= 0
        for size, stride in sorted(self.dims(), key=lambda d: -d[1]):
            k = torch.div(rest, stride, rounding_mode="floor")
            inside &= k < size
            rest = rest - k * stride
        return inside & (rest == 0)

    def to_json(self) -> dict:
        return {"offset": self.offset, "shape": list(self.shape), "strides": list(self.strides)}


@dataclass(frozen=True)
class Write:
    """One recorded init write: the call that produced a tensor's values (or a region's)."""

    stream: object  # str or int, as given to the init
    shape: tuple  # the logical (global) shape
    dtype: torch.dtype
    fn: str  # a triton_init function's name, or a user callable's qualified name
    args: dict | None  # arguments after defaults; None where the call is not recordable
    seed: int
    region: Region | None = None  # None: the whole tensor
    format_version: int = FORMAT_VERSION

    @property
    def replayable(self) -> bool:
        """Whether the write's values can be recomputed: a triton_init function (or a rescale of one) with
        recorded arguments; "not_verifiable" and user callables are not."""
        return self.args is not None and self.fn in init_functions()

    def to_json(self) -> dict:
        out = {"stream": self.stream, "shape": list(self.shape), "dtype": str(self.dtype).removeprefix("torch."),
               "fn": self.fn, "args": None if self.args is None else
               {k: _json_value(v, f"{self.stream}: argument {k}") for k, v in self.args.items()},
               "seed": self.seed, "format": self.format_version}
        if self.region is not None:
            out["region"] = self.region.to_json()
        return out


@dataclass(frozen=True)
class TensorRecord:
    """Every recorded write of one tensor, in order: what ``regenerate_`` replays and ``verify_`` checks."""

    stream: object
    shape: tuple
    dtype: torch.dtype
    writes: tuple

    @property
    def name(self) -> str:
        return self.stream if isinstance(self.stream, str) else f"stream {self.stream}"


def _dtype(name, where: str) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ManifestError(f"{where}: unknown dtype {_short(name)}")
    if dtype not in STORED_DTYPES:
        raise ManifestError(f"{where}: dtype {name} is not one a triton_init init writes (float32, float16, bfloat16, "
                            "float64; int and bool for buffers)")
    return dtype


def _check_shape(shape: tuple, where: str) -> None:
    """Non-negative dims of fewer than 2^63 elements in all (logical indices are int64)."""
    if any(s < 0 for s in shape):
        raise ValueError(f"{where} must be non-negative, got {_short(shape)}")
    if any(s >= NUMEL_LIMIT for s in shape) or (0 not in shape and math.prod(shape) >= NUMEL_LIMIT):
        raise ValueError(f"{where} {_short(shape)} has 2**63 elements or more: past int64 indexing")


def _write_from_json(item, k: int) -> Write:
    where = f"writes[{k}]"
    if not isinstance(item, dict):
        raise ManifestError(f"{where} must be an object, got {type(item).__name__}")
    missing = [key for key in ("stream", "shape", "dtype", "fn", "args", "seed") if key not in item]
    if missing:
        raise ManifestError(f"{where} lacks {', '.join(missing)}")
    stream, args = item["stream"], item["args"]
    try:
        if isinstance(stream, int) and not isinstance(stream, bool) and not 0 <= stream < 1 << 64:
            raise ValueError(f"{where}.stream must be a str or an int in [0, 2**64), got {_short(stream)}")
        stream_id(stream)
        shape = _as_int_tuple(item["shape"], f"{where}.shape")
        _check_shape(shape, f"{where}.shape")
        seed = item["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 64:
            raise ValueError(f"{where}.seed must be an int in [0, 2**64), got {_short(seed)}")
        if not isinstance(item["fn"], str):
            raise ValueError(f"{where}.fn must be a str, got {_short(item['fn'])}")
        if args is not None and not isinstance(args, dict):
            raise ValueError(f"{where}.args must be an object or null, got {_short(args)}")
        region = item.get("region")
        if region is not None:
            if not isinstance(region, dict) or set(region) != {"offset", "shape", "strides"}:
                raise ValueError(f"{where}.region must be {{offset, shape, strides}}, got {_short(region)}")
            for key in ("offset", "shape", "strides"):
                values = _as_int_tuple(region[key], f"{where}.region.{key}")
                if not all(0 <= v < NUMEL_LIMIT for v in values):
                    raise ValueError(f"{where}.region.{key} must lie in [0, 2**63), got {_short(values)}")
            region = Region(region["offset"], region["shape"], region["strides"])
            if region.numel and region.last >= math.prod(shape):
                raise ValueError(f"{where}.region reaches index {region.last} of a tensor of shape {shape}")
        version = item.get("format", FORMAT_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 1 << 31:
            raise ValueError(f"{where}.format must be a positive int, got {_short(version)}")
    except (TypeError, ValueError) as exc:
        raise ManifestError(str(exc)) from None
    return Write(stream, shape, _dtype(item["dtype"], f"{where}.dtype"), item["fn"],
                 None if args is None else {k: _arg_value(v) for k, v in args.items()}, seed, region, version)


@dataclass
class Manifest:
    """Ordered init writes of a model's tensors, and aliases of tied tensors; see the module docstring."""

    writes: list = field(default_factory=list)
    aliases: dict = field(default_factory=dict)  # name -> the stream it shares its tensor with

    def record(self, stream, shape, dtype, fn: str, args, seed: int, region=None, *,
               format_version: int = FORMAT_VERSION) -> Write:
        """Append one write. ``region``: None (the whole tensor), a ``Region`` (or any object with ``offset``,
        ``shape`` or ``sizes``, and ``strides``), its JSON form ``{"offset", "shape", "strides"}``, or the
        logical indices of the view written (an integer tensor shaped like the view). A write equal to the
        tensor's last one is not repeated.

        Raises ValueError if ``stream`` was recorded with another shape or dtype.
        """
        stream = stream if isinstance(stream, str) else stream_id(stream)  # an int stream as a plain int
        shape = _as_int_tuple(shape, "shape")
        _check_shape(shape, "shape")
        dtype = _dtype(dtype, "dtype") if isinstance(dtype, str) else dtype
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype or its name, got {dtype!r}")
        if not isinstance(fn, str):
            raise TypeError(f"fn must be a function name (str), got {type(fn).__name__}")
        seed = resolve_seed(seed, None)
        if isinstance(region, dict):
            region = Region(**region)
        elif isinstance(region, torch.Tensor):
            region = Region.from_indices(region)
        elif region is not None and not isinstance(region, Region) and hasattr(region, "strides"):
            # any region-like record: offset, shape (or sizes) and strides of logical indices
            region = Region(region.offset, getattr(region, "shape", None) or region.sizes, region.strides)
        if region is not None and not isinstance(region, Region):
            raise TypeError(f"region must be None, a Region, a dict or an index tensor, got {type(region).__name__}")
        if region is not None and region.numel and region.last >= math.prod(shape):
            raise ValueError(f"region reaches logical index {region.last} of a tensor of shape {shape}")
        if args is not None:
            args = dict(args)
            for name, value in args.items():
                _json_value(value, f"{stream}: argument {name}")
        write = Write(stream, shape, dtype, fn, args, seed, region, format_version)
        grouped = self._grouped()
        previous = grouped.get(stream)
        if previous:
            if (previous[0].shape, previous[0].dtype) != (shape, dtype):
                raise ValueError(f"{stream!r} is recorded with shape {previous[0].shape} and {previous[0].dtype}, "
                                 f"now {shape} and {dtype}: one stream is one tensor")
            if previous[-1] == write:
                return write
        self.writes.append(write)
        grouped.setdefault(stream, []).append(write)
        self.__dict__["_by_stream"][0] = len(self.writes)
        return write

    def record_init(self, stream, shape, dtype, init, seed: int, region=None) -> Write:
        """Append the write of ``init`` (an ``Init``, a triton_init function or a partial of one; any other
        callable is recorded by name as not replayable)."""
        fn, args = call_of(init)
        return self.record(stream, shape, dtype, fn, args, seed, region)

    def alias(self, name: str, stream) -> None:
        """Record that ``name`` is the same tensor as the recorded ``stream`` (tied weights)."""
        self.aliases[name] = stream

    def tensors(self) -> dict:
        """name -> ``TensorRecord`` of every recorded tensor, in the order of their first write."""
        return self._index()[0]

    def _grouped(self) -> dict:
        """stream -> its writes, kept in step with ``writes`` (rebuilt if the list was changed directly)."""
        cached = self.__dict__.get("_by_stream")
        if cached is None or cached[0] != len(self.writes):
            grouped: dict = {}
            for write in self.writes:
                grouped.setdefault(write.stream, []).append(write)
            cached = self.__dict__["_by_stream"] = [len(self.writes), grouped]
        return cached[1]

    def _index(self):
        """(name -> record, stream id -> record) of the current writes."""
        cached = self.__dict__.get("_records")
        if cached is None or cached[0] != len(self.writes):
            records = [TensorRecord(s, ws[0].shape, ws[0].dtype, tuple(ws)) for s, ws in self._grouped().items()]
            cached = (len(self.writes), {r.name: r for r in records}, {stream_id(r.stream): r for r in records})
            self.__dict__["_records"] = cached
        return cached[1], cached[2]

    def __getitem__(self, name) -> TensorRecord:
        """The record of a tensor by name (a str stream or an alias) or by stream (an int)."""
        record = self.find(name)
        if record is None:
            raise KeyError(f"no tensor {name!r} in the manifest")
        return record

    def find(self, name):
        """Like ``manifest[name]``, or None."""
        by_name, by_id = self._index()
        name = self.aliases.get(name, name)
        if isinstance(name, str) and name in by_name:
            return by_name[name]
        try:
            return by_id.get(stream_id(name))
        except (TypeError, ValueError):
            return None

    def __contains__(self, name) -> bool:
        return self.find(name) is not None

    def __len__(self) -> int:
        return len(self.tensors())

    def __iter__(self):
        return iter(self.tensors().values())

    def regenerate_(self, tensor, name, *, global_offset=None):
        """``triton_init.regenerate_(tensor, self[name], global_offset=global_offset)``."""
        return regenerate_(tensor, self[name], global_offset=global_offset)

    # ---- JSON ------------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {"kind": MANIFEST_KIND, "manifest_version": MANIFEST_VERSION, "format_version": FORMAT_VERSION,
                "library": __version__, "aliases": dict(self.aliases), "writes": [w.to_json() for w in self.writes]}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), allow_nan=False, separators=(",", ":")) + "\n"

    def save(self, path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.dumps())

    @classmethod
    def from_json(cls, data) -> "Manifest":
        if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
            raise ManifestError(f"not a triton_init manifest (no \"kind\": \"{MANIFEST_KIND}\")")
        if data.get("manifest_version") != MANIFEST_VERSION:
            raise ManifestError(f"manifest version {data.get('manifest_version')!r}; this library reads version "
                                f"{MANIFEST_VERSION}")
        writes, aliases = data.get("writes"), data.get("aliases", {})
        if not isinstance(writes, list):
            raise ManifestError("\"writes\" must be a list")
        if not isinstance(aliases, dict) or not all(isinstance(k, str) for k in aliases):
            raise ManifestError("\"aliases\" must map names to streams")
        for name, stream in aliases.items():
            try:
                stream_id(stream)
            except (TypeError, ValueError):
                raise ManifestError(f"aliases[{name!r}] must be a str or an int in [0, 2**64), got "
                                    f"{_short(stream)}") from None
        manifest = cls(aliases=dict(aliases))
        for k, item in enumerate(writes):
            write = _write_from_json(item, k)
            try:
                manifest.record(write.stream, write.shape, write.dtype, write.fn, write.args, write.seed,
                                write.region, format_version=write.format_version)
            except (TypeError, ValueError) as exc:
                raise ManifestError(f"writes[{k}]: {exc}") from None
        return manifest

    @classmethod
    def loads(cls, text: str) -> "Manifest":
        """Parse a manifest's JSON text; anything else raises ``ManifestError`` (one line)."""
        if not text.strip():
            raise ManifestError("not a triton_init manifest: empty")
        if not text.lstrip().startswith("{"):
            raise ManifestError("not a triton_init manifest: not a JSON object")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"not a triton_init manifest: not valid JSON (truncated or corrupt?): {exc}") \
                from None
        except RecursionError:
            raise ManifestError("not a triton_init manifest: JSON nested too deeply to parse") from None
        except ValueError as exc:  # an int of more digits than Python converts (4300 by default)
            raise ManifestError(f"not a triton_init manifest: a number in it is too large ({exc})") from None
        return cls.from_json(data)

    @classmethod
    def load(cls, path) -> "Manifest":
        """Read a manifest file; a missing, unreadable or invalid file raises ``ManifestError`` (an
        ``OSError`` for a missing file), with the path in the message. A file that does not start like a
        JSON object (a checkpoint, random bytes) is refused after reading its first bytes only."""
        try:
            with open(path, "rb") as f:
                head = f.read(TEXT_PROBE)
                if not head.lstrip().startswith(b"{"):
                    what = "empty" if not head.strip() else "not a JSON object" if _is_text(head) else "not text"
                    raise ManifestError(f"{path} is not a triton_init manifest: {what}")
                text = (head + f.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError(f"{path} is not a triton_init manifest: not UTF-8 text") from None
        try:
            return cls.loads(text)
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from None


def regenerate_(tensor, record, *, global_offset=None):
    """Refill ``tensor`` with the values the manifest gives it, replaying every recorded write in order.

    ``record`` is a ``TensorRecord`` (``manifest[name]``) or a single ``Write``. ``tensor`` is the whole
    tensor, a block of it at ``global_offset`` (a lost shard), or a DTensor (its local shard). Whole-tensor
    writes run the recorded triton_init function on the block (the same values as the original call on
    the same backend); region writes (a padding row) are recomputed at the region's indices inside the
    block. Raises before writing anything if a write cannot be replayed (a user callable) or the dtype
    differs from the recorded one. Returns ``tensor``.
    """
    if isinstance(record, Write):
        record = TensorRecord(record.stream, record.shape, record.dtype, (record,))
    if not isinstance(record, TensorRecord):
        raise TypeError(f"record must be a TensorRecord (manifest[name]) or a Write, got {type(record).__name__}")
    block = _block_of(tensor, record.shape, global_offset)
    if block.shape != record.shape:
        raise ValueError(f"{record.name}: the tensor stands for shape {block.shape}, the manifest records "
                         f"{record.shape}")
    local = block.local
    if local.dtype != record.dtype:
        raise TypeError(f"{record.name}: the tensor is {local.dtype}, the manifest records {record.dtype}")
    replays = []
    for write in record.writes:
        try:
            replays.append(replay(write))
        except NotReplayable as exc:
            raise ValueError(f"cannot regenerate {record.name}: {exc}") from None
    if block.offset is None or local.device.type == "meta" or local.numel() == 0:
        return tensor
    functions = init_functions()
    with torch.no_grad():
        for write, replay_ in zip(record.writes, replays, strict=True):
            if write.region is None:
                keyed = {} if write.fn in DETERMINISTIC else {"seed": write.seed, "stream": write.stream}
                functions[write.fn](local, **write.args, **keyed, global_shape=block.shape,
                                    global_offset=block.offset)
            else:
                _write_region(block, write.region, replay_)
    return tensor


def _is_text(head: bytes) -> bool:
    """Whether the first bytes of a file are UTF-8 text (a multi-byte character may be cut at the end)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and b"\0" not in head
    return b"\0" not in head
