"""Framework models for ``triton-init init``: a transformers model from a local ``config.json`` or a torchtitan
``MODEL:FLAVOR``, built on the meta device, initialized by the framework's own code under ``intercept``.

The framework's init runs once, on the unsharded meta model, and records a ``Plan`` (``triton_init.plan``):
its class checks and module walks see the model as it was written (under FSDP2, transformers renames the root
class and skips modules without direct parameters). For one rank of a world, the model is then sharded with
FSDP2 (``fully_shard``, every parameter ``Shard(0)``) over a fake process group, so that each rank's shards are
written with no peers, each rank in a fresh process (DTensor keeps the first of equal meshes it saw, whose
coordinate would be another rank's), materialized with ``to_empty`` and written from the plan. The checksum
of each rank's shards (``checksum.block_checksum`` at their logical offsets, every logical tensor once: tied
names under their first name) adds up to the whole model's, the same for every world size. Nothing is
downloaded: configs are local files.
"""

import argparse
import contextlib
import functools
import importlib
import json
import os
import sys
import time

import torch

from .._files import DCP, atomic_directory, checkpoint_format
from .._sharding import dtensor_block, is_dtensor
from ..manifest import Manifest
from ..plan import apply_plan, record_plan
from ..seed_checkpoint import (
    local_chunks,
    save_checkpoint,
    save_manifest,
    tensor_sources,
    write_dcp_metadata,
    write_dcp_rank,
)
from ..streams import named_tensors, stream_name
from . import _common
from .checksum import block_checksum, combine


class FrameworkModel:
    """How to build a framework's model and run its own init: ``build()`` (on the current default device)
    and ``init(model)``, recorded on the meta device."""

    def __init__(self, name: str, build, init):
        self.name, self.build, self.init = name, build, init


