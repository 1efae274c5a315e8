"""Shared test set-up: kernels run through the Triton interpreter when there is no GPU.

TRITON_INTERPRET must be set before triton is imported (``@triton.jit`` reads it when a kernel is
defined), so it is set here, before anything imports triton_init.
"""

import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton_init  # noqa: E402

INTERPRET = os.environ.get("TRITON_INTERPRET")

ALL_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _keep_triton_interpret(monkeypatch):
    """Keep TRITON_INTERPRET as the session started: the kernels were defined interpreted, and a module that
    pops the variable on import (bench/sass_report.py does) must not turn the dispatcher's check off."""
    if INTERPRET is not None and os.environ.get("TRITON_INTERPRET") != INTERPRET:
        monkeypatch.setenv("TRITON_INTERPRET", INTERPRET)


@pytest.fixture
def poisoned():
    """A factory of NaN-filled tensors, so that an element a kernel leaves unwritten fails the test."""

    def make(*shape, dtype=torch.float32, device="cpu"):
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    return make


@pytest.fixture
def triton_backend():
    """Run the Triton kernels (through the interpreter on CPU tensors)."""
    with triton_init.backend("triton"):
        yield
