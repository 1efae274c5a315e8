"""CPU tensors' fills (the native executor) against torch.nn.init on the same tensors, in the same run.

For fp32 and bf16, 2^16 to 2^28 elements, on 1 and 2 threads (one process per thread count):
  uniform        uniform_(-0.1, 0.1)
  normal         normal_(0, 0.02)
  trunc_2std     trunc_normal_(0, 0.02, -0.04, 0.04): a +-2 std interval
  trunc_titan    trunc_normal_(std=0.02) on torch's default [-2, 2] (torchtitan's weights)
Each row alternates triton_init and torch.nn.init on the same tensor after one warm-up call of each, and
reports the median time of each, the ratio of the medians (torch / ours: above 1 is faster than torch), the
spread of the per-pair ratios (min and max), and the 1-minute load average before and after the row. Each
process also reports its import, its first fill against the median of the next seven (no stall beyond the
import), and the peak resident-memory growth of each fill of its largest tensors (extra memory O(threads), not
O(numel)).

    python bench/cpu_fill.py [--max-log2 28] [--threads 1,2] [--dtypes fp32,bf16] [--out bench/results/cpu_fill.json]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "cpu_fill.json"
# The targets: the ratio torch time / our time each op must reach at every size and thread count.
TARGETS = {"uniform": 2.0, "normal": 1.5, "trunc_2std": 5.0, "trunc_titan": 1.5}
MIN_SECONDS = 0.5  # per row and side, so that small sizes get more repeats


def _ops():
    import torch

    import triton_init as ti

    return {
        "uniform": (lambda t: ti.uniform_(t, -0.1, 0.1, seed=1), lambda t: torch.nn.init.uniform_(t, -0.1, 0.1)),
        "normal": (lambda t: ti.normal_(t, 0.0, 0.02, seed=1), lambda t: torch.nn.init.normal_(t, 0.0, 0.02)),
        "trunc_2std": (lambda t: ti.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04, seed=1),
                       lambda t: torch.nn.init.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04)),
        "trunc_titan": (lambda t: ti.trunc_normal_(t, std=0.02, seed=1),
                        lambda t: torch.nn.init.trunc_normal_(t, std=0.02)),
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _timed(fn, tensor) -> float:
    t0 = time.perf_counter()
    fn(tensor)
    return time.perf_counter() - t0


def child(threads: int, sizes, dtypes) -> dict:
    """One process: every (dtype, size, op) row on ``threads`` threads, then the first-call and memory figures."""
    t0 = time.perf_counter()
    import torch

    torch_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    import triton_init
    from triton_init import _cpu

    assert triton_init.normal_  # the package loads its names on first use: the import is complete only now
    import_s = time.perf_counter() - t0
    torch.set_num_threads(threads)
    probe = torch.zeros(1 << 20)
    first = _timed(lambda t: triton_init.normal_(t, seed=0), probe)
    steady = statistics.median(_timed(lambda t, k=k: triton_init.normal_(t, seed=k), probe) for k in range(1, 8))
    record = {"threads": threads, "executor": _cpu.executor(), "torch_import_s": round(torch_import, 3),
              "triton_init_import_s": round(import_s, 3), "first_fill_s": first, "steady_fill_s": steady,
              "rows": [], "peak_rss_growth_mib": {}}
    ops = _ops()
    for dtype_name in dtypes:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
        for log2 in sizes:
            tensor = torch.zeros(1 << log2, dtype=dtype)  # every page touched before timing
            for op, (ours, theirs) in ops.items():
                load_before = os.getloadavg()[0]
                warm = _timed(ours, tensor) + _timed(theirs, tensor)
                repeats = max(3 if warm > 2.0 else 5, min(25, int(2 * MIN_SECONDS / max(warm, 1e-9))))
                mine, torch_times = [], []
                for _ in range(repeats):  # alternating, so that both see the same load
                    mine.append(_timed(ours, tensor))
                    torch_times.append(_timed(theirs, tensor))
                ratios = [b / a for a, b in zip(mine, torch_times, strict=True)]
                n = tensor.numel()
                ratio = statistics.median(torch_times) / statistics.median(mine)
                record["rows"].append({
                    "op": op, "dtype": dtype_name, "log2_numel": log2, "threads": threads, "repeats": repeats,
                    "ours_median_s": statistics.median(mine), "torch_median_s": statistics.median(torch_times),
                    "ours_m_elements_per_s": round(n / statistics.median(mine) / 1e6, 1),
                    "torch_m_elements_per_s": round(n / statistics.median(torch_times) / 1e6, 1),
                    "ratio": round(ratio, 3), "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
                    "target": TARGETS[op], "meets_target": ratio >= TARGETS[op],
                    "load_before": load_before, "load_after": os.getloadavg()[0],
                })
            if log2 == max(sizes):  # extra memory of our fills: O(threads), not O(numel)
                for op, (ours, _) in ops.items():
                    before = _rss_bytes()
                    if _reset_peak_rss():
                        ours(tensor)
                        growth = (_peak_rss_bytes() - before) / 2**20
                        record["peak_rss_growth_mib"][f"{op}/{dtype_name}/2^{log2}"] = round(growth, 2)
            del tensor
    return record


def run_child(threads: int, sizes, dtypes) -> dict:
    cmd = [sys.executable, __file__, "--child", str(threads), "--sizes", ",".join(map(str, sizes)),
           "--dtypes", ",".join(dtypes)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"threads": threads, "error": proc.stderr.strip().splitlines()[-3:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-log2", type=int, default=16)
    parser.add_argument("--max-log2", type=int, default=28)
    parser.add_argument("--step", type=int, default=2, help="log2 step between sizes (default 2)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts, one process each")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dtypes = args.dtypes.split(",")
    if args.child:
        print(json.dumps(child(args.child, [int(s) for s in args.sizes.split(",")], dtypes)))
        return 0
    sizes = list(range(args.min_log2, args.max_log2 + 1, args.step))
    processes = [run_child(int(t), sizes, dtypes) for t in args.threads.split(",")]
    print(f"{'op':<12}{'dtype':<6}{'n':>5}{'thr':>4}{'ours M/s':>10}{'torch M/s':>11}{'ratio':>7}"
          f"{'(min-max)':>14}{'target':>8}{'load':>11}")
    for proc in processes:
        if "error" in proc:
            print(f"threads {proc['threads']}: ERROR {proc['error']}")
            continue
        for r in proc["rows"]:
            mark = "" if r["meets_target"] else "  BELOW TARGET"
            print(f"{r['op']:<12}{r['dtype']:<6}{'2^' + str(r['log2_numel']):>5}{r['threads']:>4}"
                  f"{r['ours_m_elements_per_s']:>10.1f}{r['torch_m_elements_per_s']:>11.1f}{r['ratio']:>7.2f}"
                  f"{'(' + format(r['ratio_min'], '.2f') + '-' + format(r['ratio_max'], '.2f') + ')':>14}"
                  f"{r['target']:>8.1f}{r['load_before']:>6.1f}-{r['load_after']:<4.1f}{mark}")
        print(f"threads {proc['threads']}: {proc['executor']}; import triton_init {proc['triton_init_import_s']:.2f} s,"
              f" first 2^20 normal_ {proc['first_fill_s'] * 1e3:.2f} ms, then {proc['steady_fill_s'] * 1e3:.2f} ms"
              f" (median of 7); peak RSS growth of a fill (MiB): {proc['peak_rss_growth_mib']}")
    result = {"machine": f"{_cpu_model()}, {os.cpu_count()} cpus, {platform.machine()}",
              "python": platform.python_version(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "processes": processes}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
