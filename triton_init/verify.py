"""``verify_`` and ``regenerate_``: check tensors against an init manifest element by element, rebuild any block.

Every element of a recorded tensor is a function of its writes (function, arguments, seed, stream) and
its logical index. ``verify_`` recomputes a random sample of each tensor's local elements (plus both ends,
and indices past 2^32 where the tensor reaches them) on the CPU reference and compares them within the
stream-format contract (``triton_init.contract``). It reads only the sampled elements of each local block
(a tensor, a DTensor's shard, a flat buffer's segment) on whatever device holds it, with no collective.
``regenerate_`` (defined in ``manifest``, under ``Manifest.regenerate_``, and re-exported here) replays a
tensor's writes, in order, into any block of it.
"""

import functools
import math
import os
from dataclasses import dataclass, field

import torch

from . import _fastcheck
from ._dcp_chunks import DCPCheckpoint, StoredChunks, is_dcp_checkpoint
from ._format import stream_id
from ._replay import CHUNK, DETERMINISTIC, NotReplayable, _Block, _block_of, coordinates, replay
from ._sharding import is_dtensor
from ._validate import STORED_DTYPES
from .contract import contract_units
from .manifest import Manifest, TensorRecord, regenerate_  # noqa: F401  (regenerate_ re-exported)
from .streams import stream_name

OK = "ok"
MISMATCH = "mismatch"
MISSING = "missing"
SHAPE = "shape mismatch"
DTYPE = "dtype mismatch"
INVALID = "invalid entry"
NOT_VERIFIABLE = "not verifiable"
NOT_SAMPLE_VERIFIABLE = "not sample-verifiable"
UNRECORDED = "unrecorded"
FAILURES = (MISMATCH, MISSING, SHAPE, DTYPE, INVALID)
UNVERIFIED = (NOT_VERIFIABLE, NOT_SAMPLE_VERIFIABLE)
PAST_2_32 = 8  # consecutive elements checked from the first logical index >= 2^32 (two Philox groups)
IDENTIFY_LIMIT = 16  # mismatching tensors for which verify_ looks for the recorded tensor their values match


class VerificationError(Exception):
    """Raised by ``verify_(..., raise_on_failure=True)``; ``report`` holds the whole ``VerifyReport``."""

    def __init__(self, report):
        lines = [f"{t.name}: {t.verdict}{': ' + t.detail if t.detail else ''}"
                 for t in report.failures + report.unverified]
        more = [f"... and {len(lines) - 10} more"] if len(lines) > 10 else []
        super().__init__("\n".join([report.summary()] + lines[:10] + more))
        self.report = report


@dataclass
class TensorReport:
    """The verdict on one tensor. ``max_error`` is in contract units: at most 1 meets the contract (0 or inf
    for deterministic inits, which must match exactly), over the elements compared with their float64 values
    (``exact`` of them when every element is checked: the others equal the executor's values bit for bit);
    None where none was."""

    name: str
    stream: object
    verdict: str
    checked: int = 0
    max_error: float | None = None
    mismatches: int = 0
    first_mismatch: dict | None = None  # {"index", "coords", "got", "expected"} of the smallest such index
    detail: str = ""
    exact: int = 0  # of a check of every element: those compared with the float64 values (not bit-equal to the
    # executor's regenerated ones)

    @property
    def failed(self) -> bool:
        return self.verdict in FAILURES

    def to_json(self) -> dict:
        """A dict of strict JSON values (non-finite floats as the strings "inf", "-inf", "nan")."""
        first = self.first_mismatch and {k: _finite_or_str(v) for k, v in self.first_mismatch.items()}
        return {"name": self.name, "stream": self.stream, "verdict": self.verdict, "checked": self.checked,
                "max_error": _finite_or_str(self.max_error), "mismatches": self.mismatches,
                "first_mismatch": first, "detail": self.detail, "exact": self.exact}


