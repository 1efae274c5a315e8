"""verify_'s check of every element: the native executor's bit-for-bit comparison (csrc ti_compare), the
device path through the Triton kernels, values of another executor, region writes, slabs, and DCP checkpoints
read chunk by chunk (single process here; FSDP2 and FSDP2 x TP on gloo in test_verify_dcp.py)."""

import functools
import json
import math

import pytest
import torch
import torch.nn as nn
from conftest import ALL_DTYPES

import triton_init as ti
from triton_init import Manifest, _cpu, _fastcheck, contract, reference
from triton_init._format import NORMAL, TRUNC_NORMAL, UNIFORM
from triton_init._layout import make_layout
from triton_init.cli import main
from triton_init.reference import call_params

requires_native = pytest.mark.skipif(not _cpu.available(), reason=f"not built: {_cpu.unavailable_reason}")
SEED = 31337
CALLS = {
    "uniform": (UNIFORM, {"a": -0.5, "b": 1.5}),
    "normal": (NORMAL, {"mean": 0.25, "std": 0.02}),
    "trunc_central": (TRUNC_NORMAL, {"mean": 0.0, "std": 0.02, "a": -0.04, "b": 0.04}),
    "trunc_tail": (TRUNC_NORMAL, {"mean": 0.0, "std": 1.0, "a": 5.0, "b": math.inf}),
}
INITS = {
    "uniform": functools.partial(ti.uniform_, a=-0.5, b=1.5),
    "normal": functools.partial(ti.normal_, std=0.02),
    "trunc_normal": functools.partial(ti.trunc_normal_, std=0.02, a=-0.04, b=0.04),
    "kaiming_uniform": functools.partial(ti.kaiming_uniform_, a=math.sqrt(5)),
}


def _next_up(tensor: torch.Tensor, index) -> None:
    """Move one element to the next representable value of its dtype (the smallest possible change)."""
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]
    tensor.view(bits)[index] += 1


def _recorded(shapes_inits, dtype, manifest=None):
    """name -> tensor, each filled by its init (seed SEED, stream its name) and recorded in the manifest."""
    manifest = Manifest() if manifest is None else manifest
    tensors = {}
    for name, (shape, init) in shapes_inits.items():
        keyed = {} if getattr(init, "func", init) in (ti.zeros_, ti.ones_, ti.constant_) else \
            {"seed": SEED, "stream": name}
        tensors[name] = init(torch.empty(shape, dtype=dtype), **keyed)
        manifest.record_init(name, shape, dtype, init, SEED)
    return tensors, manifest


# ---- the native comparison ------------------------------------------------------------------------------


@requires_native
@pytest.mark.parametrize("case", sorted(CALLS))
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_native_compare_finds_exactly_the_changed_elements(case, dtype):
    """A strided block at an unaligned logical offset: no position when untouched; exactly the changed ones
    (first, last, an unaligned one) whatever the threads, chunk and instruction set."""
    dist, args = CALLS[case]
    dist, params = call_params(dist, dtype, **args)
    whole = torch.full((37, 301), float("nan"), dtype=dtype)
    block = whole.t()[5:290, 3:30]  # a transposed view: strided in memory
    layout = make_layout(block, (400, 41), (7, 9))
    _cpu.native_fill_(block, layout, dist, params, SEED, 99)
    positions = torch.full((block.numel(),), -1, dtype=torch.int64)
    assert _cpu.native_compare(block, layout, dist, params, SEED, 99, positions) == 0
    changed = [0, 1234, block.numel() - 1]
    for p in changed:
        _next_up(block.reshape(-1) if block.is_contiguous() else block, divmod(p, block.shape[1]))
    for threads, chunk, baseline in ((None, _cpu.CHUNK_ELEMENTS, False), (2, 1000, False), (1, 77, True)):
        count = _cpu.native_compare(block, layout, dist, params, SEED, 99, positions, threads=threads, chunk=chunk,
                                    baseline_isa=baseline)
        assert positions[:count].tolist() == changed, (threads, chunk, baseline)


