"""The Python side of one call on CPU tensors: per-call overhead in microseconds, and small fills against torch.

For fp32 tensors of 1 and 2^16 elements, on 1 and 2 threads, each op is timed three ways on the same tensor,
calls alternating: the public call (``triton_init.normal_(t, ..., seed=1)``), the native fill alone with
its arguments prepared once (``_cpu.native_fill_``: what is left without argument checks, layout, key and
dispatch), and ``torch.nn.init``'s. Overhead = median(call) - median(native fill). Ratio = median(torch) /
median(call): the issue's targets at 2^16 elements are 1.5x for normal_ and 2x for uniform_; at 1 element
the call is all overhead (target: <= 25 us). The 1-minute load average is printed before and after.

    python bench/overhead.py [--repeats 2000] [--threads 1,2] [--json bench/results/overhead.json]
"""

import argparse
import json
import os
import statistics
import time

import torch

import triton_init as ti
from triton_init import _cpu, _layout
from triton_init.reference import call_params

SIZES = (1, 1 << 16)
TARGETS = {"uniform_": 2.0, "normal_": 1.5}  # torch / ours at 2^16 elements
OVERHEAD_TARGET_US = 25.0
SEED = 1


def ops():
    """name -> (ours, torch's, (dist, dist_args) of the fill): torchtitan's and timm's defaults among them."""
    return {
        "uniform_": (lambda t: ti.uniform_(t, -0.1, 0.1, seed=SEED), lambda t: torch.nn.init.uniform_(t, -0.1, 0.1),
                     (ti._format.UNIFORM, {"a": -0.1, "b": 0.1})),
        "normal_": (lambda t: ti.normal_(t, 0.0, 0.02, seed=SEED), lambda t: torch.nn.init.normal_(t, 0.0, 0.02),
                    (ti._format.NORMAL, {"mean": 0.0, "std": 0.02})),
        "trunc_normal_": (lambda t: ti.trunc_normal_(t, std=0.02, seed=SEED),
                          lambda t: torch.nn.init.trunc_normal_(t, std=0.02),
                          (ti._format.TRUNC_NORMAL, {"mean": 0.0, "std": 0.02, "a": -2.0, "b": 2.0})),
    }


def measure(numel: int, repeats: int) -> dict:
    """Medians (us) of the call, the native fill alone and torch's, calls alternating, after a warm-up."""
    out = {}
    for name, (ours, theirs, (dist, dist_args)) in ops().items():
        tensor = torch.empty(numel)
        layout = _layout.make_layout(tensor)
        dist, params = call_params(dist, tensor.dtype, **dist_args)

        def native(t, dist=dist, params=params, layout=layout):
            _cpu.native_fill_(t, layout, dist, params, SEED, 0)

        sides = {"call": ours, "native": native, "torch": theirs}
        times = {side: [] for side in sides}
        for _ in range(max(10, repeats // 20)):  # warm-up
            for fn in sides.values():
                fn(tensor)
        for _ in range(repeats):
            for side, fn in sides.items():
                t0 = time.perf_counter()
                fn(tensor)
                times[side].append(time.perf_counter() - t0)
        med = {side: statistics.median(ts) * 1e6 for side, ts in times.items()}
        out[name] = {**{f"{side}_us": round(v, 2) for side, v in med.items()},
                     "overhead_us": round(med["call"] - med["native"], 2),
                     "ratio_vs_torch": round(med["torch"] / med["call"], 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2000, help="timed calls per side and row (default: 2000)")
    parser.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated (default: 1,2)")
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args()
    if not _cpu.available():
        raise SystemExit(f"the native executor is unavailable: {_cpu.unavailable_reason}")
    load_before = os.getloadavg()[0]
    rows = []
    print(f"{'threads':>7} {'numel':>7} {'op':<14} {'call us':>9} {'native us':>9} {'overhead us':>11} "
          f"{'torch us':>9} {'torch/ours':>10}")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for numel in SIZES:
            for name, row in measure(numel, args.repeats).items():
                target = OVERHEAD_TARGET_US if numel == 1 else TARGETS.get(name)
                met = "" if target is None else (
                    f"  (target <= {target:g} us overhead)" if numel == 1 else f"  (target >= {target:g}x)")
                print(f"{threads:>7} {numel:>7} {name:<14} {row['call_us']:>9.2f} {row['native_us']:>9.2f} "
                      f"{row['overhead_us']:>11.2f} {row['torch_us']:>9.2f} {row['ratio_vs_torch']:>10.2f}{met}")
                rows.append({"threads": threads, "numel": numel, "op": name, **row})
    load_after = os.getloadavg()[0]
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after; torch {torch.__version__}, "
          f"{_cpu.executor()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_before": load_before, "load_after": load_after, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
