"""``triton-init bench``, the main job: what tensors run here, timed against torch.nn.init and a plain
``fill_`` in the same run, their output checked on a sample, and the Triton kernels checked on sampled
logical indices (``checks``; through the interpreter without a GPU).

Each ``BenchOp`` says how triton_init and torch.nn.init fill a buffer, and which stream-format distribution
(with which arguments) the values must follow. Other features append ops to ``BENCH_OPS``.
"""

import importlib.metadata
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import triton_init as ti

from .. import _dispatch
from .._files import atomic_file
from .._format import NORMAL, TRUNC_NORMAL, UNIFORM
from .._version import __version__
from . import _common, checks

SEED = 2024
SAMPLE = 4096  # random positions checked per row, plus the first and last EDGE
EDGE = 8
NOISY = 1.5  # a row whose per-call ratios against torch span more than this factor is flagged
DEFAULT_NUMEL = {"cuda": 1 << 28, "cpu": 1 << 20}
FAN_COLUMNS = 1024


@dataclass(frozen=True)
class BenchOp:
    name: str
    ours: Callable  # (tensor, seed=SEED, **keywords) -> tensor: triton_init's fill
    theirs: Callable  # (tensor) -> tensor: torch.nn.init's counterpart
    dist: int  # the stream-format distribution the kernels draw (orthogonal: its normal prep matrix)
    # logical shape -> the distribution's arguments (a, b / mean, std / all four); None: check Q Qᵀ = I
    dist_args: Callable | None
    shape: Callable = lambda numel: (numel,)  # the buffer's shape for a target element count
    same_kernel_as: str | None = None  # an op whose kernel check covers this one's (only the scalars differ)


