"""The compiled-CPU decision logic and its math (run eagerly: no compile here), and the verify check."""

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import torch
from _contract import assert_contract, assert_uniform

from triton_init import _cpu_compiled, reference
from triton_init._format import NORMAL, TRUNC_NORMAL, UNIFORM
from triton_init._layout import make_layout

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_compiled_state(monkeypatch):
    monkeypatch.setattr(_cpu_compiled, "_failed", None)
    monkeypatch.setattr(_cpu_compiled, "_compiled", {})
    monkeypatch.setattr(_cpu_compiled, "compile_seconds", {})
    monkeypatch.setattr(_cpu_compiled, "_eager_elements", 0)
    monkeypatch.delenv(_cpu_compiled.ENV, raising=False)
    monkeypatch.delenv(_cpu_compiled.ENV_MIN, raising=False)
    return monkeypatch


def test_threshold_from_environment(fresh_compiled_state):
    mp = fresh_compiled_state
    assert _cpu_compiled.threshold() == _cpu_compiled.MIN_ELEMENTS
    mp.setenv(_cpu_compiled.ENV, "0")
    assert _cpu_compiled.threshold() is None
    mp.setenv(_cpu_compiled.ENV, "1")
    assert _cpu_compiled.threshold() == 0
    mp.setenv(_cpu_compiled.ENV, "")
    mp.setenv(_cpu_compiled.ENV_MIN, "1000")
    assert _cpu_compiled.threshold() == 1000


def test_small_tensors_never_compile(fresh_compiled_state):
    cpu = torch.empty(4)
    warm = _cpu_compiled.WARM_MIN_ELEMENTS
    assert not _cpu_compiled.use_compiled(cpu, warm - 1)
    assert _cpu_compiled.use_compiled(cpu, _cpu_compiled.MIN_ELEMENTS)
    assert not _cpu_compiled.use_compiled(torch.empty(4, device="meta"), 1 << 40)
    fresh_compiled_state.setenv(_cpu_compiled.ENV, "0")
    assert not _cpu_compiled.use_compiled(cpu, 1 << 40)


def test_first_compile_waits_for_enough_eager_work(fresh_compiled_state):
    cpu = torch.empty(4)
    warm, limit = _cpu_compiled.WARM_MIN_ELEMENTS, _cpu_compiled.MIN_ELEMENTS
    fills = limit // (4 * warm)
    assert not any(_cpu_compiled.use_compiled(cpu, 4 * warm) for _ in range(fills - 1))
    assert _cpu_compiled.use_compiled(cpu, 4 * warm)  # the process's large fills add up to the limit
    _cpu_compiled.compile_seconds[(NORMAL, torch.float32)] = 1.0
    fresh_compiled_state.setattr(_cpu_compiled, "_eager_elements", 0)
    assert _cpu_compiled.use_compiled(cpu, warm)  # compiled already: no need to wait
    assert not _cpu_compiled.use_compiled(cpu, warm, UNIFORM)  # another function: still waits
    assert not _cpu_compiled.use_compiled(cpu, warm - 1)


def test_the_suite_never_compiles():
    """Tests use small tensors: with the default threshold nothing here reaches torch.compile."""
    assert _cpu_compiled.threshold() is None or _cpu_compiled.threshold() >= 1 << 22
    assert not _cpu_compiled.compile_seconds


def test_compile_failure_falls_back_to_eager(fresh_compiled_state):
    mp = fresh_compiled_state
    mp.setenv(_cpu_compiled.ENV, "1")

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    mp.setattr(_cpu_compiled, "_function", lambda dist, compute: broken)
    out = torch.full((1000,), float("nan"))
    params = reference.dist_params(NORMAL, out.dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference.fill_(out, make_layout(out), NORMAL, params, 5, 6)
    assert any("compiled CPU path is unavailable" in str(w.message) for w in caught)
    assert _cpu_compiled._failed is not None
    assert not _cpu_compiled.use_compiled(out, 1 << 40)  # remembered: no second attempt
    expected = reference.values_at(torch.arange(1000), NORMAL, params, 5, 6, out.dtype)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("seed, stream, group", [(1234, 77, 5), (2**63 + 5, 2**64 - 3, 2**32 + 7)])
def test_int32_philox_matches_reference_words(seed, stream, group):
    groups = torch.arange(group, group + 257, dtype=torch.int64)
    expected = reference.group_words(groups, seed, stream)

    def int32(values):
        return (values - ((values >> 31) << 32)).to(torch.int32)

    c0 = int32(groups & reference.MASK32)
    c1, c2, c3 = (int32(torch.full_like(groups, w)) for w in (groups[0].item() >> 32, stream & reference.MASK32,
                                                                   stream >> 32))
    words = _cpu_compiled._philox32(c0, c1, c2, c3, _cpu_compiled._round_keys(seed))
    for got, want in zip(words, expected, strict=True):
        assert torch.equal(got.to(torch.int64) & reference.MASK32, want)


@pytest.mark.parametrize("dist, kw, dtype", [(UNIFORM, dict(a=-1.0, b=3.0), torch.float32),
                                             (NORMAL, dict(mean=0.5, std=2.0), torch.float32),
                                             (NORMAL, dict(mean=0.5, std=2.0), torch.float64),
                                             (TRUNC_NORMAL, dict(a=-2.0, b=2.0), torch.bfloat16)])
def test_chunk_math_matches_reference(fresh_compiled_state, dist, kw, dtype):
    """The compiled function's body, run eagerly on a small chunk, against the reference."""
    fresh_compiled_state.setattr(_cpu_compiled, "CHUNK_GROUPS", 64)
    fresh_compiled_state.setattr(_cpu_compiled, "_function", lambda d, c: _cpu_compiled._chunk_values)
    fresh_compiled_state.setenv(_cpu_compiled.ENV, "1")
    n, base = 64 * 4 * 3 + 7, 4 * 1000 + 3
    params = reference.dist_params(dist, dtype, **kw)
    out = torch.full((n,), float("nan"), dtype=dtype)
    assert _cpu_compiled.fill_flat_(out, base, dist, params, 99, 2**64 - 5)
    exact = reference.values_at(torch.arange(n) + base, dist, params, 99, 2**64 - 5, torch.float64).numpy()
    if dist == UNIFORM:
        assert_uniform(out, exact)
    else:  # half an ulp of rounding to bf16: a truncating cast fails
        mean, std = kw.get("mean", 0.0), kw.get("std", 1.0)
        assert_contract(out, (exact - mean) / std, mean=mean, std=std,
                        interval=(kw["a"], kw["b"]) if dist == TRUNC_NORMAL else None)


def test_verify_check_runs_every_part_on_the_cpu(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("verify_check", ROOT / "bench" / "verify_check.py")
    verify_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(verify_check)
    monkeypatch.setattr(verify_check, "SHAPES", ((9, 7),))
    out = tmp_path / "verify.json"
    assert verify_check.main(["--device", "cpu", "--model", "nano", "--json", str(out)]) == 0
    parts = json.loads(out.read_text())["parts"]
    assert [p["ok"] for p in parts] == [True, True, True] and parts[2]["checked"] == 2 * 12 * 63
    assert "skipped" in capsys.readouterr().out  # the tensor past 2^32 needs CUDA
