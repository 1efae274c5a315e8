"""``triton-init bench``: triton_init against torch.nn.init on the best device here, with a sampled check.

Each row of ``BENCH_OPS`` names an op, how triton_init and torch.nn.init run it on a buffer, and how a
sample of the output is checked against the CPU reference. Other features append rows here.
"""

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import triton_init as ti

from . import _cpu, reference
from ._format import NORMAL, TRUNC_NORMAL, UNIFORM

SEED = 2024
SAMPLE = 4096


@dataclass
class BenchOp:
    name: str
    ours: Callable[[torch.Tensor], object]
    theirs: Callable[[torch.Tensor], object] | None
    # returns the max error of a sample in units of std (None if not applicable)
    check: Callable[[torch.Tensor], float | None] | None = None
    shape: Callable[[int], tuple] | None = None  # buffer shape for a target element count


def sampled_error(out: torch.Tensor, dist: int, scale: float, sample: int = SAMPLE, **dist_args) -> float:
    """Max |out - reference| / scale over random positions of a flat output filled with ``SEED``; the
    reference is rounded to the output's dtype too, so low-precision rounding does not count."""
    flat = out.reshape(-1)
    idx = torch.randint(0, flat.numel(), (sample,), generator=torch.Generator().manual_seed(0))
    idx = torch.cat([idx, torch.arange(max(0, flat.numel() - 8), flat.numel())])
    params = reference.dist_params(dist, out.dtype, **dist_args)
    expected = reference.values_at(idx, dist, params, SEED, 0, out.dtype).double()
    got = flat[idx.to(flat.device)].double().cpu()
    return float(((got - expected).abs() / scale).max())


BENCH_OPS = [
    BenchOp(
        "uniform",
        lambda t: ti.uniform_(t, -0.1, 0.1, seed=SEED),
        lambda t: torch.nn.init.uniform_(t, -0.1, 0.1),
        lambda t: sampled_error(t, UNIFORM, 0.1, a=-0.1, b=0.1),
    ),
    BenchOp(
        "normal",
        lambda t: ti.normal_(t, 0.0, 0.02, seed=SEED),
        lambda t: torch.nn.init.normal_(t, 0.0, 0.02),
        lambda t: sampled_error(t, NORMAL, 0.02, mean=0.0, std=0.02),
    ),
    BenchOp(
        "trunc_normal",
        lambda t: ti.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04, seed=SEED),
        lambda t: torch.nn.init.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04),
        lambda t: sampled_error(t, TRUNC_NORMAL, 0.02, mean=0.0, std=0.02, a=-0.04, b=0.04),
    ),
]

# The rest of torch.nn.init. kaiming/xavier are one plain normal/uniform fill with a std from the fans, so
# they should cost exactly what those rows cost; orthogonal is prep fill + QR + one epilogue pass.
FAN_COLUMNS = 1024


