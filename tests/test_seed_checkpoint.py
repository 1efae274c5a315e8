"""Seed checkpoints: ``triton-init init --save-checkpoint`` streamed into DCP directories, safetensors and torch.save
files, each equal bit for bit to the model the init writes in memory; ``ManifestReader`` loading the same values
into a plain model and a 2-rank FSDP2 model; the output checks, and atomic writes under SIGTERM and SIGINT."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from _ranks import run_ranks

import triton_init
from triton_init.cli import main
from triton_init.models import build
from triton_init.module import materialize_

SEED = 7
MODEL = "nano"


def _expected(dtype=torch.float32):
    return materialize_(build(MODEL, dtype=dtype), "cpu", "llama", seed=SEED).state_dict()


def _poisoned(state_dict):
    return {k: torch.full_like(v, float("nan")) for k, v in state_dict.items()}


def _init(*extra) -> int:
    return main(["init", "--model", MODEL, "--device", "cpu", "--dtype", "fp32", "--seed", str(SEED),
                 "--no-progress", *map(str, extra)])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The manifest and every checkpoint kind of the same init."""
    root = tmp_path_factory.mktemp("seed")
    paths = {"manifest": root / "m.json", "dcp": root / "dcp", "dcp3": root / "dcp3",
             "safetensors": root / "c.safetensors", "pt": root / "c.pt"}
    assert _init("--save-checkpoint", paths["dcp"], "--save-manifest", paths["manifest"]) == 0
    assert _init("--save-checkpoint", paths["dcp3"], "--world-size", 3) == 0
    assert _init("--save-checkpoint", paths["safetensors"]) == 0
    assert _init("--save-checkpoint", paths["pt"]) == 0
    return paths


def _assert_equal(got, expected):
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and torch.equal(got[name], value), name


@pytest.mark.parametrize("kind", ["dcp", "dcp3"])
def test_dcp_checkpoint_loads_the_init_values(saved, kind):
    expected = _expected()
    got = _poisoned(expected)
    dcp.load(got, storage_reader=dcp.FileSystemReader(saved[kind]))
    _assert_equal(got, expected)


