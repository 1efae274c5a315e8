"""pytest-benchmark: the CPU reference path (compiled and eager) against torch.nn.init.normal_.

Not collected by the default test run (testpaths = tests). Run:

    pytest bench/test_cpu_reference.py --benchmark-only [--benchmark-json bench/results/cpu_bench.json]

NUMEL (env TRITON_INIT_BENCH_NUMEL, default 10^8) elements of fp32; the compiled path's first call (its
compile, or a cache load) happens in the warm-up, outside the timed rounds, and is printed.
"""

import os
import time

import pytest
import torch

import triton_init
from triton_init import _cpu_compiled

NUMEL = int(os.environ.get("TRITON_INIT_BENCH_NUMEL", 10**8))


@pytest.fixture(scope="module")
def tensor():
    t = torch.empty(NUMEL, dtype=torch.float32)
    t.zero_()
    return t


def test_torch_normal(benchmark, tensor):
    benchmark.extra_info["m_elements"] = NUMEL / 1e6
    benchmark.pedantic(torch.nn.init.normal_, args=(tensor,), rounds=3, warmup_rounds=1)


def test_triton_init_normal_compiled(benchmark, tensor, monkeypatch):
    monkeypatch.setenv(_cpu_compiled.ENV, "1")
    start = time.perf_counter()
    triton_init.normal_(tensor, seed=1)
    first = time.perf_counter() - start
    if not _cpu_compiled.compile_seconds:
        pytest.skip(f"the compiled path is unavailable: {_cpu_compiled._failed}")
    benchmark.extra_info["first_call_s"] = round(first, 2)
    benchmark.extra_info["m_elements"] = NUMEL / 1e6
    print(f"\nfirst call (compile or cache load): {first:.1f} s")
    benchmark.pedantic(triton_init.normal_, args=(tensor,), kwargs={"seed": 2}, rounds=3, warmup_rounds=0)


def test_triton_init_normal_eager(benchmark, monkeypatch):
    monkeypatch.setenv(_cpu_compiled.ENV, "0")
    small = torch.empty(NUMEL // 10, dtype=torch.float32)
    benchmark.extra_info["m_elements"] = small.numel() / 1e6
    benchmark.pedantic(triton_init.normal_, args=(small,), kwargs={"seed": 3}, rounds=1, warmup_rounds=0)
