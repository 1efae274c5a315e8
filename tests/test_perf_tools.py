"""The device check's verify step, run on the CPU."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