def _finite_or_str(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


@dataclass
class VerifyReport:
    """Per-tensor reports, in the manifest's order (then tensors it does not record)."""

    tensors: list
    sample_seed: int
    notes: list = field(default_factory=list)
    gaps: list = field(default_factory=list)  # why the run proves less than it should: nothing verified, a prefix
                                              # that matches no record (each makes the report not ok)

    @property
    def failures(self) -> list:
        return [t for t in self.tensors if t.failed]

    @property
    def unverified(self) -> list:
        return [t for t in self.tensors if t.verdict in UNVERIFIED]

    @property
    def ok(self) -> bool:
        """Every recorded tensor was checked and matched, and there was one at least."""
        return not self.failures and not self.unverified and not self.gaps

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        counts: dict = {}
        for t in self.tensors:
            counts[t.verdict] = counts.get(t.verdict, 0) + 1
        text = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
        return "\n".join([f"{len(self.tensors)} tensors: {text or 'none'} (sample seed {self.sample_seed})"]
                         + self.gaps + self.notes)

    def table(self) -> str:
        width = max([len("tensor")] + [len(t.name) for t in self.tensors])
        lines = [f"{'tensor':<{width}}  {'checked':>9}  {'max error':>9}  verdict"]
        for t in self.tensors:
            verdict = t.verdict + (f": {t.detail}" if t.detail and t.verdict != OK else "")
            lines.append(f"{t.name:<{width}}  {t.checked:>9,}  {_format_error(t.max_error):>9}  {verdict}")
        lines.append("max error: in units of the stream-format contract beyond the output dtype's rounding "
                     "(0: as close as the exact value rounded once; <= 1 passes; deterministic inits: exactly 0; "
                     "-: every element equals the executor's regenerated values bit for bit, which meet the contract)")
        return "\n".join(lines + [self.summary()])

    def to_json(self) -> dict:
        return {"ok": self.ok, "sample_seed": self.sample_seed, "notes": self.notes, "gaps": self.gaps,
                "counts": {v: sum(t.verdict == v for t in self.tensors) for v in dict.fromkeys(
                    t.verdict for t in self.tensors)},
                "tensors": [t.to_json() for t in self.tensors]}


def _format_error(error) -> str:
    if error is None:
        return "-"
    if error == 0:
        return "0"
    return "inf" if error == math.inf else f"{error:.3g}"


# ---- checking one tensor ------------------------------------------------------------------------------


class _Check:
    """One tensor's record, its writes made ``Replay``s, and the comparison of local elements."""

    def __init__(self, record: TensorRecord):
        self.record = record
        self.replays, self.problems = [], []
        for write in record.writes:
            try:
                self.replays.append(replay(write))
                self.problems.append(None)
            except NotReplayable as exc:
                self.replays.append(None)
                self.problems.append(exc)

    def owner(self, logical: torch.Tensor) -> torch.Tensor:
        """For each logical index, the position of the last write that covers it (-1: none)."""
        owner = torch.full_like(logical, -1)
        for k, write in enumerate(self.record.writes):
            if write.region is None:
                owner.fill_(k)
            else:
                owner[write.region.contains(logical)] = k
        return owner

    def expected(self, logical: torch.Tensor):
        """(values, tolerance, checkable, problem) at ``logical``: ``checkable`` marks the indices whose last
        write can be recomputed; ``problem`` is a ``NotReplayable`` saying why the others cannot, or None."""
        owner = self.owner(logical)
        values = torch.zeros(logical.shape, dtype=torch.float64)
        tolerance = torch.zeros_like(values)
        checkable = torch.ones_like(logical, dtype=torch.bool)
        problem = None
        whole = len(self.record.writes) == 1 and self.record.writes[0].region is None
        for k in [0] if whole else torch.unique(owner).tolist():
            mask = owner == k
            if k < 0 or self.problems[k] is not None:
                checkable &= ~mask
                problem = problem or self.problems[k] or NotReplayable(
                    NOT_VERIFIABLE, f"index {int(logical[mask][0])} is covered by no recorded write")
                continue
            values[mask], tolerance[mask] = self.replays[k].expected(logical[mask])
        return values, tolerance, checkable, problem


def _sample_positions(block: _Block, samples, generator):
    """Chunks of sorted local positions to check: every position, or ``samples`` random ones plus both ends
    and the first elements at logical indices past 2^32."""
    n = block.numel
    if samples is None or n <= samples + 2:
        yield from (torch.arange(start, min(n, start + CHUNK)) for start in range(0, n, CHUNK))
        return
    extra = [0, n - 1]
    if block.logical_at(n - 1) >= 1 << 32:
        lo, hi = 0, n - 1  # the first position at or past 2^32: local order is logical order within a block
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if block.logical_at(mid) < 1 << 32 else (lo, mid)
        extra += list(range(lo, min(n, lo + PAST_2_32)))
    drawn = torch.randint(0, n, (samples,), generator=generator, dtype=torch.int64)
    yield torch.unique(torch.cat([drawn, torch.tensor(extra, dtype=torch.int64)]))


def _check_block(check: _Check, name: str, blocks, samples, generator) -> tuple:
    """(TensorReport, a few (logical, actual) pairs of mismatching elements for identification) of a tensor
    held as ``blocks`` (an iterable of ``_Block``s, read one at a time: a tensor, a shard, stored chunks)."""
    record = check.record
    report = TensorReport(name, record.stream, OK)
    tally = _Tally(check, report)
    for block in blocks:
        if block.local.device.type == "meta":
            report.verdict, report.detail = MISSING, "on the meta device: it holds no values"
            return report, None
        if block.local.dtype != record.dtype:
            report.verdict = DTYPE
            report.detail = f"{str(block.local.dtype).removeprefix('torch.')}, the manifest records " \
                            f"{str(record.dtype).removeprefix('torch.')}"
            return report, None
        if block.offset is None:  # a rank outside the DTensor's mesh holds nothing
            continue
        tally.block = block
        fast = _fastcheck.plan(record, check.replays, check.problems) if samples is None else None
        if fast is not None:
            _check_every_element(tally, *fast)
        else:
            for positions in _sample_positions(block, samples, generator):
                logical = block.logical(positions)
                for replay_ in check.replays if samples is not None else ():
                    keep = replay_.columns_to_sample(logical, generator) if replay_ is not None else None
                    if keep is not None:
                        positions, logical = positions[keep], logical[keep]
                report.checked += tally.compare(positions, logical)
        tally.block = block = None  # a stored chunk leaves memory before the next is read
    report.max_error = tally.max_error if tally.measured else None
    if tally.problem is not None and not report.mismatches:
        report.verdict = tally.problem.verdict
        report.detail = str(tally.problem) + (f" ({report.checked:,} other elements checked: ok)"
                                              if report.checked else "")
    if report.mismatches:
        first = report.first_mismatch
        report.verdict = MISMATCH
        report.detail = (f"{report.mismatches:,} of {report.checked:,} checked elements differ; the first at index "
                         f"{first['index']} {tuple(first['coords'])}: {first['got']!r}, expected "
                         f"{first['expected']!r}")
    return report, tally.evidence[:16]


def _check_every_element(tally, fast_write: int, plan) -> None:
    """Every element of the block, slab by slab: the fast path clears those equal bit for bit to the values its
    executor regenerates; the others, and those of later region writes, get the float64 check."""
    block, record = tally.block, tally.check.record
    local_shape = tuple(block.local.shape)
    covered = _fastcheck.covered_positions([w.region for w in record.writes[fast_write + 1:]], local_shape,
                                           block.shape, block.offset)
    scratch = torch.empty(min(block.numel, _fastcheck.slab_limit(block.local)) if block.local.device.type == "cpu"
                          else 0, dtype=torch.int64)
    start = 0
    local = block.local.detach()
    for slab, offset in _fastcheck.slabs(local if local.dim() else local.reshape(1), block.offset or (0,)):
        n = slab.numel()
        positions = plan.differing(slab, block.shape if local.dim() else (1,), offset, scratch) + start
        if covered.numel():
            lo, hi = torch.searchsorted(covered, torch.tensor([start, start + n])).tolist()
            if hi > lo:
                positions = torch.unique(torch.cat([positions, covered[lo:hi]]))
        unchecked = positions.numel()
        if unchecked:
            unchecked -= tally.compare(positions, block.logical(positions))
        tally.report.checked += n - unchecked
        tally.report.exact += positions.numel()
        start += n


class _Tally:
    """The float64 comparison of chosen elements of a block, accumulated into its report."""

    def __init__(self, check: _Check, report: TensorReport):
        self.check, self.report = check, report
        self.block = None  # the block being checked
        self.max_error, self.evidence, self.problem = 0.0, [], None
        self.measured = 0  # elements compared with their float64 values

    def compare(self, positions: torch.Tensor, logical: torch.Tensor) -> int:
        """Compare the elements at local ``positions`` (logical indices ``logical``) with their exact values;
        returns how many could be (the others' writes cannot be recomputed: ``problem`` says why)."""
        check, report, record = self.check, self.report, self.check.record
        expected, tolerance, checkable, problem = check.expected(logical)
        self.problem = self.problem or problem
        positions, logical = positions[checkable], logical[checkable]
        expected, tolerance = expected[checkable], tolerance[checkable]
        actual = self.block.read(positions)
        units = contract_units(actual, expected, tolerance, record.dtype)
        bad = units > 1.0
        self.max_error = max(self.max_error, float(units.max())) if units.numel() else self.max_error
        self.measured += units.numel()
        n_bad = int(bad.sum())
        if n_bad:
            k = int(torch.nonzero(bad)[0])
            if report.first_mismatch is None or int(logical[k]) < report.first_mismatch["index"]:
                index = int(logical[k])
                coords = [int(c) for c in coordinates(logical[k:k + 1], record.shape)] if record.shape else []
                report.first_mismatch = {"index": index, "coords": coords, "got": float(actual[k]),
                                         "expected": float(expected[k])}
            report.mismatches += n_bad
            self.evidence += list(zip(logical[bad][:16].tolist(), actual[bad][:16].tolist(), strict=True))
        return positions.numel()


def _identify(evidence, candidates: list) -> str | None:
    """The name of the recorded tensor whose values the mismatching elements hold (a swap or a rename)."""
    logical = torch.tensor([index for index, _ in evidence], dtype=torch.int64)
    actual = torch.tensor([value for _, value in evidence], dtype=torch.float64)
    for check in candidates:
        expected, tolerance, checkable, _ = check.expected(logical)
        if checkable.all() and bool((contract_units(actual, expected, tolerance, check.record.dtype) <= 1.0).all()):
            return check.record.name
    return None


def _targets(target, manifest, segments, offsets, prefix):
    """(name, tensor-or-segment-block, record, offset) for each local tensor; unrecorded ones with None."""
    import torch.nn as nn

    if isinstance(manifest, TensorRecord):
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"a TensorRecord verifies one tensor, got {type(target).__name__}")
        return [(manifest.name, target, manifest, (offsets or {}).get(manifest.name))], [manifest]
    if not isinstance(manifest, Manifest):
        raise TypeError(f"manifest must be a Manifest or a TensorRecord, got {type(manifest).__name__}")
    records = list(manifest)
    if segments is not None:
        if not isinstance(target, torch.Tensor) or target.dim() != 1:
            raise TypeError("with segments, the target must be the 1-D flat buffer they describe")
        items = []
        for seg in segments:
            record = manifest.find(seg.stream)
            piece = _Block(target[seg.offset:seg.offset + seg.numel], (math.prod(seg.global_shape),), (seg.start,))
            name = record.name if record is not None else str(seg.stream)
            items.append((name, piece, record, None))
        return items, []
    if isinstance(target, (str, os.PathLike)):
        if not is_dcp_checkpoint(target):
            raise ValueError(f"{target}: a path target must be a DCP checkpoint directory (with a .metadata file)")
        target = DCPCheckpoint(target)
    if isinstance(target, nn.Module):
        named = list(target.named_parameters(remove_duplicate=False))
        named += list(target.named_buffers(remove_duplicate=False))
    elif hasattr(target, "keys") and hasattr(target, "__getitem__"):  # each value read when it is checked
        named = [(key, functools.partial(target.__getitem__, key)) for key in target.keys()]
    else:
        raise TypeError(f"verify_ takes an nn.Module, a state dict, or a flat buffer with segments; got "
                        f"{type(target).__name__}")
    items = []
    for key, tensor in named:
        record = manifest.find(stream_name(key, prefix)) or manifest.find(key)
        items.append((key, tensor, record, (offsets or {}).get(key)))
    return items, _expected(records, prefix)


