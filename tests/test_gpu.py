"""On a CUDA device (``pytest -m gpu``): the compiled kernels with FAST approximate math against the exact
oracle, launch-config bit-equality, views, and one buffer above 2^31 elements. Each test takes seconds."""

import numpy as np
import pytest
import torch
from _contract import DIST_IDS, FILLS, assert_contract, bits, check_against_oracle, distribution_cases, interval_of
from conftest import ALL_DTYPES

import triton_init
from triton_init import reference
from triton_init._format import central_only
from triton_init._layout import make_layout

pytestmark = pytest.mark.gpu

DEVICE = "cuda"
SEED = 0xC0FFEE_0123456789
STREAM = "gpu.contract"
N = 2**20 + 3
OFFSET = 2**40 + 2**33 + 1  # past 2^40, not aligned to 4
MEAN, STD = -0.125, 0.75
CASES = distribution_cases(MEAN, STD, (-2, 2), (5, 7), (-9, -8), (-6, 6), (-float("inf"), float("inf")), (10, 12))


def nan_tensor(*shape, dtype=torch.float32):
    return torch.full(shape, float("nan"), dtype=dtype, device=DEVICE)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("case", list(CASES))
def test_cuda_kernel_within_the_contract(case, dtype):
    """FAST approximate transcendentals (lg2/sqrt/sin/cos.approx) still meet |dz| <= 2e-5 max(1, |z|)."""
    dist, kwargs = CASES[case]
    out = nan_tensor(N, dtype=dtype)
    FILLS[dist](out, **kwargs, seed=SEED, stream=STREAM, global_shape=(OFFSET + N + 5,), global_offset=(OFFSET,))
    torch.cuda.synchronize()
    check_against_oracle(out.cpu(), dist, kwargs, SEED, STREAM, np.arange(OFFSET, OFFSET + N, dtype=np.uint64))


@pytest.mark.parametrize("case", ["normal", "trunc[-2,2]", "trunc[5,7]"])
def test_cuda_kernel_on_strided_views_and_blocks(case):
    dist, kwargs = CASES[case]
    gshape, offset = (3001, 2**41 // 3001), (1000, 2**41 // 3001 - 1500)
    view = nan_tensor(1237, 1001).t()  # (1001, 1237), row stride 1
    FILLS[dist](view, **kwargs, seed=SEED, stream=STREAM, global_shape=gshape, global_offset=offset)
    cols = np.arange(offset[1], offset[1] + 1237, dtype=np.uint64)
    rows = np.arange(offset[0], offset[0] + 1001, dtype=np.uint64)
    indices = (rows[:, None] * np.uint64(gshape[1]) + cols[None, :]).ravel()
    check_against_oracle(view.cpu(), dist, kwargs, SEED, STREAM, indices)
    dense = nan_tensor(1001, 1237)
    FILLS[dist](dense, **kwargs, seed=SEED, stream=STREAM, global_shape=gshape, global_offset=offset)
    assert torch.equal(view, dense)


LAUNCH_CONFIGS = [(None, None), (1, 1), (8, 1), (64, 2), (256, 4), (512, 4), (1024, 8), (2048, 8)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-2,2]", "trunc[5,7]"])
def test_cuda_block_size_and_num_warps_do_not_change_bits(case, dtype):
    from triton_init.kernels.fill import fill_

    dist, kwargs = CASES[case]
    params = reference.dist_params(DIST_IDS[dist], dtype, **kwargs)
    central = dist == "trunc_normal" and central_only(params[2], params[3])
    shapes = [
        (lambda: nan_tensor(300_007, dtype=dtype), (2**33 + 10**6,), (2**32 + 3,)),
        (lambda: nan_tensor(517, 389, dtype=dtype).t(), (1000, 1000), (7, 5)),
        (lambda: nan_tensor(516, 388, dtype=dtype).t(), (1000, 1000), (8, 4)),  # the default takes tiles
    ]
    for make, gshape, offset in shapes:
        results = []
        for block_groups, num_warps in LAUNCH_CONFIGS:
            t = make()
            layout = make_layout(t, gshape, offset)
            fill_(t, DIST_IDS[dist], params, SEED, 17, layout.sizes, layout.mem_strides, layout.logical_strides,
                  layout.base, central_only=central, block_groups=block_groups, num_warps=num_warps)
            results.append(t)
        assert not torch.isnan(results[0]).any()
        for other in results[1:]:
            assert torch.equal(bits(results[0]), bits(other))


def test_cuda_canary_view():
    big = nan_tensor(8, 9)
    triton_init.normal_(big[2:5, 1:4], seed=SEED)
    inside = torch.zeros(8, 9, dtype=torch.bool, device=DEVICE)
    inside[2:5, 1:4] = True
    assert not torch.isnan(big[inside]).any() and torch.isnan(big[~inside]).all()
    dense = triton_init.normal_(torch.empty(3, 3), seed=SEED)  # the CPU reference
    assert torch.allclose(big[2:5, 1:4].cpu(), dense, atol=1e-4)


@pytest.mark.parametrize("case", ["normal", "trunc[-2,2]"])
def test_cuda_buffer_above_2_to_the_31_elements(case):
    """3 * 10^9 bf16 elements (6 GB): int64 indexing end to end, checked at 10^5 sampled positions."""
    dist, kwargs = CASES[case]
    n = 3 * 10**9
    if torch.cuda.get_device_properties(0).total_memory < 3 * n:
        pytest.skip("needs about 9 GB of device memory")
    out = nan_tensor(n, dtype=torch.bfloat16)
    FILLS[dist](out, **kwargs, seed=SEED, stream=STREAM)
    assert not torch.isnan(out).any()
    rng = np.random.default_rng(0)
    edges = [0, 1, 2, 3, 2**31 - 2, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32, 2**32 + 1]
    picks = np.concatenate([rng.integers(0, n, 10**5), edges, np.arange(n - 100, n)]).astype(np.int64)
    sampled = out[torch.from_numpy(picks).to(DEVICE)].cpu()
    del out
    torch.cuda.empty_cache()
    params = reference.dist_params(DIST_IDS[dist], torch.float64, **kwargs)
    at = reference.values_at(torch.from_numpy(picks), DIST_IDS[dist], params, SEED,
                             triton_init.stream_id(STREAM), torch.float64)
    assert_contract(sampled, ((at - kwargs["mean"]) / kwargs["std"]).numpy(), mean=kwargs["mean"], std=kwargs["std"],
                    interval=interval_of(dist, kwargs))
    check_against_oracle(sampled, dist, kwargs, SEED, STREAM, picks.astype(np.uint64))
