"""Random temporaries that ``intercept`` has not filled yet: their values are written when something first
reads them, and never when the framework only moves them into the model, where they are re-served anyway.

torchtitan's fused QKV init draws q, k and v into temporaries, concatenates them and copies the result into
``wqkv``; intercept then writes ``wqkv`` on its own stream, so the three fills, the ``cat`` and the copy are
work whose result is overwritten. Here a random init into a whole temporary is remembered as a recipe
(``Fill``), a ``cat`` of such temporaries as another (``Cat``), and the storage stays unwritten until an op
reads it (``Lazy.realize``), or until the context exits. A recipe gives exactly the values the eager call
would have written at that moment: ``Fill`` repeats the same triton_init call (same stream, same shape),
``Cat`` redraws its inputs into fresh storage, so later writes into them do not change what it holds.

Storages are keyed by address and followed by a weak reference to the storage object (torch keeps one
Python object per live storage): when the last tensor viewing it dies, its recipe goes too.
"""

import weakref

import torch


def storage_key(tensor: torch.Tensor):
    """(device, address) of the storage ``tensor`` views; None for the meta device and empty tensors."""
    if tensor.device.type == "meta" or tensor.numel() == 0:
        return None
    return tensor.device, tensor.untyped_storage().data_ptr()


def covers_storage(tensor: torch.Tensor) -> bool:
    """``tensor`` is a plain dense tensor that views every byte of its storage, in order."""
    return (type(tensor) in (torch.Tensor, torch.nn.Parameter) and tensor.layout == torch.strided
            and tensor.device.type != "meta" and tensor.numel() > 0 and tensor.storage_offset() == 0
            and tensor.is_contiguous()
            and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size())


def _geometry(tensor: torch.Tensor) -> tuple:
    return tensor.dtype, tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride())


def _over(storage, dtype, offset, shape, stride) -> torch.Tensor:
    """A tensor of that geometry over ``storage``."""
    return torch.empty(0, dtype=dtype, device=storage.device).set_(storage, offset, shape, stride)


class Fill:
    """A whole-storage tensor's values: ``fill(tensor)`` writes them (a validated triton_init call)."""

    __slots__ = ("fill", "nbytes", "device", "geometry")

    def __init__(self, tensor: torch.Tensor, fill):
        self.fill, self.nbytes, self.device = fill, tensor.untyped_storage().nbytes(), tensor.device
        self.geometry = _geometry(tensor)

    def into(self, storage) -> None:
        self.fill(_over(storage, *self.geometry))


class Cat:
    """``torch.cat(parts, dim)`` into a fresh contiguous tensor, each part a view (``geometry``) of a storage
    whose values a recipe gives."""

    __slots__ = ("parts", "dim", "nbytes", "device", "geometry")

    def __init__(self, parts, dim: int, out: torch.Tensor):
        self.parts, self.dim = parts, dim
        self.nbytes, self.device, self.geometry = out.untyped_storage().nbytes(), out.device, _geometry(out)

    def into(self, storage) -> None:
        views = []
        for recipe, geometry in self.parts:
            source = torch.empty(recipe.nbytes, dtype=torch.uint8, device=recipe.device).untyped_storage()
            recipe.into(source)
            views.append(_over(source, *geometry))
        torch.cat(views, self.dim, out=_over(storage, *self.geometry))


class Lazy:
    """The storages whose values are a recipe not yet written. Every method that writes runs the recipes'
    triton_init calls and torch ops directly: the caller makes them its own (not intercepted)."""

    def __init__(self):
        self._entries: dict = {}  # storage key -> (weak reference to the storage, recipe)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def recipe(self, tensor):
        """The recipe of ``tensor``'s storage while it is unwritten, else None."""
        if not self._entries or not isinstance(tensor, torch.Tensor) or hasattr(tensor, "_local_tensor"):
            return None
        entry = self._entries.get(storage_key(tensor))
        return entry[1] if entry is not None and entry[0]() is not None else None

    def defer(self, tensor: torch.Tensor, recipe) -> None:
        """From now on ``tensor``'s storage (all of it: ``covers_storage``) holds ``recipe``'s values."""
        key, storage, entries = storage_key(tensor), tensor.untyped_storage(), self._entries
        ref = weakref.ref(storage, lambda r, key=key: entries.pop(key) if entries.get(key, (None,))[0] is r else None)
        entries[key] = (ref, recipe)

    def cat(self, tensors, dim: int):
        """A tensor standing for ``torch.cat(tensors, dim)``, its values deferred, when every input is a
        view of an unwritten storage (plain, dense, no ``out``); else None."""
        recipes = [self.recipe(t) for t in tensors]
        if not tensors or any(r is None for r in recipes) or not isinstance(dim, int):
            return None
        meta = torch.cat([torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta") for t in tensors],
                         dim)
        out = torch.empty(meta.shape, dtype=meta.dtype, device=tensors[0].device)
        if out.numel() == 0:
            return None
        self.defer(out, Cat([(r, _geometry(t)) for r, t in zip(recipes, tensors, strict=True)], dim, out))
        return out

    def realize(self, tensors) -> None:
        """Write the values of every unwritten storage among ``tensors`` (anything else is skipped)."""
        for tensor in tensors:
            if self.recipe(tensor) is not None:
                ref, recipe = self._entries.pop(storage_key(tensor))
                recipe.into(ref())

    def realize_all(self) -> None:
        """Write every unwritten storage that is still alive."""
        while self._entries:
            _, (ref, recipe) = self._entries.popitem()
            storage = ref()
            if storage is not None:
                recipe.into(storage)
