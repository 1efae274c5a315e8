"""The ``triton-init`` command (also ``python -m triton_init``): ``bench``, the main job."""

import argparse
import json
import sys

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}


def _bench(args) -> int:
    from . import _bench

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    numel = args.numel or ((1 << 28) if device.startswith("cuda") else (1 << 22))
    dtypes = [DTYPES[d] for d in args.dtypes.split(",")]
    ops = [op for op in _bench.BENCH_OPS if not args.ops or op.name in args.ops.split(",")]
    if not ops:
        print(f"no op matches {args.ops!r}; known: {', '.join(op.name for op in _bench.BENCH_OPS)}")
        return 2
    rows = _bench.run(device, numel, dtypes, ops, args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triton-init", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="time triton_init against torch.nn.init and check a sample")
    bench.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda if present)")
    bench.add_argument("--numel", type=int, help="elements per buffer (default 2^28 on CUDA, 2^22 on CPU)")
    bench.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32,bf16,fp16,fp64")
    bench.add_argument("--ops", help="comma-separated op names (default: all)")
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--json", help="also write the rows to this JSON file")
    bench.set_defaults(func=_bench)
    from . import _init_cmd, _verify_cmd

    _init_cmd.add_parser(sub)
    _verify_cmd.add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