def test_dcp_chunks_are_the_shard0_blocks_of_each_rank(saved):
    metadata = dcp.FileSystemReader(saved["dcp3"]).read_metadata()
    rows = {name: value.shape[0] for name, value in _expected().items()}
    for name, entry in metadata.state_dict_metadata.items():
        step = -(-rows[name] // 3)  # torch.chunk's sizes
        starts = list(range(0, rows[name], step))
        assert [tuple(c.offsets)[0] for c in entry.chunks] == starts, name
        assert [tuple(c.sizes)[0] for c in entry.chunks] == [min(step, rows[name] - s) for s in starts], name
    files = {info.relative_path for info in metadata.storage_data.values()}
    assert files == {"__0_0.distcp", "__1_0.distcp", "__2_0.distcp"}
    whole = dcp.FileSystemReader(saved["dcp"]).read_metadata()
    assert all(len(e.chunks) == 1 for e in whole.state_dict_metadata.values())


def test_safetensors_and_torch_save_files(saved):
    from safetensors.torch import load_file

    expected = _expected()
    _assert_equal(load_file(saved["safetensors"]), expected)
    _assert_equal(torch.load(saved["pt"], weights_only=True), expected)
    with open(saved["safetensors"], "rb") as f:  # a real safetensors header, not a torch.save zip
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    assert header["output.weight"]["dtype"] == "F32" and header["output.weight"]["shape"] == [256, 32]


def test_bf16_streamed_equals_init_in_memory(tmp_path):
    path = tmp_path / "c.safetensors"
    assert main(["init", "--model", MODEL, "--device", "cpu", "--seed", str(SEED), "--no-progress",
                 "--save-checkpoint", str(path)]) == 0
    from safetensors.torch import load_file

    _assert_equal(load_file(path), _expected(torch.bfloat16))


def test_manifest_reader_fills_a_model_exactly(saved):
    expected = _expected()
    model = build(MODEL).to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    dcp.load(model.state_dict(), storage_reader=triton_init.ManifestReader(saved["manifest"]))
    _assert_equal(model.state_dict(), expected)
    # a dtype the manifest does not record: the recorded values, cast as loading a checkpoint casts them
    wider = {k: torch.full(v.shape, float("nan"), dtype=torch.float64) for k, v in expected.items()}
    dcp.load(wider, storage_reader=triton_init.ManifestReader(triton_init.Manifest.load(saved["manifest"])))
    _assert_equal(wider, {k: v.double() for k, v in expected.items()})


# ---- FSDP2 on 2 gloo ranks ----------------------------------------------------------------------------


def _fsdp2_worker(rank, world_size, paths):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world_size,))
    expected = _expected()
    model = build(MODEL)
    for block in model.layers.values():
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.to_empty(device="cpu")
    readers = [triton_init.ManifestReader(paths["manifest"]), dcp.FileSystemReader(paths["dcp"]),
               dcp.FileSystemReader(paths["dcp3"])]
    for reader in readers:
        with torch.no_grad():
            for p in model.parameters():
                p.to_local().fill_(float("nan"))
        dcp.load(model.state_dict(), storage_reader=reader)
        for name, param in model.named_parameters():
            block = distribute_tensor(expected[name], mesh, param.placements, src_data_rank=None).to_local()
            assert torch.equal(param.to_local(), block), (type(reader).__name__, name)
    # tensor-parallel style column shards (Shard(1)): chunks at offsets along the second dim
    columns = {name: distribute_tensor(torch.full(v.shape, float("nan")), mesh, [Shard(1)], src_data_rank=None)
               for name, v in expected.items() if v.dim() == 2}
    dcp.load(columns, storage_reader=triton_init.ManifestReader(paths["manifest"]))
    for name, value in columns.items():
        block = distribute_tensor(expected[name], mesh, [Shard(1)], src_data_rank=None).to_local()
        assert torch.equal(value.to_local(), block), name


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_manifest_reader_fills_fsdp2_and_column_shards_on_two_ranks(saved):
    run_ranks(_fsdp2_worker, 2, {k: str(v) for k, v in saved.items()})


# ---- output checks and atomic writes ------------------------------------------------------------------


def _error_line(capsys, code: int, *argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["init", "--model", MODEL, "--device", "cpu", "--no-progress", *map(str, argv)])
    assert exc.value.code == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_existing_targets_need_overwrite(tmp_path, capsys):
    target = tmp_path / "c.safetensors"
    target.write_bytes(b"old")
    assert "exists (add --overwrite" in _error_line(capsys, 2, "--save-checkpoint", target)
    assert target.read_bytes() == b"old"
    manifest = tmp_path / "m.json"
    manifest.write_text("old")
    assert "--save-manifest" in _error_line(capsys, 2, "--save-manifest", manifest, "--save-checkpoint",
                                            tmp_path / "new.pt")
    assert manifest.read_text() == "old" and not (tmp_path / "new.pt").exists()
    assert main(["init", "--model", MODEL, "--device", "cpu", "--no-progress", "--save-checkpoint", str(target),
                 "--save-manifest", str(manifest), "--overwrite"]) == 0
    assert triton_init.Manifest.load(manifest) and target.stat().st_size > 1000
    directory = tmp_path / "dcp"
    assert _init("--save-checkpoint", directory) == 0
    assert "exists" in _error_line(capsys, 2, "--save-checkpoint", directory)
    assert _init("--save-checkpoint", directory, "--overwrite", "--world-size", 2) == 0
    assert sorted(os.listdir(directory)) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors", "dcp", "m.json"]  # no temporaries


