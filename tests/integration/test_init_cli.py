"""``triton-init init --hf-config``: a transformers model from a local config.json, its own init recorded on the
meta device and applied to each rank's FSDP2 shards (each rank in a fresh process), gives the same checksum
for every world size: Llama at 2 ranks, and T5 at 3 (under FSDP2 transformers renames T5's root class and
skips its attention inits; the plan records them on the unsharded model). configs/ also holds tied GPT-2 and
Qwen2, BERT (a padding row) and Mixtral (MoE) for ``triton-init init --hf-config`` by hand."""

import os
import re
import subprocess
import sys

import pytest
import torch
from framework_checks import require

CONFIGS = os.path.join(os.path.dirname(__file__), "configs")


@pytest.mark.parametrize("name,world_size", [("tiny-llama", 2), pytest.param("tiny-t5", 3, marks=pytest.mark.slow)])
def test_hf_config_checksum_is_the_same_for_every_world_size(name, world_size):
    require("transformers", "transformers 5.24")
    from triton_init.cli.frameworks import hf_model, init_framework_model

    config = os.path.join(CONFIGS, name, "config.json")
    model = hf_model(config)
    whole = init_framework_model(model, dtype=torch.float32, seed=3)["checksum"]
    assert init_framework_model(model, dtype=torch.float32, seed=4)["checksum"] != whole
    out = subprocess.run([sys.executable, "-m", "triton_init", "init", "--hf-config", config, "--device", "cpu",
                          "--dtype", "fp32", "--seed", "3", "--world-size", str(world_size)],
                         capture_output=True, text=True, check=True).stdout
    assert len(re.findall(rf"rank \d/{world_size}: ", out)) == world_size
    assert re.search(r"^checksum ([0-9a-f]{16})", out, re.M).group(1) == f"{whole:016x}"
