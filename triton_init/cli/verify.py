"""``triton-init verify CHECKPOINT --manifest M.json``: check a saved state dict against its init manifest.

Reads a ``torch.save``d state dict (``weights_only``, memory-mapped: only the sampled elements are read;
the usual training wrappers unwrapped: ``{"model": sd}``, ``{"state_dict": sd}``, ``{"module": sd}``, and
name prefixes such as DDP's ``module.``) or, when the ``safetensors`` package is installed, a
``.safetensors`` file or a directory of them (one tensor in memory at a time), or a
torch.distributed.checkpoint directory (one stored chunk in memory at a time). A file's format is read from
its first bytes; a file of no such format, and a tensor verify cannot read (sparse, complex, float8,
stride 0, a shape past its stored data), is a one-line error before any tensor's data is read. Prints a
table, or JSON with ``--json``, and the elements checked per second. Exit status: ``EXIT_STATUS``.
"""

import argparse
import json
import math
import os
import pickle
import re
import sys
import time
import warnings
from pathlib import Path

import torch

from .._dcp_chunks import DCPCheckpoint, DCPError, is_dcp_checkpoint
from . import _common

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNVERIFIED = 0, 1, 2, 3
EXIT_STATUS = f"""\
  {EXIT_OK}    every recorded tensor was verified and matched (one at least)
  {EXIT_FAILED}    a tensor failed: mismatch, missing, shape, dtype, invalid manifest entry
  {EXIT_BAD_INPUT}    the checkpoint or manifest cannot be read, or holds what verify cannot read (one line)
  {EXIT_UNVERIFIED}    nothing failed, but not everything was verified: tensors that cannot be (a user
       callable, a large orthogonal_), or nothing at all (an empty manifest, no name found
       in it), or a --prefix that matches no recorded stream
  {_common.EXIT_PIPE_CLOSED}  the output's reader closed it early (piped into head)"""
NOT_A_CHECKPOINT = "is not a torch.save file, a safetensors file, or a DCP checkpoint directory"
# where training checkpoints keep the model's state dict, possibly nested ({"model": {"module": sd}})
STATE_DICT_KEYS = ("state_dict", "model", "module", "model_state_dict")
WRAPPER_DEPTH = 4
# a leading name component every key of a wrapped model's state dict shares: DDP's and DeepSpeed's
# "module.", a training wrapper's "model." (torch.compile's "_orig_mod." is a wrapper name anywhere)
WRAPPER_PREFIXES = ("module.", "model.")
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a torch.save file (zip archive), or an empty zip archive
# a legacy (pre-zip) torch.save file's first pickle: its magic number, after the protocol (and a frame)
LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
SAFETENSORS_HEADER_LIMIT = 100 << 20  # the safetensors package refuses larger headers too
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                      "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32",
                      "U16": "uint16", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn",
                      "F8_E5M2": "float8_e5m2", "C64": "complex64", "C128": "complex128"}


