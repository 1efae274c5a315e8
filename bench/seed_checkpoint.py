"""Seed checkpoints: the manifest size of each built-in model (a seed checkpoint that ``ManifestReader`` loads),
and, with ``--save MODEL DIR``, the streamed ``triton-init init --save-checkpoint DIR`` of one model: its wall
time and peak RSS, then ``triton-init verify`` of what it wrote (default settings), each in a fresh process.

    python bench/seed_checkpoint.py                                   # manifest sizes only (seconds)
    python bench/seed_checkpoint.py --save llama-3-8b /tmp/seed8b     # + the 16 GB save and its verify
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch

from triton_init.manifest import Manifest
from triton_init.models import MODELS, build, parameter_count
from triton_init.module import init_module_


def manifest_sizes() -> None:
    print(f"{'model':<14} {'parameters':>17} {'bf16 checkpoint':>16} {'manifest (JSON)':>16}")
    for name, shape in MODELS.items():
        manifest = Manifest()
        init_module_(build(name, dtype=torch.bfloat16), shape.recipe, seed=0, manifest=manifest)
        count = parameter_count(name)
        print(f"{name:<14} {count:>17,} {2 * count / 2**30:>12.1f} GiB {len(manifest.dumps()) / 1024:>12.1f} KiB")


def _timed(cmd) -> tuple:
    """(wall seconds, peak RSS in GiB, exit status, last output line) of ``cmd`` in a fresh process: its own
    peak (``wait4``'s usage of that child alone), not the largest of every child so far."""
    with tempfile.TemporaryFile(mode="w+") as output:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        lines = output.read().strip().splitlines()
    return seconds, usage.ru_maxrss / 2**20, child.returncode, lines[-1] if lines else ""


def save_and_verify(name: str, path: str, dtype: str) -> None:
    manifest = f"{path.rstrip('/')}.manifest.json"
    for target in (path, manifest):
        if os.path.exists(target):
            sys.exit(f"{target} exists; remove it first")
    cli = [sys.executable, "-m", "triton_init"]
    print(f"load average before: {os.getloadavg()}")
    seconds, rss, status, last = _timed(cli + ["init", "--model", name, "--device", "cpu", "--dtype", dtype,
                                               "--no-progress", "--save-checkpoint", path, "--save-manifest",
                                               manifest])
    print(f"save   {name} {dtype} -> {path}: {seconds:.1f} s wall, peak RSS {rss:.2f} GiB, exit {status}\n  {last}")
    seconds, rss, status, last = _timed(cli + ["verify", path, "--manifest", manifest, "--no-progress"])
    print(f"verify {path}: {seconds:.1f} s wall, peak RSS {rss:.2f} GiB, exit {status}\n  {last}")
    print(f"load average after: {os.getloadavg()}")
    shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    os.remove(manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", nargs=2, metavar=("MODEL", "PATH"),
                        help="also time the streamed save of MODEL to PATH (deleted afterwards) and its verify")
    parser.add_argument("--dtype", default="bf16")
    args = parser.parse_args()
    manifest_sizes()
    if args.save:
        save_and_verify(*args.save, args.dtype)


if __name__ == "__main__":
    main()
