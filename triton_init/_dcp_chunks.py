"""A torch.distributed.checkpoint (DCP) directory read chunk by chunk, with no process group and no gather:
each tensor's stored chunks with their logical offsets, from the checkpoint's ``.metadata``.

``DCPCheckpoint(path)`` maps each tensor's fully qualified name to a ``StoredChunks``: its global shape and
dtype, the offsets of its ``stored`` chunks, and ``read(k)``, which reads one chunk from its ``.distcp`` file.
``verify_`` and ``triton-init verify`` check each chunk as the block of the recorded tensor at its offsets.
"""

import io
from pathlib import Path

import torch

METADATA = ".metadata"


class DCPError(Exception):
    """A DCP checkpoint, or one of its chunks, that cannot be read."""


def is_dcp_checkpoint(path) -> bool:
    """Whether ``path`` is a directory holding a DCP ``.metadata`` file."""
    path = Path(path)
    return path.is_dir() and (path / METADATA).is_file()


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


class StoredChunks:
    """One tensor of a DCP checkpoint: ``shape`` and ``dtype`` from the metadata, and its stored chunks."""

    def __init__(self, checkpoint: "DCPCheckpoint", name: str, shape: tuple, dtype: torch.dtype, chunks: list):
        self.checkpoint, self.name, self.shape, self.dtype = checkpoint, name, shape, dtype
        self.stored = chunks  # (offsets, sizes, storage info) of each chunk, as the metadata lists them

    def read(self, k: int) -> torch.Tensor:
        """Stored chunk ``k`` (at offsets ``stored[k][0]``), read from its file (only its bytes)."""
        offsets, sizes, info = self.stored[k]
        return self.checkpoint.read_chunk(self.name, offsets, sizes, info)


class DCPCheckpoint:
    """name -> ``StoredChunks`` of the tensors of a DCP checkpoint directory (non-tensor entries are left out)."""

    def __init__(self, path):
        from torch.distributed.checkpoint import FileSystemReader
        from torch.distributed.checkpoint.metadata import MetadataIndex, TensorStorageMetadata

        self.path = Path(path)
        if not is_dcp_checkpoint(self.path):
            raise DCPError(f"{self.path} is not a DCP checkpoint directory (no {METADATA} file)")
        self._reader = FileSystemReader(str(self.path))
        try:
            metadata = self._reader.read_metadata()
            storage = metadata.storage_data
            self._tensors = {}
            for name, entry in metadata.state_dict_metadata.items():
                if not isinstance(entry, TensorStorageMetadata):
                    continue
                chunks = [(tuple(c.offsets), tuple(c.sizes), storage[MetadataIndex(name, c.offsets)])
                          for c in entry.chunks]
                self._tensors[name] = StoredChunks(self, name, tuple(entry.size), entry.properties.dtype, chunks)
        except Exception as exc:  # a foreign or truncated pickle raises many types
            raise DCPError(f"cannot read {self.path / METADATA} as DCP metadata ({type(exc).__name__}): "
                           f"{_one_line(exc)}") from None

    def keys(self):
        return list(self._tensors)

    def __getitem__(self, name: str) -> StoredChunks:
        return self._tensors[name]

    def __len__(self) -> int:
        return len(self._tensors)

    def read_chunk(self, name: str, offsets: tuple, sizes: tuple, info) -> torch.Tensor:
        """The chunk of ``name`` at ``offsets`` from its file: only its bytes are read."""
        where = f"the chunk of {name} at offsets {offsets} in {info.relative_path}"
        path = self.path / info.relative_path
        try:
            if path.stat().st_size < info.offset + info.length:
                raise DCPError(f"{where}: the file ends before the chunk's {info.length} bytes at {info.offset}")
            with open(path, "rb") as f:  # read through a view of the chunk's bytes, as FileSystemReader reads
                stream = self._reader.transforms.transform_load_stream(None, info.transform_descriptors or (),
                                                                       self._reader._slice_file(f, info))
                if not stream.seekable():
                    stream = io.BytesIO(stream.read())
                tensor = torch.load(stream, map_location="cpu", weights_only=True)
        except DCPError:
            raise
        except Exception as exc:  # torch.load raises many types for corrupt data
            raise DCPError(f"cannot read {where} ({type(exc).__name__}): {_one_line(exc)}") from None
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(sizes):
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise DCPError(f"{where}: holds {got}, the metadata records shape {tuple(sizes)}")
        return tensor