class CheckpointError(Exception):
    """A checkpoint that cannot be read as a state dict."""


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message (torch's load errors go on for paragraphs)."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return text.split(". ")[0].rstrip(".")


def _checked(path, name: str, tensor):
    """``tensor`` if verify can read its elements (``check_stored``), else a CheckpointError naming it."""
    from ..verify import check_stored

    try:
        check_stored(name, tensor)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return tensor


def _safetensors_header(path) -> list:
    """The tensor names of a .safetensors file, after checking every header entry against the file: a
    known dtype verify reads, a shape that its bytes hold, data inside the file."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        length = int.from_bytes(f.read(8), "little")
        if length > min(SAFETENSORS_HEADER_LIMIT, size - 8):
            raise CheckpointError(f"{path}: its safetensors header declares {length:,} bytes, the file holds "
                                  f"{size:,} (truncated or not a safetensors file)")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # also a UnicodeDecodeError, or an int of too many digits
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} {NOT_A_CHECKPOINT}: its safetensors header is not a JSON object")
    data = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in [*shape, begin, end]):
                raise TypeError
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: the safetensors header entry of {name} is not "
                                  "{dtype, shape, data_offsets: [begin, end]}") from None
        if dtype not in SAFETENSORS_DTYPES:
            raise CheckpointError(f"{path}: {name}: unknown safetensors dtype {str(dtype)[:20]}")
        dtype = getattr(torch, SAFETENSORS_DTYPES[dtype])
        if not begin <= end <= data:
            raise CheckpointError(f"{path}: {name}: its data at bytes [{begin:,}, {end:,}) lies past the file's "
                                  f"{data:,} bytes of data (truncated?)")
        needed = math.prod(shape) * dtype.itemsize
        if needed != end - begin:
            raise CheckpointError(f"{path}: {name}: shape {tuple(shape)} needs {needed:,} bytes, its data holds "
                                  f"{end - begin:,}")
        _checked(path, name, torch.empty(shape, dtype=dtype, device="meta"))
    return sorted(name for name in header if name != "__metadata__")


class _SafetensorsFiles:
    """name -> tensor over one or more .safetensors files, each tensor read when asked for."""

    def __init__(self, paths):
        try:
            from safetensors import safe_open
        except ImportError:
            raise CheckpointError("reading .safetensors needs the safetensors package (pip install safetensors)") \
                from None
        self._open = safe_open
        self._where = {}
        for path in paths:
            for name in _safetensors_header(path):
                if name in self._where:
                    raise CheckpointError(f"{name} is in both {self._where[name]} and {path}")
                self._where[name] = path

    def keys(self):
        return list(self._where)

    def __getitem__(self, name):
        path = self._where[name]
        try:
            with self._open(str(path), framework="pt", device="cpu") as f:
                return f.get_tensor(name)
        except Exception as exc:
            raise CheckpointError(f"cannot read {name} from {path}: {_first_line(exc)}") from None


class _Renamed:
    """A state dict's tensors under other names (``names``: new name -> the source's), read when asked for."""

    def __init__(self, source, names: dict):
        self._source, self._names = source, names

    def keys(self):
        return list(self._names)

    def __getitem__(self, name):
        return self._source[self._names[name]]


def _state_dict_of(loaded, path) -> dict:
    """The name -> tensor mapping in a loaded torch.save object: the object itself, or the state dict a
    training checkpoint wraps ({"model": sd}, {"state_dict": sd}, {"module": sd}, nested)."""
    for _ in range(WRAPPER_DEPTH):  # a state dict is flat: a dict under one of these keys is a wrapper's
        inner = next((loaded[k] for k in STATE_DICT_KEYS if isinstance(loaded, dict)
                      and isinstance(loaded.get(k), dict)), None)
        if inner is None:
            break
        loaded = inner
    if isinstance(loaded, dict):
        tensors = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return {k: _checked(path, k, v) for k, v in tensors.items()}
    raise CheckpointError(f"{path} holds no state dict (a mapping of names to tensors)")


def unwrapped(state_dict, manifest, prefix: str = ""):
    """``state_dict`` with the leading wrapper components that every key shares ("module.", "model.", in any
    sequence) taken off, as many as make the names find the most of the manifest's records (none on a tie)."""
    from ..streams import stream_name

    def found(names) -> int:
        return sum(manifest.find(stream_name(n, prefix)) is not None or manifest.find(n) is not None for n in names)

    candidates = [{key: key for key in state_dict.keys()}]
    while candidates[-1]:
        wrapper = next((w for w in WRAPPER_PREFIXES if all(n.startswith(w) for n in candidates[-1])), None)
        if wrapper is None:
            break
        candidates.append({n[len(wrapper):]: key for n, key in candidates[-1].items()})
    names = max(candidates, key=found)  # the first of the best: no component is taken off without a reason
    return state_dict if names is candidates[0] else _Renamed(state_dict, names)


def _kind(path: Path) -> str:
    """"zip" or "legacy" (torch.save's formats) or "safetensors", from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(32)
    if not head:
        raise CheckpointError(f"{path} {NOT_A_CHECKPOINT}: it is empty")
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head[:1] == b"\x80" and LEGACY_MAGIC in head:
        return "legacy"
    if head[8:9] == b"{":  # an 8-byte header length, then the JSON header
        return "safetensors"
    raise CheckpointError(f"{path} {NOT_A_CHECKPOINT}")


def _torch_load(path: Path, kind: str):
    """torch.load, weights only; a zip archive memory-mapped (only the elements verify reads are read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the pickle protocol of foreign files
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "zip")
        except pickle.UnpicklingError as exc:
            refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
            if refused:
                raise CheckpointError(f"{path}: a torch.save file holding a {refused.group(1)}, not only tensors "
                                      "(read with weights_only, which refuses other objects)") from None
            raise CheckpointError(f"{path}: a torch.save file that torch.load cannot read with weights_only (corrupt, "
                                  "or saved with a pickle protocol it does not read)") from None
        except Exception as exc:  # torch raises many types for truncated or crafted files
            text = str(exc)
            if any(s in text for s in ("resize storage", "wrong byte size", "can't allocate memory")):
                raise CheckpointError(f"{path}: a tensor's shape reaches past its stored data (a truncated or "
                                      "crafted torch.save file)") from None
            what = "a zip archive" if kind == "zip" else "a legacy torch.save file"
            raise CheckpointError(f"{path}: {what} that torch.load cannot read ({type(exc).__name__}: "
                                  f"{_first_line(exc)[:200]})") from None