@requires_native
@pytest.mark.parametrize("case", ["uniform", "normal"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_native_float64_check_never_clears_a_value_outside_the_contract(case, dtype):
    """Stored values scattered over +-1.5 tolerances around the exact ones (plus NaN, infinities, zeros): the
    native check with the contract's tolerance clears none that the reference's float64 check rejects
    (contract units > 1), and most that it accepts (not those exactly at the edge: its margin for its own
    float64 error leaves them to the reference; fp32 uniform values sit on that edge often)."""
    dist, args = CALLS[case]
    dist, params = call_params(dist, dtype, **args)
    n, base = 40000, (1 << 33) + 3
    logical = torch.arange(base, base + n)
    exact = reference.values_at(logical, dist, params, SEED, 99, torch.float64)
    tolerance = contract.uniform_tolerance(exact, dtype) if dist == UNIFORM else \
        contract.normal_tolerance(exact, params[0], params[1], dtype)
    r = torch.rand(n, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 3.0 - 1.5
    stored = (exact + r * tolerance).to(dtype)
    stored[:4] = torch.tensor([math.nan, math.inf, -math.inf, 0.0], dtype=dtype)
    inside = contract.contract_units(stored, exact, tolerance, dtype) <= 1.0
    positions = torch.empty(n, dtype=torch.int64)
    layout = make_layout(stored, (base + n,), (base,))
    count = _cpu.native_compare(stored, layout, dist, params, SEED, 99, positions,
                                tolerance=contract.native_tolerance(dtype))
    cleared = torch.ones(n, dtype=torch.bool)
    cleared[positions[:count]] = False
    assert not bool((cleared & ~inside).any()), torch.nonzero(cleared & ~inside)[:5]
    assert not bool(cleared[:3].any())
    assert int((cleared & inside).sum()) >= 0.5 * int(inside.sum()), (int(cleared.sum()), int(inside.sum()))
    assert int((~inside).sum()) > 0.1 * n  # the test holds values on both sides


@requires_native
def test_native_compare_checks_its_positions_buffer():
    dist, params = call_params(NORMAL, torch.float32, mean=0.0, std=1.0)
    t = torch.zeros(100)
    with pytest.raises(ValueError, match="room for every element"):
        _cpu.native_compare(t, make_layout(t), dist, params, 1, 2, torch.empty(99, dtype=torch.int64))


def test_slabs_are_row_major_runs_within_the_limit():
    base = torch.arange(4 * 6 * 10).reshape(4, 6, 10)
    view = base.permute(1, 0, 2)[:, 1:, 2:9]  # (6, 3, 7), strided
    for limit in (1, 5, 7, 20, 21, 1000):
        pieces = list(_fastcheck.slabs(view, (2, 1, 2), limit))
        assert all(p.numel() <= max(limit, 1) for p, _ in pieces)
        assert torch.cat([p.reshape(-1) for p, _ in pieces]).tolist() == view.reshape(-1).tolist(), limit
        for piece, offset in pieces:  # each offset is where the piece's first element sits
            first = (piece.reshape(-1)[0] == view).nonzero()[0]
            assert tuple(o + int(f) for o, f in zip((2, 1, 2), first, strict=True)) == offset


# ---- verify_ by default -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_default_verify_catches_one_changed_element(dtype):
    """Every element is checked by default: one element changed anywhere fails, and the report names its index
    (a sample of 4096 of these 12,384 elements would miss it). The change: one ulp of bfloat16, or of any dtype
    for the deterministic inits; 0.1% for fp32 random values (one fp32 ulp is inside the contract)."""
    shapes = {f"{name}.weight": ((96, 129), init) for name, init in INITS.items()}
    shapes["bias"] = ((129,), ti.zeros_)
    shapes["scale"] = ((7,), functools.partial(ti.constant_, val=0.1))
    tensors, manifest = _recorded(shapes, dtype)
    report = ti.verify_(tensors, manifest)
    assert report.ok and all(t.checked == t_.numel() for t, t_ in zip(report.tensors, tensors.values(),
                                                                             strict=True))
    assert all(t.exact == 0 and t.max_error is None for t in report.tensors)
    for name, index in (("normal.weight", (61, 100)), ("trunc_normal.weight", (95, 128)), ("bias", 77),
                        ("scale", 0), ("uniform.weight", (0, 0))):
        changed = dict(tensors, **{name: tensors[name].clone()})
        if dtype == torch.float32 and "weight" in name:
            changed[name][index] *= 1.001
        else:
            _next_up(changed[name], index)
        report = ti.verify_(changed, manifest)
        bad = [t for t in report.tensors if t.failed]
        assert [t.name for t in bad] == [name]
        logical = index if isinstance(index, int) else index[0] * 129 + index[1]
        assert bad[0].mismatches == 1 and bad[0].first_mismatch["index"] == logical
        assert f"index {logical}" in bad[0].detail


def test_values_of_another_executor_pass_through_the_float64_checks():
    """Values the reference writes (float64 math, then one rounding: what another executor could store) differ
    in bits from the native executor's at many elements: normal ones pass the native float64 check, the
    trunc_normal ones the reference's (``exact``); a changed one among them still fails."""
    shapes = {"w": ((64, 100), INITS["normal"]), "t": ((3000,), INITS["trunc_normal"])}
    native, manifest = _recorded(shapes, torch.float32)
    with ti.backend("reference"):
        other, _ = _recorded(shapes, torch.float32)
    assert int((other["w"] != native["w"]).sum()) > 1000 and int((other["t"] != native["t"]).sum()) > 100
    report = ti.verify_(other, manifest)
    assert report.ok, report.table()
    assert report.tensors[0].exact == 0 and report.tensors[1].exact > 100 and report.tensors[1].max_error <= 1.0
    other["w"][10, 10] = native["w"][10, 10] * 1.001  # 0.1%: far outside 2e-5 of z
    other["t"][2999] = native["t"][2999] * 1.001
    report = ti.verify_(other, manifest)
    assert [t.first_mismatch["index"] for t in report.tensors] == [1010, 2999]


def test_triton_kernel_values_verify_on_the_cpu_and_the_device_path(triton_backend):
    """Written by the Triton kernels (interpreter): verified by the native executor (another executor's
    rounding passes), and by the device path (the kernels regenerate each slab and compare), which clears
    every element itself and catches one changed element."""
    shapes = {"w": ((48, 50), INITS["normal"]), "u": ((2401,), INITS["uniform"])}
    tensors, manifest = _recorded(shapes, torch.bfloat16)  # under the triton backend: the kernels write
    report = ti.verify_(tensors, manifest)
    assert report.ok and [t.exact for t in report.tensors] == [0, 0]
    _next_up(tensors["w"], (47, 0))
    report = ti.verify_(tensors, manifest)
    assert not report.ok and report.tensors[0].first_mismatch["index"] == 47 * 50
    tensors["w"].view(torch.int16)[47, 0] -= 1
    with ti.backend("auto"):
        report = ti.verify_(tensors, manifest)
    assert report.ok, report.table()


@pytest.mark.parametrize("case", sorted(CALLS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_fused_compare_kernel_finds_exactly_the_changed_elements(case, dtype, triton_backend):
    """kernels/verify.py at an unaligned logical offset past 2^32: no position when the kernels wrote the
    values, exactly the changed ones (first, middle, last) when some changed, their count when they overflow
    the positions buffer."""
    from triton_init._dispatch import fill_random_, kernel_module

    dist, args = CALLS[case]
    dist, params = call_params(dist, dtype, **args)
    n, base = 3001, (1 << 32) + 4 * 77 + 1
    stored = torch.full((n,), float("nan"), dtype=dtype)
    fill_random_(stored, dist, params, SEED, 99, make_layout(stored, (base + n,), (base,)))
    positions = torch.full((8,), -1, dtype=torch.int64)
    compare = kernel_module("verify").compare_flat_
    assert compare(stored, dist, params, SEED, 99, base, positions) == 0
    for p in (0, 1500, n - 1):
        _next_up(stored, p)
    assert compare(stored, dist, params, SEED, 99, base, positions) == 3
    assert positions[:3].tolist() == [0, 1500, n - 1]
    assert compare(stored, dist, params, SEED, 99, base, positions[:2]) == 3


def test_device_path_unfused_where_the_kernel_cannot_take_the_slab(triton_backend, monkeypatch):
    """A strided tensor, and a slab with more differing elements than the fused kernel's buffer holds, are
    regenerated into a buffer and compared there: the same verdicts."""
    with ti.backend("auto"):
        tensors, manifest = _recorded({"w": ((40, 50), INITS["normal"])}, torch.float32)  # native values
    monkeypatch.setattr(_fastcheck, "FUSED_CAPACITY", 4)
    strided = {"w": tensors["w"].t().contiguous().t()}
    for target in (tensors, strided):
        report = ti.verify_(target, manifest)
        assert report.ok and report.tensors[0].exact == 0, report.table()
        target["w"][39, 49] *= 1.001
        report = ti.verify_(target, manifest)
        assert report.tensors[0].mismatches == 1 and report.tensors[0].first_mismatch["index"] == 1999


def test_device_path_checks_another_executors_values_in_float64_on_the_device(triton_backend):
    """fp32 values of the native executor differ in bits from the kernels' (interpreter) at many elements:
    the device path clears them by the float64 check on the device, leaving none to the CPU reference; a
    changed one still fails."""
    with ti.backend("auto"):
        tensors, manifest = _recorded({"w": ((64, 50), INITS["normal"]), "t": ((1500,), INITS["trunc_normal"])},
                                      torch.float32)
    with_kernels, _ = _recorded({"w": ((64, 50), INITS["normal"]), "t": ((1500,), INITS["trunc_normal"])},
                                torch.float32)
    assert int((with_kernels["w"] != tensors["w"]).sum()) > 100
    report = ti.verify_(tensors, manifest)
    assert report.ok and [t.exact for t in report.tensors] == [0, 0], report.table()
    tensors["t"][1234] *= 1.001
    report = ti.verify_(tensors, manifest)
    assert [t.name for t in report.failures] == ["t"] and report.tensors[1].exact == 1
    assert report.tensors[1].first_mismatch["index"] == 1234


def test_region_writes_after_the_fill_get_the_exact_check():
    """An embedding's padding row zeroed after normal_: a checkpoint that kept the normal values in that row
    (bit-equal to the fill the fast path regenerates) fails; the zeroed one passes."""
    emb = ti.normal_(torch.empty(10, 33), std=0.02, seed=SEED, stream="emb")
    manifest = Manifest()
    manifest.record("emb", (10, 33), torch.float32, "normal_", {"mean": 0.0, "std": 0.02}, SEED)
    manifest.record("emb", (10, 33), torch.float32, "zeros_", {}, SEED, region=ti.Region(3 * 33, (33,), (1,)))
    report = ti.verify_({"emb": emb}, manifest)
    assert not report.ok and report.tensors[0].mismatches == 33 and report.tensors[0].first_mismatch["index"] == 99
    emb[3] = 0
    report = ti.verify_({"emb": emb}, manifest)
    assert report.ok and report.tensors[0].exact == 33


def test_small_slabs_give_the_same_report(monkeypatch):
    tensors, manifest = _recorded({"w": ((30, 41), INITS["normal"])}, torch.bfloat16)
    _next_up(tensors["w"], (20, 40))
    _next_up(tensors["w"], (29, 3))
    whole = ti.verify_(tensors, manifest).tensors[0]
    monkeypatch.setattr(_fastcheck, "SLAB", 16)
    sliced = ti.verify_(tensors, manifest).tensors[0]
    assert (whole.mismatches, whole.first_mismatch) == (sliced.mismatches, sliced.first_mismatch) == \
        (2, whole.first_mismatch) and whole.first_mismatch["index"] == 20 * 41 + 40


def test_a_dtensor_shard_and_an_offset_block_are_checked_at_their_logical_indices():
    tensors, manifest = _recorded({"w": ((40, 30), INITS["normal"])}, torch.float32)
    block = tensors["w"][10:25, 5:30].clone()
    assert ti.verify_({"w": block}, manifest, offsets={"w": (10, 5)}).ok
    assert not ti.verify_({"w": block}, manifest, offsets={"w": (10, 4)}).ok


# ---- the command line and DCP (one process) -------------------------------------------------------------------


def _run(capsys, *args):
    code = main(["verify", *map(str, args), "--no-progress"])
    return code, capsys.readouterr().out


def test_cli_checks_every_element_by_default_and_reports_the_rate(tmp_path, capsys):
    tensors, manifest = _recorded({"a": ((200, 300), INITS["normal"]), "b": ((300,), ti.zeros_)}, torch.bfloat16)
    manifest.save(tmp_path / "m.json")
    torch.save(tensors, tmp_path / "ok.pt")
    code, out = _run(capsys, tmp_path / "ok.pt", "--manifest", tmp_path / "m.json")
    assert code == 0 and "60,300 elements checked" in out and "M elements/s" in out
    _next_up(tensors["a"], (123, 45))
    torch.save(tensors, tmp_path / "bad.pt")
    code, out = _run(capsys, tmp_path / "bad.pt", "--manifest", tmp_path / "m.json", "--json")
    report = json.loads(out)
    assert code == 1 and report["elements"] == 60300 and report["elements_per_second"] > 0
    assert [t["first_mismatch"]["index"] for t in report["tensors"] if t["verdict"] == "mismatch"] == [123 * 300 + 45]


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 24)
        self.proj = nn.Linear(24, 40)


def _distcp_files(path):
    return sorted(p for p in path.iterdir() if p.suffix == ".distcp")


def flip_data_byte(checkpoint, name: str, index: int, offsets=None) -> str:
    """Flip a mantissa bit of element ``index`` of the stored chunk of ``name`` at ``offsets`` (default: the
    first listed) in its .distcp file, found there by its bytes; returns the file's name."""
    from triton_init._dcp_chunks import DCPCheckpoint

    stored = DCPCheckpoint(checkpoint)[name]
    k = next(k for k, c in enumerate(stored.stored) if offsets is None or c[0] == tuple(offsets))
    chunk, info = stored.read(k), stored.stored[k][2]
    raw = chunk.contiguous().view(torch.uint8).numpy().tobytes()
    path = checkpoint / info.relative_path
    data = bytearray(path.read_bytes())
    at = data.find(raw, info.offset, info.offset + info.length)
    assert at >= 0
    data[at + index * chunk.element_size() + 1] ^= 0x04
    path.write_bytes(bytes(data))
    return info.relative_path


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_dcp_checkpoint_of_one_process(tmp_path, capsys):
    import torch.distributed.checkpoint as dcp

    with torch.device("meta"):
        model = _Tiny()
    manifest = Manifest()
    ti.materialize_(model, "cpu", seed=SEED, manifest=manifest)
    dcp.save(model.state_dict(), checkpoint_id=str(tmp_path / "ckpt"))
    manifest.save(tmp_path / "m.json")
    report = ti.verify_(str(tmp_path / "ckpt"), manifest)
    assert report.ok and sum(t.checked for t in report.tensors) == 50 * 24 + 40 * 24 + 40
    code, out = _run(capsys, tmp_path / "ckpt", "--manifest", tmp_path / "m.json")
    assert code == 0, out
    flip_data_byte(tmp_path / "ckpt", "proj.weight", 100)
    code, out = _run(capsys, tmp_path / "ckpt", "--manifest", tmp_path / "m.json")
    assert code == 1 and "proj.weight" in out and "index 100 (4, 4)" in out
    with pytest.raises(ValueError, match="DCP checkpoint directory"):
        ti.verify_(str(tmp_path), manifest)