def _expected(records, prefix: str) -> list:
    """The records a whole model (or a pipeline stage's, by its prefix) must hold."""
    return [r for r in records if isinstance(r.stream, str) and r.stream.startswith(prefix)] if prefix else records


def _gaps(report: VerifyReport, manifest, prefix: str, expected: list) -> list:
    """Why a report without failures still proves nothing (or less than asked): see ``VerifyReport.gaps``."""
    gaps = []
    if prefix and isinstance(manifest, Manifest) and not expected:
        gaps.append(f"the prefix {prefix!r} matches no recorded stream: no tensor of this stage could be found "
                    "missing (a wrong prefix?)")
    if report.failures or any(t.verdict == OK for t in report.tensors):
        return gaps
    if isinstance(manifest, Manifest) and not len(manifest):
        why = "the manifest records no tensor"
    elif not report.tensors:
        why = "no tensor was given"
    elif all(t.verdict == UNRECORDED for t in report.tensors):
        why = "no tensor here is in the manifest"
    else:
        why = "no recorded tensor could be compared"
    return gaps + [f"nothing was verified: {why}"]


def check_stored(name: str, tensor) -> None:
    """Raise ValueError unless ``tensor`` is one whose elements verify can read: a dense tensor of a stored
    dtype (no sparse, quantized, complex or float8 one) whose elements are distinct and lie inside its
    storage (no stride-0 ``expand``, no shape past a short storage: a crafted checkpoint may declare them)."""
    if is_dtensor(tensor):
        tensor = tensor.to_local()
    if not isinstance(tensor, torch.Tensor):
        return
    if tensor.layout != torch.strided:
        raise ValueError(f"{name}: a {str(tensor.layout).removeprefix('torch.')} tensor; verify reads dense tensors")
    if tensor.is_quantized or tensor.dtype not in STORED_DTYPES:
        raise ValueError(f"{name}: dtype {str(tensor.dtype).removeprefix('torch.')} is not one an init writes "
                         "(float32, float16, bfloat16, float64; int and bool buffers)")
    if tensor.numel() <= 1 or tensor.device.type == "meta":
        return
    span = 0
    for size, stride in sorted(((n, s) for n, s in zip(tensor.shape, tensor.stride(), strict=True) if n > 1),
                               key=lambda d: d[1]):
        if stride <= span:
            raise ValueError(f"{name}: shape {tuple(tensor.shape)} with strides {tensor.stride()} repeats elements "
                             "(an expand()ed or overlapping view); save a contiguous tensor")
        span += (size - 1) * stride
    try:
        nbytes = tensor.untyped_storage().nbytes()
    except (NotImplementedError, RuntimeError):  # a tensor subclass without a storage of its own
        return
    if (tensor.storage_offset() + span + 1) * tensor.element_size() > nbytes:
        raise ValueError(f"{name}: shape {tuple(tensor.shape)} reaches past its storage of {nbytes:,} bytes (a "
                         "truncated or crafted checkpoint)")


