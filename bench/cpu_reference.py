"""CPU reference path against torch.nn.init.normal_ on the CPU: throughput, compile cost, peak memory.

Each measurement runs in its own process (so peak RSS and the compile cost are its own):
  torch      torch.nn.init.normal_ on an fp32 tensor of N elements
  compiled   triton_init.normal_ on the CPU (the torch.compile path), first call (compile) and warm calls
  cached     the same in a second process: what the on-disk inductor cache leaves of the compile
  eager      the eager reference (TRITON_INIT_CPU_COMPILE=0) on N / 10 elements

    python bench/cpu_reference.py [--numel 100000000] [--repeat 3] [--out bench/results/cpu_reference.json]

Peak RSS growth is the process's peak resident set (ru_maxrss) minus its resident set just before the
first fill (after the tensor is allocated and touched).
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(mode: str, numel: int, repeat: int) -> dict:
    """One measurement, in this process."""
    import torch

    import triton_init
    from triton_init import _cpu_compiled

    tensor = torch.empty(numel, dtype=torch.float32)
    tensor.zero_()  # touch every page before the baseline is read
    before = _rss_bytes()
    if mode == "torch":
        def fill():
            torch.nn.init.normal_(tensor)
    else:
        def fill():
            triton_init.normal_(tensor, seed=1234)
    times = []
    t0 = time.perf_counter()
    fill()
    first = time.perf_counter() - t0
    for _ in range(repeat):
        t0 = time.perf_counter()
        fill()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {
        "mode": mode,
        "numel": numel,
        "first_call_s": round(first, 3),
        "median_s": round(median, 4),
        "m_elements_per_s": round(numel / median / 1e6, 1),
        "peak_rss_growth_mib": round((_peak_rss_bytes() - before) / 2**20, 1),
        "compiled": bool(_cpu_compiled.compile_seconds) if mode != "torch" else None,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }


def run_child(mode: str, numel: int, repeat: int, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--numel", str(numel), "--repeat", str(repeat)]
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
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.numel, args.repeat)))
        return 0

    import tempfile

    cache = args.cache_dir or tempfile.mkdtemp(prefix="triton_init_inductor_")
    compiled_env = {"TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_INIT_CPU_COMPILE": ""}
    records = [
        run_child("torch", args.numel, args.repeat, {}),
        run_child("compiled", args.numel, args.repeat, compiled_env),
        run_child("cached", args.numel, args.repeat, compiled_env),
        run_child("eager", args.numel // 10, 1, {"TRITON_INIT_CPU_COMPILE": "0"}),
    ]
    torch_rate = records[0].get("m_elements_per_s")
    for r in records:
        if "m_elements_per_s" in r and torch_rate:
            r["ratio_vs_torch"] = round(r["m_elements_per_s"] / torch_rate, 2)
        r["machine"] = f"{platform.machine()} {os.cpu_count()} cpus"
    print(f"{'mode':<9} {'numel':>11} {'M el/s':>8} {'vs torch':>8} {'first call s':>12} {'peak RSS +MiB':>13}")
    for r in records:
        if "error" in r:
            print(f"{r['mode']:<9} {r['numel']:>11} ERROR {r['error']}")
            continue
        print(f"{r['mode']:<9} {r['numel']:>11} {r['m_elements_per_s']:>8.1f} {r.get('ratio_vs_torch', 0):>8.2f} "
              f"{r['first_call_s']:>12.2f} {r['peak_rss_growth_mib']:>13.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
