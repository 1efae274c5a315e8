"""The native executor of this tree against the one of an earlier revision, in one process, on the same tensors.

Builds ``csrc/`` of ``--base`` (a git revision) into a temporary directory with setup.py's compile flags, loads
it beside this tree's built extension (``triton_init._native``), and times each op with the two executors
alternately (``triton_init._cpu._native`` switched before each call; cpu_fill.py's ``_alternating``: medians
after one warm-up call each, the load average before and after each row). Each row also checks that the two
write the same bits. The ops are cpu_fill.py's (``uniform``, ``normal``, ``trunc_2std``, ``trunc_titan``).
``--llama`` adds a row per dtype: ``normal_(0, 0.02)`` on every weight of the 1.5B-parameter transformers Llama
of frameworks.py --scale (Llama-3.2-1B's shapes, untied: 146 tensors), one stream each, the whole set timed.

    python bench/cpu_fill_versions.py --base REV [--sizes 24,27] [--dtypes fp32,bf16]
                                      [--ops uniform,normal,trunc_titan] [--threads 2] [--llama] [--out FILE.json]
"""

import argparse
import ast
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cpu_fill import _alternating, _cpu_model, _ops

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("module.c", "stream_v1.c")
# the weights of frameworks.py's --scale transformers Llama (hidden 2048, 16 layers, GQA 32/8 heads of 64, ffn
# 8192, vocab 128256, untied): embedding, lm_head, and per layer q, k, v, o, gate, up, down
LLAMA_SHAPES = [(128256, 2048)] * 2 + [(2048, 2048), (512, 2048), (512, 2048), (2048, 2048), (8192, 2048),
                                       (8192, 2048), (2048, 8192)] * 16
HEADERS = ("stream_v1.h", "ndtri_coeffs.h")


def compile_flags() -> list[str]:
    """setup.py's ``extra_compile_args``."""
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.keyword) and node.arg == "extra_compile_args":
            return ast.literal_eval(node.value)
    raise RuntimeError("no extra_compile_args in setup.py")


def build_base(rev: str, workdir: Path):
    """The extension of ``rev``'s csrc/, built and loaded as a module of its own."""
    src = workdir / "csrc"
    src.mkdir()
    for name in SOURCES + HEADERS:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:csrc/{name}"], capture_output=True,
                              check=True).stdout
        (src / name).write_bytes(text)
    from setuptools import Distribution, Extension

    ext = Extension("_native", sources=[str(src / name) for name in SOURCES],
                    extra_compile_args=compile_flags())
    command = Distribution({"name": "base", "ext_modules": [ext]}).get_command_obj("build_ext")
    command.build_lib, command.build_temp = str(workdir / "lib"), str(workdir / "temp")
    command.ensure_finalized()
    command.run()
    (path,) = (workdir / "lib").glob("_native*")
    spec = importlib.util.spec_from_file_location("triton_init._native", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--sizes", default="24,27", help="log2 of the element counts")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--ops", default="uniform,normal,trunc_titan")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--llama", action="store_true", help="also normal_ over the 1.5B Llama's weights")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import torch

    from triton_init import _cpu

    if _cpu._native is None:
        raise SystemExit(f"this tree's extension is not loaded: {_cpu.unavailable_reason}")
    torch.set_num_threads(args.threads)
    current = _cpu._native
    with tempfile.TemporaryDirectory(prefix="cpu-fill-base-") as workdir:
        base = build_base(args.base, Path(workdir))
    if getattr(base, "INTERFACE_VERSION", None) != current.INTERFACE_VERSION:
        raise SystemExit(f"{args.base}'s extension has interface {getattr(base, 'INTERFACE_VERSION', None)}, "
                         f"this tree's {current.INTERFACE_VERSION}: not comparable this way")
    base_rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base], capture_output=True,
                              text=True, check=True).stdout.strip()

    def using(module, op):
        def call(tensor):
            _cpu._native = module
            op(tensor)
        return call

    ops = _ops()
    import triton_init

    def llama_normal(weights):
        def fill(_):
            for k, weight in enumerate(weights):
                triton_init.normal_(weight, 0.0, 0.02, seed=1, stream=f"weight{k}")
        return fill

    def bits(tensor):
        return tensor.view(torch.int16 if tensor.element_size() == 2 else torch.int32)

    def compare(name, dtype_name, size, fill, tensors):
        """One row: ``fill`` (of ``tensors``) with either executor, alternating, then the bits of each."""
        this_t, base_t, row = _alternating(using(current, fill), using(base, fill), tensors[0])
        using(current, fill)(tensors[0])
        expected = [bits(t).clone() for t in tensors]
        using(base, fill)(tensors[0])
        same = all(torch.equal(bits(t), e) for t, e in zip(tensors, expected, strict=True))
        n = sum(t.numel() for t in tensors)
        record = {"op": name, "dtype": dtype_name, "elements": n, "same_bits": same,
                  "base_gps": n / statistics.median(base_t) / 1e9, "this_gps": n / statistics.median(this_t) / 1e9,
                  **row}
        rows.append(record)
        print(f"| {name} | {dtype_name} | {size} | {record['base_gps']:.3f} | {record['this_gps']:.3f} "
              f"| {row['ratio']:.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f}) | {same} "
              f"| {row['load_before']:.2f}-{row['load_after']:.2f} |", flush=True)

    print(f"{_cpu_model()}, {args.threads} threads, {_cpu.executor()}; base {base_rev} against this tree")
    print("| op | dtype | n | base G/s | this G/s | speedup | same bits | load before-after |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    try:
        for dtype_name in args.dtypes.split(","):
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
            for log2 in (int(s) for s in args.sizes.split(",")):
                tensor = torch.zeros(1 << log2, dtype=dtype)  # every page touched before timing
                for name in args.ops.split(","):
                    compare(name, dtype_name, f"2^{log2}", ops[name][0], [tensor])
                del tensor
            if args.llama:
                weights = [torch.zeros(shape, dtype=dtype) for shape in LLAMA_SHAPES]
                compare("normal (1.5B Llama's weights)", dtype_name, f"{sum(w.numel() for w in weights):,}",
                        llama_normal(weights), weights)
                del weights
    finally:
        _cpu._native = current
    if args.out is not None:
        args.out.write_text(json.dumps({"machine": _cpu_model(), "platform": platform.platform(),
                                        "cpus": os.cpu_count(), "threads": args.threads, "base": base_rev,
                                        "rows": rows}, indent=1) + "\n")
    return 0 if all(r["same_bits"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