def verify_(target, manifest, *, samples: int | None = None, seed: int | None = None, segments=None,
            offsets=None, prefix: str = "", raise_on_failure: bool = False, callback=None) -> VerifyReport:
    """Check ``target``'s tensors against ``manifest``; return a ``VerifyReport`` (one ``TensorReport`` each).

    ``target``: an ``nn.Module``, a state dict (name -> tensor; DTensors check their local shard), a single
    tensor with ``manifest`` a ``TensorRecord``, or a flat buffer with ``segments=`` (``Segment``s, as
    ``init_flat_`` took them). Names map to streams as ``init_module_`` names them (wrapper components
    dropped, ``prefix`` prepended: a pipeline stage checks only the manifest's tensors under its prefix).
    ``offsets`` maps names of plain tensors that are blocks of the recorded tensor to their global offset.

    By default (``samples=None``) every element is checked, slab by slab (memory bounded by the slab, not
    the tensor): plain fills (the random inits, constant_/zeros_/ones_) are regenerated by the executor of
    the device that holds the tensor (the native one on a CPU, the Triton kernels on a GPU) and every
    element equal to them bit for bit passes, since those executors are proven to meet the contract
    (``_fastcheck`` says why that is sound); every other element gets the exact check below, so a value
    written by another executor still passes and a changed one fails. ``samples=N`` is a spot check: N
    local elements per tensor drawn at random (seeded by ``seed``; None draws a seed, which the report
    gives), plus both ends and, where the tensor reaches them, indices past 2^32; a tensor with fewer
    elements is checked whole. The exact check compares with the CPU reference's float64 value: random
    inits within the stream-format contract,
    deterministic ones exactly, orthogonal_ within ``ORTHOGONAL_TOLERANCE`` of a full recomputation (up to
    ``ORTHOGONAL_FULL_LIMIT`` elements; larger ones are "not sample-verifiable"), sparse_ with each sampled
    column's zero rows recomputed. Tensors written by a user callable are "not verifiable".

    Verdicts: ok, mismatch, missing (recorded, absent or on meta), shape mismatch, dtype mismatch, invalid
    entry (failures); not verifiable, not sample-verifiable; unrecorded (in ``target``, not in the manifest,
    not a failure). ``report.ok`` is True when every recorded tensor was checked and matched, and one was at
    least: ``report.gaps`` says why a report without failures is not ok (nothing verified: an empty
    manifest, no name in it; a ``prefix`` that matches no recorded stream). With ``raise_on_failure`` a
    report that is not ok raises ``VerificationError``. A tensor verify cannot read (sparse, complex,
    float8, stride 0, shape past its storage: ``check_stored``) raises ValueError. ``callback(done, total,
    name)`` runs after each tensor (a progress bar).
    """
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise ValueError(f"samples must be a positive int or None (every element), got {samples!r}")
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little") >> 1
    elif isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
        raise ValueError(f"seed must be an int in [0, 2**63) or None, got {seed!r}")
    items, expected = _targets(target, manifest, segments, offsets, prefix)
    checks: dict = {}  # record name -> _Check, shared by the names of tied tensors
    found, evidence = [], {}  # (report, record name or None); name -> mismatching (logical, actual) pairs
    for done, (name, source, record, offset) in enumerate(items, 1):
        if record is None:
            found.append((TensorReport(name, None, UNRECORDED, detail="not in the manifest"), None))
        else:
            check = checks.setdefault(record.name, _Check(record))
            found.append((_check_tensor(check, name, source, offset, samples, seed, evidence), record.name))
        if callback is not None:
            callback(done, len(items), name)
    order = {r.name: k for k, r in enumerate(expected)}
    found.sort(key=lambda item: order.get(item[1], len(order)))  # stable: unrecorded ones keep their order
    present = {record_name for _, record_name in found}
    found += [(TensorReport(r.name, r.stream, MISSING, detail="recorded in the manifest, absent here"), r.name)
              for r in expected if r.name not in present]
    report = VerifyReport([r for r, _ in found], seed)
    report.gaps = _gaps(report, manifest, prefix if segments is None else "", expected)
    _explain(report, dict((id(r), name) for r, name in found), checks, evidence, manifest)
    if raise_on_failure and not report.ok:
        raise VerificationError(report)
    return report


