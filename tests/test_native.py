"""The native CPU executor (csrc/, triton_init._cpu): the contract against the exact oracle for every dtype and
distribution, the same bits whatever the threads, chunks and instruction set, every value u(w) can take through
its vectorized transcendentals, and the torch-op fallback where the extension is missing.

Tests of the public fills that take the ``isa`` fixture run twice: with the best instruction set (AVX2 where
the CPU has it) and with the portable baseline code (``TRITON_INIT_CPU_ISA=baseline``): the code that differs
between them (Philox words, stores, the group counter's carry) is reached through them; the transforms are one
source, compiled for each, and ``test_threads_chunks_and_instruction_sets_give_the_same_bits`` compares those."""

import math
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _contract import (
    assert_contract,
    assert_uniform,
    bits,
    distribution_cases,
    exact,
    interval_of,
    load_golden,
    logical_indices,
    trunc_constants,
)
from conftest import ALL_DTYPES
from scipy import special
from triton_init.kernels import ndtri_coeffs, ndtri_header, trunc_paths
from triton_init.kernels.trunc_paths import CENTRAL, TAIL, UNTRUNCATED, WIDE

import triton_init
from triton_init import _cpu, reference
from triton_init._format import NORMAL, TRUNC_NORMAL, UNIFORM, kernel_exact, stream_id
from triton_init._layout import make_layout

GENERAL = _cpu.TRUNC_GENERAL

requires_native = pytest.mark.skipif(not _cpu.available(), reason=f"not built: {_cpu.unavailable_reason}")

SEED = 0xD1B54A32D192ED03  # above 2^63: both key words matter
STREAM = "layers.7.attention.wo.weight"
MEAN, STD = -0.375, 0.75
# (alpha, beta) in units of std, with the path each takes: the kernels' fp32 paths, or float64 (GENERAL)
TRUNC_PATHS = {
    (-2, 2): CENTRAL, (-2.7, 2.7): CENTRAL, (0.5, 1.5): CENTRAL, (-100, 100): UNTRUNCATED, (-8, 9): UNTRUNCATED,
    (-6, 6): WIDE, (-5.7, 40): WIDE, (-3, 3): WIDE, (-0.001, 6): WIDE,
    (5, 7): TAIL, (-9, -8): TAIL, (2, math.inf): TAIL, (10, 12): TAIL, (-40, -0.1): TAIL, (11, 12): TAIL,
    (-13, -12): GENERAL, (14, 20): GENERAL, (-30, -29): GENERAL, (-36, -35): GENERAL,
}
CASES = distribution_cases(MEAN, STD, *TRUNC_PATHS)
FILLS = {"uniform": triton_init.uniform_, "normal": triton_init.normal_, "trunc_normal": triton_init.trunc_normal_}
DIST_IDS = {"uniform": UNIFORM, "normal": NORMAL, "trunc_normal": TRUNC_NORMAL}


def check(out: torch.Tensor, dist: str, kwargs, indices, seed=SEED, stream=STREAM) -> None:
    """``out`` holds the values of logical ``indices`` (local row-major order), within the contract."""
    z = exact(indices, dist, seed, stream_id(stream), **kwargs)
    if dist == "uniform":
        assert_uniform(out, z)
        return
    assert_contract(out, z, mean=kwargs["mean"], std=kwargs["std"], interval=interval_of(dist, kwargs))
    if dist == "trunc_normal":
        x = out.double()
        assert ((x >= kwargs["a"]) & (x <= kwargs["b"])).all()


@pytest.fixture(params=_cpu.ISAS)
def isa(request, monkeypatch):
    """Public fills run the instruction set ``TRITON_INIT_CPU_ISA`` names: each of them."""
    monkeypatch.setenv(_cpu.ISA_ENV, request.param)
    return request.param


def fill(out, case, **extra):
    dist, kwargs = CASES[case]
    assert FILLS[dist](out, **kwargs, seed=SEED, stream=STREAM, **extra) is out
    return out


