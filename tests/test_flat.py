"""init_flat_: a flat buffer of many parameters' pieces equals per-parameter init, kernel and reference."""

import pytest
import torch
from triton_init.kernels import flat as flat_kernels
from triton_init.kernels import trunc_paths

import triton_init
from triton_init._spec import Init
from triton_init.flat import Segment, init_flat_, shard_segments

SEED = 20240607


def _device(backend):
    """The kernels run on CUDA tensors, or on CPU tensors through the interpreter without a GPU."""
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"

# An FSDP1-style FlatParameter: flattened parameters concatenated, padded, chunked by rank. The shapes are
# chosen so that shard boundaries fall mid-row, and a segment starts at a logical index not aligned to 4.
PARAMS = [
    (Init.normal(0.0, 1.0), "tok_embeddings.weight", (11, 6)),
    (Init.trunc_normal(0.0, 0.02), "layers.0.attention.wq.weight", (6, 6)),
    (Init.trunc_normal(0.0, 0.02, -0.03, 0.05), "layers.0.attention.wo.weight", (6, 6)),
    (Init.zeros(), "layers.0.attention.wo.bias", (6,)),
    (Init.trunc_normal(0.0, 1.0, -4.0, 7.0), "layers.0.tail", (3, 5)),  # a truncation with tails
    (Init.uniform(-0.25, 0.25), "layers.0.feed_forward.w1.weight", (13, 6)),  # bounds exact in fp32
    (Init.uniform(-6 ** -0.5, 6 ** -0.5), "layers.0.feed_forward.w2.weight", (6, 13)),  # and not
    (Init.ones(), "norm.weight", (6,)),
    (Init.normal(0.5, 0.1), "output.weight", (7, 6)),
]


