"""The orthogonal init epilogue: sign(diag R), gain, transpose back, cast and store, in one pass.

QR ran on the (m, n) matrix A with m >= n, which is the logical (rows, cols) matrix or its transpose.
Each output element (r, c) of the logical matrix reads one element of Q and one diagonal element of R.
The output may be any block of the logical tensor with any strides: its columns are given as two
small int64 vectors (global flattened column, memory offset), its rows as an offset and a stride.
"""

import torch
import triton
import triton.language as tl

from .fill import _store_values
from .interface import DEFAULT_NUM_WARPS, float_bits

DEFAULT_BLOCK_ROWS = 32
DEFAULT_BLOCK_COLS = 64


@triton.jit(do_not_specialize=["row_offset", "gain_bits"])
def _orthogonal_epilogue_kernel(
    out_ptr,
    q_ptr,
    r_ptr,
    col_index_ptr,  # [n_cols] int64: flattened logical column of each local column
    col_mem_ptr,  # [n_cols] int64: memory offset (elements) of each local column within a row
    n_rows,  # local rows (dim 0 of the block)
    n_cols,  # local flattened columns
    col_blocks,  # programs per row of tiles
    row_offset: tl.int64,  # logical row of local row 0
    out_row_stride: tl.int64,
    q_stride0: tl.int64,
    q_stride1: tl.int64,
    r_diag_stride: tl.int64,  # R's stride(0) + stride(1): element k of its diagonal
    gain_bits: tl.int64,  # the gain as a float64 bit pattern
    TRANSPOSED: tl.constexpr,  # QR ran on the transpose: Q is (cols, rows)
    BLOCK_ROWS: tl.constexpr,
    BLOCK_COLS: tl.constexpr,
    EXACT_BF16: tl.constexpr = False,  # round fp32 -> bf16 by hand: the interpreter's cast truncates
):
    pid = tl.program_id(0).to(tl.int64)  # one grid axis: its limit is 2^31, not 65535
    pid_r = pid // col_blocks
    pid_c = pid - pid_r * col_blocks
    rows = pid_r * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS).to(tl.int64)  # [BR]
    cols = pid_c * BLOCK_COLS + tl.arange(0, BLOCK_COLS).to(tl.int64)  # [BC]
    row_mask = rows < n_rows
    col_mask = cols < n_cols
    logical_col = tl.load(col_index_ptr + cols, mask=col_mask, other=0)
    col_mem = tl.load(col_mem_ptr + cols, mask=col_mask, other=0)
    logical_row = row_offset + rows

    # Q's element for (r, c) and the R diagonal entry whose sign multiplies Q's column.
    if TRANSPOSED:
        q_offsets = logical_col[None, :] * q_stride0 + logical_row[:, None] * q_stride1  # [BR, BC]
        diag = tl.load(r_ptr + logical_row * r_diag_stride, mask=row_mask, other=0.0)[:, None]
    else:
        q_offsets = logical_row[:, None] * q_stride0 + logical_col[None, :] * q_stride1
        diag = tl.load(r_ptr + logical_col * r_diag_stride, mask=col_mask, other=0.0)[None, :]
    mask = row_mask[:, None] & col_mask[None, :]
    q = tl.load(q_ptr + q_offsets, mask=mask, other=0.0)
    sign = tl.where(diag > 0, 1.0, tl.where(diag < 0, -1.0, 0.0)).to(q.dtype)  # torch.sign: 0 stays 0
    gain = gain_bits.to(tl.float64, bitcast=True).to(q.dtype)
    values = (q * sign) * gain

    ptrs = out_ptr + rows[:, None] * out_row_stride + col_mem[None, :]
    _store_values(out_ptr, ptrs, values, mask, EXACT_BF16)


def orthogonal_epilogue_(out: torch.Tensor, q: torch.Tensor, r: torch.Tensor,
                         col_index: torch.Tensor, col_mem: torch.Tensor, row_offset: int, gain: float,
                         transposed: bool, *, block_rows: int = DEFAULT_BLOCK_ROWS,
                         block_cols: int = DEFAULT_BLOCK_COLS, num_warps: int = DEFAULT_NUM_WARPS) -> None:
    """Write gain * Q * sign(diag R) (transposed back if ``transposed``) into ``out``'s block.

    ``out`` is the local tensor (any strides; its row k starts at ``k * out.stride(0)``);
    ``col_index``/``col_mem`` are int64 vectors on ``out``'s device, one entry per flattened
    local column. ``q`` and ``r`` are torch.linalg.qr's outputs, in fp32 or fp64.
    """
    n_rows, n_cols = out.shape[0], col_index.numel()
    if n_rows == 0 or n_cols == 0:
        return
    col_blocks = triton.cdiv(n_cols, block_cols)
    grid = (triton.cdiv(n_rows, block_rows) * col_blocks,)
    _orthogonal_epilogue_kernel[grid](
        out, q, r, col_index, col_mem, n_rows, n_cols, col_blocks, row_offset, out.stride(0),
        q.stride(0), q.stride(1), r.stride(0) + r.stride(1), float_bits(gain),
        TRANSPOSED=transposed, BLOCK_ROWS=block_rows, BLOCK_COLS=block_cols, EXACT_BF16=not out.is_cuda,
        num_warps=num_warps,
    )