def test_the_extension_is_built_where_a_compiler_works():
    """The install builds it wherever Python's C compiler exists; CPU fills then run it."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) on this machine")
    assert _cpu.available(), _cpu.unavailable_reason
    assert _cpu.executor().startswith("native C executor")


def test_the_c_inverse_cdf_is_generated_from_the_kernels_coefficients():
    """csrc/ndtri_coeffs.h is what kernels/ndtri_header.py prints from kernels/ndtri_coeffs.py and trunc_paths.py:
    regenerate it after a refit (python -m triton_init.kernels.ndtri_header > csrc/ndtri_coeffs.h)."""
    header = Path(__file__).resolve().parent.parent / "csrc" / "ndtri_coeffs.h"
    assert header.read_text() == ndtri_header.header_text(), f"{header} is stale: regenerate it"


@requires_native
def test_the_build_evaluates_the_kernels_pieces():
    """The loaded extension compiled in the kernels' own coefficients (a build from a stale header is refused)."""
    assert _cpu._native.ndtri_coeffs() == {name: getattr(ndtri_coeffs, name) for name in ("CENTRAL", "WIDE", "FAR")}


def test_the_native_path_is_the_kernels_path():
    """trunc_normal's mode is trunc_paths.choose wherever the kernels serve the call, float64 elsewhere."""
    for (alpha, beta), path in TRUNC_PATHS.items():
        params = reference.dist_params(TRUNC_NORMAL, torch.float32, mean=MEAN, std=STD, a=MEAN + alpha * STD,
                                       b=MEAN + beta * STD)
        kernel_path = trunc_paths.choose(*params[2:5]) if kernel_exact(TRUNC_NORMAL, params) else GENERAL
        assert _cpu.trunc_mode(params) == kernel_path == path, (alpha, beta)


@requires_native
@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("trunc")])
def test_each_trunc_normal_interval_takes_its_path(case):
    dist, kwargs = CASES[case]
    alpha, beta = ((kwargs[k] - MEAN) / STD for k in ("a", "b"))
    path = next(p for (lo, hi), p in TRUNC_PATHS.items() if math.isclose(lo, alpha) and
                (math.isclose(hi, beta) or hi == beta))
    assert _cpu.trunc_mode(reference.dist_params(TRUNC_NORMAL, torch.float32, **kwargs)) == path


@requires_native
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("case", list(CASES))
def test_contract_at_an_unaligned_offset(case, dtype, poisoned):
    """4099 values from logical index 4003 (a head and a tail group), every dtype, the far tails included."""
    n, first = 4099, 4003
    out = fill(poisoned(n, dtype=dtype), case, global_shape=(10_000,), global_offset=(first,))
    check(out, *CASES[case], range(first, first + n))


GOLDEN = load_golden()
GOLDEN_CASES = [(dist, k, entry) for dist in DIST_IDS for k, entry in enumerate(GOLDEN[dist])]


@requires_native
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("dist,k,entry", GOLDEN_CASES, ids=[f"{d}{k}" for d, k, _ in GOLDEN_CASES])
def test_golden_values(dist, k, entry, dtype, poisoned, isa):
    first, last = min(entry["index"]), max(entry["index"])
    kwargs = {key: entry[key] for key in ("a", "b", "mean", "std") if key in entry}
    out = poisoned(last + 1 - first, dtype=dtype)
    FILLS[dist](out, **kwargs, seed=entry["seed"], stream=entry["stream"], global_shape=(last + 6,),
                global_offset=(first,))
    if dist == "uniform":
        assert_uniform(out, entry["values"])
    else:
        mean, std = entry.get("mean", 0.0), entry.get("std", 1.0)
        assert_contract(out, (np.array(entry["values"]) - mean) / std, mean=mean, std=std,
                        interval=(entry["a"], entry["b"]) if dist == "trunc_normal" else None)


HUGE_BLOCKS = {
    # (global_shape, global_offset, local shape)
    "1-D past 2^32 groups": ((2**35,), (2**34 - 9,), (23,)),  # the group index's low word wraps
    "2-D 2^41 elements": ((2**20 + 7, 2**21 + 3), (2**20 - 2, 2**21 - 31), (4, 33)),
    "3-D past 2^40": ((2**13 + 1, 2**14 + 3, 2**14 + 5), (2**12 + 7, 2**14 - 1, 9), (2, 3, 13)),
    "1-D up to 2^64 - 1": ((2**64,), (2**64 - 7,), (7,)),
}


