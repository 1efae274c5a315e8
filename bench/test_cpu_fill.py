"""pytest-benchmark: CPU fills (the native executor) against torch.nn.init, fp32.

Not collected by the default test run (testpaths = tests). Run:

    pytest bench/test_cpu_fill.py --benchmark-only [--benchmark-json bench/results/cpu_bench.json]

NUMEL (env TRITON_INIT_BENCH_NUMEL, default 2^24) elements; each benchmark warms up once outside the timed
rounds. bench/cpu_fill.py is the full table (sizes, dtypes, threads, same-run ratios, load).
"""

import os

import pytest
import torch

import triton_init

NUMEL = int(os.environ.get("TRITON_INIT_BENCH_NUMEL", 1 << 24))
OPS = {
    "uniform": (lambda t: triton_init.uniform_(t, -0.1, 0.1, seed=1), lambda t: torch.nn.init.uniform_(t, -0.1, 0.1)),
    "normal": (lambda t: triton_init.normal_(t, 0.0, 0.02, seed=1), lambda t: torch.nn.init.normal_(t, 0.0, 0.02)),
    "trunc_normal": (lambda t: triton_init.trunc_normal_(t, std=0.02, seed=1),
                     lambda t: torch.nn.init.trunc_normal_(t, std=0.02)),
}


@pytest.fixture(scope="module")
def tensor():
    return torch.zeros(NUMEL)


@pytest.mark.parametrize("side", ["triton_init", "torch"])
@pytest.mark.parametrize("op", list(OPS))
def test_cpu_fill(benchmark, tensor, op, side):
    fn = OPS[op][0 if side == "triton_init" else 1]
    benchmark.extra_info["m_elements"] = NUMEL / 1e6
    benchmark.pedantic(fn, args=(tensor,), rounds=5, warmup_rounds=1)
