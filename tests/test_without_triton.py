"""Without triton (it is a Linux-only dependency) the package still imports, and CPU fills work on the native
executor and on the torch-op reference."""

import subprocess
import sys
import textwrap


def test_reference_path_without_triton():
    code = textwrap.dedent("""
        import sys
        sys.modules["triton"] = None  # import triton now raises ImportError
        import torch
        import triton_init
        a, native = torch.empty(1000), torch.empty(1000)
        with triton_init.backend("reference"):
            triton_init.trunc_normal_(a, std=0.02, a=-0.04, b=0.04, seed=7, stream="w")
        b = triton_init.reference.values_at(torch.arange(1000), 2, triton_init.reference.dist_params(
            2, torch.float32, mean=0.0, std=0.02, a=-0.04, b=0.04), 7, triton_init.stream_id("w"), torch.float32)
        assert torch.equal(a, b), (a - b).abs().max()
        triton_init.trunc_normal_(native, std=0.02, a=-0.04, b=0.04, seed=7, stream="w")
        assert (native - b).abs().max() < 1e-6
        triton_init.kaiming_uniform_(torch.empty(16, 8), seed=1)
        triton_init.orthogonal_(torch.empty(6, 4), seed=1)
        print("ok")
    """)
    env_free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert env_free.returncode == 0, env_free.stderr
    assert env_free.stdout.strip() == "ok"
