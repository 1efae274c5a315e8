"""Recorded writes as functions of the logical index: the values a manifest ``Write`` gives any element.

``replay(write)`` validates a write (by calling its function on a meta tensor) and returns a ``Replay``
whose ``expected`` gives float64 values and the contract's tolerance at int64 logical indices (the exact
math: Box-Muller and the inverse CDF in float64), and whose ``values`` gives the reference's values in an
output dtype (what a CPU init writes). Random inits go through the CPU reference's ``values_at`` with the
(dist, params) the function itself computes (``capture_fills``), so fans, gains and clamps have one source.
The later writes an intercepted framework makes replay here too: ``mul_``/``div_`` (``RescaledReplay``: the
recorded init's values in the dtype, then the scalar op) and ``not_verifiable`` (``NotReplayable``, with the
recorded reason); see ``triton_init.manifest``'s schema.
Also here, below ``manifest`` and ``verify``, which both use them: the init functions a write can name
(``init_functions``), and a tensor's local block of the logical tensor (``_Block``) with the writing of a
region into it.
"""

import dataclasses
import math
import warnings
from dataclasses import dataclass

import torch

from . import contract, reference
from ._dispatch import backend
from ._format import FORMAT_VERSION, NORMAL, UNIFORM, stream_id
from ._layout import logical_block, row_major_strides
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
    sparse_zero_rows,
    variance_scaling_,
    xavier_normal_,
    xavier_uniform_,
    zeros_,
)
from ._orthogonal import orthogonal_
from ._random import capture_fills, normal_, resolve_block, trunc_normal_, uniform_
from ._sharding import is_dtensor
from .reference import call_params

RANDOM = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
          "kaiming_normal_", "variance_scaling_", "lecun_normal_", "lecun_uniform_")
DETERMINISTIC = ("constant_", "ones_", "zeros_", "eye_", "dirac_")
# orthogonal_ needs the QR of the whole matrix: verify_ recomputes it (on the CPU) up to this many elements.
ORTHOGONAL_FULL_LIMIT = 1 << 22
# orthogonal_ values of different QR implementations (LAPACK, cuSOLVER) agree to rounding amplified by the
# matrix's conditioning, not to the stream format's contract: |dx| <= this * gain, plus the output rounding.
ORTHOGONAL_TOLERANCE = 1e-4
# sparse_ needs every row's sort key of a column to place its zeros: verify_ samples from at most this many
# keys' worth of columns per tensor.
SPARSE_KEY_BUDGET = 1 << 22
INDEX_LIMIT = 1 << 63  # logical indices are int64 here
CHUNK = 1 << 20  # positions computed at once: every element checked, a region written


NOT_VERIFIABLE = "not_verifiable"  # a later write whose values no recorded call gives
RESCALES = ("mul_", "div_")  # a later scalar rescale of a recorded write


def init_functions() -> dict:
    """name -> function of every triton_init init function a write can name, and of the rescales
    (``mul_``/``div_``: a recorded init, then the scalar op) a later write can name."""
    functions = (uniform_, normal_, trunc_normal_, xavier_uniform_, xavier_normal_, kaiming_uniform_, kaiming_normal_,
                 variance_scaling_, lecun_normal_, lecun_uniform_, orthogonal_, sparse_, constant_, ones_, zeros_, eye_,
                 dirac_)
    return {fn.__name__: fn for fn in functions} | _RESCALE_FUNCTIONS


def _rescale(op: str):
    def rescale(tensor, other, init, seed=None, stream=None, **args):
        """``init``'s write (its ``args``) into ``tensor``, then ``tensor.<op>(other)`` in its dtype."""
        functions = init_functions()
        if not isinstance(init, str) or init not in functions or init in RESCALES:
            raise ValueError(f"{op} rescales a triton_init init function, got init={init!r}")
        if isinstance(other, bool) or not isinstance(other, (int, float)) or not math.isfinite(other):
            raise ValueError(f"{op} needs a finite number as other, got {other!r}")
        keyed = {} if init in DETERMINISTIC else {"seed": seed, "stream": stream}
        functions[init](tensor, **args, **keyed)
        with torch.no_grad():
            getattr(tensor, op)(other)
        return tensor

    rescale.__name__ = rescale.__qualname__ = op
    return rescale


_RESCALE_FUNCTIONS = {op: _rescale(op) for op in RESCALES}


