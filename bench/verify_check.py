"""A verify pass on this machine's device: models materialized here, checked element by element against the
CPU reference through their init manifests (``triton_init.verify_``).

    python bench/verify_check.py                       # CUDA: llama-3-8b in bf16, every init, a 2^32+ tensor
    python bench/verify_check.py --device cpu --model nano

Parts: (1) ``--model`` materialized with its recipe, every element (compared on the device);
(2) a flat buffer through ``init_flat_``, every element; (3) on CUDA with the memory, one bf16 tensor of
more than 2^32 elements (samples include the indices past 2^32); (4) every triton_init init function in
fp32 and bf16 (small tensors, every element). Prints one line per part and rewrites ``--json`` after each;
exits 1 unless every part verifies.
"""

import argparse
import functools
import json
import math
import sys
import time

import torch

import triton_init as ti
from triton_init.models import MODELS, build

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
EVERY_INIT_DTYPES = (torch.float32, torch.bfloat16)
BIG_SHAPE = ((1 << 16) + 8, 1 << 16)  # 2^32 + 2^19 elements: 8.6 GB in bf16
SHAPES = ((257, 129), (64, 1000))  # of every init's tensors: odd sizes, rows shorter and longer than columns


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _part(name: str, report, seconds: float, **extra) -> dict:
    errors = [t.max_error for t in report.tensors if t.max_error is not None]
    row = {"part": name, "ok": report.ok, "tensors": len(report.tensors),
           "checked": sum(t.checked for t in report.tensors), "max_error": max(errors, default=None),
           "seconds": round(seconds, 3), "sample_seed": report.sample_seed,
           "failures": [t.to_json() for t in report.failures + report.unverified], **extra}
    status = "ok" if report.ok else "FAILED"
    error = "-" if row["max_error"] is None else f"{row['max_error']:.3g}"
    print(f"{name:<44} {status:<6} {row['tensors']:>4} tensors {row['checked']:>12,} elements  max error "
          f"{error:>8}  {seconds:6.2f} s", flush=True)
    for failure in row["failures"][:5]:
        print(f"    {failure['name']}: {failure['verdict']} {failure['detail']}", flush=True)
    return row


def model_part(model: str, dtype, device, seed: int) -> dict:
    manifest = ti.Manifest()
    _sync(device)
    started = time.perf_counter()
    module = ti.materialize_(build(model, dtype=dtype), device, MODELS[model].recipe, seed=seed, manifest=manifest)
    _sync(device)
    init_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = ti.verify_(module, manifest, seed=seed)
    row = _part(f"{model} {dtype} materialized", report, time.perf_counter() - started,
                init_seconds=round(init_seconds, 3), manifest_bytes=len(manifest.dumps()))
    del module
    return row


def every_init_part(device, seed: int) -> dict:
    p = functools.partial
    calls = {
        "uniform_": p(ti.uniform_, a=-0.5, b=1.5), "normal_": p(ti.normal_, mean=0.25, std=0.5),
        "trunc_normal_": p(ti.trunc_normal_, std=0.02), "trunc_normal_tail": p(ti.trunc_normal_, a=4.0, b=9.0),
        "trunc_normal_wide": p(ti.trunc_normal_, a=-6.0, b=6.0), "xavier_uniform_": ti.xavier_uniform_,
        "kaiming_normal_": p(ti.kaiming_normal_, mode="fan_out"), "variance_scaling_": ti.variance_scaling_,
        "orthogonal_": p(ti.orthogonal_, gain=2.0), "sparse_": p(ti.sparse_, sparsity=0.25),
        "constant_": p(ti.constant_, val=0.1), "eye_": ti.eye_,
    }
    manifest, tensors = ti.Manifest(), {}
    started = time.perf_counter()
    for dtype in EVERY_INIT_DTYPES:
        for shape in SHAPES:
            for name, init in calls.items():
                stream = f"{name}/{str(dtype).removeprefix('torch.')}/{shape[0]}x{shape[1]}"
                tensor = torch.full(shape, math.nan, dtype=dtype, device=device)
                keyed = {} if name in ("constant_", "eye_") else {"seed": seed, "stream": stream}
                tensors[stream] = init(tensor, **keyed)
                manifest.record_init(stream, shape, dtype, init, seed)
    _sync(device)
    report = ti.verify_(tensors, manifest, samples=None, seed=seed)
    return _part("every init, fp32 and bf16, every element", report, time.perf_counter() - started)


def big_part(device, seed: int) -> dict | None:
    numel = BIG_SHAPE[0] * BIG_SHAPE[1]
    if torch.device(device).type != "cuda" or torch.cuda.mem_get_info(device)[0] < 2 * numel * 1.2:
        print(f"{'bf16 tensor past 2^32 elements':<44} skipped (needs CUDA and {2 * numel / 2**30:.1f} GiB free)")
        return None
    manifest = ti.Manifest()
    started = time.perf_counter()
    big = ti.trunc_normal_(torch.empty(BIG_SHAPE, dtype=torch.bfloat16, device=device), std=0.02, seed=seed,
                           stream="big")
    manifest.record_init("big", BIG_SHAPE, torch.bfloat16, functools.partial(ti.trunc_normal_, std=0.02), seed)
    report = ti.verify_({"big": big}, manifest, samples=1 << 16, seed=seed)
    del big
    return _part(f"bf16 {BIG_SHAPE[0]}x{BIG_SHAPE[1]} (past 2^32)", report, time.perf_counter() - started)


def flat_part(device, seed: int) -> dict:
    params = [(ti.Init.trunc_normal(0.0, 0.02), f"flat.{k}.weight", (96 + k, 200)) for k in range(8)]
    params += [(ti.Init.ones(), f"flat.{k}.norm", (200,)) for k in range(8)]
    total = sum(math.prod(shape) for _, _, shape in params)
    start, stop = total // 3, 2 * total // 3  # a middle rank's chunk: segments cut inside parameters
    segments = ti.shard_segments(params, start, stop, align=8)
    buffer = torch.full((stop - start,), math.nan, dtype=torch.bfloat16, device=device)
    manifest = ti.Manifest()
    started = time.perf_counter()
    ti.init_flat_(buffer, segments, seed=seed, manifest=manifest)
    report = ti.verify_(buffer, manifest, segments=segments, samples=None, seed=seed)
    return _part("flat buffer (init_flat_), every element", report, time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", choices=sorted(MODELS), help="default: llama-3-8b on CUDA, tiny on the CPU")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", help="write the parts' results to this file")
    args = parser.parse_args(argv)
    model = args.model or ("llama-3-8b" if args.device.startswith("cuda") else "tiny")
    record = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
              "torch_version": torch.__version__, "parts": []}
    parts = (lambda: model_part(model, DTYPES[args.dtype], args.device, args.seed),
             lambda: flat_part(args.device, args.seed), lambda: big_part(args.device, args.seed),
             lambda: every_init_part(args.device, args.seed))
    for part in parts:  # cheapest compiles first; the JSON is rewritten after each part, so a timeout keeps them
        row = part()
        if row is not None:
            record["parts"].append(row)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(record, f, indent=1)
    return 0 if all(row["ok"] for row in record["parts"]) else 1

if __name__ == "__main__":
    sys.exit(main())
