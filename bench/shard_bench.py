"""Per-rank time to initialize one rank's shard (FSDP-style Shard(0), 1/world_size of every parameter)
of a built-in model, by five paths:

- ``triton_init``: ``triton-init init``'s path: the local blocks allocated, then filled with their logical
  values by the segment-table kernel, one launch per distribution family;
- ``triton_init 1/tensor``: the same values with one ``global_shape``/``global_offset`` call per tensor;
- ``triton_init flat``: the rank's chunk of the flat concatenation (FSDP1 / ZeRO layout), ``init_flat_``;
- ``torch meta+reset``: a meta model whose parameters have the local shapes, ``to_empty`` then every
  module's ``reset_parameters`` (what each rank runs after ``fully_shard`` on meta, without DTensor's
  dispatch overhead, so a lower bound for torch);
- ``torch.nn.init``: the recipe's distributions through ``torch.nn.init`` on each local block.

GPU: ``python bench/shard_bench.py --model llama-3-70b --dtype bf16 --world-size 8 --rank 0``.
CPU (small): ``python bench/shard_bench.py --cpu``.
"""

import argparse
import json
import sys
import time

import torch
import torch.nn as nn

from triton_init._sharding import local_block
from triton_init.cli import init as init_command
from triton_init.flat import init_flat_, module_segments
from triton_init.models import MODELS, build
from triton_init.module import apply_init, plan

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _shard0(shape, world_size, rank):
    from torch.distributed.tensor import Shard

    return local_block(tuple(shape), (world_size,), (rank,), (Shard(0),))


def run_triton(name, dtype, device, world_size, rank, seed):
    result = init_command.init_model(name, dtype=dtype, device=device, world_size=world_size, rank=rank, seed=seed,
                                  checksum=False)
    return result["seconds"], result["bytes"]


def run_triton_per_tensor(name, dtype, device, world_size, rank, seed):
    entries = plan(build(name, dtype=dtype), MODELS[name].recipe)
    _sync(device)
    started = time.perf_counter()
    written = 0
    for stream, tensor, init, _ in entries:
        shape, offset = _shard0(tensor.shape, world_size, rank)
        local = torch.empty(shape, dtype=dtype, device=device)
        apply_init(local, init, seed=seed, stream=stream, global_shape=tuple(tensor.shape), global_offset=offset)
        written += local.numel() * local.element_size()
        del local
    _sync(device)
    return time.perf_counter() - started, written


def run_flat(name, dtype, device, world_size, rank, seed):
    model = build(name, dtype=dtype)
    per_rank = -(-sum(p.numel() for p in model.parameters()) // world_size)
    segments = module_segments(model, MODELS[name].recipe, rank * per_rank, (rank + 1) * per_rank)
    _sync(device)
    started = time.perf_counter()
    buffer = torch.empty(per_rank, dtype=dtype, device=device)
    init_flat_(buffer, segments, seed=seed)
    _sync(device)
    return time.perf_counter() - started, buffer.numel() * buffer.element_size()


def _local_shape_model(name, dtype, world_size, rank):
    """The model on meta with every parameter replaced by its local Shard(0) block's shape."""
    model = build(name, dtype=dtype)
    for module in model.modules():
        for pname, param in list(module._parameters.items()):
            if param is not None:
                shape, _ = _shard0(param.shape, world_size, rank)
                module._parameters[pname] = nn.Parameter(torch.empty(shape, dtype=dtype, device="meta"))
    return model


def run_torch_reset(name, dtype, device, world_size, rank, seed):
    model = _local_shape_model(name, dtype, world_size, rank)
    torch.manual_seed(seed)
    _sync(device)
    started = time.perf_counter()
    model.to_empty(device=device)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    _sync(device)
    return time.perf_counter() - started, sum(p.numel() * p.element_size() for p in model.parameters())


def run_torch_init(name, dtype, device, world_size, rank, seed):
    entries = plan(build(name, dtype=dtype), MODELS[name].recipe)
    torch.manual_seed(seed)
    _sync(device)
    started = time.perf_counter()
    written = 0
    with torch.no_grad():
        for _, tensor, init, _ in entries:
            shape, _ = _shard0(tensor.shape, world_size, rank)
            local = torch.empty(shape, dtype=dtype, device=device)
            if init.kind == "uniform":
                nn.init.uniform_(local, init.a, init.b)
            elif init.kind == "normal":
                nn.init.normal_(local, init.mean, init.std)
            elif init.kind == "trunc_normal":
                nn.init.trunc_normal_(local, init.mean, init.std, init.a, init.b)
            else:
                local.fill_(init.value)
            written += local.numel() * local.element_size()
            del local
    _sync(device)
    return time.perf_counter() - started, written


PATHS = [
    ("triton_init", run_triton),
    ("triton_init 1/tensor", run_triton_per_tensor),
    ("triton_init flat", run_flat),
    ("torch meta+reset", run_torch_reset),
    ("torch.nn.init", run_torch_init),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS))
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--device")
    parser.add_argument("--world-size", type=int, default=8)
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs per path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="small CPU mode: the tiny model on the CPU")
    parser.add_argument("--paths", help="comma-separated subset of: " + ", ".join(p for p, _ in PATHS))
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    device = "cpu" if args.cpu else (args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = args.model or ("llama-3-70b" if device.startswith("cuda") else "tiny")
    repeats = 1 if device == "cpu" and args.repeats == 3 else args.repeats
    dtype = DTYPES[args.dtype]
    selected = [p for p in PATHS if not args.paths or p[0] in args.paths.split(",")]
    # warm-up: compile the kernels on a small model so that no path pays for JIT
    for label, fn in selected:
        if label.startswith("triton"):
            fn("nano", dtype, device, 2, 0, args.seed)
    print(f"{name} {args.dtype} on {device}: rank {args.rank} of {args.world_size} (Shard(0) of every parameter)")
    print(f"{'path':<21} {'seconds':>10} {'GB/s':>10} {'time / triton_init':>18}")
    rows, base = [], None
    for label, fn in selected:
        try:
            best, written = None, 0
            for _ in range(repeats):
                seconds, written = fn(name, dtype, device, args.world_size, args.rank, args.seed)
                best = seconds if best is None else min(best, seconds)
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
        except Exception as exc:  # torch's bf16 paths can fail (e.g. missing bf16 kernels): report, go on
            print(f"{label:<21} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
            rows.append({"path": label, "error": f"{type(exc).__name__}: {exc}"})
            continue
        base = base if base is not None else best
        gbps = written / best / 1e9
        print(f"{label:<21} {best:>10.4f} {gbps:>10.3g} {best / base:>17.2f}x")
        rows.append({"path": label, "seconds": best, "bytes": written, "gbps": gbps, "model": name,
                     "dtype": args.dtype, "device": device, "world_size": args.world_size, "rank": args.rank})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