@requires_native
@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-2,2]", "trunc[-100,100]", "trunc[-9,-8]"])
@pytest.mark.parametrize("block", list(HUGE_BLOCKS))
def test_logical_indices_up_to_2_to_the_64(block, case, poisoned, isa):
    gshape, offset, shape = HUGE_BLOCKS[block]
    out = fill(poisoned(*shape), case, global_shape=gshape, global_offset=offset)
    check(out, *CASES[case], logical_indices(shape, gshape, offset))


@requires_native
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-2,2]", "trunc[-6,6]", "trunc[5,7]"])
def test_strided_views_and_nothing_outside(case, dtype, poisoned, isa):
    views = {
        "transpose": (lambda b: b[:13, :7].t(), (7, 13)),
        "column slice": (lambda b: b[2:13, 3:17], (11, 14)),
        "stepped": (lambda b: b[1:19:2, ::3], (9, 14)),
        "one-element rows": (lambda b: b[:, 5:6], (40, 1)),
    }
    for name, (take, shape) in views.items():
        storage = poisoned(40, 41, dtype=dtype)
        view = take(storage)
        assert tuple(view.shape) == shape
        fill(view, case)
        check(view, *CASES[case], range(math.prod(shape)))
        inside = torch.zeros(storage.shape, dtype=torch.bool)
        take(inside).fill_(True)
        assert torch.isnan(storage[~inside]).all(), name
    permuted = fill(poisoned(4, 5, 6, dtype=dtype).permute(2, 0, 1), case, global_shape=(9, 4, 5),
                    global_offset=(2, 0, 0))
    check(permuted, *CASES[case], logical_indices((6, 4, 5), (9, 4, 5), (2, 0, 0)))


# Groups from a block's first one to where the group index's low word wraps (2^32 groups): in the AVX2 code's
# first and second vector of 8 groups, and in a later pair of vectors, so that the carry into the high word
# matters in each.
WRAP_AFTER_GROUPS = (1, 5, 8, 13, 16, 100, 109, 255)


@requires_native
@pytest.mark.parametrize("case", ["uniform", "normal"])
def test_the_group_index_carries_into_its_high_word(case, isa, poisoned):
    """Runs that cross 2^32 groups (logical index 2^34) inside a block, at each of ``WRAP_AFTER_GROUPS``: the
    groups past the wrap have the high word 1, not 0. And runs across 2^31 groups, where the low word passes
    its sign bit and nothing carries (an unsigned comparison)."""
    for boundary in (2**33, 2**34):
        for wrap in WRAP_AFTER_GROUPS:
            first = boundary - 4 * wrap - 1
            n = 4 * (wrap + 20)
            out = fill(poisoned(n), case, global_shape=(2**35,), global_offset=(first,))
            check(out, *CASES[case], range(first, first + n))


@pytest.mark.parametrize("value", ["baseline", "BEST ", "", None])
def test_the_isa_switch_reaches_the_extension(value, monkeypatch):
    """``TRITON_INIT_CPU_ISA`` picks the code the extension runs (unset or empty: the best); a value it does not
    know is refused before anything is written."""
    if value is None:
        monkeypatch.delenv(_cpu.ISA_ENV, raising=False)
    else:
        monkeypatch.setenv(_cpu.ISA_ENV, value)
    expected = "baseline" if value == "baseline" else "best"
    assert _cpu.isa() == expected
    if not _cpu.available():
        return
    calls = []

    class Recording:
        def __getattr__(self, name):
            return getattr(native, name)

        def fill(self, *args):
            calls.append(args[-1])
            return native.fill(*args)

    native = _cpu._native
    monkeypatch.setattr(_cpu, "_native", Recording())
    triton_init.normal_(torch.empty(100), seed=1)
    code = native.ISA_BASELINE if expected == "baseline" else native.ISA_BEST
    assert calls == [code]
    assert _cpu.executor().startswith(f"native C executor ({native.isa_name(code)},")
    assert native.isa_name(native.ISA_BASELINE) == "baseline"


