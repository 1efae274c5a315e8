"""The SASS report's parsing."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _sass_report():
    spec = importlib.util.spec_from_file_location("sass_report", ROOT / "bench" / "sass_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LISTING = """
        /*0000*/                   LDC R1, c[0x0][0x28] ;                      /* 0x00000a00ff017b82 */
        /*0010*/                   MUFU.LG2 R5, R5 ;                            /* 0x0000000000057919 */
        /*0020*/               @!P0 STG.E.EF.128 desc[UR4][R2.64], R4 ;        /* 0x0000000000007919 */
        /*0030*/                   STL [R1], R2 ;                               /* 0x0000000000007919 */
        /*0040*/                   STG.E.U16 desc[UR4][R2.64], R4 ;             /* 0x0000000000007919 */
        /*0050*/                   EXIT ;                                       /* 0x0000000000007919 */
        /*0060*/                   BRA 0x60;                                    /* 0x0000000000007919 */
        /*0070*/                   NOP;                                         /* 0x0000000000007919 */
"""


def test_sass_parsing():
    sass = _sass_report()
    instructions = sass.parse_sass(LISTING)
    assert instructions[2] == "@!P0 STG.E.EF.128 desc[UR4][R2.64], R4"
    assert sass.opcode(instructions[2]) == "STG.E.EF.128"
    counts = sass.count_sass(instructions)
    assert counts["instructions"] == 6  # the closing self-branch and the NOP padding left out
    assert counts["mufu"] == 1 and counts["spills"] == 1 and counts["store_bytes"] == 16
    assert sass.store_width("STG.E.U16") == 2 and sass.store_width("STG.E") == 4
    assert sass.parse_resources("Function _fill_kernel:\n REG:48 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:624")[
        "registers"] == 48


def test_sass_report_offline_targets(tmp_path):
    """bf16 normal on sm_90: 16-byte stores, no spills, at most 22 instructions per element."""
    import triton

    if not (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump").exists():
        pytest.skip("triton ships no cuobjdump here")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "sass.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "sass_report.py"), "--only", "^normal/bf16$",
                           "--jobs", "1", "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = [r for r in json.loads(out.read_text()) if r["kernel"] == "normal"]
    assert record["store_bytes"] == 16
    assert record["spills"] == 0
    assert record["instructions_per_element"] <= 22


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
