"""The ``triton-init`` command line: bad input is one line on stderr and exit status 2, help states defaults
and valid values, ``--version``, the OpenMP wait policy set before torch loads, and ``bench``'s output."""

import json
import math
import os
import runpy
import subprocess
import sys

import pytest
import torch

import triton_init
from triton_init import _cpu, _dispatch, reference
from triton_init._format import NORMAL, TRUNC_NORMAL, UNIFORM
from triton_init.cli import _common, bench, build_parser, checks, main

BAD_INVOCATIONS = [
    (["bench", "--dtypes", "fp33"], "--dtypes"),
    (["bench", "--dtypes", "float32,fp32"], "--dtypes"),
    (["bench", "--numel", "0"], "--numel"),
    (["bench", "--numel", "many"], "--numel"),
    (["bench", "--numel", str(1 << 50)], "--numel"),
    (["bench", "--ops", "uniform,foo"], "--ops"),
    (["bench", "--ops", "uniform,,normal"], "--ops"),
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--device", "mps"], "--device"),
    (["bench", "--device", "cuda:99"], "--device"),
    (["bench", "--json", "/no/such/folder/out.json"], "--json"),
    (["init", "--world-size", "0"], "--world-size"),
    (["init", "--world-size", "-2"], "--world-size"),
    (["init", "--rank", "5", "--world-size", "4"], "--rank"),
    (["init", "--rank", "-1"], "--rank"),
    (["init", "--recipe", "foo"], "--recipe"),
    (["init", "--model", "gpt5"], "--model"),
    (["init", "--dtype", "int8"], "--dtype"),
    (["init", "--seed", "-1"], "--seed"),
    (["init", "--seed", str(1 << 64)], "--seed"),
    (["frobnicate"], "COMMAND"),
    ([], "COMMAND"),
]
if not torch.cuda.is_available():
    BAD_INVOCATIONS.append((["bench", "--device", "cuda"], "--device"))