def _require(module: str, package: str, option: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise _common.UsageError(f"{option}: {package} is not installed ({err}); "
                                 "bash tests/integration/install.sh installs the supported versions") from None


def hf_model(path: str) -> FrameworkModel:
    """A transformers causal LM (or base model) from a local config.json, initialized by
    ``initialize_weights``."""
    transformers = _require("transformers", "transformers", "argument --hf-config")
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    try:
        with open(path) as f:
            fields = json.load(f)
    except (OSError, ValueError) as err:
        raise _common.UsageError(f"argument --hf-config: {path}: {err}") from None
    if "model_type" not in fields:
        raise _common.UsageError(f"argument --hf-config: {path} has no model_type")
    config = transformers.AutoConfig.for_model(**fields)

    def build():
        try:
            return transformers.AutoModelForCausalLM.from_config(config)
        except ValueError:  # not a causal LM
            return transformers.AutoModel.from_config(config)

    def init(model):
        model.initialize_weights()

    return FrameworkModel(f"{fields['model_type']} ({os.path.basename(os.path.dirname(path)) or path})", build, init)


def torchtitan_model(spec: str) -> FrameworkModel:
    """A torchtitan model flavor, e.g. ``llama3:debugmodel``, initialized by ``init_weights``."""
    model_name, _, flavor = spec.partition(":")
    if not model_name or not flavor:
        raise _common.UsageError(f"argument --torchtitan: expected MODEL:FLAVOR (e.g. llama3:debugmodel), got {spec!r}")
    _require("torchtitan", "torchtitan", "argument --torchtitan")
    try:
        module = importlib.import_module(f"torchtitan.models.{model_name}")
    except ImportError as err:
        raise _common.UsageError(f"argument --torchtitan: no torchtitan model {model_name!r} ({err})") from None
    registry = getattr(module, "model_registry", None)
    if registry is None:
        raise _common.UsageError(f"argument --torchtitan: torchtitan.models.{model_name} has no model_registry")
    try:
        model_spec = registry(flavor)
    except KeyError:
        raise _common.UsageError(f"argument --torchtitan: torchtitan {model_name} has no flavor {flavor!r}") from None

    def init(model):
        model.init_weights(buffer_device=None)

    return FrameworkModel(f"torchtitan {spec}", model_spec.model.build, init)


@contextlib.contextmanager
def _default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def _fake_world(world_size: int, rank: int):
    """A process group in which this process is ``rank`` of ``world_size`` with no peers (torch's fake
    backend): enough for FSDP2 to lay out this rank's shards; no collective carries data."""
    import torch.distributed as dist

    try:
        from torch.testing._internal.distributed.fake_pg import FakeStore
    except ImportError as err:  # pragma: no cover - torch builds without it
        raise RuntimeError(f"--world-size needs torch's fake process group ({err})") from None
    if dist.is_initialized():
        raise RuntimeError("a process group is already initialized: run one rank per process instead")
    dist.init_process_group("fake", rank=rank, world_size=world_size, store=FakeStore())
    try:
        yield
    finally:
        dist.destroy_process_group()


def init_framework_model(framework: FrameworkModel, *, dtype=torch.float32, device="cpu", world_size: int = 1,
                         rank: int = 0, seed: int = 0, save=None) -> dict:
    """Build ``framework``'s model on meta and record its own init there (a ``Plan``), shard it FSDP2-style for
    ``rank`` of ``world_size``, materialize it on ``device`` and write it from the plan; returns the seconds of
    the write, bytes, elements and this rank's partial checksum of the parameters, and under "saved" what
    ``save(model, manifest)`` returns (run after the write with the plan's manifest, while the model and its
    process group exist)."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    with contextlib.ExitStack() as stack:
        with _default_dtype(dtype), torch.device("meta"):
            model = framework.build()
        plan = record_plan(model, framework.init, seed=seed)
        if world_size > 1:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            stack.enter_context(_fake_world(world_size, rank))
            fully_shard(model, mesh=init_device_mesh(torch.device(device).type, (world_size,)))
        model.to_empty(device=device)
        _sync(device)
        started = time.perf_counter()
        apply_plan(model, plan)
        _sync(device)
        seconds = time.perf_counter() - started
        partials, n_bytes, elements = [], 0, 0
        for fqn, _, _, tensor, is_buffer in named_tensors(model):
            stream = stream_name(fqn)
            if is_buffer or stream in plan.manifest.aliases:  # a tie that to_empty undid: counted once
                continue
            if is_dtensor(tensor):
                local, shape, offset = dtensor_block(tensor)
            else:
                local, shape, offset = tensor, None, None
            local = local.detach()
            partials.append(block_checksum(local, stream, shape, offset))
            n_bytes += local.numel() * local.element_size()
            elements += local.numel()
        saved = save(model, plan.manifest) if save is not None else None
    return {"model": framework.name, "seconds": seconds, "bytes": n_bytes, "elements": elements,
            "checksum": combine(partials), "saved": saved}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _framework(args) -> FrameworkModel:
    return hf_model(args.hf_config) if args.hf_config else torchtitan_model(args.torchtitan)


_RANK_FIELDS = ("hf_config", "torchtitan", "dtype", "world_size", "seed", "save_manifest", "save_checkpoint",
                "overwrite")  # what a rank's process needs


def _save_outputs(args, staging, rank: int, model, manifest) -> dict:
    """A rank's share of the outputs: the plan's manifest (as JSON text) and its checkpoint chunks (into the
    DCP directory being written, ``staging``; or, for one rank, the whole safetensors or torch.save file)."""
    saved = {"chunks": []}
    if args.save_manifest:
        saved["manifest"] = manifest.dumps()
    if args.save_checkpoint and staging is not None:
        saved["chunks"] = write_dcp_rank(staging, rank, local_chunks(model.state_dict(), rank))
    elif args.save_checkpoint:
        save_checkpoint(args.save_checkpoint, tensor_sources(model.state_dict()), overwrite=args.overwrite)
    return saved


def _rank_in_fresh_process(args, device: str, rank: int, staging=None) -> dict:
    save = functools.partial(_save_outputs, args, staging, rank) if args.save_manifest or args.save_checkpoint \
        else None
    return init_framework_model(_framework(args), dtype=_common.torch_dtype(args.dtype), device=device,
                                world_size=args.world_size, rank=rank, seed=args.seed, save=save)


def run(args) -> int:
    """``triton-init init --hf-config PATH`` or ``--torchtitan MODEL:FLAVOR``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    framework = _framework(args)  # fails early on a bad config or flavor
    if args.rank is not None and args.rank >= args.world_size:
        raise _common.UsageError(f"argument --rank: must be in [0, --world-size={args.world_size}), got {args.rank}")
    device = args.device or _common.default_device()
    ranks = [args.rank] if args.rank is not None else list(range(args.world_size))
    partials, stored, manifest_text = [], [], None
    with contextlib.ExitStack() as stack:
        staging = None
        if args.save_checkpoint and checkpoint_format(args.save_checkpoint) == DCP:
            staging = stack.enter_context(atomic_directory(args.save_checkpoint))
        for rank in ranks:
            if args.world_size == 1:
                result = _rank_in_fresh_process(args, device, rank, staging)
            else:
                fields = argparse.Namespace(**{k: getattr(args, k) for k in _RANK_FIELDS})  # picklable
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                    result = pool.submit(_rank_in_fresh_process, fields, device, rank, staging).result()
            partials.append(result["checksum"])
            if result["saved"] is not None:
                stored += result["saved"]["chunks"]
                manifest_text = manifest_text or result["saved"].get("manifest")
            gbps = result["bytes"] / max(result["seconds"], 1e-12) / 1e9
            print(f"{framework.name} {args.dtype} on {device}, rank {rank}/{args.world_size}: {result['elements']:,} "
                  f"elements in {result['seconds']:.3f} s, {gbps:.3g} GB/s, partial checksum "
                  f"{result['checksum']:016x}")
            sys.stdout.flush()
        if staging is not None:
            write_dcp_metadata(staging, stored, checkpoint_id=os.path.abspath(args.save_checkpoint))
    if args.save_checkpoint:
        print(f"state dict -> {args.save_checkpoint} ({checkpoint_format(args.save_checkpoint)})")
    if manifest_text is not None:
        manifest = Manifest.loads(manifest_text)
        save_manifest(manifest, args.save_manifest)
        print(f"manifest of {len(manifest)} tensors -> {args.save_manifest}")
    if len(ranks) == args.world_size:
        print(f"checksum {combine(partials):016x} (seed {args.seed}; the same for every world size)")
    else:
        print("add the partial checksums of all ranks mod 2^64 for the model's checksum")
    return 0
