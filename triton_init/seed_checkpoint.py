"""Seed checkpoints written one tensor (or chunk) at a time, never holding the model, and ``ManifestReader``:
a DCP storage reader that serves any chunk of any tensor by regenerating it from an init manifest.

A checkpoint path's name says its format (``_files.checkpoint_format``): a DCP checkpoint directory
(``torch.distributed.checkpoint``: ``.metadata`` + ``.distcp`` files that ``dcp.load`` reads into any
sharding), a safetensors file, or a ``torch.save`` file (small models only: written from a state dict held
whole). Every write is atomic (``_files``).
"""

import io
import json
import math
import os
import pickle
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.distributed.checkpoint import StorageReader
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.metadata import (
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    StorageMeta,
    TensorProperties,
    TensorStorageMetadata,
)
from torch.distributed.checkpoint.planner import LoadItemType
from torch.distributed.tensor import Shard

from ._files import (
    DCP,
    DCP_METADATA,
    SAFETENSORS,
    TORCH_SAVE,
    TORCH_SAVE_LIMIT,
    OutputPathError,
    atomic_directory,
    atomic_file,
    check_output,
    checkpoint_format,
    uninterrupted,
)
from ._sharding import dtensor_block, is_dtensor, local_block
from .manifest import Manifest, TensorRecord, regenerate_

SAFETENSORS_BLOCK = 256 << 20  # bytes generated and written at once into a safetensors file
DCP_VERSION = "1.0.0"  # torch.distributed.checkpoint's metadata version these directories follow
SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                      torch.uint8: "U8", torch.bool: "BOOL"}


# ---- what a checkpoint holds --------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSource:
    """One tensor of a checkpoint: its name, logical shape and dtype, and ``block(offset, size)``, which returns
    the contiguous CPU tensor of its values in the block of ``size`` at logical ``offset``."""

    name: str
    shape: tuple
    dtype: torch.dtype
    block: Callable

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()

    def chunks(self, world_size: int, rank: int) -> list:
        """(offset, size) of the chunk rank ``rank`` of ``world_size`` holds under FSDP's ``Shard(0)`` (like
        ``torch.chunk``); none for a rank past the rows. A 0-d or empty tensor is one chunk, on rank 0."""
        if not self.shape or math.prod(self.shape) == 0:
            return [((0,) * len(self.shape), self.shape)] if rank == 0 else []
        size, offset = local_block(self.shape, (world_size,), (rank,), (Shard(0),))
        return [(offset, size)] if math.prod(size) else []


def _regenerated(record: TensorRecord, offset, size, device) -> torch.Tensor:
    block = torch.empty(tuple(size), dtype=record.dtype, device=device)
    regenerate_(block, record, global_offset=tuple(offset))
    return block.cpu()


def manifest_sources(manifest: Manifest, names=None, *, device="cpu") -> list:
    """A ``TensorSource`` per name (default: every recorded tensor and alias), its blocks regenerated from the
    manifest on ``device``. Raises ValueError naming the tensors the manifest cannot regenerate."""
    names = list(manifest.tensors()) + list(manifest.aliases) if names is None else list(names)
    records = {name: manifest.find(name) for name in names}
    missing = [name for name, record in records.items() if record is None]
    unreplayable = [name for name, record in records.items()
                    if record is not None and not all(w.replayable for w in record.writes)]
    if missing or unreplayable:
        raise ValueError("the manifest cannot regenerate " + "; ".join(
            part for part in (missing and f"{', '.join(missing)} (not recorded)",
                              unreplayable and f"{', '.join(unreplayable)} (written by a user callable)") if part))

    def source(name, record):
        return TensorSource(name, record.shape, record.dtype,
                            lambda offset, size: _regenerated(record, offset, size, device))

    return [source(name, record) for name, record in records.items()]


def _copied(tensor: torch.Tensor, base, offset, size) -> torch.Tensor:
    """A contiguous CPU copy of the block of ``size`` at logical ``offset`` of ``tensor``, itself the block at
    logical ``base``."""
    view = tensor.detach()
    for d, (o, b, n) in enumerate(zip(offset, base, size, strict=True)):
        view = view.narrow(d, o - b, n)
    return view.to("cpu", copy=True).contiguous()


def tensor_sources(state_dict) -> list:
    """A ``TensorSource`` per tensor of a (plain, unsharded) state dict: blocks are copies of its values."""
    return [TensorSource(name, tuple(t.shape), t.dtype,
                         lambda offset, size, t=t: _copied(t, (0,) * t.dim(), offset, size))
            for name, t in state_dict.items() if isinstance(t, torch.Tensor)]


def local_chunks(state_dict, rank: int = 0) -> list:
    """(TensorSource, offset, size) of the values this process holds of a state dict: each DTensor's local
    shard at its logical offset; plain (replicated) tensors on rank 0 only, as ``dcp.save`` keeps one copy."""
    chunks = []
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        if is_dtensor(tensor):
            local, shape, offset = dtensor_block(tensor)
            if offset is None or local.numel() == 0:
                continue
        elif rank == 0:
            local, shape, offset = tensor, tuple(tensor.shape), (0,) * tensor.dim()
        else:
            continue
        source = TensorSource(name, tuple(shape), local.dtype,
                              lambda o, size, local=local, base=tuple(offset): _copied(local, base, o, size))
        chunks.append((source, tuple(offset), tuple(local.shape)))
    return chunks


