"""Public behaviour of uniform_/normal_/trunc_normal_: return value, autograd, empty and meta tensors,
seeding, streams, and the backend switch (context manager and TRITON_INIT_BACKEND)."""

import pytest
import torch
from _contract import FILLS, assert_contract, bits
from triton_init.kernels import fill as kernel_fill

import triton_init
from triton_init import _cpu, reference


@pytest.fixture
def spy(monkeypatch):
    """Counts the calls that reach the torch-op reference, the Triton launcher and the native CPU executor."""
    calls = {"reference": 0, "triton": 0, "native": 0}

    def wrap(module, name, key):
        original = getattr(module, name)

        def counted(*args, **kwargs):
            calls[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    wrap(reference, "fill_", "reference")
    wrap(kernel_fill, "fill_", "triton")
    wrap(_cpu, "native_fill_", "native")
    return calls


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("fn", list(FILLS))
def test_returns_the_same_tensor(fn, backend):
    t = torch.empty(5, 3)
    with triton_init.backend(backend):
        assert FILLS[fn](t, seed=1) is t


@pytest.mark.parametrize("fn", list(FILLS))
def test_leaf_requiring_grad_is_filled_without_autograd(fn):
    w = torch.zeros(4, 6, requires_grad=True)
    out = FILLS[fn](w, seed=1)
    assert out is w and w.requires_grad and w.is_leaf and w.grad_fn is None
    assert (w != 0).all()
    (w * 2).sum().backward()  # still a usable leaf
    assert torch.equal(w.grad, torch.full_like(w, 2.0))


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("fn", list(FILLS))
def test_empty_and_meta_tensors_are_returned_unchanged(fn, backend, spy):
    empty = torch.empty(0, 5)
    meta = torch.empty(3, 4, device="meta")
    with triton_init.backend(backend):
        assert FILLS[fn](empty, seed=1) is empty
        assert FILLS[fn](meta, seed=1) is meta
        assert FILLS[fn](torch.empty(2, 0, 3), seed=1, global_shape=(9, 0, 3), global_offset=(7, 0, 0)).numel() == 0
    assert empty.shape == (0, 5) and meta.is_meta and meta.shape == (3, 4)
    assert spy == {"reference": 0, "triton": 0, "native": 0}


@pytest.mark.parametrize("fn", list(FILLS))
def test_seed_none_draws_from_torch_default_generator(fn):
    a, b, c = torch.empty(33), torch.empty(33), torch.empty(33)
    torch.manual_seed(1234)
    FILLS[fn](a)
    FILLS[fn](c)  # the default generator moved on: a different seed
    torch.manual_seed(1234)
    FILLS[fn](b)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_seed_none_draws_from_the_given_generator_only():
    a, b = torch.empty(33), torch.empty(33)
    state = torch.get_rng_state()
    triton_init.normal_(a, generator=torch.Generator().manual_seed(7))
    triton_init.normal_(b, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)
    other = triton_init.normal_(torch.empty(33), generator=torch.Generator().manual_seed(8))
    assert not torch.equal(a, other)


def test_explicit_seed_ignores_generators():
    state = torch.get_rng_state()
    a = triton_init.normal_(torch.empty(33), seed=5)
    b = triton_init.normal_(torch.empty(33), seed=5, generator=torch.Generator().manual_seed(99))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("fn", list(FILLS))
def test_seed_and_stream_determine_the_values(fn):
    def draw(**kw):
        return FILLS[fn](torch.empty(8, 9), **kw)

    base = draw(seed=42, stream="encoder.layers.0.weight")
    assert torch.equal(base, draw(seed=42, stream="encoder.layers.0.weight"))
    for other in (draw(seed=42, stream="encoder.layers.1.weight"), draw(seed=43, stream="encoder.layers.0.weight"),
                  draw(seed=42 + 2**32, stream="encoder.layers.0.weight"), draw(seed=42, stream=1)):
        assert (other != base).float().mean() > 0.9
    assert torch.equal(draw(seed=3), draw(seed=3, stream=0))


def test_numeric_parameters_accept_ints_and_scalar_tensors():
    a = triton_init.trunc_normal_(torch.empty(20), mean=0.0, std=1.0, a=-2.0, b=2.0, seed=1)
    b = triton_init.trunc_normal_(torch.empty(20), mean=0, std=torch.tensor(1.0), a=-2, b=torch.tensor(2), seed=1)
    assert torch.equal(a, b)


def test_global_shape_equal_to_the_tensor_is_the_default():
    a = triton_init.normal_(torch.empty(6, 7), seed=1)
    b = triton_init.normal_(torch.empty(6, 7), seed=1, global_shape=torch.Size([6, 7]), global_offset=[0, 0])
    assert torch.equal(a, b)


def test_dtypes_share_one_stream():
    """fp64 holds the values that every other dtype rounds (within the contract, half an ulp of rounding)."""
    wide = triton_init.normal_(torch.empty(1001, dtype=torch.float64), seed=9)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        narrow = triton_init.normal_(torch.empty(1001, dtype=dtype), seed=9)
        assert_contract(narrow, wide.numpy())


CPU_PATH = "native" if _cpu.available() else "reference"  # the torch-op reference where the build had no compiler


def test_auto_sends_cpu_tensors_to_the_native_executor(spy):
    with triton_init.backend("auto"):
        triton_init.normal_(torch.empty(10), seed=1)
    triton_init.normal_(torch.empty(10), seed=1)
    assert spy == {"reference": 0, "triton": 0, "native": 0, CPU_PATH: 2}
    assert triton_init.current_backend() == "auto"


def test_backend_context_selects_the_path_and_nests(spy):
    with triton_init.backend("triton"):
        assert triton_init.current_backend() == "triton"
        triton_init.normal_(torch.empty(10), seed=1)
        with triton_init.backend("reference"):
            triton_init.normal_(torch.empty(10), seed=1)
        triton_init.normal_(torch.empty(10), seed=1)
    assert spy == {"reference": 1, "triton": 2, "native": 0}
    assert triton_init.current_backend() == "auto"


def test_backend_context_restores_after_an_exception():
    with pytest.raises(ValueError), triton_init.backend("triton"):
        triton_init.normal_(torch.empty(3), std=-1.0)
    assert triton_init.current_backend() == "auto"


@pytest.mark.parametrize("name,expected", [("triton", "triton"), ("reference", "reference"), ("auto", CPU_PATH),
                                           (" Triton ", "triton")])
def test_environment_variable(name, expected, monkeypatch, spy):
    monkeypatch.setenv("TRITON_INIT_BACKEND", name)
    triton_init.uniform_(torch.empty(10), seed=1)
    assert spy[expected] == 1 and sum(spy.values()) == 1


def test_context_overrides_the_environment_variable(monkeypatch, spy):
    monkeypatch.setenv("TRITON_INIT_BACKEND", "triton")
    with triton_init.backend("reference"):
        triton_init.uniform_(torch.empty(10), seed=1)
    assert spy == {"reference": 1, "triton": 0, "native": 0}


def test_backends_agree_through_the_public_api():
    with triton_init.backend("reference"):
        ref = triton_init.uniform_(torch.empty(7, 13, dtype=torch.float64), a=-1, b=1, seed=4, stream="x")
    with triton_init.backend("triton"):
        ker = triton_init.uniform_(torch.empty(7, 13, dtype=torch.float64), a=-1, b=1, seed=4, stream="x")
    assert torch.equal(ref, ker)


def test_bad_backend_name():
    with pytest.raises(ValueError, match="backend"):
        with triton_init.backend("cuda"):
            pass
    assert triton_init.current_backend() == "auto"


def test_bad_environment_variable_raises_before_writing(monkeypatch):
    monkeypatch.setenv("TRITON_INIT_BACKEND", "fast")
    t = torch.arange(6.0)
    before = t.clone()
    with pytest.raises(ValueError, match="TRITON_INIT_BACKEND"):
        triton_init.normal_(t, seed=1)
    assert torch.equal(bits(t), bits(before))


def test_triton_backend_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    t = torch.arange(6.0)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"), triton_init.backend("triton"):
        triton_init.normal_(t, seed=1)
    assert torch.equal(t, torch.arange(6.0))
