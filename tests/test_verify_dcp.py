"""DCP checkpoints of sharded models, verified chunk by chunk in one process with no process group: a model
materialized under FSDP2 on 2 gloo ranks and under FSDP2 x TP on 4, saved with ``dcp.save``. The untouched
checkpoint verifies; one changed byte in a .distcp file fails, naming the tensor and the logical index."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from _ranks import run_ranks
from test_verify_every_element import flip_data_byte

import triton_init as ti
from triton_init.cli import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]
SEED = 90210


class _Block(nn.Module):
    """Odd sizes, so that FSDP2's dim-0 shards are uneven (one rank's shard of ``up`` is shorter)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(37, 24)
        self.up = nn.Linear(24, 52)
        self.down = nn.Linear(52, 24)
        self.norm = nn.LayerNorm(24)


def _worker(rank: int, world_size: int, out: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    with torch.device("meta"):
        model = _Block()
    if world_size == 4:
        mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
        parallelize_module(model, mesh["tp"], {"up": ColwiseParallel(), "down": RowwiseParallel()})
        fully_shard(model, mesh=mesh["dp"])
    else:
        fully_shard(model, mesh=init_device_mesh("cpu", (world_size,)))
    manifest = ti.Manifest()
    ti.materialize_(model, "cpu", seed=SEED, manifest=manifest)
    dcp.save(model.state_dict(), checkpoint_id=out)
    if rank == 0:
        manifest.save(os.path.join(out, "manifest.json"))


@pytest.mark.parametrize("world_size", [2, 4], ids=["fsdp2", "fsdp2xtp"])
def test_sharded_dcp_checkpoint_verifies_chunk_by_chunk(world_size, tmp_path, capsys):

    from triton_init._dcp_chunks import DCPCheckpoint

    checkpoint = tmp_path / "ckpt"
    run_ranks(_worker, world_size, str(checkpoint))
    manifest = ti.Manifest.load(checkpoint / "manifest.json")
    stored = DCPCheckpoint(checkpoint)
    assert len(stored["up.weight"].stored) > 1  # sharded: several chunks at their offsets
    report = ti.verify_(str(checkpoint), manifest)
    assert report.ok, report.table()
    assert {t.name: t.checked for t in report.tensors}["up.weight"] == 52 * 24
    # a chunk of up.weight that does not start at the origin: its logical index differs from its position
    offsets = [o for o, _, _ in stored["up.weight"].stored]
    assert any(o != (0, 0) for o in offsets), offsets
    name, position = "up.weight", 30
    chunk_offsets, sizes, _ = max(stored[name].stored, key=lambda c: c[0])
    flip_data_byte(checkpoint, name, position, chunk_offsets)
    row, col = divmod(position, sizes[1])
    logical = (chunk_offsets[0] + row) * 24 + chunk_offsets[1] + col
    code = main(["verify", str(checkpoint), "--manifest", str(checkpoint / "manifest.json"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1, out
    failed = [line for line in out.splitlines() if line.startswith(name)]
    assert "mismatch: 1 of" in failed[0] and f"index {logical} ({chunk_offsets[0] + row}, {col + chunk_offsets[1]})" \
        in failed[0], out
    assert out.count("mismatch:") == 1
