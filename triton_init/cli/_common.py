"""What the subcommands share: argument types that refuse bad values (argparse then prints one line and
exits with status 2), the usage error for checks across options, and the OpenMP wait policy.

Nothing here imports torch at import time: ``main`` sets ``OMP_WAIT_POLICY`` before torch loads.
"""

import argparse
import os
import sys

# dtype names the options take -> torch's attribute; torch's own names are accepted too (ALIASES).
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp64": "float64"}
ALIASES = {"float32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16",
           "float64": "fp64", "double": "fp64"}
UINT64_LIMIT = 1 << 64
EXIT_PIPE_CLOSED = 141  # what a shell reports for a command that SIGPIPE ended (128 + 13)


class UsageError(Exception):
    """Options that are fine alone but not together: printed like argparse's errors, exit status 2."""


def dtype_name(text: str) -> str:
    """``fp32``, ``bf16``, ``fp16`` or ``fp64`` (or torch's name for one, such as ``float32``)."""
    name = text.strip().lower().removeprefix("torch.")
    name = ALIASES.get(name, name)
    if name not in DTYPES:
        raise argparse.ArgumentTypeError(f"invalid dtype {text!r} (choose from {', '.join(DTYPES)}, "
                                         f"or torch's names {', '.join(DTYPES.values())})")
    return name


def dtype_list(text: str) -> list[str]:
    """A comma-separated list of dtype names, each once."""
    return _unique([dtype_name(part) for part in _parts(text, "dtype")], "dtype")


def choice_list(choices):
    """An argument type: a comma-separated list of names from ``choices``, each once, in the given order."""

    def parse(text: str) -> list[str]:
        names = _parts(text, "name")
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"invalid choice {', '.join(map(repr, unknown))} "
                                             f"(choose from {', '.join(choices)})")
        return _unique(names, "name")

    return parse


def _parts(text: str, what: str) -> list[str]:
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}s, got {text!r}")
    return parts


def _unique(names: list[str], what: str) -> list[str]:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{what} {', '.join(repeated)} given more than once")
    return names


def int_in(low: int, high: int | None = None, high_text: str | None = None):
    """An argument type: an int in [low, high) (no upper limit without ``high``)."""
    limit = f"at least {low}" if high is None else f"in [{low}, {high_text or high})"

    def parse(text: str) -> int:
        shown = repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"
        try:
            value = int(text)
        except ValueError:  # also an int of more digits than Python converts
            raise argparse.ArgumentTypeError(f"invalid int value: {shown}") from None
        if value < low or (high is not None and value >= high):
            raise argparse.ArgumentTypeError(f"must be {limit}, got {value if len(text) <= 40 else shown}")
        return value

    return parse


seed_value = int_in(0, UINT64_LIMIT, "2**64")


def device_name(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` for a CUDA device that exists here."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, TypeError):
        raise argparse.ArgumentTypeError(f"invalid device {text!r} (choose from cpu, cuda, cuda:N)") from None
    if device.type == "cpu" and device.index in (None, 0):
        return "cpu"
    if device.type != "cuda":
        raise argparse.ArgumentTypeError(f"invalid device {text!r} (choose from cpu, cuda, cuda:N)")
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: no CUDA device here (torch.cuda.is_available() is False; "
                                         f"torch {torch.__version__}); use --device cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return str(device)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(name: str):
    import torch

    return getattr(torch, DTYPES[name])


# ---- OpenMP --------------------------------------------------------------------------------------------

OPENMP_ENV = "OMP_WAIT_POLICY"
_openmp_source = "not set up"


def default_openmp_policy() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it, before torch (and its OpenMP runtime, which
    reads the variable once, when it loads) is imported.

    With the default policy, torch's CPU threads spin at every parallel region's barrier; on a machine
    whose cores are shared (CI, a busy workstation) a spinning thread takes the core its partner needs, and
    CPU fills ran up to 7x slower. PASSIVE threads sleep instead.
    """
    global _openmp_source
    if OPENMP_ENV in os.environ:
        _openmp_source = "yours"
    elif "torch" in sys.modules:
        _openmp_source = "torch was loaded before triton-init could set it"
    else:
        os.environ[OPENMP_ENV] = "PASSIVE"
        _openmp_source = "set by triton-init"


def openmp_policy() -> str:
    """The policy this process's OpenMP runtime runs with, and who chose it."""
    return f"{OPENMP_ENV}={os.environ.get(OPENMP_ENV, 'unset')} ({_openmp_source})"


# ---- registration --------------------------------------------------------------------------------------


def set_command(parser: argparse.ArgumentParser, *, description: str, run) -> None:
    """Make ``parser`` (a subcommand's, made by ``triton_init.cli`` with its one-line summary) run
    ``run(args)``, which returns the exit status and may raise ``UsageError``. Option help texts state their
    defaults and valid values themselves."""
    parser.description = description
    parser.set_defaults(run=run, parser=parser)


def output_closed() -> int:
    """Quiet the rest of the output after its reader closed the pipe (Python's recipe for SIGPIPE): stdout
    goes to /dev/null, so that the interpreter's last flush raises nothing. Returns ``EXIT_PIPE_CLOSED``."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # stdout replaced by an object without a file descriptor
        pass
    return EXIT_PIPE_CLOSED


def progress_bar(done: int, total: int, text: str) -> None:
    """Redraw a one-line progress bar on stderr (``done`` of ``total``, then ``text``); a newline once done."""
    width = 30
    filled = width * done // max(1, total)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()

