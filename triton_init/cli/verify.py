"""``triton-init verify CHECKPOINT --manifest M.json``: check a saved state dict against its init manifest.

Reads a ``torch.save``d state dict (``weights_only``, memory-mapped), a ``.safetensors`` file or a
directory of them when the ``safetensors`` package is installed (one tensor in memory at a time), or a
torch.distributed.checkpoint directory (one stored chunk in memory at a time). Prints a table, or JSON with
``--json``, and the elements checked per second. Exit status: 0 every recorded tensor matched; 1 a tensor
failed (mismatch, missing, shape, dtype, invalid entry); 2 the input could not be read; 3 nothing failed but
some tensors could not be verified (a user callable, a large orthogonal_).
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

from .._dcp_chunks import DCPCheckpoint, DCPError, is_dcp_checkpoint
from . import _common

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNVERIFIED = 0, 1, 2, 3
STATE_DICT_KEYS = ("state_dict", "model")  # where training checkpoints usually keep the model's state dict


class CheckpointError(Exception):
    """A checkpoint that cannot be read as a state dict."""


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message (torch's load errors go on for paragraphs)."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return text.split(". ")[0].rstrip(".")


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
            try:
                with safe_open(str(path), framework="pt", device="cpu") as f:
                    names = list(f.keys())
            except Exception as exc:  # the package raises its own error types for corrupt headers
                raise CheckpointError(f"cannot read {path}: {_first_line(exc)}") from None
            for name in names:
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


def _state_dict_of(loaded, path):
    if isinstance(loaded, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
        tensors = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(f"{path} holds no state dict (a mapping of names to tensors)")


def load_checkpoint(path):
    """A mapping name -> tensor from a torch.save file, a .safetensors file or a directory of them; for a DCP
    checkpoint directory, name -> its stored chunks (``_dcp_chunks.DCPCheckpoint``)."""
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
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        return _SafetensorsFiles([path])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the pickle protocol of foreign files
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # not a zip archive (the legacy format cannot be mapped): read it whole
            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # torch raises many types for truncated or foreign files
                raise CheckpointError(f"cannot read {path} as a torch.save checkpoint ({type(exc).__name__}): "
                                      f"{_first_line(exc)}") from None
    return _state_dict_of(loaded, path)


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
        return fail(f"bad manifest {exc}")
    try:
        state_dict = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        return fail(str(exc))
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    started = time.perf_counter()
    callback = (lambda done, total, name: _progress(done, total, name, started)) if progress else None
    try:
        report = verify_(state_dict, manifest, samples=args.samples, seed=args.seed, prefix=args.prefix,
                         callback=callback)
    except (CheckpointError, DCPError) as exc:
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
    return EXIT_UNVERIFIED if report.unverified else EXIT_OK


def _samples(text: str):
    """A positive number of samples, or "all" (None: every element)."""
    if text == "all":
        return None
    try:
        return _common.int_in(1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive int or 'all', got {text!r}") from None


def add_parser(subparsers) -> None:
    p = _common.add_command(
        subparsers, "verify", summary="check a checkpoint's tensors against the init manifest, element by element",
        description="Check every tensor of a saved state dict (torch.save; .safetensors files or a directory of\n"
                    "them with the safetensors package; a torch.distributed.checkpoint directory, chunk by chunk)\n"
                    "against the manifest written at init: every element (or --samples N of each tensor),\n"
                    "regenerated by the native executor and compared bit for bit, the rest within the\n"
                    "stream-format contract against the float64 value. Exit status: 0 every recorded tensor\n"
                    "matched, 1 one failed, 2 unreadable input, 3 nothing failed but some tensors could not be\n"
                    "verified.",
        run=run)
    p.add_argument("checkpoint", help="a torch.save'd state dict, a .safetensors file or a directory of them, or a "
                                      "DCP checkpoint directory (.metadata and .distcp files)")
    p.add_argument("--manifest", required=True, metavar="PATH",
                   help="the JSON manifest written at init (triton-init init --save-manifest)")
    p.add_argument("--samples", type=_samples, default=None, metavar="N",
                   help="a spot check: N random elements per tensor, besides both ends; 'all': every element "
                        "(default: every element)")
    p.add_argument("--seed", type=_common.int_in(0, 1 << 63, "2**63"), default=None,
                   help="seed of the random sample, in [0, 2**63) (default: a fresh one, printed)")
    p.add_argument("--prefix", default="", help="stream prefix of a pipeline stage's names (default: none)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