def _fans(shape) -> tuple[int, int]:
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _fan_shape(numel: int) -> tuple:
    """A (rows, 1024) weight of about ``numel`` elements: fan-based inits need two dims."""
    return (max(1, numel // FAN_COLUMNS), FAN_COLUMNS)


def _orthogonal_shape(numel: int) -> tuple:
    """Square, with a side of a quarter of sqrt(numel): 256 for the CPU default, 4096 for CUDA's."""
    side = max(2, math.isqrt(numel) // 4)
    return (side, side)


def _kaiming_normal_args(shape) -> dict:
    return {"mean": 0.0, "std": math.sqrt(2.0) / math.sqrt(_fans(shape)[0])}  # leaky_relu, a=0, fan_in


def _xavier_uniform_args(shape) -> dict:
    bound = math.sqrt(6.0 / sum(_fans(shape)))
    return {"a": -bound, "b": bound}


BENCH_OPS = [
    BenchOp("uniform", lambda t, seed=SEED, **kw: ti.uniform_(t, -0.1, 0.1, seed=seed, **kw),
            lambda t: torch.nn.init.uniform_(t, -0.1, 0.1), UNIFORM, lambda shape: {"a": -0.1, "b": 0.1}),
    BenchOp("normal", lambda t, seed=SEED, **kw: ti.normal_(t, 0.0, 0.02, seed=seed, **kw),
            lambda t: torch.nn.init.normal_(t, 0.0, 0.02), NORMAL, lambda shape: {"mean": 0.0, "std": 0.02}),
    BenchOp("trunc_normal", lambda t, seed=SEED, **kw: ti.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04, seed=seed, **kw),
            lambda t: torch.nn.init.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04), TRUNC_NORMAL,
            lambda shape: {"mean": 0.0, "std": 0.02, "a": -0.04, "b": 0.04}),
    # kaiming/xavier are one plain normal/uniform fill with a std from the fans: they should cost what
    # those rows cost. orthogonal is a normal prep fill, QR, and one epilogue pass.
    BenchOp("kaiming_normal", lambda t, seed=SEED, **kw: ti.kaiming_normal_(t, seed=seed, **kw),
            torch.nn.init.kaiming_normal_, NORMAL, _kaiming_normal_args, _fan_shape, "normal"),
    BenchOp("xavier_uniform", lambda t, seed=SEED, **kw: ti.xavier_uniform_(t, seed=seed, **kw),
            torch.nn.init.xavier_uniform_, UNIFORM, _xavier_uniform_args, _fan_shape, "uniform"),
    BenchOp("orthogonal", lambda t, seed=SEED, **kw: ti.orthogonal_(t, seed=seed, **kw),
            torch.nn.init.orthogonal_, NORMAL, None, _orthogonal_shape),
]
OP_NAMES = [op.name for op in BENCH_OPS]


def _seconds(fn, tensor: torch.Tensor) -> float:
    """One call's wall time (CUDA: between events around it on the stream)."""
    if tensor.is_cuda:
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(tensor)
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / 1e3
    started = time.perf_counter()
    fn(tensor)
    return time.perf_counter() - started


def _write_ceiling(tensor: torch.Tensor) -> None:
    tensor.fill_(1.0)


def sampled_error(op: BenchOp, tensor: torch.Tensor) -> tuple[float, str]:
    """The output's max error on SAMPLE random positions and both ends, in contract units ("contract"),
    or its orthogonality error for orthogonal ("|QQᵀ-I|")."""
    if op.dist_args is None:
        return checks.orthogonality_error(tensor), "|QQᵀ-I|"
    flat = tensor.reshape(-1)
    n = flat.numel()
    positions = torch.cat([torch.randint(0, n, (SAMPLE,), generator=torch.Generator().manual_seed(0)),
                           torch.arange(min(EDGE, n)), torch.arange(max(0, n - EDGE), n)])
    args = op.dist_args(tuple(tensor.shape))
    exact = checks.exact_values(positions, op.dist, args, SEED, 0)  # whole tensor: position = logical index
    return checks.contract_error(flat[positions.to(flat.device)], exact, op.dist, tensor.dtype, **args), "contract"


def bench_row(op: BenchOp, dtype: torch.dtype, device: str, numel: int, repeats: int) -> dict:
    """Time ``op`` against torch and ``fill_`` on one buffer, then check the buffer's values."""
    tensor = torch.empty(op.shape(numel), dtype=dtype, device=device)
    note = ""
    op.ours(tensor)  # warm-up: compiles, caches, first-touch of the pages
    try:
        op.theirs(tensor)
    except (RuntimeError, NotImplementedError) as exc:
        note = f"torch fails: {str(exc).splitlines()[0][:60]}"
    _write_ceiling(tensor)
    runs = _dispatch.executor(tensor, op.dist)
    ours, theirs, fills = [], [], []
    for _ in range(repeats):
        if not note:
            theirs.append(_seconds(op.theirs, tensor))
        fills.append(_seconds(_write_ceiling, tensor))
        ours.append(_seconds(op.ours, tensor))  # last, so the buffer holds our values for the check
    runs_after = _dispatch.executor(tensor, op.dist)
    error, error_kind = sampled_error(op, tensor)
    nbytes = tensor.numel() * tensor.element_size()
    ratios = [t / o for t, o in zip(theirs, ours, strict=True)] if theirs else []
    row = {
        "op": op.name, "dtype": checks.dtype_str(dtype), "shape": list(tensor.shape), "elements": tensor.numel(),
        "runs": runs if runs_after == runs else f"{runs}, then {runs_after}", "repeats": repeats,
        "ours_s": statistics.median(ours), "torch_s": statistics.median(theirs) if theirs else None,
        "ratio_vs_torch": statistics.median(ratios) if ratios else None,
        "ratio_min": min(ratios) if ratios else None, "ratio_max": max(ratios) if ratios else None,
        "gbps": nbytes / statistics.median(ours) / 1e9, "write_ceiling_gbps": nbytes / statistics.median(fills) / 1e9,
        "error": error, "error_kind": error_kind, "note": note,
    }
    row["pct_of_write_ceiling"] = 100 * row["gbps"] / row["write_ceiling_gbps"]
    row["noisy"] = bool(ratios) and len(ratios) > 1 and row["ratio_max"] > NOISY * row["ratio_min"]
    return row


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _g(x: float, digits: int = 3) -> str:
    """``digits`` significant digits, without switching to exponents for ordinary magnitudes."""
    if x == 0 or not math.isfinite(x):
        return str(x)
    if 1e-3 <= abs(x) < 1e6:
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
        return f"{x:.{decimals}f}"
    return f"{x:.{digits - 1}e}"


def machine_summary(device: str) -> dict:
    try:
        triton_version = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton_version = None
    summary = {"triton_init": __version__, "torch": torch.__version__, "triton": triton_version, "device": device,
               "threads": torch.get_num_threads(), "cores": os.cpu_count(), "openmp": _common.openmp_policy(),
               "load_average_start": _load_average()}
    if device.startswith("cuda"):
        summary["device_name"] = f"{torch.cuda.get_device_name(device)} ({device})"
    else:
        summary["device_name"] = "the CPU" + ("" if torch.cuda.is_available() else " (no CUDA device here)")
    return summary


def run_bench(device: str, numel: int, dtypes, ops, repeats: int, out=print) -> dict:
    """The whole bench: header, timed rows, kernel check. Returns everything printed, as data."""
    report = machine_summary(device)
    report.update(numel=numel, repeats=repeats, seed=SEED)
    probe = torch.empty(ops[0].shape(numel), dtype=dtypes[0], device=device)
    first_runs = _dispatch.executor(probe, ops[0].dist)
    del probe
    load = report["load_average_start"]
    out(f"triton-init {__version__} bench on {report['device_name']}: torch {torch.__version__}, "
        f"triton {report['triton'] or '(not installed)'}, {report['threads']} CPU threads on {report['cores']} cores, "
        f"{report['openmp']}" + (f", load average {load:.2f}" if load is not None else ""))
    out(f"timed: {device} tensors here run {first_runs} = {_dispatch.EXECUTORS[first_runs]}; "
        f"column 'runs' names it for each row")
    out(f"method: per row, torch.nn.init's counterpart, a plain fill_ (the write ceiling) and triton_init fill the "
        f"same buffer in turn, {repeats} time(s) after a warm-up; times are medians")
    header = (f"{'op':<15}{'dtype':<9}{'elements':>11}  {'shape':<12}{'runs':<19}{'ours ms':>9}{'torch ms':>10}"
              f"{'vs torch [min-max]':>23}{'GB/s':>9}{'% fill_':>9}  max err")
    out(header)
    out("-" * len(header))
    rows = []
    for op in ops:
        for dtype in dtypes:
            row = bench_row(op, dtype, device, numel, repeats)
            rows.append(row)
            out(_format_row(row))
    report["rows"] = rows
    report["load_average_end"] = _load_average()
    _legend(report, out)
    report["kernel_check"] = _kernel_check(ops, dtypes, out)
    report["ok"] = (all(r["error"] <= 1.0 for r in rows if r["error_kind"] == "contract")
                    and all(r["ok"] for r in report["kernel_check"]["rows"]))
    return report


def _format_row(row: dict) -> str:
    shape = "x".join(str(s) for s in row["shape"])
    torch_ms = _g(1e3 * row["torch_s"]) if row["torch_s"] is not None else "-"
    if row["ratio_vs_torch"] is None:
        ratio = "-"
    elif row["repeats"] > 1:
        ratio = f"{_g(row['ratio_vs_torch'])}x [{_g(row['ratio_min'], 2)}-{_g(row['ratio_max'], 2)}]"
    else:
        ratio = f"{_g(row['ratio_vs_torch'])}x"
    error = f"{_g(row['error'], 2)} {row['error_kind']}"
    flags = ("  noisy" if row["noisy"] else "") + (f"  {row['note']}" if row["note"] else "")
    return (f"{row['op']:<15}{row['dtype']:<9}{row['elements']:>11,}  {shape:<12}{row['runs']:<19}"
            f"{_g(1e3 * row['ours_s']):>9}{torch_ms:>10}{ratio:>23}{_g(row['gbps']):>9}"
            f"{_g(row['pct_of_write_ceiling'], 2) + '%':>9}  {error}{flags}")


def _legend(report: dict, out) -> None:
    out("vs torch: torch.nn.init's time / ours, call by call (above 1: triton_init is faster); [min-max]: the "
        f"range over the {report['repeats']} calls"
        + ("" if report["repeats"] > 1 else " (one call: no range; --repeats 5 gives one)"))
    out("GB/s: bytes written / our median time; % fill_: of torch's fill_ on the same buffer (the write ceiling)")
    out(f"max err: 'contract' = the largest error on {SAMPLE:,} random elements and the first and last {EDGE}, "
        "against the exact (float64) values, in units of stream format v1's contract (1 = the limit: "
        "2e-5 std max(1, |z|) for normal and trunc_normal, 2 fp32 ulps for uniform, plus the one rounding to the "
        "dtype; 0 = as close as the exact value rounded once, so a wrong rounding in bf16 goes above 1); "
        "'|QQᵀ-I|' = the orthogonal output's max |Q Qᵀ - I|")
    noisy = [row for row in report["rows"] if row["noisy"]]
    if noisy:
        load = report["load_average_end"]
        out(f"noisy: {len(noisy)} of {len(report['rows'])} rows had per-call ratios spanning more than {NOISY}x "
            f"(load average {_g(load) if load is not None else '?'} on {report['cores']} cores): "
            "their medians can move by that much between runs")


def _kernel_check(ops, dtypes, out) -> dict:
    started = time.perf_counter()
    names = {op.name for op in ops}
    covered = [op for op in ops if op.same_kernel_as in names]
    result = checks.check_kernels([op for op in ops if op not in covered], dtypes, SEED)
    result["seconds"] = time.perf_counter() - started
    if result["device"] is None:
        out(f"kernel check: skipped: {result['skipped']}")
        return result
    where = ("the Triton kernels on the GPU" if result["device"] == "cuda" else
             "the Triton kernels through the interpreter (TRITON_INTERPRET=1: the plain-math variant, as the tests "
             "run it; GPUs run approximate transcendentals, which this command checks on a GPU)")
    out(f"kernel check: {where}, each row 2 runs of {checks.RUN} logical indices of a (2, C) tensor: one across "
        "index 2^34 (where Philox's counter gains a high word), one around a group whose Philox words put u at "
        "both ends (2^-24, 1 - 2^-24): uniform both ends, normal z = +5.77 and -3.5e-4, trunc_normal both bounds")
    for row in result["rows"]:
        verdict = "ok" if row["ok"] else "FAIL"
        if row["error_kind"] == "contract":
            largest = row["largest_index"]
            detail = (f"{row['indices']} indices up to {largest:,} (2^{math.log2(largest):.1f}): "
                      f"max err {_g(row['error'], 2)} contract")
        else:
            shape = "x".join(map(str, checks.ORTHOGONAL_SHAPE))
            detail = (f"{shape}: max|kernel - reference| {_g(row['error'], 2)} (limit {_g(row['limit'], 2)}), "
                      f"|QQᵀ-I| {_g(row['orthogonality_error'], 2)}")
        out(f"  {row['op']:<15}{row['dtype']:<9}{detail}  {verdict}")
    for op in covered:
        out(f"  {op.name:<15}the {op.same_kernel_as} kernel with scalars from the fans: checked by the "
            f"{op.same_kernel_as} rows")
    failed = sum(not row["ok"] for row in result["rows"])
    out(f"kernel check: {len(result['rows']) - failed} of {len(result['rows'])} rows ok "
        f"in {result['seconds']:.1f} s" + (f"; {failed} FAILED" if failed else ""))
    return result


def _check_memory(device: str, numel: int, dtypes) -> None:
    """Refuse a --numel whose largest buffer would not fit in half the device's memory."""
    itemsize = max(torch.empty((), dtype=d).element_size() for d in dtypes)
    if device.startswith("cuda"):
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if numel * itemsize > total // 2:
        raise _common.UsageError(f"argument --numel: {numel:,} elements need {numel * itemsize / 2**30:.1f} GiB; "
                                 f"{device} has {total / 2**30:.1f} GiB (at most half of it may be used)")


def run(args) -> int:
    device = args.device or _common.default_device()
    numel = args.numel or DEFAULT_NUMEL[torch.device(device).type]
    dtypes = [_common.torch_dtype(name) for name in args.dtypes]
    ops = [op for op in BENCH_OPS if args.ops is None or op.name in args.ops]
    _check_memory(device, numel, dtypes)
    report = run_bench(device, numel, dtypes, ops, args.repeats)
    if args.json:
        with atomic_file(args.json) as temporary, open(temporary, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if report["ok"] else 1


def _json_path(text: str) -> str:
    if os.path.isdir(text):
        raise _common.argparse.ArgumentTypeError(f"cannot write {text!r}: it is a directory")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise _common.argparse.ArgumentTypeError(f"cannot write {text!r}: {folder} is not a writable directory")
    return text


def add_arguments(p) -> None:
    _common.set_command(
        p,
        description="Times what tensors run on this machine (the Triton kernels on a GPU; on a CPU, the path CPU\n"
                    "tensors take, named in each row) against torch.nn.init and a plain fill_ in the same run,\n"
                    "checks a sample of each output against the exact values, then checks the Triton kernels on\n"
                    "sampled logical indices (past 2^32, both ends of each distribution); through the Triton\n"
                    "interpreter when there is no GPU. Exit status 1 if a check fails.",
        run=run)
    p.add_argument("--device", type=_common.device_name, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--numel", type=_common.int_in(1), metavar="N",
                   help="elements per buffer, at least 1 (default: 2^28 on CUDA, 2^20 on the CPU; fan-based ops "
                        "use (N / 1024, 1024), orthogonal a square of side sqrt(N) / 4)")
    p.add_argument("--dtypes", type=_common.dtype_list, default="fp32,bf16", metavar="LIST",
                   help=f"comma-separated, from {', '.join(_common.DTYPES)} (or torch's names) (default: fp32,bf16)")
    p.add_argument("--ops", type=_common.choice_list(OP_NAMES), metavar="LIST",
                   help=f"comma-separated, from {', '.join(OP_NAMES)} (default: all)")
    p.add_argument("--repeats", type=_common.int_in(1), default=5, metavar="N",
                   help="timed calls per row after one warm-up, at least 1 (default: 5)")
    p.add_argument("--json", type=_json_path, metavar="PATH", help="also write everything printed to this JSON file")