def test_an_unknown_isa_is_refused(monkeypatch, poisoned):
    monkeypatch.setenv(_cpu.ISA_ENV, "avx512")
    out = poisoned(10)
    with pytest.raises(ValueError, match="TRITON_INIT_CPU_ISA must be one of"):
        triton_init.normal_(out, seed=1)
    assert torch.isnan(out).all()


@requires_native
def test_a_misaligned_view_takes_the_reference():
    """The C code writes whole elements at aligned addresses; a tensor over a buffer at an odd byte offset (as
    torch.frombuffer allows) gets the reference's values instead."""
    out = torch.frombuffer(bytearray(4 * 1000 + 8), dtype=torch.float32, offset=1, count=1000)
    assert out.data_ptr() % 4
    fill(out, "normal")
    with triton_init.backend("reference"):
        expected = fill(torch.empty(1000), "normal")
    assert torch.equal(out, expected)


@requires_native
def test_memory_offsets_past_2_to_the_31_elements():
    """A view whose second row starts 2^31 + 3 elements into its storage (never touched: the pages stay
    virtual)."""
    try:
        storage = torch.empty(2**31 + 64, dtype=torch.bfloat16)
    except RuntimeError as exc:
        pytest.skip(f"cannot reserve 4 GiB of address space: {exc}")
    view = storage.as_strided((2, 5), (2**31 + 3, 1))
    fill(view, "normal", global_shape=(3, 5), global_offset=(1, 0))
    check(view.clone(), *CASES["normal"], logical_indices((2, 5), (3, 5), (1, 0)))


CONFIGS = [dict(threads=1), dict(threads=2, chunk=1000), dict(threads=3, chunk=4097), dict(threads=7, chunk=333),
           dict(threads=2, baseline_isa=True), dict(threads=1, chunk=10**9, baseline_isa=True)]


@requires_native
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-2,2]", "trunc[-100,100]", "trunc[5,7]"])
def test_threads_chunks_and_instruction_sets_give_the_same_bits(case, dtype, poisoned):
    """Every value is a function of its logical index alone: a flat run at an unaligned offset past 2^32 and a
    strided block, filled on 1 to 7 threads in chunks of 333 elements to all at once, with the AVX2 and the
    baseline code."""
    dist, kwargs = CASES[case]
    params = reference.dist_params(DIST_IDS[dist], dtype, **kwargs)
    layouts = {"flat": (lambda: poisoned(50_001, dtype=dtype), ((2**36,), (2**33 + 1,))),
               "strided": (lambda: poisoned(301, 97, dtype=dtype).t(), ((100, 400), (2, 50)))}
    for make, (gshape, offset) in layouts.values():
        layout = make_layout(make(), gshape, offset)
        results = []
        for config in CONFIGS:
            out = make()
            _cpu.native_fill_(out, layout, DIST_IDS[dist], params, SEED, stream_id(STREAM), **config)
            results.append(out)
        assert not torch.isnan(results[0]).any()
        for other in results[1:]:
            assert torch.equal(bits(results[0]), bits(other))


@requires_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_large_flat_fills_store_around_the_caches(dtype, poisoned):
    """Flat fills of 32 MiB and more use streaming stores (AVX2): the same bits as the baseline code's plain
    stores, at an unaligned address, and nothing written outside."""
    n = (32 << 20) // torch.empty((), dtype=dtype).element_size() + 5
    storage = poisoned(n + 40, dtype=dtype)
    view = storage[13:13 + n]
    layout = make_layout(view, (n + 99,), (3,))
    params = reference.dist_params(NORMAL, dtype, mean=MEAN, std=STD)
    _cpu.native_fill_(view, layout, NORMAL, params, SEED, 77)
    assert torch.isnan(storage[:13]).all() and torch.isnan(storage[13 + n:]).all()
    plain = torch.empty(n, dtype=dtype)
    _cpu.native_fill_(plain, layout, NORMAL, params, SEED, 77, baseline_isa=True)
    assert torch.equal(bits(view), bits(plain))