def _whole(dtype, device="cpu"):
    """Per-parameter init of every whole parameter, flattened and concatenated."""
    pieces = []
    for init, stream, shape in PARAMS:
        t = torch.empty(shape, dtype=dtype, device=device)
        init.fill_(t, seed=SEED, stream=stream)
        pieces.append(t.reshape(-1))
    return torch.cat(pieces)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("world_size", [1, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fsdp1_shards_equal_per_parameter_init(backend, world_size, dtype, poisoned):
    device = _device(backend)
    with triton_init.backend(backend):
        whole = _whole(dtype, device)
        total = whole.numel()
        per_rank = -(-total // world_size)
        mid_row = 0
        for rank in range(world_size):
            start, stop = rank * per_rank, (rank + 1) * per_rank
            segments = shard_segments(PARAMS, start, stop)
            mid_row += sum(s.start % s.global_shape[-1] != 0 for s in segments)
            shard = poisoned(per_rank, dtype=dtype, device=device)
            init_flat_(shard, segments, seed=SEED)
            held = min(stop, total) - start
            torch.testing.assert_close(shard[:held], whole[start:start + held], rtol=0, atol=0)
            assert shard[held:].isnan().all()  # padding is left alone
        if world_size > 1:
            assert mid_row > 0  # the layout really does split rows


def test_one_launch_per_kernel_specialisation(monkeypatch, triton_backend):
    launches = []
    real = flat_kernels.Launch.run
    device = _device("triton")
    whole = _whole(torch.float32, device)
    monkeypatch.setattr(flat_kernels.Launch, "run", lambda launch: (
        launches.append((launch.constexprs["DIST"], launch.constexprs["TRUNC_PATH"], launch.args[1].shape[0])),
        real(launch)))
    buffer = torch.empty(whole.numel(), device=device)
    init_flat_(buffer, shard_segments(PARAMS, 0, buffer.numel()), seed=SEED)
    # uniform (fp32 fma, fp64), normal, trunc_normal (untruncated, central, wide), constant
    untruncated, central, wide = (trunc_paths.UNTRUNCATED, trunc_paths.CENTRAL, trunc_paths.WIDE)
    assert sorted((d, p if d == 2 else None) for d, p, _ in launches) == [
        (0, None), (0, None), (1, None), (2, central), (2, untruncated), (2, wide), (3, None)]
    assert sum(n for _, _, n in launches) == len(PARAMS)  # rows of the segment tables
    torch.testing.assert_close(buffer, whole, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_segment_far_into_a_huge_logical_tensor(backend):
    """A segment of a 2^41-element parameter, starting past 2^40 at an index not aligned to 4."""
    shape = (1 << 21, 1 << 20)
    start = (1 << 40) + 4099
    init = Init.trunc_normal(0.0, 0.02)
    device = _device(backend)
    with triton_init.backend(backend):
        buffer = torch.empty(37, device=device)
        init_flat_(buffer, [Segment(init, "big", shape, start, 37, 0)], seed=SEED)
        row, col = divmod(start, shape[1])
        block = torch.empty(1, 37, device=device)
        triton_init.trunc_normal_(block, 0.0, 0.02, seed=SEED, stream="big", global_shape=shape,
                                  global_offset=(row, col))
    torch.testing.assert_close(buffer, block[0], rtol=0, atol=0)


def test_bad_segments_raise_before_writing():
    buffer = torch.zeros(10)
    init = Init.normal()
    with pytest.raises(ValueError, match="overlap"):
        init_flat_(buffer, [Segment(init, "a", (6,), 0, 6, 0), Segment(init, "b", (6,), 0, 6, 4)], seed=1)
    with pytest.raises(ValueError, match="holds indices"):
        init_flat_(buffer, [Segment(init, "a", (2, 3), 4, 3, 0)], seed=1)
    with pytest.raises(ValueError, match="buffer of"):
        init_flat_(buffer, [Segment(init, "a", (20,), 0, 8, 5)], seed=1)
    with pytest.raises(ValueError, match="1-D"):
        init_flat_(torch.zeros(2, 5), [], seed=1)
    with pytest.raises(TypeError):
        init_flat_(buffer, [("a", 1)], seed=1)
    assert (buffer == 0).all()


def test_aligned_parameters_leave_padding_between_them(poisoned):
    """FSDP1 with use_orig_params starts every parameter at a 16-byte boundary: 8 bf16 elements."""
    whole = _whole(torch.bfloat16)
    starts, base = [], 0
    for _, _, shape in PARAMS:
        base = -(-base // 8) * 8
        starts.append(base)
        base += torch.Size(shape).numel()
    buffer = poisoned(base, dtype=torch.bfloat16)
    init_flat_(buffer, shard_segments(PARAMS, 0, base, align=8), seed=SEED)
    offset = 0
    for (_, _, shape), start in zip(PARAMS, starts, strict=True):
        n = torch.Size(shape).numel()
        torch.testing.assert_close(buffer[start:start + n], whole[offset:offset + n], rtol=0, atol=0)
        offset += n
    written = sum(torch.Size(s).numel() for _, _, s in PARAMS)
    assert int((~buffer.isnan()).sum()) == written  # the padding is untouched


def test_module_segments_equal_init_module():
    from triton_init.flat import module_segments
    from triton_init.models import build
    from triton_init.module import init_module_

    model = init_module_(build("nano", device="cpu"), "llama", seed=SEED)
    whole = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    start, stop = 1000, 9000
    buffer = torch.empty(stop - start)
    init_flat_(buffer, module_segments(build("nano"), "llama", start, stop), seed=SEED)
    torch.testing.assert_close(buffer, whole[start:stop], rtol=0, atol=0)


def test_fill_blocks_batches_contiguous_runs_and_returns_the_rest(monkeypatch, triton_backend):
    """Whole tensors and row shards go through a few segment-table launches; strided blocks come back."""
    from triton_init.flat import fill_blocks_
    from triton_init.models import build
    from triton_init.module import init_module_, plan

    launches = []
    real = flat_kernels.flat_fill_
    monkeypatch.setattr(flat_kernels, "flat_fill_", lambda out, dist, rows, *a, **k: (
        launches.append(len(rows)), real(out, dist, rows, *a, **k)))
    device = _device("triton")
    model = init_module_(build("nano", device=device), "llama", seed=SEED)
    assert len(launches) <= 5 and sum(launches) == len(list(model.parameters()))
    for stream, tensor, init, _ in plan(model, "llama"):
        expected = init.fill_(torch.empty_like(tensor), seed=SEED, stream=stream)  # one launch per tensor
        torch.testing.assert_close(tensor.detach(), expected, rtol=0, atol=0, msg=stream)

    init = Init.normal(0.0, 2.0)
    whole = init.fill_(torch.empty(9, 8, device=device), seed=SEED, stream="w")
    rows = torch.full((4, 8), float("nan"), device=device)  # rows 3..6: one run of logical indices
    cols = torch.full((9, 3), float("nan"), device=device)  # columns 2..4: not one run
    transposed = torch.full((8, 9), float("nan"), device=device).t()  # strided
    rest = fill_blocks_([(rows, init, "w", (9, 8), (3, 0)), (cols, init, "w", (9, 8), (0, 2)),
                         (transposed, init, "w", None, None)], seed=SEED)
    assert [block[0] is t for block, t in zip(rest, (cols, transposed), strict=True)] == [True, True]
    torch.testing.assert_close(rows, whole[3:7], rtol=0, atol=0)
    assert cols.isnan().all() and transposed.isnan().all()


def test_extreme_tail_segments_take_the_reference(triton_backend, poisoned):
    """A trunc_normal segment beyond the fp32 kernels' reach (14-20 std) is still exact, beside kernel ones."""
    far, near = Init.trunc_normal(0.0, 1.0, 14.0, 20.0), Init.trunc_normal(0.0, 1.0, -2.0, 2.0)
    buffer = poisoned(40)
    init_flat_(buffer, [Segment(far, "far", (20,), 0, 20, 0), Segment(near, "near", (20,), 0, 20, 20)], seed=SEED)
    with triton_init.backend("reference"):
        expected = torch.empty(2, 20)
        triton_init.trunc_normal_(expected[0], 0.0, 1.0, 14.0, 20.0, seed=SEED, stream="far")
        triton_init.trunc_normal_(expected[1], 0.0, 1.0, -2.0, 2.0, seed=SEED, stream="near")
    assert (buffer[:20] >= 14.0).all() and (buffer[:20] < 14.5).all()
    torch.testing.assert_close(buffer[:20], expected[0], rtol=0, atol=0)
    torch.testing.assert_close(buffer[20:], expected[1], rtol=2e-6, atol=2e-5 * 2)


def test_numpy_integers_are_ints(poisoned):
    """Segments built with numpy arithmetic (np.int64 fields and shapes) fill like Python ints."""
    np = pytest.importorskip("numpy")
    shape = (7, 9)
    as_numpy = [Segment(Init.normal(0.0, 0.5), "w", tuple(np.int64(s) for s in shape), np.int64(5), np.int64(30),
                        np.int64(2)),
                Segment(Init.uniform(-1.0, 1.0), np.uint64(77), np.array(shape), np.int32(0), np.int16(2), np.int8(0))]
    as_int = [Segment(Init.normal(0.0, 0.5), "w", shape, 5, 30, 2),
              Segment(Init.uniform(-1.0, 1.0), 77, shape, 0, 2, 0)]
    got, want = poisoned(40), poisoned(40)
    manifest = triton_init.Manifest()
    init_flat_(got, as_numpy, seed=SEED, manifest=manifest)
    init_flat_(want, as_int, seed=SEED)
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    whole = triton_init.normal_(torch.empty(shape), 0.0, 0.5, seed=SEED, stream="w").reshape(-1)
    torch.testing.assert_close(got[2:32], whole[5:35], rtol=0, atol=0)
    assert manifest["w"].shape == shape and all(type(s) is int for s in manifest["w"].shape)


def _bad_segments():
    """(segment, error type, message) that ``init_flat_`` must refuse, whatever comes before it."""
    np = pytest.importorskip("numpy")
    init = Init.normal()
    return [
        (Segment(init, "b", (8,), 1.0, 2, 20), TypeError, r"segments\[1\].start must be an int"),
        (Segment(init, "b", (8,), np.float64(1), 2, 20), TypeError, r"segments\[1\].start must be an int"),
        (Segment(init, "b", (8,), True, 2, 20), TypeError, r"segments\[1\].start must be an int"),
        (Segment(init, "b", (8,), 0, 2.0, 20), TypeError, r"segments\[1\].numel must be an int"),
        (Segment(init, "b", (8,), 0, 2, "20"), TypeError, r"segments\[1\].offset must be an int"),
        (Segment(init, "b", (8.0,), 0, 2, 20), TypeError, r"segments\[1\].global_shape"),
        (Segment(init, "b", (-2, -4), 0, 2, 20), ValueError, "non-negative"),
        (Segment(init, "b", (1 << 32, 1 << 32, 2), 0, 2, 20), ValueError, r"more than 2\*\*64 elements"),
        (Segment(init, "b", (8,), 7, 2, 20), ValueError, "holds indices"),
        (Segment(init, "b", (8,), 0, 2, 31), ValueError, "buffer of"),
        (Segment(init, -1, (8,), 0, 2, 20), ValueError, "stream"),
        (Segment(init, "b", (8,), 0, 4, 8), ValueError, "overlap"),
        (Segment("normal", "b", (8,), 0, 2, 20), TypeError, "must be an Init"),
    ]


@pytest.mark.parametrize("case", range(13))
def test_a_later_bad_segment_writes_nothing(case, poisoned):
    """Every segment is checked before the first is written: a good segment first, then a bad one."""
    bad, error, message = _bad_segments()[case]
    buffer = poisoned(32)
    good = Segment(Init.uniform(-1.0, 1.0), "a", (4, 3), 0, 12, 0)
    with pytest.raises(error, match=message):
        init_flat_(buffer, [good, bad], seed=SEED)
    assert torch.isnan(buffer).all()


def test_shape_past_2_64_is_refused_like_normal():
    shape = (1 << 32, (1 << 32) + 1)
    with pytest.raises(ValueError, match=r"more than 2\*\*64 elements"):
        triton_init.normal_(torch.empty(1, 4), global_shape=shape, global_offset=(0, 0), seed=1)
    with pytest.raises(ValueError, match=r"more than 2\*\*64 elements"):
        init_flat_(torch.empty(4), [Segment(Init.normal(), "a", shape, 0, 4, 0)], seed=1)
    # exactly 2^64 elements is a valid logical tensor for both
    init_flat_(torch.empty(4), [Segment(Init.normal(), "a", (1 << 32, 1 << 32), (1 << 64) - 4, 4, 0)], seed=1)