def _check_tensor(check: _Check, name: str, source, offset, samples, seed: int, evidence: dict) -> TensorReport:
    """The report on one target tensor (``source``: a tensor, a flat segment's block, or its loader)."""
    record = check.record
    tensor = source() if callable(source) else source
    check_stored(name, tensor)
    generator = torch.Generator().manual_seed(stream_id(f"{seed}/{name}") >> 1)
    if isinstance(tensor, StoredChunks):
        if tensor.shape != record.shape:
            return TensorReport(name, record.stream, SHAPE, detail=f"{tensor.shape}, the manifest records "
                                f"{record.shape}")
        try:  # every chunk's place, before any is read
            for offsets, sizes, _ in tensor.stored:
                _block_of(torch.empty(sizes, device="meta"), record.shape, offsets)
        except ValueError as exc:
            return TensorReport(name, record.stream, SHAPE, detail=f"a stored chunk: {exc}")
        # each chunk read when the previous one is done with: one in memory at a time
        blocks = (_block_of(tensor.read(k), record.shape, tensor.stored[k][0]) for k in range(len(tensor.stored)))
        report, evidence[name] = _check_block(check, name, blocks, samples, generator)
        return report
    if isinstance(tensor, _Block):
        block = tensor
        if block.shape[0] != math.prod(record.shape):
            return TensorReport(name, record.stream, SHAPE, detail=f"a segment of a parameter of "
                                f"{block.shape[0]:,} elements, the manifest records {record.shape}")
    elif not isinstance(tensor, torch.Tensor):
        return TensorReport(name, record.stream, MISSING, detail=f"a {type(tensor).__name__}, not a tensor")
    else:
        shape = tuple(tensor.shape)
        if shape != record.shape and not (offset is not None and len(shape) == len(record.shape)):
            return TensorReport(name, record.stream, SHAPE, detail=f"{shape}, the manifest records {record.shape}")
        try:
            block = _block_of(tensor, record.shape, offset)
        except ValueError as exc:
            return TensorReport(name, record.stream, SHAPE, detail=str(exc))
    report, evidence[name] = _check_block(check, name, [block], samples, generator)
    return report