class NotReplayable(Exception):
    """A write whose values cannot be recomputed: ``verdict`` says how to report it, the message why."""

    def __init__(self, verdict: str, message: str):
        super().__init__(message)
        self.verdict = verdict


def coordinates(logical: torch.Tensor, shape) -> list:
    """The row-major coordinates (int64 tensors, one per dim) of ``logical`` indices in ``shape``."""
    coords, rest = [], logical
    for stride in row_major_strides(shape):
        coords.append(torch.div(rest, stride, rounding_mode="floor"))
        rest = rest - coords[-1] * stride
    return coords


class Replay:
    """One write's values at logical indices; subclasses per kind of init."""

    def __init__(self, write):
        self.write = write
        self.dtype = write.dtype
        self.stream = stream_id(write.stream)

    def expected(self, logical: torch.Tensor):
        """(float64 values, float64 tolerance) at int64 logical indices: the exact values and the contract."""
        raise NotImplementedError

    def values(self, logical: torch.Tensor) -> torch.Tensor:
        """The values at ``logical`` in the write's dtype, as the CPU reference writes them."""
        return self.expected(logical)[0].to(self.dtype)

    def columns_to_sample(self, logical: torch.Tensor, generator) -> torch.Tensor | None:
        """A bool mask restricting a sample to what is affordable to check, or None (everything)."""
        return None


class RandomReplay(Replay):
    def __init__(self, write, dist: int, dist_args: dict):
        super().__init__(write)
        self.dist, self.params = call_params(dist, write.dtype, **dist_args)

    def expected(self, logical):
        exact = reference.values_at(logical, self.dist, self.params, self.write.seed, self.stream, torch.float64)
        if self.dist == UNIFORM:
            return exact, contract.uniform_tolerance(exact, self.dtype)
        return exact, contract.normal_tolerance(exact, self.params[0], self.params[1], self.dtype)

    def values(self, logical):
        return reference.values_at(logical, self.dist, self.params, self.write.seed, self.stream, self.dtype)


class DeterministicReplay(Replay):
    """constant_/ones_/zeros_ (one value), eye_ and dirac_ (ones at index patterns): compared exactly."""

    def expected(self, logical):
        name, shape = self.write.fn, self.write.shape
        if name in ("constant_", "ones_", "zeros_"):
            value = {"ones_": 1.0, "zeros_": 0.0}.get(name, self.write.args.get("val"))
            cast = torch.empty((), dtype=self.dtype).fill_(value).double()
            values = cast.expand(logical.shape).clone()
        else:
            coords = coordinates(logical, shape)
            if name == "eye_":
                ones = coords[0] == coords[1]
            else:  # dirac_: ones at (g * out_per_group + d, d, centre...), i.e. in == out % out_per_group
                out_per_group = shape[0] // self.write.args["groups"]
                ones = coords[1] == coords[0] % out_per_group
                for c, size in zip(coords[2:], shape[2:], strict=True):
                    ones &= c == size // 2
            values = ones.double()
        return values, torch.zeros_like(values)


class OrthogonalReplay(Replay):
    """The whole matrix recomputed on the CPU reference (once), then indexed."""

    def __init__(self, write):
        super().__init__(write)
        if math.prod(write.shape) > ORTHOGONAL_FULL_LIMIT:
            raise NotReplayable("not sample-verifiable",
                                f"orthogonal_ of {math.prod(write.shape):,} elements: its values need the QR of "
                                f"the whole matrix, recomputed only up to {ORTHOGONAL_FULL_LIMIT:,} elements")
        self.gain = abs(float(write.args["gain"]))
        self._full = None

    def full(self) -> torch.Tensor:
        if self._full is None:
            with backend("reference"):
                self._full = orthogonal_(torch.empty(self.write.shape, dtype=self.dtype), **self.write.args,
                                         seed=self.write.seed, stream=self.write.stream).reshape(-1)
        return self._full

    def expected(self, logical):
        values = self.full()[logical].double()
        tolerance = ORTHOGONAL_TOLERANCE * self.gain + contract.ulp(values, self.dtype)
        return values, tolerance

    def values(self, logical):
        return self.full()[logical]


