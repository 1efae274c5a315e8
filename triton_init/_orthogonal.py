"""orthogonal_: torch's definition, a Gaussian prep matrix from stream format v1, QR, one fused epilogue.

The logical (rows, cols) matrix (rows = size(0), cols = the rest flattened) gets stream format v1
normal(0, 1) values at its row-major indices, written by the fill kernel straight into the column-major
(m, n), m >= n, matrix that LAPACK/cuSOLVER factor: the matrix itself when rows >= cols, its transpose
when rows < cols. QR runs in fp32 (fp64 for fp64 tensors) on the tensor's device; the epilogue (kernel
``triton_init.kernels.orthogonal`` or the torch-ops reference below, which give the same bits) applies
sign(diag R), the gain, the transpose back and the cast, and stores only the requested block.
"""

from contextlib import contextmanager, nullcontext

import torch

from . import _dispatch
from ._format import NORMAL, resolve_seed
from ._layout import make_layout
from ._random import random_block
from ._validate import check_real
from .reference import dist_params

# Elements of the reference epilogue's temporaries per chunk of rows.
CHUNK_ELEMENTS = 1 << 20


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def gaussian_prep(rows: int, cols: int, dtype: torch.dtype, device, seed: int, stream: int):
    """The matrix QR factors, and whether it is the transpose of the logical (rows, cols) matrix.

    Returns (a, transposed): ``a`` is (max(rows, cols), min(rows, cols)) in column-major memory, holding
    normal(0, 1) values of the logical (rows, cols) matrix's row-major indices. One fill, no copy.
    """
    transposed = rows < cols
    m, n = (cols, rows) if transposed else (rows, cols)
    a = torch.empty((n, m), dtype=dtype, device=device).t()  # (m, n), strides (1, m)
    logical = a.t() if transposed else a  # the (rows, cols) view: contiguous when transposed
    _dispatch.fill_random_(logical, NORMAL, dist_params(NORMAL, dtype, mean=0.0, std=1.0), seed, stream,
                           make_layout(logical))
    return a, transposed


@contextmanager
def _one_intra_op_thread():
    """torch's intra-op threads set to 1 for the block, then restored (process-wide while it lasts)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def qr(a: torch.Tensor):
    """Q and R of ``a``, the same bits whatever torch's thread count: LAPACK (MKL, OpenBLAS) splits its
    blocked QR by thread count, and the rounding of Q with it (even at 64 x 48), so CPU matrices are factored
    on one thread. CUDA tensors take cuSOLVER as they are."""
    with _one_intra_op_thread() if a.device.type == "cpu" else nullcontext():
        return torch.linalg.qr(a)


def block_columns(local: torch.Tensor, global_shape, global_offset):
    """Two int64 vectors over the local tensor's flattened columns (dims 1..): the logical column in the
    (rows, cols) matrix of the global shape, and the element offset in memory from the row's start."""
    col_index = torch.zeros(1, dtype=torch.int64)
    col_mem = torch.zeros(1, dtype=torch.int64)
    for d in range(1, local.dim()):
        local_k = torch.arange(local.shape[d], dtype=torch.int64)
        col_index = (col_index[:, None] * global_shape[d] + (global_offset[d] + local_k)[None, :]).reshape(-1)
        col_mem = (col_mem[:, None] + (local_k * local.stride(d))[None, :]).reshape(-1)
    return col_index.to(local.device), col_mem.to(local.device)


def epilogue_reference_(out: torch.Tensor, q: torch.Tensor, r: torch.Tensor, col_index: torch.Tensor,
                        col_mem: torch.Tensor, row_offset: int, gain: float, transposed: bool) -> None:
    """The epilogue in torch ops, chunk by chunk: the same arithmetic as the kernel, ((q * sign) * gain)
    in Q's dtype, then one rounding to ``out``'s dtype."""
    n_rows, n_cols = out.shape[0], col_index.numel()
    if n_rows == 0 or n_cols == 0:
        return
    sign = torch.sign(torch.diagonal(r))
    gain_t = torch.tensor(gain, dtype=torch.float64).to(q.dtype).to(q.device)
    span = sum((s - 1) * st for s, st in zip(out.shape, out.stride(), strict=True)) + 1
    storage = out.as_strided((span,), (1,))
    rows_per_chunk = max(1, CHUNK_ELEMENTS // n_cols)
    for i0 in range(0, n_rows, rows_per_chunk):
        local_rows = torch.arange(i0, min(n_rows, i0 + rows_per_chunk), dtype=torch.int64, device=out.device)
        logical_rows = row_offset + local_rows
        if transposed:
            values = q[col_index[None, :], logical_rows[:, None]] * sign[logical_rows][:, None]
        else:
            values = q[logical_rows[:, None], col_index[None, :]] * sign[col_index][None, :]
        values = (values * gain_t).to(out.dtype)
        storage[(local_rows * out.stride(0))[:, None] + col_mem[None, :]] = values


def orthogonal_(tensor, gain=1, generator=None, *, seed=None, stream=None, global_shape=None, global_offset=None):
    """Fill with a (semi-)orthogonal matrix, as ``torch.nn.init.orthogonal_``, in any float dtype.

    rows = size(0), cols = numel / rows (trailing dims flattened). Q of the QR of a Gaussian matrix
    (transposed when rows < cols), times sign(diag R), transposed back, times ``gain``. For a block of a
    logical tensor (``global_shape``/``global_offset``) the whole logical matrix is generated and
    factored on this device (memory: the fp32 matrix plus QR's Q and R) and only the block is stored.
    """
    if tensor.ndimension() < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    gain = check_real(gain, "gain")
    local, global_shape, global_offset, stream = random_block(tensor, seed, stream, global_shape, global_offset)
    if local.numel() == 0 or local.device.type == "meta":
        return tensor
    seed = resolve_seed(seed, generator)
    rows = global_shape[0]
    cols = 1
    for s in global_shape[1:]:
        cols *= s
    with torch.no_grad():
        a, transposed = gaussian_prep(rows, cols, compute_dtype(local.dtype), local.device, seed, stream)
        q, r = qr(a)
        del a
        col_index, col_mem = block_columns(local, global_shape, global_offset)
        if _dispatch.uses_triton(local):
            with torch.cuda.device(local.device) if local.is_cuda else nullcontext():
                _dispatch.kernel_module("orthogonal").orthogonal_epilogue_(
                    local, q, r, col_index, col_mem, global_offset[0], gain, transposed)
        else:
            epilogue_reference_(local, q, r, col_index, col_mem, global_offset[0], gain, transposed)
    return tensor
