"""``triton-init init``: build a model on the meta device, materialize and initialize it (or one rank's
shard of it), and print the time, GB/s and a checksum of the logical model; or, with ``--save-checkpoint``,
write the initialized model chunk by chunk without holding it (``save_model``, ``triton_init.seed_checkpoint``).

The checksum (``checksum``) adds up per rank: the same whole-model value for every world size.
"""

import argparse
import os
import signal
import sys
import time

import torch

from .. import _cpu
from .._files import DCP, TORCH_SAVE, TORCH_SAVE_LIMIT, OutputPathError, check_output, checkpoint_format
from .._sharding import local_block
from ..flat import fill_blocks_
from ..manifest import Manifest
from ..models import MODELS, build, parameter_count
from ..module import apply_init, init_module_, materialize_, plan
from ..recipes import RECIPES
from . import _common
from .checksum import block_checksum, combine

MAX_WORLD_SIZE = 1 << 20  # ranks --world-size takes: more than any cluster, few enough to lay out


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


def check_outputs(args) -> None:
    """Every output path, checked before any work starts: a missing or read-only folder, an existing target
    without --overwrite, one path given twice. Raises UsageError (one line, exit status 2)."""
    outputs = [("--save-manifest", args.save_manifest, False),
               ("--save-checkpoint", args.save_checkpoint,
                args.save_checkpoint is not None and checkpoint_format(args.save_checkpoint) == DCP)]
    outputs = [(option, path, directory) for option, path, directory in outputs if path is not None]
    if len({os.path.abspath(path.rstrip("/") or "/") for _, path, _ in outputs}) < len(outputs):
        raise _common.UsageError("arguments --save-manifest and --save-checkpoint name the same path")
    for option, path, directory in outputs:
        try:
            check_output(path, overwrite=args.overwrite, directory=directory)
        except OutputPathError as exc:
            raise _common.UsageError(f"argument {option}: {exc}") from None
    if args.save_checkpoint is None:
        return
    if args.rank is not None:
        raise _common.UsageError("argument --save-checkpoint: writes every rank's chunks; drop --rank")
    if args.world_size != 1 and checkpoint_format(args.save_checkpoint) != DCP:
        raise _common.UsageError(f"argument --save-checkpoint: a {checkpoint_format(args.save_checkpoint)} holds "
                                 "whole tensors: use --world-size 1, or a directory (DCP) for the chunks of "
                                 f"{args.world_size} ranks")


def _chunking(kind: str, world_size: int) -> str:
    if kind != DCP:
        return ""
    return ", whole tensors" if world_size == 1 else f", the Shard(0) chunks of {world_size} ranks"


def save_model(name: str, path, *, dtype=torch.bfloat16, device="cpu", world_size: int = 1, seed: int = 0,
               recipe=None, overwrite: bool = False, progress: bool = False, manifest=None) -> dict:
    """Write the initialized model ``name`` to the checkpoint ``path`` one chunk at a time, never holding
    the model: its writes are recorded on a meta copy, then each chunk (each FSDP rank's ``Shard(0)`` block
    of a DCP checkpoint of ``world_size`` ranks, else each tensor) is regenerated on ``device`` just before
    it is written. Returns seconds, bytes, elements and the format written."""
    from ..seed_checkpoint import manifest_sources, save_checkpoint  # DCP's modules load only for a save

    model = build(name, dtype=dtype)
    recorded = manifest if manifest is not None else Manifest()
    init_module_(model, recipe or MODELS[name].recipe, seed=seed, manifest=recorded)
    sources = manifest_sources(recorded, list(model.state_dict()), device=device)
    total_bytes, done = sum(s.nbytes for s in sources), 0
    started = time.perf_counter()

    def written(_source, values, _offset):
        nonlocal done
        done += values.numel() * values.element_size()
        if progress:
            _progress(done, total_bytes, started)

    kind = save_checkpoint(path, sources, world_size=world_size, overwrite=overwrite, callback=written)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return {"model": name, "seconds": time.perf_counter() - started, "bytes": total_bytes, "format": kind,
            "elements": total_bytes // itemsize}


def run(args) -> int:
    check_outputs(args)
    try:
        return _run(args)
    except OutputPathError as exc:  # found once the model's size is known (a framework's torch.save file)
        raise _common.UsageError(f"argument --save-checkpoint: {exc}") from None
    except BrokenPipeError:  # stdout's reader went away (| head): main ends quietly
        raise
    except OSError as exc:  # a write that failed after the checks (a full disk): nothing left under the name
        print(f"triton-init init: error: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the partial outputs are gone (atomic writes); the targets are as they were
        print("triton-init init: interrupted; the output being written was discarded", file=sys.stderr)
        return 128 + signal.SIGINT


def _run(args) -> int:
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
    model_bytes = parameter_count(name) * torch.empty((), dtype=dtype).element_size()
    if args.save_checkpoint and checkpoint_format(args.save_checkpoint) == TORCH_SAVE and \
            model_bytes > TORCH_SAVE_LIMIT:
        raise _common.UsageError(f"argument --save-checkpoint: {name} is {model_bytes / 2**30:.1f} GiB; a torch.save "
                                 f"file is for models up to {TORCH_SAVE_LIMIT >> 30} GiB (it holds the whole state "
                                 "dict): save to a directory (DCP) or a .safetensors file")
    manifest = Manifest() if args.save_manifest else None
    if torch.device(device).type == "cpu":
        print(f"CPU tensors run on the {_cpu.executor()}")
    if args.save_checkpoint:
        result = save_model(name, args.save_checkpoint, dtype=dtype, device=device, world_size=args.world_size,
                            seed=args.seed, recipe=args.recipe, overwrite=args.overwrite, progress=progress,
                            manifest=manifest)
        gbps = result["bytes"] / max(result["seconds"], 1e-12) / 1e9
        print(f"{name} {args.dtype} on {device}: {result['elements']:,} elements generated and written in "
              f"{result['seconds']:.3f} s, {gbps:.3g} GB/s -> {args.save_checkpoint} ({result['format']}"
              f"{_chunking(result['format'], args.world_size)}; seed {args.seed})")
    else:
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
    if manifest is not None:
        from ..seed_checkpoint import save_manifest

        save_manifest(manifest, args.save_manifest)
        print(f"manifest of {len(manifest)} tensors -> {args.save_manifest}")
    return 0


def _world_size(text: str) -> int:
    value = _common.int_in(1)(text)
    if value > MAX_WORLD_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most 2**20 ({MAX_WORLD_SIZE:,} ranks), got {value}")
    return value


def add_arguments(p) -> None:
    _common.set_command(
        p,
        description="Build a built-in model on the meta device, materialize and initialize it (or one rank's\n"
                    "FSDP-style Shard(0) block of every parameter), and print the time, GB/s and a checksum of\n"
                    "the logical model: per-rank partial checksums add up (mod 2^64) to the whole model's.\n"
                    "--save-checkpoint writes the initialized model chunk by chunk instead, never holding it.",
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
    p.add_argument("--world-size", type=_world_size, default=1, metavar="N",
                   help="number of ranks the parameters are sharded over, in [1, 2**20] (default: 1)")
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
                   help="write the initialized model, one chunk at a time (never the whole model in memory): a "
                        "directory (an existing one, or a name without suffix) is a DCP checkpoint, with each of "
                        "the --world-size ranks' Shard(0) chunks; a .safetensors name a safetensors file; any "
                        f"other name a torch.save file, for small models only (up to {TORCH_SAVE_LIMIT >> 30} GiB: "
                        "it holds the whole state dict) (default: none)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --save-manifest or --save-checkpoint target (default: refuse)")