# ---- DCP ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredChunk:
    """A chunk written into a ``.distcp`` file: where it lies in its tensor and in the file."""

    name: str
    shape: tuple
    dtype: torch.dtype
    offset: tuple
    size: tuple
    relative_path: str
    file_offset: int
    length: int


class _Appender(io.RawIOBase):
    """A write-only view of an open file for ``torch.save``: it appends, never seeks, never closes the file."""

    def __init__(self, file):
        super().__init__()
        self.file = file

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self.file.write(data)


def write_dcp_rank(directory, rank: int, chunks, *, callback=None) -> list:
    """Write rank ``rank``'s chunks into ``directory/__{rank}_0.distcp`` as ``dcp.save`` does (one
    ``torch.save`` record per chunk, appended), each generated just before it is written. ``chunks`` yields
    (TensorSource, offset, size); ``callback(source, values, offset)`` runs after each. Returns the
    ``StoredChunk``s for ``write_dcp_metadata``."""
    relative_path = f"__{rank}_0.distcp"
    stored = []
    with open(os.path.join(directory, relative_path), "wb") as file:
        for source, offset, size in chunks:
            values = source.block(offset, size)
            start = file.tell()
            with uninterrupted():
                torch.save(values, _Appender(file))
            stored.append(StoredChunk(source.name, tuple(source.shape), source.dtype, tuple(offset), tuple(size),
                                      relative_path, start, file.tell() - start))
            if callback is not None:
                callback(source, values, offset)
            del values
    return stored


def _metadata(chunks, storage, checkpoint_id=None):
    """DCP ``Metadata`` of ``chunks`` (StoredChunk-like: name, shape, dtype, offset, size); ``storage(chunk)``
    gives each one's storage data."""
    tensors, storage_data = {}, {}
    for chunk in chunks:
        entry = tensors.get(chunk.name)
        if entry is None:
            entry = tensors[chunk.name] = TensorStorageMetadata(TensorProperties(dtype=chunk.dtype),
                                                                torch.Size(chunk.shape), [])
        elif (tuple(entry.size), entry.properties.dtype) != (tuple(chunk.shape), chunk.dtype):
            raise ValueError(f"{chunk.name}: chunks of shapes {tuple(entry.size)} and {chunk.shape}")
        entry.chunks.append(ChunkStorageMetadata(torch.Size(chunk.offset), torch.Size(chunk.size)))
        storage_data[MetadataIndex(chunk.name, torch.Size(chunk.offset), 0)] = storage(chunk)
    for entry in tensors.values():
        entry.chunks.sort(key=lambda c: tuple(c.offsets))
    return Metadata(state_dict_metadata=tensors, planner_data={name: (name,) for name in tensors},
                    storage_data=storage_data, storage_meta=StorageMeta(checkpoint_id=checkpoint_id,
                                                                        save_id=str(uuid.uuid4())),
                    version=DCP_VERSION)


def write_dcp_metadata(directory, stored, *, checkpoint_id=None) -> None:
    """Write ``directory/.metadata`` indexing the ``StoredChunk``s of every rank's file."""
    metadata = _metadata(stored, lambda c: _StorageInfo(c.relative_path, c.file_offset, c.length), checkpoint_id)
    with open(os.path.join(directory, DCP_METADATA), "wb") as file:
        pickle.dump(metadata, file)


def write_dcp(directory, sources, *, world_size: int = 1, callback=None, checkpoint_id=None) -> None:
    """Write a DCP checkpoint into the existing empty ``directory``: for each rank of ``world_size``, its
    ``Shard(0)`` chunk of every tensor (as FSDP would shard them) in ``__{rank}_0.distcp``, then ``.metadata``.
    One chunk is in memory at a time. ``dcp.load`` reads it into any sharding."""
    stored = []
    for rank in range(world_size):
        chunks = [(s, offset, size) for s in sources for offset, size in s.chunks(world_size, rank)]
        if chunks:
            stored += write_dcp_rank(directory, rank, chunks, callback=callback)
    write_dcp_metadata(directory, stored, checkpoint_id=checkpoint_id)


# ---- safetensors and torch.save -----------------------------------------------------------------------


