"""CPU reference path against torch.nn.init.normal_ on the CPU: throughput, compile cost, peak memory.

Each measurement runs in its own process (so peak RSS and the compile cost are its own) and times
triton_init.normal_ and torch.nn.init.normal_ alternately on the same fp32 tensor of N elements:
  compiled   the torch.compile path; its first call pays the compile (fresh inductor cache)
  cached     the same in a second process: what the on-disk inductor cache leaves of the compile
  cached-1t  the same with one thread each (a loaded machine makes the two-thread numbers noisy)
  cached-passive  the same with OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep at barriers, not spin)
  eager      the eager reference (TRITON_INIT_CPU_COMPILE=0) on N / 10 elements

    python bench/cpu_reference.py [--numel 100000000] [--repeat 3] [--out bench/results/cpu_reference.json]

Peak RSS growth: the process's peak resident set (VmHWM) minus its resident set just before the first
fill (after the tensor is allocated and touched), which includes torch.compile's own machinery; and,
after resetting the peak (/proc/self/clear_refs), the same over the warm calls alone.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "cpu_reference.json"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """VmHWM: the peak resident set since the start or since _reset_peak_rss()."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(mode: str, numel: int, repeat: int, threads: int) -> dict:
    """One measurement, in this process: triton_init.normal_ and torch's, alternating, same tensor."""
    import torch

    import triton_init
    from triton_init import _cpu_compiled

    if threads:
        torch.set_num_threads(threads)
    tensor = torch.empty(numel, dtype=torch.float32)
    tensor.zero_()  # touch every page before the baseline is read
    torch.nn.init.normal_(tensor)  # torch's own warm-up
    before = _rss_bytes()
    t0 = time.perf_counter()
    triton_init.normal_(tensor, seed=1234)
    first = time.perf_counter() - t0
    first_growth = _peak_rss_bytes() - before
    warm_before = _rss_bytes()
    reset = _reset_peak_rss()
    ours, theirs = [], []
    for k in range(repeat):  # alternate, so that both see the same machine load
        t0 = time.perf_counter()
        triton_init.normal_(tensor, seed=k)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torch.nn.init.normal_(tensor)
        theirs.append(time.perf_counter() - t0)
    ours_rate = numel / statistics.median(ours) / 1e6
    torch_rate = numel / statistics.median(theirs) / 1e6
    return {
        "mode": mode,
        "numel": numel,
        "threads": torch.get_num_threads(),
        "first_call_s": round(first, 3),
        "m_elements_per_s": round(ours_rate, 1),
        "torch_m_elements_per_s": round(torch_rate, 1),
        "ratio_vs_torch": round(ours_rate / torch_rate, 2),
        "peak_rss_growth_mib": round(first_growth / 2**20, 1),  # first call: compile machinery included
        "warm_peak_rss_growth_mib": round((_peak_rss_bytes() - warm_before) / 2**20, 1) if reset else None,
        "compiled": bool(_cpu_compiled.compile_seconds),
        "load_average": os.getloadavg()[0],
        "torch_version": torch.__version__,
    }


def run_child(mode: str, numel: int, repeat: int, env: dict, threads: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--numel", str(numel), "--repeat", str(repeat),
           "--threads", str(threads)]
    proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"mode": mode, "numel": numel, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=10**8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache-dir", default=None,
                        help="TORCHINDUCTOR_CACHE_DIR for the compiled runs (default: a fresh one, so the "
                             "first run pays the whole compile)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.numel, args.repeat, args.threads)))
        return 0

    import tempfile

    cache = args.cache_dir or tempfile.mkdtemp(prefix="triton_init_inductor_")
    compiled_env = {"TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_INIT_CPU_COMPILE": "1"}  # forced: 1e8 < 2^28
    records = [
        run_child("compiled", args.numel, args.repeat, compiled_env, args.threads),  # pays the compile
        run_child("cached", args.numel, args.repeat, compiled_env, args.threads),  # loads it from the cache
        run_child("cached-1t", args.numel, args.repeat, compiled_env, 1),  # one thread each
        # OpenMP threads that sleep instead of spinning at the barrier: far less hurt by a busy neighbour
        run_child("cached-passive", args.numel, args.repeat, {**compiled_env, "OMP_WAIT_POLICY": "PASSIVE"},
                  args.threads),
        run_child("eager", args.numel // 10, 1, {"TRITON_INIT_CPU_COMPILE": "0"}, args.threads),
    ]
    for r in records:
        r["machine"] = f"{platform.machine()} {os.cpu_count()} cpus"
    print(f"{'mode':<14} {'numel':>11} {'thr':>3} {'M el/s':>8} {'torch':>8} {'ratio':>6} {'first call s':>12} "
          f"{'peak RSS +MiB':>13} {'warm +MiB':>9} {'load':>5}")
    for r in records:
        if "error" in r:
            print(f"{r['mode']:<14} {r['numel']:>11} ERROR {r['error']}")
            continue
        print(f"{r['mode']:<14} {r['numel']:>11} {r['threads']:>3} {r['m_elements_per_s']:>8.1f} "
              f"{r['torch_m_elements_per_s']:>8.1f} {r['ratio_vs_torch']:>6.2f} {r['first_call_s']:>12.2f} "
              f"{r['peak_rss_growth_mib']:>13.1f} {r['warm_peak_rss_growth_mib']!s:>9} {r['load_average']:>5.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
