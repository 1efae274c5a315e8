"""``triton-init init --hf-config``: a transformers model from a local config.json, initialized by its own code
under intercept, gives the same checksum for every world size (each rank's FSDP2 shards in a fresh process)."""

import os
import re
import subprocess
import sys

import torch
from framework_checks import require

CONFIG = os.path.join(os.path.dirname(__file__), "configs", "tiny-llama", "config.json")


def test_hf_config_checksum_is_the_same_for_every_world_size():
    require("transformers", "transformers 5.24")
    from triton_init.cli.frameworks import hf_model, init_framework_model

    model = hf_model(CONFIG)
    whole = init_framework_model(model, dtype=torch.float32, seed=3)["checksum"]
    assert init_framework_model(model, dtype=torch.float32, seed=4)["checksum"] != whole
    out = subprocess.run([sys.executable, "-m", "triton_init", "init", "--hf-config", CONFIG, "--device", "cpu",
                          "--dtype", "fp32", "--seed", "3", "--world-size", "2"],
                         capture_output=True, text=True, check=True).stdout
    assert len(re.findall(r"rank \d/2: ", out)) == 2
    assert re.search(r"^checksum ([0-9a-f]{16})", out, re.M).group(1) == f"{whole:016x}"