@requires_native
@pytest.mark.parametrize("case", ["normal", "trunc[-2,2]"])
def test_torch_thread_count_does_not_change_bits(case):
    """torch.set_num_threads(1) against 2, on a fill large enough to take both."""
    n = 2 * _cpu.MIN_ELEMENTS_PER_THREAD + 5
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert _cpu.default_threads(n) == threads
            results.append(fill(torch.empty(n), case))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(bits(results[0]), bits(results[1]))


@requires_native
@pytest.mark.parametrize("case", ["uniform", "normal", "trunc[-6,6]"])
def test_pieces_reassemble_to_the_whole(case, poisoned, isa):
    """A run filled whole and in pieces cut at arbitrary points: chunk and block boundaries move, values don't."""
    n = 70_000
    whole = fill(poisoned(n), case)
    assembled = poisoned(n)
    edges = [0, 1, 3, 4103, 4104, 65_539, n]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        assembled[a:b] = fill(poisoned(b - a), case, global_shape=(n,), global_offset=(a,))
    assert torch.equal(bits(assembled), bits(whole))


# ---- every value u(w) can take, through the transforms alone ----

K = np.arange(1 << 23, dtype=np.uint64)  # u(w) = (k + 1/2) 2^-23 for the word w = k << 9
SLICE = 1 << 21  # values checked at a time, to bound the float64 temporaries


def u_of_k(k):
    return (k.astype(np.float64) + 0.5) * 2.0 ** -23


def transform_words(words: np.ndarray, dist: int, params, dtype, baseline_isa=False) -> torch.Tensor:
    """The native transforms of the given words (groups x 4 lanes, uint32) into ``dtype``, in element order."""
    words = torch.from_numpy(np.ascontiguousarray(words, dtype=np.uint32).view(np.int32))
    out = torch.full((words.numel(),), float("nan"), dtype=dtype)
    mode = _cpu.trunc_mode(params) if dist == TRUNC_NORMAL else CENTRAL
    _cpu._native.transform_words(out.data_ptr(), words.data_ptr(), words.shape[0], _cpu.OUT_CODES[dtype], dist,
                                 mode, [float(p) for p in params],
                                 _cpu._native.ISA_BASELINE if baseline_isa else _cpu._native.ISA_BEST)
    return out


def lanes_of(k: np.ndarray) -> np.ndarray:
    """Words for the values k, four per group (lane-wise distributions)."""
    return (k.reshape(-1, 4) << np.uint64(9)).astype(np.uint32)


def each_slice(n=1 << 23):
    return ((start, min(n, start + SLICE)) for start in range(0, n, SLICE))


@requires_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_every_u_uniform(dtype):
    a, b = -0.75, 2.5
    params = reference.dist_params(UNIFORM, dtype, a=a, b=b)
    for start, stop in each_slice():
        got = transform_words(lanes_of(K[start:stop]), UNIFORM, params, dtype)
        assert_uniform(got, a + (b - a) * u_of_k(K[start:stop]))


@requires_native
def test_every_u_box_muller():
    """The radius sqrt(-2 ln u) over every u(first) with the angle at about pi/4, and cos/sin of 2 pi u over
    every u(second) with the largest radius (u = 2^-24: r = 5.77, where an angle error counts most)."""
    params = reference.dist_params(NORMAL, torch.float32, mean=MEAN, std=STD)
    angle_k, radius_k = 1 << 20, 0
    fixed_angle = 2.0 * math.pi * u_of_k(np.array([angle_k], dtype=np.uint64))
    fixed_radius = np.sqrt(-2.0 * np.log(u_of_k(np.array([radius_k], dtype=np.uint64))))
    for start, stop in each_slice():
        k = K[start:stop]
        # lanes (0, 1): the radius varies; lanes (2, 3): the angle varies
        words = (np.stack([k, np.full_like(k, angle_k), np.full_like(k, radius_k), k], axis=1)
                 << np.uint64(9)).astype(np.uint32)
        got = transform_words(words, NORMAL, params, torch.float32)
        radius, angle = np.sqrt(-2.0 * np.log(u_of_k(k))), 2.0 * math.pi * u_of_k(k)
        z = np.stack([radius * np.cos(fixed_angle), radius * np.sin(fixed_angle), fixed_radius * np.cos(angle),
                      fixed_radius * np.sin(angle)], axis=1)
        assert_contract(got, z, mean=MEAN, std=STD)
        baseline = transform_words(words, NORMAL, params, torch.float32, baseline_isa=True)
        assert torch.equal(bits(got), bits(baseline))


