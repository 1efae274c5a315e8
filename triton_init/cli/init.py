"""``triton-init init``: build a model on the meta device, materialize and initialize it (or one rank's
shard of it), and print the time, GB/s and a checksum of the logical model.

The checksum (``checksum``) adds up per rank: the same whole-model value for every world size.
"""

import sys
import time

import torch

from .. import _cpu
from .._sharding import local_block
from ..flat import fill_blocks_
from ..manifest import Manifest
from ..models import MODELS, build
from ..module import apply_init, init_module_, materialize_, plan
from ..recipes import RECIPES
from . import _common
from .checksum import block_checksum, combine


def _progress(done: int, total: int, started: float) -> None:
    elapsed = max(1e-9, time.perf_counter() - started)
    _common.progress_bar(done, total, f"{done / 2**20:9.1f}/{total / 2**20:.1f} MiB "
                                      f"{done / elapsed / 1e9:7.3f} GB/s {elapsed:6.1f} s")


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def init_model(name: str, *, dtype=torch.bfloat16, device="cpu", world_size: int = 1, rank: int = 0,
               seed: int = 0, recipe=None, progress: bool = False, checksum: bool = True, manifest=None) -> dict:
    """Materialize and initialize ``name`` (or rank ``rank``'s FSDP-style Shard(0) block of every
    parameter); returns seconds, bytes written, the partial checksum of this rank's values (None
    without ``checksum``) and the model (None for a shard). ``manifest`` records the whole model's init."""
    from torch.distributed.tensor import Shard

    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    model = build(name, dtype=dtype)
    recipe = recipe or MODELS[name].recipe
    entries = plan(model, recipe)
    blocks = []
    for stream, tensor, init, _ in entries:
        shape = tuple(tensor.shape)
        local_shape, offset = local_block(shape, (world_size,), (rank,), (Shard(0),))
        blocks.append((stream, init, shape, local_shape, offset))
    itemsize = torch.empty((), dtype=dtype).element_size()
    total_bytes = sum(torch.Size(b[3]).numel() for b in blocks) * itemsize
    _sync(device)
    started = time.perf_counter()
    done = 0

    def advance(_stream, tensor):
        nonlocal done
        done += tensor.numel() * itemsize
        if progress:
            _progress(done, total_bytes, started)

    if world_size == 1:
        materialize_(model, device, recipe, seed=seed, callback=advance, manifest=manifest)
        tensors = [tensor.detach() for _, tensor, _, _ in plan(model, recipe)]
    else:  # one rank's shards: allocate the local blocks only, fill them with their logical values
        if manifest is not None:  # the logical model's writes, recorded on its meta copy (nothing written)
            init_module_(build(name, dtype=dtype), recipe, seed=seed, manifest=manifest)
        tensors = [torch.empty(local_shape, dtype=dtype, device=device) for _, _, _, local_shape, _ in blocks]
        rest = fill_blocks_([(local, init, stream, shape, offset)
                             for local, (stream, init, shape, _, offset) in zip(tensors, blocks, strict=True)],
                            seed=seed)
        for local, init, stream, shape, offset in rest:
            apply_init(local, init, seed=seed, stream=stream, global_shape=shape, global_offset=offset)
            advance(stream, local)
    _sync(device)
    seconds = time.perf_counter() - started
    if progress and done < total_bytes:  # blocks filled by the batched kernel: complete the bar
        _progress(total_bytes, total_bytes, started)
    partial = combine(block_checksum(t, stream, shape, offset)
                      for t, (stream, _, shape, _, offset) in zip(tensors, blocks, strict=True)) if checksum else None
    return {"model": name, "seconds": seconds, "bytes": total_bytes, "checksum": partial,
            "elements": total_bytes // itemsize, "module": model if world_size == 1 else None}


def run(args) -> int:
    if args.hf_config or args.torchtitan:
        if args.model or args.recipe or (args.hf_config and args.torchtitan):
            raise _common.UsageError("arguments --hf-config, --torchtitan and --model/--recipe exclude each other")
        from . import frameworks

        return frameworks.run(args)
    if args.rank is not None and args.rank >= args.world_size:
        raise _common.UsageError(f"argument --rank: must be in [0, --world-size={args.world_size}), got {args.rank}")
    device = args.device or _common.default_device()
    name = args.model or ("llama-3-8b" if device.startswith("cuda") else "tiny")
    dtype = _common.torch_dtype(args.dtype)
    ranks = [args.rank] if args.rank is not None else list(range(args.world_size))
    progress = args.progress if args.progress is not None else (device == "cpu" and sys.stderr.isatty())
    if args.save_checkpoint and args.world_size != 1:
        raise _common.UsageError("argument --save-checkpoint: saves the whole model; use --world-size 1")
    manifest = Manifest() if args.save_manifest else None
    if torch.device(device).type == "cpu":
        print(f"CPU tensors run on the {_cpu.executor()}")
    partials = []
    for rank in ranks:
        result = init_model(name, dtype=dtype, device=device, world_size=args.world_size, rank=rank,
                            seed=args.seed, recipe=args.recipe, progress=progress, manifest=manifest)
        partials.append(result["checksum"])
        gbps = result["bytes"] / max(result["seconds"], 1e-12) / 1e9
        print(f"{name} {args.dtype} on {device}, rank {rank}/{args.world_size}: {result['elements']:,} elements "
              f"in {result['seconds']:.3f} s, {gbps:.3g} GB/s, partial checksum {result['checksum']:016x}")
    if len(ranks) == args.world_size:
        print(f"checksum {combine(partials):016x} (seed {args.seed}; the same for every world size)")
    else:
        print("add the partial checksums of all ranks mod 2^64 for the model's checksum")
    try:
        if manifest is not None:
            manifest.save(args.save_manifest)
            print(f"manifest of {len(manifest)} tensors -> {args.save_manifest}")
        if args.save_checkpoint:
            torch.save(result["module"].state_dict(), args.save_checkpoint)
            print(f"state dict -> {args.save_checkpoint}")
    except OSError as exc:
        print(f"triton-init init: error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def add_arguments(p) -> None:
    _common.set_command(
        p,
        description="Build a built-in model on the meta device, materialize and initialize it (or one rank's\n"
                    "FSDP-style Shard(0) block of every parameter), and print the time, GB/s and a checksum of\n"
                    "the logical model: per-rank partial checksums add up (mod 2^64) to the whole model's.",
        run=run)
    p.add_argument("--model", choices=sorted(MODELS),
                   help="built-in shape table (default: llama-3-8b on CUDA, tiny on the CPU)")
    p.add_argument("--hf-config", metavar="PATH",
                   help="a local transformers config.json (or its folder): that model, by its own init")
    p.add_argument("--torchtitan", metavar="MODEL:FLAVOR",
                   help="a torchtitan model flavor, by its own init, e.g. llama3:debugmodel")
    p.add_argument("--dtype", default="bf16", type=_common.dtype_name,
                   help=f"parameter dtype: {', '.join(_common.DTYPES)} or torch's name (default: bf16)")
    p.add_argument("--device", type=_common.device_name, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--world-size", type=_common.int_in(1), default=1, metavar="N",
                   help="number of ranks the parameters are sharded over, at least 1 (default: 1)")
    p.add_argument("--rank", type=_common.int_in(0), metavar="R",
                   help="initialize only this rank's shard, in [0, N) (default: every rank in turn)")
    p.add_argument("--seed", type=_common.seed_value, default=0, help="Philox key, in [0, 2**64) (default: 0)")
    p.add_argument("--recipe", choices=sorted(RECIPES), help="init recipe (default: the model's own)")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show a progress bar (default: on a terminal, for CPU runs)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
    p.add_argument("--save-manifest", metavar="PATH",
                   help="write the init manifest (JSON) for triton-init verify (default: none)")
    p.add_argument("--save-checkpoint", metavar="PATH",
                   help="torch.save the model's state dict, for small models (--world-size 1; default: none)")
