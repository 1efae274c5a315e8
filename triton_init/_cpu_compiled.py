"""The reference's math under ``torch.compile`` for large flat CPU fills: same stream format, ~10x eager.

``reference.fill_`` hands a flat CPU tensor here when ``use_compiled`` says yes: large fills only (small
tensors never pay a compile; see ``use_compiled`` for the policy), ``TRITON_INIT_CPU_COMPILE`` not "0",
and no earlier compile failure in this process (no working C++ compiler, say: then eager serves, after
one warning). The compiled function takes fixed-size chunks of ``CHUNK_GROUPS`` Philox groups and every
per-call number as a tensor, so one compile per (distribution, compute dtype) serves every seed, stream,
offset and parameter; inductor's on-disk FX graph cache (``TORCHINDUCTOR_CACHE_DIR``) lets later processes
skip most of the compile. ``compile_seconds`` records what each compile cost.
"""

import math
import os
import time
import warnings

import torch

from . import reference
from ._format import NORMAL, UNIFORM

ENV = "TRITON_INIT_CPU_COMPILE"  # "0": never compile; "1": compile at any size; unset: the policy below
ENV_MIN = "TRITON_INIT_CPU_COMPILE_MIN"  # elements that justify the first compile (default MIN_ELEMENTS)
# A cold compile costs ~30 s on 2 cores (~5-10 s from inductor's cache), the eager reference ~20-40 M
# elements/s: the first compile waits until one fill, or this process's large eager fills together,
# reach 2^28 elements (~10 s of eager work). Once compiled, fills from WARM_MIN_ELEMENTS take it.
MIN_ELEMENTS = 1 << 28
WARM_MIN_ELEMENTS = 1 << 22
CHUNK_GROUPS = 1 << 18  # 2^20 elements per compiled call: 4 MiB of fp32 values, bounded memory

_compiled = {}  # (dist, compute dtype) -> compiled chunk function
_failed = None  # the exception that disabled the compiled path in this process, if any
_eager_elements = 0  # elements of fills from WARM_MIN_ELEMENTS up that went eager so far
compile_seconds = {}  # (dist, compute dtype) -> seconds the first call took (compile + run)


def threshold() -> int:
    """Elements that justify the first compile (0 when forced, None when disabled)."""
    choice = os.environ.get(ENV, "").strip().lower()
    if choice in ("0", "false", "no", "off"):
        return None
    if choice in ("1", "true", "yes", "on"):
        return 0
    try:
        return int(os.environ.get(ENV_MIN, MIN_ELEMENTS))
    except ValueError:
        return MIN_ELEMENTS


def use_compiled(out: torch.Tensor, numel: int, dist: int = NORMAL) -> bool:
    """Whether a flat fill of ``numel`` elements of ``out`` goes through the compiled path.

    Small fills never do. The first compile needs ``threshold()`` elements in this fill, or in this
    process's eager fills of at least WARM_MIN_ELEMENTS; after it, fills from WARM_MIN_ELEMENTS up use it.
    """
    global _eager_elements
    limit = threshold()
    if limit is None or _failed is not None or out.device.type != "cpu" or not hasattr(torch, "compile"):
        return False
    if limit == 0:
        return numel > 0
    if numel < WARM_MIN_ELEMENTS:
        return False
    if (dist, _compute_dtype(dist, out.dtype)) in compile_seconds or numel + _eager_elements >= limit:
        return True
    _eager_elements += numel
    return False


def _compute_dtype(dist: int, out_dtype: torch.dtype) -> torch.dtype:
    """The dtype the reference computes lane values in (fp32 only for normal into a non-fp64 tensor)."""
    return torch.float32 if dist == NORMAL and out_dtype != torch.float64 else torch.float64


def _signed32(x: int) -> int:
    """A uint32 constant as the int32 with the same bits."""
    return x - (1 << 32) if x >= 1 << 31 else x


def _mulhilo(a, m: int):
    """(hi, lo) words of a * m for int32 tensors holding uint32 bits, in int32 ops only.

    AVX2 has no 64-bit multiply or arithmetic shift, so int64 vector code falls back to scalar loops;
    16-bit limbs keep every product and shift in 32-bit lanes (wrapping, bits kept).
    """
    m0, m1 = m & 0xFFFF, m >> 16
    a0 = a & 0xFFFF
    a1 = (a >> 16) & 0xFFFF
    t = a0 * m0
    mid1 = a1 * m0 + ((t >> 16) & 0xFFFF)  # < 2^32: no carry lost
    mid2 = a0 * m1 + (mid1 & 0xFFFF)
    hi = a1 * m1 + ((mid1 >> 16) & 0xFFFF) + ((mid2 >> 16) & 0xFFFF)
    return hi, a * _signed32(m)