def test_output_paths_are_checked_before_any_work(tmp_path, capsys):
    assert "does not exist" in _error_line(capsys, 2, "--save-checkpoint", tmp_path / "no" / "c.safetensors")
    assert "does not exist" in _error_line(capsys, 2, "--save-manifest", tmp_path / "no" / "m.json")
    other = tmp_path / "folder"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert "other files" in _error_line(capsys, 2, "--save-checkpoint", other, "--overwrite")
    assert (other / "notes.txt").read_text() == "mine"
    assert "same path" in _error_line(capsys, 2, "--save-checkpoint", tmp_path / "x.pt", "--save-manifest",
                                      tmp_path / "x.pt")
    assert "is a directory" in _error_line(capsys, 2, "--save-manifest", other)
    assert "DCP" in _error_line(capsys, 2, "--save-checkpoint", tmp_path / "c.safetensors", "--world-size", 2)
    assert "drop --rank" in _error_line(capsys, 2, "--save-checkpoint", tmp_path / "d", "--world-size", 2,
                                        "--rank", 1)
    assert "torch.save" in _error_line(capsys, 2, "--model", "llama-3-8b", "--save-checkpoint", tmp_path / "c.pt")
    assert "--world-size" in _error_line(capsys, 2, "--world-size", 10**12)
    empty = tmp_path / "empty"
    empty.mkdir()  # an existing empty directory is a fine DCP target: nothing in it is lost
    assert _init("--save-checkpoint", empty) == 0 and (empty / ".metadata").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "folder"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert "not writable" in _error_line(capsys, 2, "--save-checkpoint", folder / "c.pt")
    finally:
        folder.chmod(0o700)


def test_bench_json_directory_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--json", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "is a directory" in err and len(err.strip().splitlines()) == 1


def _old_target(target):
    """An existing checkpoint at ``target`` (a DCP directory when it is named "dcp", else a file) holding
    b"old": returns the file that holds it."""
    if target.name == "dcp":
        target.mkdir()
        target = target / ".metadata"
    target.write_bytes(b"old")
    return target


@pytest.mark.slow
@pytest.mark.parametrize("signum, kind", [(signal.SIGTERM, "c.safetensors"), (signal.SIGINT, "dcp")])
def test_a_killed_save_leaves_the_old_checkpoint(tmp_path, signum, kind):
    """Kill the save once its temporary file has data: the target keeps its old contents, nothing is left
    beside it."""
    target = tmp_path / kind
    old = _old_target(target)
    cmd = [sys.executable, "-m", "triton_init", "init", "--model", "gpt2-small", "--device", "cpu", "--dtype",
           "fp32", "--no-progress", "--save-checkpoint", str(target), "--overwrite"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
            sizes = [sum(f.stat().st_size for f in p.iterdir()) if p.is_dir() else p.stat().st_size
                     for p in partial if p.exists()]
            if any(size > 1 << 20 for size in sizes):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the save finished before it could be killed"
        proc.send_signal(signum)
        proc.wait(60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert old.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == [kind]
    assert "Traceback" not in proc.stderr.read().decode()


@pytest.mark.parametrize("name", ["dcp", "c.safetensors", "c.pt"])
def test_a_failed_save_leaves_the_old_target_and_no_temporaries(tmp_path, name):
    from triton_init.seed_checkpoint import TensorSource, save_checkpoint

    def failing(offset, size):
        raise RuntimeError("generation failed")

    good = TensorSource("a", (4, 3), torch.float32, lambda offset, size: torch.ones(size))
    target = tmp_path / name
    old = _old_target(target)
    with pytest.raises(RuntimeError, match="generation failed"):
        save_checkpoint(target, [good, TensorSource("b", (2,), torch.float32, failing)], overwrite=True)
    assert old.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == [name]
    save_checkpoint(target, [good], overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    if name == "dcp":
        got = {"a": torch.zeros(4, 3)}
        dcp.load(got, storage_reader=dcp.FileSystemReader(target))
        assert torch.equal(got["a"], torch.ones(4, 3))
