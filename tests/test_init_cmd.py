"""`triton-init init`: the model checksum is the same for every world size (ranks run in-process)."""

import pytest
import torch

from triton_init.cli import main
from triton_init.cli.init import block_checksum, combine, init_model


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_checksum_is_the_same_for_every_world_size(dtype):
    whole = init_model("nano", dtype=dtype, seed=5)["checksum"]
    for world_size in (2, 3, 8):
        partials = [init_model("nano", dtype=dtype, world_size=world_size, rank=r, seed=5)["checksum"]
                    for r in range(world_size)]
        assert combine(partials) == whole
    assert init_model("nano", dtype=dtype, seed=6)["checksum"] != whole


def test_block_checksums_add_up_and_see_every_value_and_position():
    torch.manual_seed(0)
    full = torch.randn(7, 10).to(torch.bfloat16)
    whole = block_checksum(full, "w")
    # a 2-D split: blocks at their offsets add up to the whole
    parts = [block_checksum(full[r0:r1, c0:c1], "w", (7, 10), (r0, c0))
             for r0, r1 in ((0, 3), (3, 7)) for c0, c1 in ((0, 4), (4, 9), (9, 10))]
    assert combine(parts) == whole
    changed = full.clone()
    changed[2, 3] = changed[2, 3] * 2
    swapped = full.clone()
    swapped[0, [0, 1]] = full[0, [1, 0]]
    assert full[0, 0] != full[0, 1]
    assert block_checksum(changed, "w") != whole and block_checksum(swapped, "w") != whole
    assert block_checksum(full, "v") != whole


def test_cli_prints_time_bandwidth_and_checksum(capsys):
    assert main(["init", "--model", "nano", "--dtype", "bf16", "--device", "cpu", "--no-progress"]) == 0
    one = capsys.readouterr().out
    assert main(["init", "--model", "nano", "--dtype", "bf16", "--device", "cpu", "--world-size", "3",
                 "--no-progress"]) == 0
    three = capsys.readouterr().out
    checksum = [line for line in one.splitlines() if line.startswith("checksum")][0].split()[1]
    assert f"checksum {checksum}" in three and "GB/s" in one and three.count("rank") == 3
    assert main(["init", "--model", "nano", "--world-size", "3", "--rank", "1", "--device", "cpu",
                 "--no-progress"]) == 0
    assert "partial checksum" in capsys.readouterr().out
    assert main(["init", "--model", "nano", "--device", "cpu", "--world-size", "2", "--rank", "0", "--progress",
                 "--recipe", "megatron"]) == 0
    err = capsys.readouterr().err
    assert "MiB" in err and "GB/s" in err and err.endswith("\n")