def load_checkpoint(path):
    """A mapping name -> tensor from a torch.save file, a .safetensors file or a directory of them; for a DCP
    checkpoint directory, name -> its stored chunks (``_dcp_chunks.DCPCheckpoint``).

    The format is read from the file's first bytes, not its name. Raises CheckpointError (one line) for
    anything else, and for tensors verify cannot read (``check_stored``: sparse, complex, float8, stride 0,
    a shape past the stored data), before any tensor's data is read.
    """
    path = Path(path)
    if is_dcp_checkpoint(path):
        try:
            return DCPCheckpoint(path)
        except DCPError as exc:
            raise CheckpointError(str(exc)) from None
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{path} is a directory without .safetensors files")
        return _SafetensorsFiles(files)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():  # a device, a pipe: nothing a checkpoint is stored in
        raise CheckpointError(f"{path} {NOT_A_CHECKPOINT}: not a regular file")
    kind = _kind(path)
    if kind == "safetensors":
        return _SafetensorsFiles([path])
    return _state_dict_of(_torch_load(path, kind), path)


def _progress(done: int, total: int, name: str, started: float) -> None:
    _common.progress_bar(done, total, f"{done}/{total} tensors {time.perf_counter() - started:6.1f} s {name[-40:]:<40}")


def run(args) -> int:
    from ..manifest import Manifest, ManifestError
    from ..verify import verify_

    def fail(message: str) -> int:
        print(f"triton-init verify: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        manifest = Manifest.load(args.manifest)
    except OSError as exc:
        return fail(f"cannot read the manifest {args.manifest}: {exc.strerror or _first_line(exc)}")
    except ManifestError as exc:
        return fail(str(exc))
    try:
        state_dict = unwrapped(load_checkpoint(args.checkpoint), manifest, args.prefix)
    except CheckpointError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot read {args.checkpoint}: {exc.strerror or _first_line(exc)}")
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    started = time.perf_counter()
    callback = (lambda done, total, name: _progress(done, total, name, started)) if progress else None
    try:
        report = verify_(state_dict, manifest, samples=args.samples, seed=args.seed, prefix=args.prefix,
                         callback=callback)
    except (CheckpointError, DCPError, ValueError) as exc:  # verify_'s ValueErrors are about its input
        return fail(str(exc))
    seconds = max(time.perf_counter() - started, 1e-9)
    checked = sum(t.checked for t in report.tensors)
    rate = {"elements": checked, "seconds": round(seconds, 3), "elements_per_second": round(checked / seconds)}
    if args.json:
        print(json.dumps({**report.to_json(), **rate}, indent=1, allow_nan=False))
    else:
        print(report.table())
        print(f"{checked:,} elements checked in {seconds:.2f} s: {checked / seconds / 1e6:,.1f} M elements/s")
    if report.failures:
        return EXIT_FAILED
    return EXIT_OK if report.ok else EXIT_UNVERIFIED


def _samples(text: str):
    """A positive number of samples, or "all" (None: every element)."""
    if text == "all":
        return None
    try:
        return _common.int_in(1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive int or 'all', got {text!r}") from None


def add_arguments(p) -> None:
    _common.set_command(
        p,
        description="Check every tensor of a saved state dict (torch.save; .safetensors files or a directory of\n"
                    "them with the safetensors package; a torch.distributed.checkpoint directory, chunk by chunk)\n"
                    "against the manifest written at init: every element (or --samples N of each tensor),\n"
                    "regenerated by the native executor and compared bit for bit, the rest within the\n"
                    f"stream-format contract against the float64 value.\n\nexit status:\n{EXIT_STATUS}",
        run=run)
    p.add_argument("checkpoint", help="a torch.save'd state dict (or a training checkpoint holding one under "
                                      "model, state_dict or module), a .safetensors file or a directory of them, "
                                      "or a DCP checkpoint directory (.metadata and .distcp files)")
    p.add_argument("--manifest", required=True, metavar="PATH",
                   help="the JSON manifest written at init (triton-init init --save-manifest)")
    p.add_argument("--samples", type=_samples, default=None, metavar="N",
                   help="a spot check: N random elements per tensor, besides both ends; 'all': every element "
                        "(default: every element)")
    p.add_argument("--seed", type=_common.int_in(0, 1 << 63, "2**63"), default=None,
                   help="seed of the random sample, in [0, 2**63) (default: a fresh one, printed)")
    p.add_argument("--prefix", default="",
                   help="stream prefix of a pipeline stage's names (e.g. layers.4.): every recorded tensor under it "
                        "must be in the checkpoint (default: none, the whole model)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
