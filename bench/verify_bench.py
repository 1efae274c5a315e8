"""Verify throughput against generation throughput, in the same run: ``triton-init verify``'s whole path
(the checkpoint opened as the CLI opens it, every element checked) on checkpoints in the page cache.

    python bench/verify_bench.py                          # CPU: gpt2-small-like set (124M elements), fp32 and bf16
    python bench/verify_bench.py --sets gpt2-small 1b     # and a 1.0B-element set (bf16; fp32 with --fp32-1b)
    python bench/verify_bench.py --device cuda            # tensors on the GPU: verify_ on the device

For each (set, init, dtype): the set's tensors are filled by the executor (median of --repeats, warm-up
excluded: the generation rate), written to a safetensors file under --dir (tensor by tensor), read once into
the page cache, then verified --repeats times (median: the verify rate). Prints one row each, with the ratio
verify / generation, and the machine's load average; --json writes the rows.
"""

import argparse
import functools
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import torch

import triton_init as ti
from triton_init.cli.verify import load_checkpoint

INITS = {
    "uniform": functools.partial(ti.uniform_, a=-0.05, b=0.05),
    "normal": functools.partial(ti.normal_, std=0.02),
    "trunc_normal": functools.partial(ti.trunc_normal_, std=0.02, a=-0.04, b=0.04),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16"}
SEED = 2718


def gpt2_small() -> dict:
    """The weight matrices of gpt2-small (124.4M elements with its 1-D tensors, biases and norms zeros)."""
    shapes = {"wte.weight": (50257, 768), "wpe.weight": (1024, 768)}
    for k in range(12):
        shapes |= {f"h.{k}.attn.c_attn.weight": (768, 2304), f"h.{k}.attn.c_proj.weight": (768, 768),
                   f"h.{k}.mlp.c_fc.weight": (768, 3072), f"h.{k}.mlp.c_proj.weight": (3072, 768),
                   f"h.{k}.attn.c_attn.bias": (2304,), f"h.{k}.mlp.c_fc.bias": (3072,)}
    return shapes


def one_billion() -> dict:
    """A 1.0B-element set: a Llama-like 2048-wide model's matrices (embedding 128256 x 2048, 16 layers)."""
    shapes = {"embed.weight": (128256, 2048)}
    for k in range(16):
        shapes |= {f"layers.{k}.wqkv.weight": (3072, 2048), f"layers.{k}.wo.weight": (2048, 2048),
                   f"layers.{k}.w13.weight": (16384, 2048), f"layers.{k}.w2.weight": (2048, 8192)}
    return shapes


SETS = {"gpt2-small": gpt2_small, "1b": one_billion}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _fill(tensor, name: str, init) -> None:
    if tensor.dim() == 1:
        ti.zeros_(tensor)
    else:
        init(tensor, seed=SEED, stream=name)


def generation_seconds(shapes: dict, init, dtype, device: str, repeats: int) -> float:
    """Median time to fill every tensor of the set (each allocated once, outside the timing)."""
    tensors = {name: torch.empty(shape, dtype=dtype, device=device) for name, shape in shapes.items()}
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        _sync(device)
        started = time.perf_counter()
        for name, tensor in tensors.items():
            _fill(tensor, name, init)
        _sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def write_checkpoint(path: Path, shapes: dict, init, dtype, device: str) -> ti.Manifest:
    """A safetensors file of the set, generated on ``device`` and written one tensor at a time; returns its
    manifest."""
    manifest, header, offset = ti.Manifest(), {}, 0
    for name, shape in shapes.items():
        nbytes = torch.Size(shape).numel() * dtype.itemsize
        header[name] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, shape in shapes.items():
            tensor = torch.empty(shape, dtype=dtype, device=device)
            _fill(tensor, name, init)
            f.write(tensor.cpu().view(torch.uint8).numpy().tobytes())
            manifest.record_init(name, shape, dtype, ti.zeros_ if len(shape) == 1 else init, SEED)
    return manifest


def verify_seconds(path: Path, manifest, device: str, repeats: int) -> tuple:
    """(median seconds of a whole verify, its report): the checkpoint opened as the CLI opens it."""
    times, report = [], None
    for _ in range(repeats + 1):  # the first reads the file into the page cache and is left out
        started = time.perf_counter()
        state = load_checkpoint(path)
        if device != "cpu":
            state = {name: state[name].to(device) for name in state.keys()}
            _sync(device)
            started = time.perf_counter()
        report = ti.verify_(state, manifest)
        _sync(device)
        times.append(time.perf_counter() - started)
        del state
    return statistics.median(times[1:]), report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["gpt2-small"], choices=sorted(SETS))
    parser.add_argument("--inits", nargs="+", default=list(INITS), choices=list(INITS))
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--fp32-1b", action="store_true", help="also fp32 for the 1b set (4 GB on disk)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the checkpoints go (deleted after)")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    rows = []
    load = os.getloadavg()
    print(f"device {args.device} ({ti._cpu.executor() if args.device == 'cpu' else torch.cuda.get_device_name()}), "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'set':<11} {'init':<13} {'dtype':<5} {'elements':>13} {'generate M/s':>13} {'verify M/s':>11} "
          f"{'ratio':>6} {'exact':>6}  verdict")
    for set_name in args.sets:
        shapes = SETS[set_name]()
        numel = sum(torch.Size(s).numel() for s in shapes.values())
        for init_name in args.inits:
            for dtype_name in args.dtypes:
                if set_name == "1b" and dtype_name == "fp32" and not args.fp32_1b:
                    continue
                init, dtype = INITS[init_name], DTYPES[dtype_name]
                path = Path(args.dir) / f"verify_bench_{set_name}_{init_name}_{dtype_name}.safetensors"
                try:
                    manifest = write_checkpoint(path, shapes, init, dtype, args.device)
                    generate = generation_seconds(shapes, init, dtype, args.device, args.repeats)
                    verify, report = verify_seconds(path, manifest, args.device, args.repeats)
                finally:
                    path.unlink(missing_ok=True)
                row = {"set": set_name, "init": init_name, "dtype": dtype_name, "elements": numel,
                       "generate_per_s": numel / generate, "verify_per_s": numel / verify,
                       "ratio": generate / verify, "ok": report.ok,
                       "exact": sum(t.exact for t in report.tensors), "load_average": load}
                rows.append(row)
                print(f"{set_name:<11} {init_name:<13} {dtype_name:<5} {numel:>13,} "
                      f"{row['generate_per_s'] / 1e6:>13.0f} {row['verify_per_s'] / 1e6:>11.0f} {row['ratio']:>6.2f} "
                      f"{row['exact']:>6}  "
                      f"{'ok' if report.ok else 'FAILED'}", flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps(rows, indent=1))
    end_load = os.getloadavg()
    print(f"load average at the end {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f}")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
