"""``triton-init init --hf-config/--torchtitan`` write their --save-manifest and --save-checkpoint: a DCP directory of
two ranks' shards, a safetensors file of one rank and the manifest alone (``ManifestReader``) hold the same values."""

import os

import pytest
import torch
import torch.distributed.checkpoint as dcp
from framework_checks import require

import triton_init
from triton_init.cli import main

CONFIG = os.path.join(os.path.dirname(__file__), "configs", "tiny-llama", "config.json")


@pytest.mark.slow
def test_hf_config_checkpoints_and_manifest_hold_the_init_values(tmp_path):
    require("transformers", "transformers 5.24")
    from safetensors.torch import load_file

    common = ["init", "--hf-config", CONFIG, "--device", "cpu", "--dtype", "fp32", "--seed", "5"]
    assert main(common + ["--save-checkpoint", str(tmp_path / "c.safetensors")]) == 0
    assert main(common + ["--world-size", "2", "--save-checkpoint", str(tmp_path / "dcp"),
                          "--save-manifest", str(tmp_path / "m.json")]) == 0
    expected = load_file(tmp_path / "c.safetensors")
    assert sorted(os.listdir(tmp_path / "dcp")) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    for reader in (dcp.FileSystemReader(tmp_path / "dcp"), triton_init.ManifestReader(tmp_path / "m.json")):
        got = {k: torch.full_like(v, float("nan")) for k, v in expected.items()}
        dcp.load(got, storage_reader=reader)
        for name, value in expected.items():
            assert torch.equal(got[name], value), (type(reader).__name__, name)
    report = triton_init.verify_(expected, triton_init.Manifest.load(tmp_path / "m.json"), samples=None)
    assert report.ok, report.table()
