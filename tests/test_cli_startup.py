"""``triton-init --help`` and ``--version`` start fast: they import neither torch nor any subcommand's module
(checked on what the process imported, not on a timing), and still set the OpenMP wait policy first."""

import os
import subprocess
import sys

import pytest

from triton_init.cli import COMMANDS

HEAVY = ("torch", "triton", "numpy")
# main() in a fresh interpreter; then what it imported and the policy it set
DRIVER = f"""
import os, sys
from triton_init.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    print("EXIT", exc.code)
print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r} or m.startswith("triton_init.cli.")))
print("POLICY", os.environ.get("OMP_WAIT_POLICY"))
"""


def _run(args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)
    return out


def _driver(argv, env_extra=None):
    out = _run(["-c", DRIVER, *argv], env_extra)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.split(" ", 1)[0] in
                 ("EXIT", "LOADED", "POLICY"))
    return out, lines


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["--version"], []])
def test_help_and_version_import_no_torch(argv):
    out, lines = _driver(argv)
    assert lines["LOADED"] == "['triton_init.cli._common']", out.stdout + out.stderr
    assert lines["POLICY"] == "PASSIVE"  # set before anything could import torch
    assert lines["EXIT"] == ("2" if not argv else "0")  # no command: argparse's usage error


def test_help_lists_every_command_with_its_summary():
    out, _ = _driver(["--help"])
    text = " ".join(out.stdout.split())  # argparse wraps the summaries
    for name, summary in COMMANDS.items():
        assert f"{name} {summary}" in text


def test_version_names_the_package():
    import triton_init

    out, lines = _driver(["--version"])
    assert out.stdout.splitlines()[0] == f"triton-init {triton_init.__version__}"


def test_a_command_loads_only_its_own_module():
    out, lines = _driver(["verify", "--help"])
    assert "--manifest" in out.stdout and lines["EXIT"] == "0"
    loaded = eval(lines["LOADED"])  # a list literal the driver printed
    assert "triton_init.cli.verify" in loaded
    assert not {"triton_init.cli.bench", "triton_init.cli.init"} & set(loaded)


def test_module_entry_point_imports_no_torch():
    """``python -m triton_init --version``, seen by the interpreter's own import log."""
    out = _run(["-X", "importtime", "-m", "triton_init", "--version"])
    assert out.returncode == 0 and out.stdout.startswith("triton-init ")
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "triton_init.cli" in imported
    assert not {name for name in imported if name.split(".")[0] in HEAVY}


def test_user_policy_is_kept():
    _, lines = _driver(["--version"], {"OMP_WAIT_POLICY": "ACTIVE"})
    assert lines["POLICY"] == "ACTIVE"
