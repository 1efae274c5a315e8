"""Every value u(w) can take (2^23), through the kernels' own helpers in the interpreter: the accurate
transcendental set (numpy's log2, sqrt, sin, cos) with each inverse-CDF path and Box-Muller, against the
float64 format. The GPU sets are covered by their documented bounds (test_math_bounds.py) and by the same
check on a GPU (test_gpu_perf_paths.py)."""

import os

import pytest
import torch

from triton_init import reference
from triton_init._format import TRUNC_NORMAL

pytestmark = pytest.mark.skipif(not os.environ.get("TRITON_INTERPRET"), reason="the interpreter's accurate set")

if os.environ.get("TRITON_INTERPRET"):
    from _probes import TRUNC_PATHS, box_muller_z, contract_excess, every_u_words, trunc_path_z
    from triton_init.kernels import trunc_paths


# The most demanding call of each path: the central edge (w up to 4.99), the untruncated whole mass, a
# two-sided WIDE call whose smallest p is next to its limit (w up to 15.9), a tail straddling both pieces.
EDGES = {"central": (-2.925, 2.925), "untruncated": (-100.0, 100.0), "wide": (-0.001, 6.0), "tail": (5.0, 7.0)}


@pytest.mark.parametrize("path", list(EDGES))
def test_trunc_normal_path_every_u(path):
    a, b = EDGES[path]
    params = reference.dist_params(TRUNC_NORMAL, torch.float32, a=a, b=b)
    p_lo, q_hi, mass = params[2:5]
    assert trunc_paths.choose(p_lo, q_hi, mass) == TRUNC_PATHS[path]
    words = every_u_words(0x1A5)
    z = trunc_path_z(words, p_lo, q_hi, mass, path)
    assert contract_excess(z, reference._trunc_z(words, p_lo, q_hi, mass)) <= 1.0


def test_box_muller_every_u():
    """Every u of the radius's word against a permutation of every u of the angle's."""
    first = every_u_words(0x0F3)
    second = first[torch.randperm(first.numel(), generator=torch.Generator().manual_seed(11))] ^ 0x1FF
    z0, z1 = box_muller_z(first, second)
    e0, e1 = reference._box_muller(first, second, torch.float64)
    assert contract_excess(z0, e0) <= 1.0
    assert contract_excess(z1, e1) <= 1.0
