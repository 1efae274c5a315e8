"""The torch-op reference's chunking: results independent of the chunk size, and work per chunk bounded.

The reference must keep its extra memory bounded whatever the tensor (deliverable 4); its temporaries are
proportional to the lane values it computes per chunk, so that is what is bounded here.
"""

import pytest
import torch
from _contract import bits

import triton_init
from triton_init import reference

SMALL_CHUNK = 4096


@pytest.fixture
def chunk_work(monkeypatch):
    """Lane values computed by each _row_values call (rows x whole groups x 4)."""
    work = []
    original = reference._row_values

    def counted(group0, head, n, *args, **kwargs):
        work.append(len(group0) * 4 * ((n + 6) // 4))
        return original(group0, head, n, *args, **kwargs)

    monkeypatch.setattr(reference, "_row_values", counted)
    return work


LAYOUTS = {
    "flat": (lambda: torch.empty(3 * SMALL_CHUNK + 5), {}),
    "one-element rows": (lambda: torch.empty(20_000, 1), dict(global_shape=(20_000, 8), global_offset=(0, 3))),
    "short rows": (lambda: torch.empty(7, 3000).t(), {}),
    "long rows": (lambda: torch.empty(3, 2 * SMALL_CHUNK + 3), dict(global_shape=(5, 9000), global_offset=(1, 7))),
}


@pytest.mark.parametrize("fn", [triton_init.uniform_, triton_init.normal_, triton_init.trunc_normal_],
                         ids=["uniform", "normal", "trunc_normal"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_reference_chunks_are_bounded_and_invisible(layout, fn, monkeypatch, chunk_work):
    make, kwargs = LAYOUTS[layout]
    with triton_init.backend("reference"):
        whole = fn(make(), seed=8, stream="chunks", **kwargs)  # default chunks: one call for these sizes
        chunk_work.clear()
        monkeypatch.setattr(reference, "CHUNK_ELEMENTS", SMALL_CHUNK)
        chunked = fn(make(), seed=8, stream="chunks", **kwargs)
    assert len(chunk_work) > 1
    assert max(chunk_work) <= SMALL_CHUNK + 8, chunk_work
    assert torch.equal(bits(whole), bits(chunked))