def _explain(report: VerifyReport, record_names: dict, checks: dict, evidence: dict, manifest) -> None:
    """Name what mismatching tensors hold instead (a swap), and notice a seed that differs everywhere."""
    mismatched = [t for t in report.tensors if t.verdict == MISMATCH]
    if isinstance(manifest, Manifest) and 0 < len(mismatched) <= IDENTIFY_LIMIT:
        for t in mismatched:
            record = checks[record_names[id(t)]].record
            candidates = [checks.get(r.name) or _Check(r) for r in manifest
                          if r.name != record.name and (r.shape, r.dtype) == (record.shape, record.dtype)]
            holder = _identify(evidence[t.name], candidates[:256]) if evidence.get(t.name) else None
            if holder is not None:
                t.detail += f"; they are the values of {holder} (swapped or renamed?)"
    compared = [t for t in report.tensors if t.verdict in (OK, MISMATCH)]
    random_ones = [t for t in compared
                   if any(w.fn not in DETERMINISTIC for w in checks[record_names[id(t)]].record.writes)]
    if len(random_ones) >= 2 and all(t.verdict == MISMATCH for t in random_ones) and \
            len(mismatched) == len(random_ones):
        report.notes.append("every randomly initialized tensor differs and every deterministic one matches: "
                            "were they initialized with another seed than the manifest's?")