def _philox32(c0, c1, c2, c3, round_keys):
    """Philox4x32-10 on int32 tensors; ``round_keys`` is an int32 (10, 2) tensor of per-round keys."""
    for r in range(10):
        hi0, lo0 = _mulhilo(c0, reference.PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, reference.PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ round_keys[r, 0], lo1, hi0 ^ c3 ^ round_keys[r, 1], lo0
    return c0, c1, c2, c3


def _lanes(words, dist: int, params, compute: torch.dtype):
    """The reference's lane values (``reference.lane_values``) from int32 words."""
    k = [(w >> 9) & 0x7FFFFF for w in words]  # u = (k + 1/2) 2^-23, 1 - u = (2^23 - 1 - k + 1/2) 2^-23

    def u(kk, dtype):
        return (kk.to(dtype) + 0.5) * (2.0 ** -23)

    if dist == UNIFORM:
        return [params[0] + params[1] * u(kk, torch.float64) for kk in k]
    mean, std = params[0], params[1]
    if dist == NORMAL:
        lanes = []
        for first, second in ((k[0], k[1]), (k[2], k[3])):
            radius = torch.sqrt(-2.0 * torch.log(u(first, compute)))
            angle = (2.0 * math.pi) * u(second, compute)
            lanes += [mean.to(compute) + std.to(compute) * (radius * torch.cos(angle)),
                      mean.to(compute) + std.to(compute) * (radius * torch.sin(angle))]
        return lanes
    p_lo, q_hi, mass, lo, hi = params[2:7]
    lanes = []
    for kk in k:
        p = p_lo + mass * u(kk, torch.float64)
        q = q_hi + mass * u(0x7FFFFF - kk, torch.float64)
        lower = p <= 0.5
        z = torch.special.ndtri(torch.where(lower, p, q))
        lanes.append(torch.clamp(mean + std * torch.where(lower, z, -z), lo, hi))
    return lanes


def _chunk_values(first_lo, counter_words, round_keys, params, dist: int, compute: torch.dtype):
    """Lane values of CHUNK_GROUPS groups, in logical order: counters (first_lo + k, c1, c2, c3).

    Every per-call number is a tensor (no recompiles for a new seed, stream, offset or parameter):
    ``first_lo`` 0-d int32, ``counter_words`` int32 (3, CHUNK_GROUPS) holding the constant words
    (j hi, stream lo, stream hi) in full, ``round_keys`` int32 (10, 2), ``params`` float64 (7,). Full
    columns rather than broadcast scalars: inductor evaluates broadcast scalar math in wider C++ integers,
    which got Philox wrong for words at or above 2^31. The chunk must not cross a multiple of 2^32 groups.
    """
    c0 = first_lo + torch.arange(CHUNK_GROUPS, dtype=torch.int32)
    words = _philox32(c0, counter_words[0], counter_words[1], counter_words[2], round_keys)
    lanes = _lanes(words, dist, [params[j] for j in range(7)], compute)
    return torch.stack(lanes, dim=-1).reshape(-1)


def _round_keys(seed: int) -> torch.Tensor:
    k0, k1 = seed & reference.MASK32, seed >> 32
    keys = []
    for _ in range(10):
        keys.append([_signed32(k0), _signed32(k1)])
        k0 = (k0 + reference.PHILOX_W0) & reference.MASK32
        k1 = (k1 + reference.PHILOX_W1) & reference.MASK32
    return torch.tensor(keys, dtype=torch.int32)


def _function(dist: int, compute: torch.dtype):
    key = (dist, compute)
    fn = _compiled.get(key)
    if fn is None:
        fn = torch.compile(_chunk_values, dynamic=False, fullgraph=True)
        _compiled[key] = fn
    return fn


def _disable(exc: Exception) -> None:
    global _failed
    _failed = exc
    warnings.warn(f"triton_init: the compiled CPU path is unavailable ({type(exc).__name__}: {exc}); "
                  f"falling back to eager torch ops (set {ENV}=0 to skip the attempt)", RuntimeWarning,
                  stacklevel=3)


def fill_flat_(flat: torch.Tensor, base: int, dist: int, params, seed: int, stream: int) -> bool:
    """Write logical indices base .. base + numel into the 1-D CPU tensor ``flat``; False if not done.

    Elements before the first group boundary go through the eager reference; every group-aligned chunk
    (the last one computed whole and cut) through the compiled function. On a compile or run failure the
    path is disabled for the process and nothing is left half-written that eager won't redo: the caller
    falls back to the eager reference for the whole tensor.
    """
    n = flat.numel()
    compute = _compute_dtype(dist, flat.dtype)
    round_keys = _round_keys(seed)
    counter_words = torch.empty((3, CHUNK_GROUPS), dtype=torch.int32)
    counter_words[1] = _signed32(stream & reference.MASK32)
    counter_words[2] = _signed32(stream >> 32)
    prm = torch.tensor(list(params) + [0.0] * (7 - len(params)), dtype=torch.float64)
    head = min((-base) % 4, n)  # elements before the first whole group
    first_group = (base + head) // 4
    chunk = 4 * CHUNK_GROUPS
    fn = _function(dist, compute)
    key = (dist, compute)
    try:
        for start in range(head, n, chunk):
            stop = min(n, start + chunk)
            group = first_group + (start - head) // 4
            lo, hi = group & reference.MASK32, group >> 32
            if lo + CHUNK_GROUPS > 1 << 32:  # the chunk crosses 2^32 groups: the eager reference
                _eager_flat(flat[start:stop], base + start, dist, params, seed, stream)
                continue
            t0 = time.perf_counter()
            counter_words[0] = _signed32(hi & reference.MASK32)
            values = fn(torch.tensor(_signed32(lo), dtype=torch.int32), counter_words, round_keys, prm, dist,
                        compute)
            if key not in compile_seconds:
                compile_seconds[key] = time.perf_counter() - t0
            flat[start:stop].copy_(values[: stop - start])
    except Exception as exc:  # no C++ compiler, an inductor bug, ...: eager serves from now on
        _disable(exc)
        return False
    if head:
        _eager_flat(flat[:head], base, dist, params, seed, stream)
    return True


def _eager_flat(flat: torch.Tensor, base: int, dist: int, params, seed: int, stream: int) -> None:
    group, head = divmod(base, 4)
    values = reference._row_values(torch.tensor([group]), torch.tensor([head]), flat.numel(), dist, params,
                                   seed, stream, flat.dtype)
    flat.copy_(values[0])


__all__ = ["CHUNK_GROUPS", "ENV", "ENV_MIN", "MIN_ELEMENTS", "WARM_MIN_ELEMENTS", "compile_seconds", "fill_flat_",
           "threshold", "use_compiled"]
