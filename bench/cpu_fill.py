"""CPU tensors' fills (the native executor) against torch.nn.init on the same tensors, in the same run.

For fp32 and bf16, 2^16 to 2^28 elements, on 1 and 2 threads (one process per thread count):
  uniform        uniform_(-0.1, 0.1)
  normal         normal_(0, 0.02)
  trunc_2std     trunc_normal_(0, 0.02, -0.04, 0.04): a +-2 std interval
  trunc_titan    trunc_normal_(std=0.02) on torch's default [-2, 2] (torchtitan's weights)
Each row alternates triton_init and torch.nn.init on the same tensor after one warm-up call of each, and
reports the median time of each, the ratio of the medians (torch / ours: above 1 is faster than torch), the
spread of the per-pair ratios (min and max), and the 1-minute load average before and after the row. A second
table sets our trunc_titan against our normal the same way (alternating on one tensor): the throughput of
trunc_normal_(std=0.02) on [-2, 2] as a fraction of normal_'s (target TRUNC_VS_NORMAL), by wall time and by
the process's CPU time (which other processes' load disturbs much less). Each
process also reports its import, its first fill against the median of the next seven (no stall beyond the
import), and the peak resident-memory growth of each fill of its largest tensors (extra memory O(threads), not
O(numel)).

    python bench/cpu_fill.py [--min-log2 16] [--max-log2 28] [--threads 1,2] [--dtypes fp32,bf16]
                             [--ops uniform,normal,trunc_2std,trunc_titan] [--out bench/results/cpu_fill.json]
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
TRUNC_VS_NORMAL = 0.7  # our trunc_titan's throughput as a fraction of our normal's


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


def _cpu_timed(fn, tensor) -> tuple[float, float]:
    """Wall time and this process's CPU time (all its threads) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn(tensor)
    return time.perf_counter() - t0, time.process_time() - c0


def _alternating(first, second, tensor):
    """``first`` and ``second`` timed alternately on ``tensor`` (so that both see the same load) after one
    warm-up call each: their wall times, and the ratio of the medians (second / first) with the spread of the
    per-pair ratios, the ratio of their least CPU times (what another process's load takes from a fill shows
    in its wall time, much less in its CPU time) and the load average before and after."""
    load_before = os.getloadavg()[0]
    warm = _timed(first, tensor) + _timed(second, tensor)
    repeats = max(3 if warm > 2.0 else 5, min(25, int(2 * MIN_SECONDS / max(warm, 1e-9))))
    a, b = [], []
    for _ in range(repeats):
        a.append(_cpu_timed(first, tensor))
        b.append(_cpu_timed(second, tensor))
    ratios = [y[0] / x[0] for x, y in zip(a, b, strict=True)]
    wall_a, wall_b = [t for t, _ in a], [t for t, _ in b]
    return wall_a, wall_b, {
        "repeats": repeats, "ratio": round(statistics.median(wall_b) / statistics.median(wall_a), 3),
        "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
        "cpu_ratio": round(min(c for _, c in b) / max(min(c for _, c in a), 1e-9), 3),
        "load_before": load_before, "load_after": os.getloadavg()[0]}


def child(threads: int, sizes, dtypes, op_names) -> dict:
    """One process: every (dtype, size, op) row on ``threads`` threads and our trunc_titan against our normal,
    then the first-call and memory figures."""
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
              "rows": [], "trunc_vs_normal": [], "peak_rss_growth_mib": {}}
    all_ops = _ops()
    for dtype_name in dtypes:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
        for log2 in sizes:
            tensor = torch.zeros(1 << log2, dtype=dtype)  # every page touched before timing
            n = tensor.numel()
            for op in op_names:
                ours, theirs = all_ops[op]
                mine, torch_times, row = _alternating(ours, theirs, tensor)
                ratio = row["ratio"]
                record["rows"].append({
                    "op": op, "dtype": dtype_name, "log2_numel": log2, "threads": threads, **row,
                    "ours_median_s": statistics.median(mine), "torch_median_s": statistics.median(torch_times),
                    "ours_m_elements_per_s": round(n / statistics.median(mine) / 1e6, 1),
                    "torch_m_elements_per_s": round(n / statistics.median(torch_times) / 1e6, 1),
                    "target": TARGETS[op], "meets_target": ratio >= TARGETS[op],
                })
            # our trunc_titan against our normal: its throughput as a fraction of normal's
            titan, normal, row = _alternating(all_ops["trunc_titan"][0], all_ops["normal"][0], tensor)
            record["trunc_vs_normal"].append({
                "dtype": dtype_name, "log2_numel": log2, "threads": threads, **row,
                "trunc_titan_m_elements_per_s": round(n / statistics.median(titan) / 1e6, 1),
                "normal_m_elements_per_s": round(n / statistics.median(normal) / 1e6, 1),
                "target": TRUNC_VS_NORMAL, "meets_target": row["ratio"] >= TRUNC_VS_NORMAL,
            })
            if log2 == max(sizes):  # extra memory of our fills: O(threads), not O(numel)
                for op in op_names:
                    ours = all_ops[op][0]
                    before = _rss_bytes()
                    if _reset_peak_rss():
                        ours(tensor)
                        growth = (_peak_rss_bytes() - before) / 2**20
                        record["peak_rss_growth_mib"][f"{op}/{dtype_name}/2^{log2}"] = round(growth, 2)
            del tensor
    return record


def run_child(threads: int, sizes, dtypes, op_names) -> dict:
    cmd = [sys.executable, __file__, "--child", str(threads), "--sizes", ",".join(map(str, sizes)),
           "--dtypes", ",".join(dtypes), "--ops", ",".join(op_names)]
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
    parser.add_argument("--ops", default=",".join(TARGETS), help="ops timed against torch (default: all four)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dtypes = args.dtypes.split(",")
    op_names = [op for op in args.ops.split(",") if op]
    unknown = sorted(set(op_names) - set(TARGETS))
    if unknown:
        parser.error(f"unknown ops {unknown} (choose from {', '.join(TARGETS)})")
    if args.child:
        print(json.dumps(child(args.child, [int(s) for s in args.sizes.split(",")], dtypes, op_names)))
        return 0
    sizes = list(range(args.min_log2, args.max_log2 + 1, args.step))
    processes = [run_child(int(t), sizes, dtypes, op_names) for t in args.threads.split(",")]
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
    print(f"\ntrunc_normal_(std=0.02) on [-2, 2] (trunc_titan) against normal_, ours both: throughput fraction "
          f"(target {TRUNC_VS_NORMAL})")
    print(f"{'dtype':<6}{'n':>5}{'thr':>4}{'trunc M/s':>11}{'normal M/s':>12}{'wall':>7}{'cpu':>7}{'load':>11}")
    for proc in processes:
        for r in proc.get("trunc_vs_normal", []):
            mark = "" if r["meets_target"] else "  BELOW TARGET (wall)"
            print(f"{r['dtype']:<6}{'2^' + str(r['log2_numel']):>5}{r['threads']:>4}"
                  f"{r['trunc_titan_m_elements_per_s']:>11.1f}{r['normal_m_elements_per_s']:>12.1f}{r['ratio']:>7.2f}"
                  f"{r['cpu_ratio']:>7.2f}{r['load_before']:>6.1f}-{r['load_after']:<4.1f}{mark}")
    for proc in processes:
        if "error" in proc:
            continue
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