def exact_trunc_z(k: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    p_lo, q_hi, mass = trunc_constants(alpha, beta)
    u = u_of_k(k)
    p, q = p_lo + mass * u, q_hi + mass * u_of_k(np.uint64((1 << 23) - 1) - k)
    return np.where(p <= 0.5, special.ndtri(p), -special.ndtri(q))


# The most demanding calls of each path, in fp32 (std folded into the polynomials) or float64: the central edge
# (w up to 4.99) and a one-sided central call; the untruncated whole mass and its edge (Phi(alpha) = 1.4e-15,
# taken as 0); two-sided WIDE calls whose smallest p is next to the limit (w up to 15.9); tails straddling
# both pieces, or far out; and a call for the float64 path (FAR piece and Newton steps).
EVERY_U = [((-2.925, 2.925), torch.float32), ((0.5, 2.6), torch.float64), ((-100, 100), torch.float32),
           ((-7.9, 7.9), torch.float64), ((-6, 6), torch.float32), ((-0.001, 6), torch.float64),
           ((5, 7), torch.float32), ((-40, -0.1), torch.float64), ((-13, -12), torch.float32)]
EVERY_U_PATHS = {(-2.925, 2.925): CENTRAL, (0.5, 2.6): CENTRAL, (-7.9, 7.9): UNTRUNCATED, (-0.001, 6): WIDE,
                 (-40, -0.1): TAIL}


@requires_native
@pytest.mark.parametrize("interval, dtype", EVERY_U, ids=str)
def test_every_u_trunc_normal(interval, dtype):
    """Each path over every u (the kernels' pieces as the C code evaluates them: its own log2, no fused
    multiply-adds) within the contract, and the same bits from the AVX2 and the baseline code."""
    alpha, beta = interval
    kwargs = dict(mean=MEAN, std=STD, a=MEAN + alpha * STD, b=MEAN + beta * STD)
    params = reference.dist_params(TRUNC_NORMAL, dtype, **kwargs)
    assert _cpu.trunc_mode(params) == {**TRUNC_PATHS, **EVERY_U_PATHS}[interval]
    for start, stop in each_slice():
        words = lanes_of(K[start:stop])
        got = transform_words(words, TRUNC_NORMAL, params, dtype)
        assert_contract(got, exact_trunc_z(K[start:stop], alpha, beta), mean=MEAN, std=STD,
                        interval=(kwargs["a"], kwargs["b"]))
        assert torch.equal(bits(got), bits(transform_words(words, TRUNC_NORMAL, params, dtype, baseline_isa=True)))


@requires_native
def test_far_tail_by_newton_steps():
    """The float64 path beyond the FAR piece (p below about 6e-39): every 64th u, both ends included."""
    k = np.concatenate([K[:4096], K[4096:-4096:64], K[-4096:]])
    for alpha, beta in ((-30, -29), (-36, -35), (14, 20)):
        kwargs = dict(mean=MEAN, std=STD, a=MEAN + alpha * STD, b=MEAN + beta * STD)
        params = reference.dist_params(TRUNC_NORMAL, torch.float64, **kwargs)
        got = transform_words(lanes_of(k), TRUNC_NORMAL, params, torch.float64)
        assert_contract(got, exact_trunc_z(k, alpha, beta), mean=MEAN, std=STD, interval=(kwargs["a"], kwargs["b"]))


@requires_native
@pytest.mark.parametrize("dtype, std", [(torch.bfloat16, 0.75), (torch.bfloat16, 5000.0), (torch.float16, 0.75),
                                        (torch.float16, 1e-5), (torch.float16, 20000.0)], ids=str)
def test_every_u_rounds_to_nearest_even_like_torch(dtype, std):
    """The 2-byte casts of Box-Muller values (the radius over every u, at two angles), bit for bit against
    torch's own rounding of the fp32 values: normal, subnormal (fp16 below 6.1e-5 at std 1e-5) and overflowing
    (fp16 at and above 65520 at std 20000: the radius 5.77 at the angle pi/4 reaches 81,600)."""
    params = reference.dist_params(NORMAL, torch.float32, mean=0.0, std=std)
    half = K.reshape(2, -1)
    words = (np.stack([half[0], np.full_like(half[0], 1 << 20), half[1], np.full_like(half[0], 3 << 20)], axis=1)
             << np.uint64(9)).astype(np.uint32)
    wide = transform_words(words, NORMAL, params, torch.float32)
    narrow = transform_words(words, NORMAL, params, dtype)
    assert torch.equal(bits(narrow), bits(wide.to(dtype)))
    if std > 10_000:
        assert torch.isinf(narrow).sum() > 100  # the overflow branch ran
        assert ((wide.abs() >= 65504) & (wide.abs() < 65520)).any()  # and values just below it round down


# ---- the fallback ----

@pytest.fixture
def without_native(monkeypatch):
    monkeypatch.setattr(_cpu, "_native", None)
    monkeypatch.setattr(_cpu, "unavailable_reason", "ImportError: simulated")
    monkeypatch.setattr(_cpu, "_warned", False)


def test_fallback_warns_once_and_gives_the_reference_values(without_native):
    outs = {name: torch.empty(3, 1001) for name in FILLS}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, out in outs.items():
            FILLS[name](out, seed=5, stream="w")
            FILLS[name](out, seed=5, stream="w")
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "native CPU executor is unavailable" in messages[0]
    assert "ImportError: simulated" in messages[0]
    assert not _cpu.available() and _cpu.executor().startswith("torch-op reference")
    for name, out in outs.items():
        with triton_init.backend("reference"):
            expected = FILLS[name](torch.empty(3, 1001), seed=5, stream="w")
        assert torch.equal(out, expected)


def test_the_reference_backend_never_runs_native_code(monkeypatch):
    """The tests' oracle stays independent: backend("reference") and values_at are torch ops only."""

    class Poisoned:
        def __getattr__(self, name):
            raise AssertionError(f"the native executor was called ({name})")

    monkeypatch.setattr(_cpu, "_native", Poisoned())
    with triton_init.backend("reference"):
        out = triton_init.trunc_normal_(torch.empty(100), seed=1, stream=2)
    params = reference.dist_params(TRUNC_NORMAL, torch.float32, a=-2.0, b=2.0)
    assert torch.equal(out, reference.values_at(torch.arange(100), TRUNC_NORMAL, params, 1, 2, torch.float32))


def test_import_failure_leaves_a_working_package():
    """The extension cannot be imported (as after a build without a compiler): the package imports, CPU fills
    take the reference after one warning."""
    code = textwrap.dedent("""
        import sys, warnings
        sys.modules["triton_init._native"] = None  # importing it now raises ImportError
        import torch
        import triton_init
        from triton_init import _cpu, reference
        assert not _cpu.available()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = triton_init.normal_(torch.empty(1000), seed=3, stream=4)
            triton_init.uniform_(torch.empty(10), seed=3)
        assert len([w for w in caught if "native CPU executor is unavailable" in str(w.message)]) == 1, caught
        expected = reference.values_at(torch.arange(1000), 1, reference.dist_params(1, torch.float32), 3, 4,
                                       torch.float32)
        assert torch.equal(a, expected)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_build_with_other_coefficients_is_refused():
    """Coefficients refitted without a rebuild: the extension is not used (CPU fills take the reference)."""
    code = textwrap.dedent("""
        from triton_init.kernels import ndtri_coeffs
        ndtri_coeffs.WIDE = ndtri_coeffs.WIDE[:-1] + (0.0,)
        from triton_init import _cpu
        assert not _cpu.available()
        print(_cpu.unavailable_reason)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "other inverse-CDF coefficients" in proc.stdout