class SparseReplay(Replay):
    """normal(0, std) values of the stream, zero at the rows ``sparse_zero_rows`` gives each column."""

    def __init__(self, write):
        super().__init__(write)
        self.rows, self.cols = write.shape
        self.num_zeros = math.ceil(write.args["sparsity"] * self.rows)
        self.normal = RandomReplay(write, NORMAL, {"mean": 0.0, "std": float(write.args["std"])})

    def columns_to_sample(self, logical, generator):
        budget = max(1, SPARSE_KEY_BUDGET // max(1, self.rows))
        columns = torch.unique(logical % self.cols)
        if columns.numel() <= budget:
            return None
        keep = columns[torch.randperm(columns.numel(), generator=generator)[:budget]]
        # the sample's two ends stay in
        keep = torch.cat([keep, (logical[[0, -1]] % self.cols)])
        return torch.isin(logical % self.cols, keep)

    def _zeros(self, logical) -> torch.Tensor:
        """Which of ``logical`` are zeroed, from the keys of their columns, computed in column runs."""
        row, col = logical // self.cols, logical % self.cols
        zero = torch.zeros_like(logical, dtype=torch.bool)
        if self.num_zeros == 0:
            return zero
        chunk = max(1, SPARSE_KEY_BUDGET // self.rows)
        needed = torch.unique(col).tolist()
        k = 0
        while k < len(needed):
            c0 = needed[k]
            c1 = min(self.cols, c0 + chunk)
            zero_rows = sparse_zero_rows(c0, c1 - c0, self.rows, self.cols, self.num_zeros, self.write.seed,
                                         self.stream, "cpu")
            mask = torch.zeros((c1 - c0, self.rows), dtype=torch.bool)
            mask.scatter_(1, zero_rows, True)
            inside = (col >= c0) & (col < c1)
            zero[inside] = mask[col[inside] - c0, row[inside]]
            while k < len(needed) and needed[k] < c1:
                k += 1
        return zero

    def expected(self, logical):
        values, tolerance = self.normal.expected(logical)
        zero = self._zeros(logical)
        return values.masked_fill(zero, 0.0), tolerance.masked_fill(zero, 0.0)

    def values(self, logical):
        return self.normal.values(logical).masked_fill(self._zeros(logical), 0.0)


class RescaledReplay(Replay):
    """A recorded init's values in the write's dtype, then ``mul_``/``div_`` by a scalar in that dtype (what
    ``tensor.mul_(other)`` computes); the tolerance is the init's, scaled, plus one unit of the result."""

    def __init__(self, write):
        super().__init__(write)
        args = dict(write.args)
        self.other, init = args.pop("other", None), args.pop("init", None)
        if isinstance(self.other, bool) or not isinstance(self.other, (int, float)) or not math.isfinite(self.other):
            raise NotReplayable("invalid entry", f"{write.fn} needs a finite number as other, got {self.other!r}")
        if not isinstance(init, str) or init in RESCALES:
            raise NotReplayable("invalid entry", f"{write.fn} rescales a triton_init init function, got {init!r}")
        self.base = replay(dataclasses.replace(write, fn=init, args=args))
        self.factor = abs(self.other) if write.fn == "mul_" else 1.0 / abs(self.other) if self.other else math.inf

    def _apply(self, values: torch.Tensor) -> torch.Tensor:
        return getattr(values, self.write.fn)(self.other)

    def expected(self, logical):
        values = self.values(logical).double()
        tolerance = self.base.expected(logical)[1] * self.factor + contract.ulp(values, self.dtype)
        return values, tolerance

    def values(self, logical):
        return self._apply(self.base.values(logical).to(self.dtype))


def replay(write) -> Replay:
    """A ``Replay`` of ``write``; raises ``NotReplayable`` for writes whose values cannot be recomputed
    (a user callable, another format version, a too large orthogonal_) or whose arguments are invalid."""
    if write.format_version != FORMAT_VERSION:
        raise NotReplayable("not verifiable", f"written in stream format v{write.format_version}; this library "
                                              f"implements v{FORMAT_VERSION}")
    if write.args is None:
        raise NotReplayable("not verifiable", f"written by {write.fn}, a user callable: the manifest records its "
                                              "name, not its code or arguments")
    if write.fn == NOT_VERIFIABLE:
        reason = write.args.get("reason", "no reason given")
        raise NotReplayable("not verifiable", f"written by the framework: {reason}")
    if write.fn in RESCALES:
        return RescaledReplay(write)
    functions = init_functions()
    if write.fn not in functions:
        raise NotReplayable("invalid entry", f"{write.fn!r} is not a triton_init init function")
    if math.prod(write.shape) >= INDEX_LIMIT:
        raise NotReplayable("not verifiable", f"shape {write.shape} has 2**63 elements or more")
    meta = torch.empty(write.shape, dtype=write.dtype, device="meta")
    keyed = {"seed": write.seed, "stream": write.stream} if write.fn not in DETERMINISTIC else {}
    try:
        with capture_fills() as calls, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kaiming's warning for zero-size shapes was given at init
            functions[write.fn](meta, **write.args, **keyed)  # validates every argument; writes nothing
    except (TypeError, ValueError) as exc:
        raise NotReplayable("invalid entry", f"{write.fn}{tuple(write.shape)} with {write.args}: {exc}") from None
    if write.fn in RANDOM:
        return RandomReplay(write, *calls[0]) if calls else Replay(write)  # no fill: a zero-size shape
    if write.fn == "orthogonal_":
        return OrthogonalReplay(write)
    if write.fn == "sparse_":
        return SparseReplay(write)
    return DeterministicReplay(write)


# ---- the local block of a target tensor ---------------------------------------------------------------


@dataclass
class _Block:
    """``local`` holds the logical indices of the block at ``offset`` in ``shape``, a shape whose row-major
    order is the logical order (the recorded shape, or (numel,) for a flat segment)."""

    local: torch.Tensor
    shape: tuple
    offset: tuple | None  # None: this rank holds no part of it

    @property
    def numel(self) -> int:
        return self.local.numel() if self.offset is not None else 0

    def logical(self, positions: torch.Tensor) -> torch.Tensor:
        """Logical indices of local row-major ``positions`` (int64, CPU)."""
        local_coords = coordinates(positions, tuple(self.local.shape))
        logical = torch.zeros_like(positions)
        for c, o, stride in zip(local_coords, self.offset, row_major_strides(self.shape), strict=True):
            logical += (c + o) * stride
        return logical

    def logical_at(self, position: int) -> int:
        """The logical index of one local position, in Python ints."""
        out, rest = 0, position
        for size, o, stride in zip(reversed(self.local.shape), reversed(self.offset),
                                   reversed(row_major_strides(self.shape)), strict=True):
            rest, c = divmod(rest, size)
            out += (c + o) * stride
        return out

    def read(self, positions: torch.Tensor) -> torch.Tensor:
        """The local elements at ``positions``, on the CPU: only those elements leave the device."""
        if self.local.dim() == 0:
            return self.local.reshape(1)[positions.to(self.local.device)].cpu()
        coords = tuple(c.to(self.local.device) for c in coordinates(positions, tuple(self.local.shape)))
        return self.local.detach()[coords].cpu()


def _block_of(tensor, shape, offset) -> _Block:
    """The local block of ``tensor``: a DTensor's shard (composed with ``offset`` if given), or the plain
    tensor at ``offset`` (None: the whole) of the logical ``shape``. Validates that it fits."""
    if is_dtensor(tensor):
        local, global_shape, block_offset = resolve_block(tensor, None if offset is None else shape, offset)
        if block_offset is None:  # this rank is outside the mesh: it holds nothing
            return _Block(local, tuple(global_shape), None)
    else:
        local, global_shape, block_offset = tensor, shape, offset
    global_shape, block_offset = logical_block(local.shape, global_shape, block_offset)
    return _Block(local, tuple(global_shape), tuple(block_offset))


def region_indices(region, chunk: int = CHUNK):
    """The logical indices of a manifest ``Region``, in chunks (int64 tensors)."""
    dims = region.dims()
    for start in range(0, region.numel, chunk):
        k = torch.arange(start, min(region.numel, start + chunk), dtype=torch.int64)
        logical = torch.full_like(k, region.offset)
        for (_, stride), c in zip(dims, coordinates(k, tuple(size for size, _ in dims)), strict=True):
            logical += c * stride
        yield logical


def _write_region(block: _Block, region, replay_) -> None:
    """Write ``replay_``'s values at the region's logical indices that fall inside ``block``."""
    lo = list(block.offset)
    hi = [o + s for o, s in zip(block.offset, block.local.shape, strict=True)]
    for logical in region_indices(region, CHUNK):
        coords = coordinates(logical, block.shape)
        inside = torch.ones_like(logical, dtype=torch.bool)
        for c, a, b in zip(coords, lo, hi, strict=True):
            inside &= (c >= a) & (c < b)
        if not bool(inside.any()):
            continue
        local_coords = tuple((c[inside] - a).to(block.local.device) for c, a in zip(coords, lo, strict=True))
        block.local[local_coords] = replay_.values(logical[inside]).to(block.local.device)