def write_safetensors(path, sources, *, callback=None) -> None:
    """Write a safetensors file: the header (from the shapes and dtypes alone), then each tensor's data, generated
    in blocks of at most ``SAFETENSORS_BLOCK`` bytes (whole rows) just before they are written."""
    header, start = {}, 0
    for s in sources:
        if s.dtype not in SAFETENSORS_DTYPES:
            raise ValueError(f"{s.name}: safetensors has no dtype {s.dtype}")
        header[s.name] = {"dtype": SAFETENSORS_DTYPES[s.dtype], "shape": list(s.shape),
                          "data_offsets": [start, start + s.nbytes]}
        start += s.nbytes
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(text)) + text)
        for s in sources:
            rows = s.shape[0] if s.shape else 1
            row_bytes = s.nbytes // max(1, rows)
            step = max(1, SAFETENSORS_BLOCK // max(1, row_bytes))
            for r0 in range(0, rows, step) if s.shape else [0]:
                offset = (r0,) + (0,) * (len(s.shape) - 1) if s.shape else ()
                size = (min(step, rows - r0),) + tuple(s.shape[1:]) if s.shape else ()
                values = s.block(offset, size)
                with uninterrupted():
                    file.write(values.reshape(-1).view(torch.uint8).numpy())
                if callback is not None:
                    callback(s, values, offset)
                del values


def write_torch_save(path, sources, *, callback=None) -> None:
    """``torch.save`` a state dict of the whole tensors (held together in memory: for small models)."""
    state_dict = {}
    for s in sources:
        state_dict[s.name] = s.block((0,) * len(s.shape), s.shape)
        if callback is not None:
            callback(s, state_dict[s.name], (0,) * len(s.shape))
    with uninterrupted():
        torch.save(state_dict, path)


def save_checkpoint(path, sources, *, world_size: int = 1, overwrite: bool = False, callback=None) -> str:
    """Write ``sources`` (``TensorSource``s) to ``path`` in the format its name says (see the module docstring),
    atomically; returns the format. ``world_size`` > 1 shards a DCP checkpoint's chunks as that many FSDP
    ranks would; ``callback(source, values, offset)`` runs after each chunk."""
    kind = checkpoint_format(path)
    check_output(path, overwrite=overwrite, directory=kind == DCP)
    if world_size != 1 and kind != DCP:
        raise OutputPathError(f"{os.fspath(path)}: a {kind} holds whole tensors; only a DCP checkpoint (a "
                              f"directory) holds the chunks of {world_size} ranks")
    if kind == TORCH_SAVE and sum(s.nbytes for s in sources) > TORCH_SAVE_LIMIT:
        raise OutputPathError(f"{os.fspath(path)}: a torch.save file holds the whole state dict in memory; above "
                              f"{TORCH_SAVE_LIMIT >> 30} GiB save to a directory (DCP) or a .safetensors file")
    if kind == DCP:
        with atomic_directory(path) as directory:
            write_dcp(directory, sources, world_size=world_size, callback=callback,
                      checkpoint_id=os.path.abspath(os.fspath(path)))
    else:
        with atomic_file(path) as temporary:
            (write_safetensors if kind == SAFETENSORS else write_torch_save)(temporary, sources, callback=callback)
    return kind


# ---- a checkpoint that is only a manifest -------------------------------------------------------------


class ManifestReader(StorageReader):
    """A DCP ``StorageReader`` over an init manifest: every recorded tensor (and alias) is one whole-tensor
    chunk, and any part of it ``dcp.load`` asks for is regenerated on the device of the tensor it fills::

        dcp.load(model.state_dict(), storage_reader=triton_init.ManifestReader(manifest))

    fills ``model`` (plain, FSDP2, tensor parallel: any sharding) with exactly the values the init wrote,
    reading no file but the manifest. ``manifest`` is a ``Manifest`` or the path of its JSON file.
    """

    def __init__(self, manifest):
        super().__init__()
        self.manifest = manifest if isinstance(manifest, Manifest) else Manifest.load(manifest)
        self.records = {}

    def reset(self, checkpoint_id=None) -> None:
        self.records = {}

    def read_metadata(self, *args, **kwargs):
        names = list(self.manifest.tensors()) + list(self.manifest.aliases)
        wholes = []
        for name in names:
            record = self.manifest[name]
            wholes.append(StoredChunk(name, record.shape, record.dtype, (0,) * len(record.shape), record.shape,
                                      "", 0, 0))
        return _metadata(wholes, lambda chunk: chunk.name)

    def set_up_storage_reader(self, metadata, is_coordinator: bool, *args, **kwargs) -> None:
        self.records = {name: self.manifest[name] for name in metadata.state_dict_metadata}

    def prepare_local_plan(self, plan):
        return plan

    def prepare_global_plan(self, plans):
        return plans

    def read_data(self, plan, planner) -> torch.futures.Future:
        for item in plan.items:
            name = item.storage_index.fqn
            if item.type != LoadItemType.TENSOR:
                raise ValueError(f"{name}: a manifest holds tensors only, not the non-tensor value dcp.load asks for")
            record = self.records[name]
            target = planner.resolve_tensor(item).detach()
            offset = tuple(item.storage_offsets)
            if target.is_contiguous() and target.dtype == record.dtype and not target.is_meta:
                regenerate_(target, record, global_offset=offset)
            else:
                target.copy_(_regenerated(record, offset, tuple(item.lengths), target.device))
            planner.commit_tensor(item, target)
        future = torch.futures.Future()
        future.set_result(None)
        return future

    @property
    def checkpoint_id(self):
        return None

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id) -> bool:
        return False


def save_manifest(manifest: Manifest, path) -> None:
    """Write ``manifest`` to ``path`` atomically: a temporary beside it, then a rename."""
    with atomic_file(path) as temporary:
        manifest.save(temporary)