def _fan_shape(numel: int) -> tuple:
    """A (rows, 1024) weight of about ``numel`` elements: fan-based inits need two dims."""
    return (max(1, numel // FAN_COLUMNS), FAN_COLUMNS)


def _kaiming_normal_std(t: torch.Tensor) -> float:
    return math.sqrt(2.0) / math.sqrt(t.shape[1])  # leaky_relu with a=0, fan_in


def _xavier_uniform_bound(t: torch.Tensor) -> float:
    return math.sqrt(3.0) * math.sqrt(2.0 / float(t.shape[0] + t.shape[1]))


def _orthogonal_shape(numel: int) -> tuple:
    """Square, with a side of a quarter of sqrt(numel): 512 on the CPU default, 4096 on CUDA's."""
    side = max(2, math.isqrt(numel) // 4)
    return (side, side)


def orthogonality_error(out: torch.Tensor) -> float:
    """max |Q Qᵀ - I| (QᵀQ for a tall Q) in float64 on the output's device: the output's own error,
    so bf16 shows its rounding (about 1e-2), fp32 about 1e-6."""
    q = out.reshape(out.shape[0], -1).double()
    gram = q @ q.t() if q.shape[0] <= q.shape[1] else q.t() @ q
    gram.diagonal().sub_(1.0)
    return float(gram.abs().max())


BENCH_OPS += [
    BenchOp(
        "kaiming_normal",
        lambda t: ti.kaiming_normal_(t, seed=SEED),
        lambda t: torch.nn.init.kaiming_normal_(t),
        lambda t: sampled_error(t, NORMAL, _kaiming_normal_std(t), mean=0.0, std=_kaiming_normal_std(t)),
        _fan_shape,
    ),
    BenchOp(
        "xavier_uniform",
        lambda t: ti.xavier_uniform_(t, seed=SEED),
        lambda t: torch.nn.init.xavier_uniform_(t),
        lambda t: sampled_error(t, UNIFORM, _xavier_uniform_bound(t), a=-_xavier_uniform_bound(t),
                                b=_xavier_uniform_bound(t)),
        _fan_shape,
    ),
    BenchOp(
        "orthogonal",  # error column: max |Q Qᵀ - I|; torch fails in bf16 and fp16 (no geqrf)
        lambda t: ti.orthogonal_(t, seed=SEED),
        lambda t: torch.nn.init.orthogonal_(t),
        orthogonality_error,
        _orthogonal_shape,
    ),
]


def _time(fn, tensor: torch.Tensor, repeats: int) -> float:
    """Median seconds of ``fn(tensor)`` over ``repeats`` runs, after one warm-up run."""
    fn(tensor)
    times = []
    for _ in range(repeats):
        if tensor.is_cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(tensor)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 1e3)
        else:
            t0 = time.perf_counter()
            fn(tensor)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(device: str, numel: int, dtypes, ops, repeats: int, out=print) -> list[dict]:
    rows = []
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    out(f"triton-init bench on {name}: {numel:,} elements, median of {repeats} runs after a warm-up")
    if not device.startswith("cuda"):
        out(f"CPU tensors run on the {_cpu.executor()}")
    header = (f"{'op':<16}{'dtype':<10}{'elem/s':>12}{'GB/s':>10}{'torch elem/s':>14}{'vs torch':>10}"
              f"{'max err (std)':>15}")
    out(header)
    out("-" * len(header))
    for op in ops:
        for dtype in dtypes:
            shape = op.shape(numel) if op.shape else (numel,)
            tensor = torch.empty(shape, dtype=dtype, device=device)
            ours = _time(op.ours, tensor, repeats)
            error = op.check(tensor) if op.check else None
            theirs, note = None, ""
            if op.theirs is not None:
                try:
                    theirs = _time(op.theirs, tensor, repeats)
                except (RuntimeError, NotImplementedError) as exc:
                    note = f"torch fails: {str(exc).splitlines()[0][:60]}"
            n = tensor.numel()
            row = {
                "op": op.name, "dtype": str(dtype).replace("torch.", ""), "numel": n, "device": name,
                "elements_per_s": n / ours, "gbps": n * tensor.element_size() / ours / 1e9,
                "torch_elements_per_s": n / theirs if theirs else None,
                "ratio_vs_torch": theirs / ours if theirs else None, "max_error_std": error, "note": note,
            }
            rows.append(row)
            torch_rate = f"{row['torch_elements_per_s']:.3e}" if theirs else "-"
            ratio = f"{row['ratio_vs_torch']:.2f}x" if theirs else "-"
            err = f"{error:.2e}" if error is not None else "-"
            out(f"{op.name:<16}{row['dtype']:<10}{row['elements_per_s']:>12.3e}{row['gbps']:>10.2f}"
                f"{torch_rate:>14}{ratio:>10}{err:>15}" + (f"   {note}" if note else ""))
            del tensor
    return rows