@pytest.mark.parametrize("argv, option", BAD_INVOCATIONS, ids=[" ".join(a) or "(none)" for a, _ in BAD_INVOCATIONS])
def test_bad_input_is_one_line_and_exit_status_2(argv, option, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("triton-init") and "error:" in lines[0], captured.err
    assert option in lines[0] and "Traceback" not in captured.err


def test_python_dash_m_runs_the_same_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["triton_init", "init", "--world-size", "0"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("triton_init", run_name="__main__")
    assert done.value.code == 2
    assert capsys.readouterr().err.strip() == ("triton-init init: error: argument --world-size: must be at least 1, "
                                               "got 0 (see triton-init init --help)")


def test_torch_dtype_names_are_accepted_as_aliases():
    args = build_parser().parse_args(["bench", "--dtypes", "float32,torch.bfloat16,half", "--ops", "normal,uniform"])
    assert args.dtypes == ["fp32", "bf16", "fp16"] and args.ops == ["normal", "uniform"]
    assert [_common.torch_dtype(name) for name in args.dtypes] == [torch.float32, torch.bfloat16, torch.float16]
    assert build_parser().parse_args(["init", "--dtype", "float64"]).dtype == "fp64"
    assert build_parser().parse_args(["bench"]).dtypes == ["fp32", "bf16"]  # the default string, parsed


@pytest.mark.parametrize("argv, expected", [
    ([], ["bench", "init", "--version"]),
    (["bench"], ["default: fp32,bf16", "default: 5", "default: 2^28 on CUDA, 2^20 on the CPU", "default: all",
                 *bench.OP_NAMES, "fp16", "fp64"]),
    (["init"], ["default: bf16", "default: 1", "default: 0", "llama-3-70b", "megatron", "in [0, 2**64)"]),
])
def test_help_states_defaults_and_valid_values(argv, expected, capsys):
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for text in expected:
        assert text in out, text
    assert "``" not in out


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"triton-init {triton_init.__version__}"


OPENMP_PROBE = """
import os, sys
import triton_init.cli as cli
assert "torch" not in sys.modules, "importing the CLI imported torch"
try:
    cli.main(["init", "--rank", "5", "--world-size", "4"])
except SystemExit as exc:
    assert exc.code == 2
assert "torch" in sys.modules  # the subcommands import it, after main set the policy
print(cli._common.openmp_policy())
"""


def test_a_fresh_cli_sets_omp_wait_policy_before_torch_loads():
    """In a fresh interpreter without OMP_WAIT_POLICY: importing the CLI loads no torch, main sets PASSIVE
    first, and a bad invocation is one line on stderr (no traceback)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", OPENMP_PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "OMP_WAIT_POLICY=PASSIVE (set by triton-init)"
    assert done.stderr.strip() == ("triton-init init: error: argument --rank: must be in [0, --world-size=4), got 5 "
                                   "(see triton-init init --help)")


def test_omp_wait_policy_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    _common.default_openmp_policy()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert _common.openmp_policy() == "OMP_WAIT_POLICY=ACTIVE (yours)"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    _common.default_openmp_policy()  # torch is loaded here: too late to matter, so left unset
    assert "OMP_WAIT_POLICY" not in os.environ
    assert _common.openmp_policy() == "OMP_WAIT_POLICY=unset (torch was loaded before triton-init could set it)"


# ---- bench ---------------------------------------------------------------------------------------------


def test_executor_names_the_path_a_fill_takes():
    t = torch.empty(1 << 10)
    cpu_path = "native" if _cpu.available() else "reference-eager"
    assert _dispatch.executor(t, NORMAL) == cpu_path
    assert _dispatch.executor(t[::2], UNIFORM) == cpu_path  # strided too
    with triton_init.backend("reference"):
        assert _dispatch.executor(t, NORMAL) == "reference-eager"
    if not torch.cuda.is_available():
        with triton_init.backend("triton"):
            assert _dispatch.executor(t, NORMAL) == "triton-interpreter"
            far_tail = reference.dist_params(TRUNC_NORMAL, torch.float32, mean=0.0, std=1.0, a=20.0, b=21.0)
            assert _dispatch.executor(t, TRUNC_NORMAL, far_tail) == cpu_path  # beyond the fp32 kernels
    assert set(_dispatch.EXECUTORS) >= {"triton", "triton-interpreter", "native", "reference-eager"}


def test_contract_error_is_in_units_of_the_contract():
    exact = torch.tensor([0.0, 1.0, -3.0], dtype=torch.float64)
    std = 0.5
    limit = 2e-5 * std * torch.tensor([1.0, 2.0, 6.0], dtype=torch.float64)  # 2e-5 std max(1, |z|)
    for fraction in (0.5, 2.0):
        got = (exact + fraction * limit).double()
        error = checks.contract_error(got, exact, NORMAL, torch.float64, mean=0.0, std=std)
        assert error == pytest.approx(fraction, rel=1e-6)
    # bf16: a correct rounding is 0, rounding the wrong way goes over 1
    x = torch.tensor([0.0123456], dtype=torch.float64)
    nearest = x.to(torch.bfloat16)
    wrong = torch.nextafter(nearest.float(), torch.tensor(1.0)).to(torch.bfloat16)
    wrong = (nearest.float() + (nearest.float() - x.float()).sign().neg() * 2 ** -14).to(torch.bfloat16) \
        if wrong == nearest else wrong
    assert checks.contract_error(nearest, x, NORMAL, torch.bfloat16, std=0.02) == 0.0
    assert checks.contract_error(wrong, x, NORMAL, torch.bfloat16, std=0.02) > 1.0
    # uniform: 2 fp32 ulps, beyond the half ulp any rounding may take: 1 ulp off is (1 - 1/2) / (2 - 1/2)
    one = torch.tensor([1.5], dtype=torch.float64)
    assert checks.contract_error(one + 2 ** -24, one, UNIFORM, torch.float32) == 0.0
    assert checks.contract_error(one + 2 ** -23, one, UNIFORM, torch.float32) == pytest.approx(1 / 3)
    assert checks.contract_error(one + 2 ** -21, one, UNIFORM, torch.float32) == pytest.approx(7 / 3)
    assert checks.contract_error(torch.tensor([math.nan]), one, UNIFORM, torch.float32) == math.inf


def test_the_kernel_check_reaches_both_ends_of_every_distribution_past_2_34():
    group, stream = checks.ends_of_the_distributions(bench.SEED)
    words = [int(w) for w in reference.group_words(torch.tensor([group]), bench.SEED, stream)]
    u = [((w >> 9) + 0.5) * 2.0 ** -23 for w in words]
    assert u[0] == 2.0 ** -24 and u[1] == u[2] == 1 - 2.0 ** -24 and u[3] == 0.5 + 2.0 ** -24
    shape, offset, sample_stream, logical = checks.sample_block(bench.SEED)
    assert sample_stream == stream
    assert logical[0, 0] < 1 << 34 <= logical[0, -1]  # row 0 crosses index 2^34
    assert (logical[1, 16:20] == 4 * group + torch.arange(4)).all()
    assert logical.max() < shape[0] * shape[1] < 1 << 63
    exact_normal = checks.exact_values(logical[1, 16:20], NORMAL, {"mean": 0.0, "std": 1.0}, bench.SEED, stream)
    assert exact_normal[0] == pytest.approx(math.sqrt(48 * math.log(2)), rel=1e-9)  # the largest z the format has
    assert abs(exact_normal[2]) == pytest.approx(math.sqrt(-2 * math.log1p(-(2.0 ** -24))), rel=1e-6)


def test_noisy_rows_are_flagged_and_small_numbers_keep_their_digits():
    assert [bench._g(x) for x in (0.00123456, 12.3456, 4.5e-6, 123456.0)] == ["0.00123", "12.3", "4.50e-06",
                                                                              "123456"]
    row = {"op": "normal", "dtype": "bfloat16", "shape": [1024], "elements": 1024, "runs": "reference-eager",
           "repeats": 3, "ours_s": 0.2, "torch_s": 0.01, "ratio_vs_torch": 0.05, "ratio_min": 0.03,
           "ratio_max": 0.06, "gbps": 1e-5, "pct_of_write_ceiling": 0.004, "error": 0.99, "error_kind": "contract",
           "note": "", "noisy": True}
    line = bench._format_row(row)
    assert "noisy" in line and "0.0500x [0.030-0.060]" in line and "1.00e-05" in line and "0.0040%" in line


def test_bench_says_what_it_measures_and_checks_the_kernels(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    assert main(["bench", "--numel", "4096", "--repeats", "3", "--dtypes", "fp32,bf16",
                 "--ops", "normal,trunc_normal,orthogonal,kaiming_normal", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    runs = "triton" if torch.cuda.is_available() else "native" if _cpu.available() else "reference-eager"
    assert f"cpu tensors here run {runs}" in lines[1] or torch.cuda.is_available()
    report = json.loads(out_json.read_text())
    assert report["numel"] == 4096 and report["repeats"] == 3 and report["openmp"].startswith("OMP_WAIT_POLICY=")
    rows = {(r["op"], r["dtype"]): r for r in report["rows"]}
    ops = ("normal", "trunc_normal", "kaiming_normal", "orthogonal")
    assert set(rows) == {(op, dt) for op in ops for dt in ("float32", "bfloat16")}
    for (op, dtype), row in rows.items():
        line = next(line for line in lines if line.startswith(op) and dtype in line.split()[1])
        assert row["runs"] in line and f"{row['elements']:,}" in line
        assert row["gbps"] > 0 and f"{bench._g(row['gbps'])}" in line and " 0.00 " not in line
        assert row["ours_s"] > 0 and row["torch_s"] is None or row["ratio_min"] <= row["ratio_vs_torch"] <= row[
            "ratio_max"]
        if op == "orthogonal":
            assert row["shape"] == [16, 16] and row["elements"] == 256 and row["error_kind"] == "|QQᵀ-I|"
            assert "16x16" in line and "|QQᵀ-I|" in line
        else:
            assert row["elements"] == 4096 and row["error_kind"] == "contract" and 0 <= row["error"] <= 1.0
    # 0 is the exact value rounded once (bf16, float64 trunc_normal); fp32 Box-Muller's own error shows
    assert rows["normal", "float32"]["error"] > 0
    assert "torch fails" in rows["orthogonal", "bfloat16"]["note"]
    kernel_rows = report["kernel_check"]["rows"]
    assert [(r["op"], r["dtype"]) for r in kernel_rows] == [key for key in rows if key[0] != "kaiming_normal"]
    assert "kaiming_normal the normal kernel with scalars from the fans: checked by the normal rows" in \
        " ".join(text.split())
    assert all(r["ok"] for r in kernel_rows) and report["ok"]
    for r in kernel_rows:
        if r["error_kind"] == "contract":
            assert r["largest_index"] > 1 << 35 and 0 <= r["error"] <= 1.0
    assert next(r for r in kernel_rows if (r["op"], r["dtype"]) == ("normal", "float32"))["error"] > 0
    assert f"kernel check: {len(kernel_rows)} of {len(kernel_rows)} rows ok" in text
    assert "max err: 'contract'" in text and "vs torch" in text


def test_bench_fails_when_the_kernels_are_wrong(monkeypatch, capsys):
    """A kernel that shifts normal by 3 contract units must fail the check (exit status 1)."""
    from triton_init import _random

    real = _random.normal_

    def shifted(tensor, mean=0.0, std=1.0, *args, **kwargs):
        real(tensor, mean, std, *args, **kwargs)
        if _dispatch.current_backend() == "triton":
            tensor.add_(3 * 2e-5 * std * tensor.div(std).abs().clamp(min=1.0))
        return tensor

    monkeypatch.setattr(triton_init, "normal_", shifted)
    assert main(["bench", "--numel", "1024", "--repeats", "1", "--dtypes", "fp32", "--ops", "normal"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1 FAILED" in out
