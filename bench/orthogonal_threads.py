"""What factoring orthogonal_'s matrix on one thread costs on the CPU: LAPACK's fp32 QR of an n x n Gaussian
matrix on 1 thread and on torch's thread count (alternating, median of each), and orthogonal_ itself (whose QR
runs on one thread, so that its bits do not depend on the thread count), with the load average.

    python bench/orthogonal_threads.py [--n 4096] [--threads 2] [--repeats 3]
"""

import argparse
import os
import statistics
import time

import torch

import triton_init


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    n = args.n
    load_before = os.getloadavg()[0]
    a = torch.randn(n, n)
    times = {1: [], args.threads: []}
    for _ in range(args.repeats):
        for threads in times:
            torch.set_num_threads(threads)
            times[threads].append(_timed(lambda: torch.linalg.qr(a)))
    torch.set_num_threads(args.threads)
    ours = [_timed(lambda: triton_init.orthogonal_(torch.empty(n, n), seed=1)) for _ in range(args.repeats)]
    one, many = statistics.median(times[1]), statistics.median(times[args.threads])
    print(f"LAPACK QR fp32 {n}x{n}: 1 thread {one:.2f} s, {args.threads} threads {many:.2f} s "
          f"(one thread costs {one / many:.2f}x)")
    print(f"orthogonal_ {n}x{n} fp32 at {args.threads} torch threads (QR on one): {statistics.median(ours):.2f} s")
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; {os.cpu_count()} cpus")


if __name__ == "__main__":
    main()
