"""Mutation check: plant realistic bugs in the kernels and their launchers, the native CPU executor (csrc/),
intercept, the stream mapping, verify, manifests, replay and the CLI, one at a time, in a temporary copy of
the repository, run the CPU tests that guard each, and print a caught / survived table (tests/README.md).

    python tests/mutation_check.py [--jobs 2] [--only SUBSTRING ...] [--list] [--keep] [--markdown FILE]

Each mutation is an exact text replacement that must match once; one whose text is no longer in its file
(the code changed since it was written) is reported as "not found", and ``--list`` says which ones apply.
A mutation of ``csrc/`` rebuilds the copy's C extension (a mutant that does not compile is an error); its
tests run the public fills with both instruction sets, AVX2 and the portable baseline
(``TRITON_INIT_CPU_ISA``, tests/test_native.py's ``isa`` fixture). The copy imports as ``triton_init`` from
itself alone (its ``kernels/`` linked in as ``triton_init/kernels``, the copy first on ``PYTHONPATH``);
before its tests run, a probe checks that the modules imported are the copy's files and hold the mutated
text. Every mutation that changes output beyond the format's contract must be caught; one that only
changes code only a GPU runs (a vendor's approximate math, e.g. ``kernels/math_nvidia.py``'s inline PTX)
is left to the device check (``pytest -m gpu``) and reported as such, not run here. At the end, the tests
that caught a mutation run once more on an unmutated copy and must pass: they failed because of the
mutation, not because of the copy.
Exit status 0 when every mutation meets its expectation.
"""

import argparse
import concurrent.futures
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Fastest first: pytest stops at the first failure (-x).
KERNEL_TESTS = ("tests/test_stream_format.py", "tests/test_kernel_contract.py", "tests/test_kernels.py")
FLAT_TESTS = ("tests/test_flat.py", "tests/test_kernel_contract.py")
ORTHOGONAL_TESTS = ("tests/test_orthogonal.py",)
# test_native.py's tests of the C code, quickest to catch first (pytest keeps this order: -x stops early).
NATIVE_TESTS = tuple(f"tests/test_native.py::test_{name}" for name in (
    "the_isa_switch_reaches_the_extension", "the_group_index_carries_into_its_high_word", "golden_values",
    "strided_views_and_nothing_outside", "pieces_reassemble_to_the_whole",
    "threads_chunks_and_instruction_sets_give_the_same_bits", "logical_indices_up_to_2_to_the_64",
    "contract_at_an_unaligned_offset", "every_u_rounds_to_nearest_even_like_torch", "every_u_uniform",
    "every_u_box_muller", "every_u_trunc_normal", "far_tail_by_newton_steps",
    "memory_offsets_past_2_to_the_31_elements",
    "large_flat_fills_store_around_the_caches", "torch_thread_count_does_not_change_bits", "an_unknown_isa_is_refused"))
INTERCEPT_TESTS = ("tests/test_intercept_lazy.py", "tests/test_intercept_arguments.py", "tests/test_intercept.py",
                   "tests/test_module.py")
VERIFY_TESTS = ("tests/test_verify_inputs.py", "tests/test_verify.py", "tests/test_verify_cmd.py")
CLI_TESTS = ("tests/test_verify_inputs.py", "tests/test_verify_cmd.py", "tests/test_cli.py", "tests/test_init_cmd.py")

CAUGHT, WITHIN, GPU_ONLY = "beyond contract", "within contract", "GPU only"


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # file in the repository
    old: str  # text that must occur exactly once
    new: str
    tests: tuple = KERNEL_TESTS  # pytest arguments
    expect: str = CAUGHT  # CAUGHT: must be caught; WITHIN: may survive; GPU_ONLY: not run on the CPU


FILL, PHILOX, FLAT, PATHS = "kernels/fill.py", "kernels/philox.py", "kernels/flat.py", "kernels/trunc_paths.py"
PATH_TESTS = ("tests/test_trunc_paths.py", *KERNEL_TESTS)
C, INTERCEPT, STREAMS = "csrc/stream_v1.c", "triton_init/_intercept.py", "triton_init/streams.py"
LAZY = "triton_init/_lazy.py"
VERIFY, REPLAY, MANIFEST = "triton_init/verify.py", "triton_init/_replay.py", "triton_init/manifest.py"
CLI_VERIFY = "triton_init/cli/verify.py"
CLAMP = "\n".join(f"            v{k} = tl.minimum(tl.maximum(v{k}, lo), hi)" for k in range(4))

MUTATIONS = [
    Mutation("trunc_normal clamp removed", FILL, CLAMP, "            pass"),
    Mutation("launcher: clamp decision inverted", PATHS,
             "return not (lo <= spread[0] and spread[1] <= hi)", "return lo <= spread[0] and spread[1] <= hi",
             PATH_TESTS),
    Mutation("carry into the high counter word dropped", FILL,
             "c1 = first_hi + (c0 < offsets).to(tl.uint32)", "c1 = tl.zeros_like(c0) + first_hi"),
    Mutation("bf16 rounding: ties away from zero", FILL,
             "bits = bits + (0x7FFF + ((bits >> 16) & 1))", "bits = bits + 0x8000"),
    Mutation("bf16 rounding: truncation (the round-to-nearest add dropped)", FILL,
             "    bits = bits + (0x7FFF + ((bits >> 16) & 1))\n", ""),
    Mutation("fp16 store: truncating cast", FILL,
             "    return values.to(out_ptr.dtype.element_ty)\n",
             '    return values.to(out_ptr.dtype.element_ty, fp_downcast_rounding="rtz")\n'),
    Mutation("launcher: exact bf16 rounding off under the interpreter", FILL,
             '"EXACT_BF16": target.rounds_bf16_by_hand,', '"EXACT_BF16": out.is_cuda,'),
    Mutation("NVIDIA sin_angle emits cos.approx", "kernels/math_nvidia.py", '"sin.approx.ftz.f32 $0, $1;"',
             '"cos.approx.ftz.f32 $0, $1;"', expect=GPU_ONLY),
    Mutation("math selection: HIP gets the NVIDIA (PTX) set", "kernels/target.py",
             '{"cuda": MATH_NVIDIA, "hip": MATH_AMD}', '{"cuda": MATH_NVIDIA, "hip": MATH_NVIDIA}',
             ("tests/test_isa.py::test_launcher_picks_the_vendor_math",)),
    Mutation("math dispatch: accurate sin_angle takes cos", "kernels/transcendentals.py",
             "return math_accurate.sin_angle(x)", "return math_accurate.cos_angle(x)"),
    Mutation("lanes 1 and 2 swapped (one group per value tensor)", FILL,
             "flatten.\n        values = tl.join(tl.join(v0, v2), tl.join(v1, v3))",
             "flatten.\n        values = tl.join(tl.join(v0, v1), tl.join(v2, v3))"),
    Mutation("paired groups interleaved odd before even (2-byte outputs)", FILL,
             "tl.join(tl.join(tl.join(e0, o0), tl.join(e2, o2)), tl.join(tl.join(e1, o1), tl.join(e3, o3)))",
             "tl.join(tl.join(tl.join(o0, e0), tl.join(o2, e2)), tl.join(tl.join(o1, e1), tl.join(o3, e3)))"),
    Mutation("u(w) without its half-ulp offset", PHILOX,
             "return _mantissa(w) - ONE_MINUS_HALF_ULP", "return _mantissa(w) - 1.0"),
    Mutation("u(w) from the word's low 23 bits", PHILOX,
             "return ((w >> 9) | 0x3F800000)", "return ((w & 0x7FFFFF) | 0x3F800000)"),
    Mutation("trunc_normal tail path: sign of the upper tail dropped", FILL,
             "tl.where(upper, -1.0, 1.0))", "1.0)"),
    Mutation("trunc_normal wide path: sign of x dropped", PHILOX,
             "return (p - 64.0) * _wide_poly(v, scale) + shift",
             "return tl.abs(p - 64.0) * _wide_poly(v, scale) + shift"),
    Mutation("trunc_normal untruncated path: sign of x dropped", PHILOX,
             "return x64 * _wide_poly(v, scale) + shift", "return tl.abs(x64) * _wide_poly(v, scale) + shift"),
    Mutation("trunc_normal central path: x from u, not the mantissa (offset lost)", PHILOX,
             "x = _mantissa(w) * two_mass + x_at_one", "x = uniform01(w) * two_mass + x_at_one"),
    Mutation("Box-Muller: sign dropped (general path)", PHILOX,
             "return -radius * cos_angle(angle, MATH), -radius * sin_angle(angle, MATH)",
             "return radius * cos_angle(angle, MATH), radius * sin_angle(angle, MATH)"),
    Mutation("normal fp32 path: sign dropped from the folded scale", FILL,
             "scale = (std * -SQRT_2LN2).to(tl.float32)", "scale = (std * SQRT_2LN2).to(tl.float32)"),
    Mutation("normal: lanes 2, 3 take their radius from word 1", FILL,
             "s23 = box_muller_root(w2, MATH) * scale", "s23 = box_muller_root(w1, MATH) * scale"),
    Mutation("stream words swapped in the counter", FILL,
             "c2 = tl.zeros_like(c0) + stream_lo\n    c3 = tl.zeros_like(c0) + stream_hi",
             "c2 = tl.zeros_like(c0) + stream_hi\n    c3 = tl.zeros_like(c0) + stream_lo"),
    Mutation("key words swapped", FILL,
             "philox4x32_10(c0, c1, c2, c3, seed_lo, seed_hi)", "philox4x32_10(c0, c1, c2, c3, seed_hi, seed_lo)"),
    Mutation("row head added instead of subtracted (block offset)", FILL,
             "element = block * (4 * BLOCK_GROUPS) - head + tl.arange(0, 4 * BLOCK_GROUPS)  # index within the row",
             "element = block * (4 * BLOCK_GROUPS) + head + tl.arange(0, 4 * BLOCK_GROUPS)  # index within the row"),
    Mutation("store mask one past the end of an aligned run", FILL,
             "mask = element < n_inner\n", "mask = element <= n_inner\n"),
    Mutation("row tiles: each tile's rows offset by one", FILL,
             "row = tile * ROWS + r\n", "row = tile * ROWS + r + 1\n"),
    Mutation("row tiles: a tile's rows past the block written (mask off by one)", FILL,
             "tl.where(row < n_rows, n_inner, 0)", "tl.where(row <= n_rows, n_inner, 0)"),
    Mutation("launcher: row tiles for rows that do not start on a group", FILL,
             "\n               and all(stride % 4 == 0 for stride in logical_strides[:-1])", ""),
    Mutation("launcher: a row's groups counted without its head", FILL,
             "groups_per_row = (n_inner + 3 + 3) // 4", "groups_per_row = (n_inner + 3) // 4"),
    Mutation("launcher: flat head taken as 0", FILL, "HEAD=base % 4 if flat else 0", "HEAD=0"),
    Mutation("launcher: no-carry (ALIGNED) assumed for every flat run", FILL,
             "ALIGNED=flat and (base >> 2) % block_groups == 0", "ALIGNED=flat"),
    Mutation("launcher: tiles for rows that do not start on a group", FILL,
             "and base % 4 == 0 and logical_strides[0] % 4 == 0)", "and base % 4 == 0)"),
    Mutation("launcher: fp32 uniform fma for bounds not exact in fp32", FILL,
             "return not dtype_is_f64 and _exact_f32(a) and _exact_f32(width)", "return not dtype_is_f64"),
    Mutation("fp64 outputs computed in fp32", FILL,
             "OUT_F64: tl.constexpr = out_ptr.dtype.element_ty == tl.float64\n    PAIRED",
             "OUT_F64: tl.constexpr = False\n    PAIRED"),
    Mutation("trunc_normal wide path: q as 128 - p (cancellation)", PHILOX,
             "q = mass128 * (1.0 - u) + q128  # 1 - u is exact", "q = 128.0 - p"),
    Mutation("central polynomial used past its range (upper side unchecked)", PATHS,
             "if smallest > 0.0 and _w(smallest) < CENTRAL_W_LIMIT:", "if p_lo > 0.0 and _w(p_lo) < CENTRAL_W_LIMIT:",
             PATH_TESTS),
    Mutation("wide polynomial used past its range (upper side unchecked)", PATHS,
             "if _w(smallest + mass * U_MIN) <= WIDE_W_LIMIT:", "if _w(p_lo + mass * U_MIN) <= WIDE_W_LIMIT:",
             PATH_TESTS),
    Mutation("untruncated path for tails Phi^-1(u) cannot stand for", PATHS,
             "UNTRUNCATED_TAIL = 2.0 ** -48", "UNTRUNCATED_TAIL = 2.0 ** -20", PATH_TESTS),
    Mutation("-ln u series used far from u = 1", PHILOX,
             "SERIES_ABOVE = tl.constexpr(1.0 - 2.0 ** -11)", "SERIES_ABOVE = tl.constexpr(1.0 - 2.0 ** -5)"),
    Mutation("Box-Muller angle without its 2 pi 2^-24 shift", PHILOX,
             "return tl.fma(_mantissa(w_second) - 1.5, turn, turn * U_MIN)",
             "return (_mantissa(w_second) - 1.5) * turn",
             expect=WITHIN),
    Mutation("clamp bound rounded to nearest, not inward", "triton_init/_format.py",
             "    if lo < a:\n        lo = _next_toward(lo, math.inf, dtype)\n", ""),
    Mutation("dispatcher: subnormal probabilities sent to the kernel", "triton_init/_format.py",
             "params[4] * 2.0 ** -24 >= 2.0 ** -126", "params[4] * 2.0 ** -24 >= 2.0 ** -149"),
    Mutation("flat kernel: segment head ignored", FLAT,
             "head = (start & 3).to(tl.int64)", "head = (start & 0).to(tl.int64)", FLAT_TESTS),
    Mutation("flat kernel: block offset in elements, not groups", FLAT,
             "first_group = (start >> 2) + (block * BLOCK_GROUPS).to(tl.uint64)",
             "first_group = (start >> 2) + block.to(tl.uint64)", FLAT_TESTS),
    Mutation("flat launcher: whole-group stores for segments starting mid-group", FLAT,
             "any(s[0] % vec or s[1] % 4 or s[2] % vec for s in segments)",
             "any(s[0] % vec or s[2] % vec for s in segments)", FLAT_TESTS),
    Mutation("orthogonal epilogue: sign of diag R ignored", "kernels/orthogonal.py",
             "values = (q * sign) * gain", "values = q * gain", ORTHOGONAL_TESTS),
    Mutation("orthogonal epilogue: transposed Q read untransposed", "kernels/orthogonal.py",
             "q_offsets = logical_col[None, :] * q_stride0 + logical_row[:, None] * q_stride1",
             "q_offsets = logical_row[:, None] * q_stride0 + logical_col[None, :] * q_stride1", ORTHOGONAL_TESTS),
    # ---- the native CPU executor (csrc/): rebuilt in the copy, tested with both instruction sets ----
    Mutation("C Philox: a multiplier's digits transposed", C, "#define PHILOX_M0 0xD2511F53u",
             "#define PHILOX_M0 0xD2511F35u", NATIVE_TESTS),
    Mutation("C Philox key schedule: the high key word bumped by W0", C, "        k1 += PHILOX_W1;",
             "        k1 += PHILOX_W0;", NATIVE_TESTS),
    Mutation("C Philox: seed words swapped in the key", C,
             "uint32_t k0 = (uint32_t)call->seed, k1 = (uint32_t)(call->seed >> 32);",
             "uint32_t k1 = (uint32_t)call->seed, k0 = (uint32_t)(call->seed >> 32);", NATIVE_TESTS),
    Mutation("C portable Philox: stream words swapped in the counter", C,
             "uint32_t c2 = stream_lo, c3 = stream_hi;", "uint32_t c2 = stream_hi, c3 = stream_lo;", NATIVE_TESTS),
    Mutation("C portable Philox round: c3 xored where c1 belongs", C,
             "uint32_t next0 = (uint32_t)(prod1 >> 32) ^ c1 ^ key0[r];",
             "uint32_t next0 = (uint32_t)(prod1 >> 32) ^ c3 ^ key0[r];", NATIVE_TESTS),
    Mutation("C portable: carry into the high counter word dropped", C, "uint32_t c1 = hi + (c0 < lo);",
             "uint32_t c1 = hi;", NATIVE_TESTS),
    Mutation("C AVX2: carry into the high word dropped", C,
             "c1[v] = _mm256_sub_epi32(hi, _mm256_cmpgt_epi32(lo_biased, _mm256_xor_si256(c0[v], sign)));",
             "c1[v] = hi;", NATIVE_TESTS),
    Mutation("C AVX2: every vector of an iteration counts from its first group", C,
             "_mm256_set1_epi32((int)(lo + (uint32_t)(i + 8 * v)))", "_mm256_set1_epi32((int)(lo + (uint32_t)i))",
             NATIVE_TESTS),
    Mutation("C AVX2: the carry's comparison signed", C,
             "_mm256_cmpgt_epi32(lo_biased, _mm256_xor_si256(c0[v], sign))",
             "_mm256_cmpgt_epi32(_mm256_set1_epi32((int)lo), c0[v])", NATIVE_TESTS),
    Mutation("C AVX2 round: c1 xored where c3 belongs", C,
             "opaque_avx2(_mm256_xor_si256(c3[v], k1))", "opaque_avx2(_mm256_xor_si256(c1[v], k1))", NATIVE_TESTS),
    Mutation("C AVX2 round: a low word from the other multiplier", C,
             "c3[v] = _mm256_mullo_epi32(c0[v], m0);", "c3[v] = _mm256_mullo_epi32(c0[v], m1);", NATIVE_TESTS),
    Mutation("C u(w) without its half-ulp offset", C, "return mantissa_f32(w) - 0.99999994039535522f;",
             "return mantissa_f32(w) - 1.0f;", NATIVE_TESTS),
    Mutation("C u(w) in float64: the mantissa one bit short", C, "((uint64_t)(w >> 9) << 29)",
             "((uint64_t)(w >> 9) << 28)", NATIVE_TESTS),
    Mutation("C uniform: a + width u without the half step", C, "const double a0 = pc->a + pc->width * 0x1p-24,",
             "const double a0 = pc->a,", NATIVE_TESTS),
    Mutation("C Box-Muller: the angle from the radius's word", C,
             "const uint32_t *restrict w = s->w[lane + 1];", "const uint32_t *restrict w = s->w[lane];", NATIVE_TESTS),
    Mutation("C Box-Muller: cos's quadrant sign from k, not k + 1", C, "((((uint32_t)k + 1u) & 2u) << 30)",
             "(((uint32_t)k & 2u) << 30)", NATIVE_TESTS),
    # e ln 2 off by e 1.4e-6: the radius moves by at most 6e-6, within the contract's 2e-5 relative error of z
    Mutation("C ln: the low part of e ln 2 dropped", C, "return ef * LN2_HI + (ln_m + ef * LN2_LO);",
             "return ef * LN2_HI + ln_m;", NATIVE_TESTS, expect=WITHIN),
    Mutation("C ln: mantissa reduced to [1, 2), not around 1 (cancellation near u = 1)", C,
             "int32_t e = (int32_t)(bits - 0x3F3504F3u) >> 23;\n    float m =",
             "int32_t e = (int32_t)(bits - 0x3F800000u) >> 23;\n    float m =", NATIVE_TESTS),
    Mutation("C Box-Muller float64: the odd lane takes the cosine", C,
             "odd[i] = mean + std * (double)(radius[i] * sn);", "odd[i] = mean + std * (double)(radius[i] * c);",
             NATIVE_TESTS),
    Mutation("C Box-Muller float64: std applied twice", C, "const float scale = f64 ? 1.0f : pc->std32;",
             "const float scale = pc->std32;", NATIVE_TESTS),
    Mutation("C bf16: truncation", C, "return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);",
             "return (uint16_t)(b >> 16);", NATIVE_TESTS),
    Mutation("C bf16: ties away from zero", C, "return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);",
             "return (uint16_t)((b + 0x8000u) >> 16);", NATIVE_TESTS),
    Mutation("C fp16: ties away from zero", C, "+ 0xFFFu + ((mag >> 13) & 1u)) >> 13;", "+ 0x1000u) >> 13;",
             NATIVE_TESTS),
    Mutation("C fp16: overflow saturates at 65504 instead of infinity", C, "0x7C00u : normal", "0x7BFFu : normal",
             NATIVE_TESTS),
    Mutation("C fp16: subnormals from 2^-15, not 2^-14", C, "mag < 0x38800000u ?", "mag < 0x38000000u ?",
             NATIVE_TESTS),
    Mutation("C store: a block head's offset into the buffer dropped", C,
             "buffer + (head + done - 4 * (int64_t)first) * size", "buffer + (done - 4 * (int64_t)first) * size",
             NATIVE_TESTS),
    Mutation("C store: a run's partial tail group stored whole (past its end)", C,
             "interleave(pc, s, 0, (int)(count >> 2), dst);", "interleave(pc, s, 0, (int)((count + 3) >> 2), dst);",
             NATIVE_TESTS),
    Mutation("C store: strided 2-byte elements at a 4-byte stride", C,
             "memcpy(dst + k * stride * 2, src + k * 2, 2);", "memcpy(dst + k * stride * 4, src + k * 2, 2);",
             NATIVE_TESTS),
    Mutation("C streaming store: the bytes after the last 32-byte vector not written", C,
             "    memcpy(dst + k, src + k, bytes - k);\n", "", NATIVE_TESTS),
    Mutation("C layout walk: a run's start ignores the inner stride", C, "mem + col * inner_stride, inner_stride);",
             "mem + col, inner_stride);", NATIVE_TESTS),
    Mutation("C layout walk: logical index from the memory strides", C,
             "logical += (uint64_t)index * layout->logical_strides[d];",
             "logical += (uint64_t)index * (uint64_t)layout->mem_strides[d];", NATIVE_TESTS),
    Mutation("C threads: the last partial chunk dropped", C, "numel == 0 ? 0 : (numel - 1) / w->chunk + 1;",
             "numel == 0 ? 0 : numel / w->chunk;", NATIVE_TESTS),
    Mutation("C threads: each chunk one element short", C, "? w->numel : first + w->chunk;",
             "? w->numel : first + w->chunk - 1;", NATIVE_TESTS),
    Mutation("C ISA: a baseline request runs AVX2 (the portable path untested)", C,
             "if (isa == TI_ISA_BEST && __builtin_cpu_supports", "if (__builtin_cpu_supports", NATIVE_TESTS),
    Mutation("_cpu: TRITON_INIT_CPU_ISA ignored", "triton_init/_cpu.py",
             'baseline_isa = isa() == "baseline"', "baseline_isa = False", NATIVE_TESTS),
    # ---- intercept: the arguments of inits on views and temporaries, torch's random factories ----
    Mutation("intercept: xavier_uniform_ on a view without its gain", INTERCEPT,
             "bound = SQRT3 * xavier_std(shape, 1.0) * gain", "bound = SQRT3 * xavier_std(shape, 1.0)",
             INTERCEPT_TESTS),
    Mutation("intercept: xavier_normal_ on a view without its gain", INTERCEPT,
             '"std": xavier_std(shape, 1.0) * gain}', '"std": xavier_std(shape, 1.0)}', INTERCEPT_TESTS),
    Mutation("intercept: kaiming on a view always fan_in", INTERCEPT,
             'kaiming_std(shape, args["a"], args["mode"], args["nonlinearity"])',
             'kaiming_std(shape, args["a"], "fan_in", args["nonlinearity"])', INTERCEPT_TESTS),
    Mutation("intercept: kaiming on a view: the negative slope dropped", INTERCEPT,
             'kaiming_std(shape, args["a"], args["mode"], args["nonlinearity"])',
             'kaiming_std(shape, 0.0, args["mode"], args["nonlinearity"])', INTERCEPT_TESTS),
    Mutation("intercept: kaiming_uniform_ on a view bounded by std, not sqrt(3) std", INTERCEPT,
             'return "uniform_", {"a": -SQRT3 * std, "b": SQRT3 * std}', 'return "uniform_", {"a": -std, "b": std}',
             INTERCEPT_TESTS),
    Mutation("intercept: trunc_normal_ on a view drops its bounds", INTERCEPT,
             '"a": a, "b": b}\n    if function in', '"a": -2.0, "b": 2.0}\n    if function in', INTERCEPT_TESTS),
    Mutation("intercept: keyword arguments of tensor methods ignored (w.normal_(mean=, std=))", INTERCEPT,
             "        values.update((k, v) for k, v in kwargs.items() if k in names)\n", "", INTERCEPT_TESTS),
    Mutation("intercept: fans of a view from the whole tensor", INTERCEPT,
             "function, resolved = _resolve(name, tuple(tensor.shape), params)",
             "function, resolved = _resolve(name, target.logical_shape, params)", INTERCEPT_TESTS),
    Mutation("intercept: randn temporaries taken as uniform", INTERCEPT,
             'torch.randn: ("normal_", {"mean": 0.0, "std": 1.0}),', 'torch.randn: ("uniform_", {"a": 0.0, "b": 1.0}),',
             INTERCEPT_TESTS),
    Mutation("intercept: rand temporaries taken as uniform on [-1, 1]", INTERCEPT,
             'torch.rand: ("uniform_", {"a": 0.0, "b": 1.0}),', 'torch.rand: ("uniform_", {"a": -1.0, "b": 1.0}),',
             INTERCEPT_TESTS),
    Mutation("intercept: randint not watched as random", INTERCEPT,
             "_OTHER_RANDOM = frozenset((torch.randint, torch.randint_like,",
             "_OTHER_RANDOM = frozenset((torch.randint_like,",
             INTERCEPT_TESTS),
    Mutation("intercept: arithmetic on temporaries re-served as the plain init", INTERCEPT,
             "elif not taint.pure or not taint.pending:", "elif not taint.pending:", INTERCEPT_TESTS),
    Mutation("intercept: a mix of two inits' temporaries re-served as one", INTERCEPT,
             "elif len(distributions) > 1:", "elif len(distributions) > 2:", INTERCEPT_TESTS),
    Mutation("intercept: timm's trunc_normal_tf_ bounds not scaled by std", INTERCEPT,
             '"a": mean + a * std, "b": mean + b * std}', '"a": mean + a, "b": mean + b}',
             ("tests/integration/test_timm.py",)),
    # ---- unfilled temporaries ----
    Mutation("lazy: every view-like op trusted as a view (a copying one reads unfilled values)", INTERCEPT,
             "if all(storage_key(out) in keys for out in tree_flatten(result)[0] if isinstance(out, torch.Tensor)):",
             "if True:", INTERCEPT_TESTS),
    Mutation("lazy: temporaries still unfilled at exit left unfilled", INTERCEPT,
             "                self._lazy.realize_all()", "                pass", INTERCEPT_TESTS),
    Mutation("lazy: a read forgets the recipe without writing it", LAZY,
             "                recipe.into(ref())", "                ref()", INTERCEPT_TESTS),
    Mutation("lazy: a cat recipe joins its parts in reverse order", LAZY,
             "torch.cat(views, self.dim, out=", "torch.cat(views[::-1], self.dim, out=", INTERCEPT_TESTS),
    Mutation("lazy: the deferred fill drawn on the next temporary's stream", INTERCEPT,
             'stream = f"temporary/{self._temporaries}"', 'stream = f"temporary/{self._temporaries + 1}"',
             INTERCEPT_TESTS),
    # ---- the stream mapping ----
    Mutation("streams: a miss never re-reads the model (new storage without a registration missed)", STREAMS,
             "if not entries and refresh and self._snapshot() != self._seen:", "if not entries and refresh and False:",
             INTERCEPT_TESTS),
    Mutation("streams: the snapshot ignores where tensors' data is (new storage by .data = missed)", STREAMS,
             "seen.append(tuple(_address(t) for table in self._tensor_tables for t in table.values()))", "pass",
             INTERCEPT_TESTS),
    Mutation("streams: a registration that replaces one half of a tie applied in place", STREAMS,
             " or (old is not None and self._names.get(id(old), 0) != 1)):", "):",
             INTERCEPT_TESTS),
    Mutation("streams: activation-checkpoint wrappers kept in stream names", STREAMS,
             'WRAPPER_NAMES = ("_orig_mod", "_checkpoint_wrapped_module", "_fsdp_wrapped_module")',
             'WRAPPER_NAMES = ("_orig_mod", "_fsdp_wrapped_module")', INTERCEPT_TESTS),
    Mutation("streams: the prefix not prepended", STREAMS, 'return prefix + ".".join(parts)',
             'return ".".join(parts)', INTERCEPT_TESTS),
    Mutation("streams: tied tensors listed under each name", STREAMS,
             "if tensor is None or id(tensor) in seen:", "if tensor is None:", INTERCEPT_TESTS),
    Mutation("streams: a view with the tensor's shape taken as the tensor (strides unchecked)", STREAMS,
             "own = (local.shape == entry.local.shape and local.stride() == entry.local.stride()",
             "own = (local.shape == entry.local.shape", INTERCEPT_TESTS),
    Mutation("streams: dims of a view's base ordered by ascending stride (channels_last)", STREAMS,
             "key=lambda d: -base.stride(d))", "key=lambda d: base.stride(d))", INTERCEPT_TESTS),
    # ---- verify: targets, records, prefixes, regions and verdicts ----
    Mutation("verify: names not mapped through the stage prefix", VERIFY,
             "record = manifest.find(stream_name(key, prefix)) or manifest.find(key)",
             "record = manifest.find(key)", VERIFY_TESTS),
    Mutation("verify: a pipeline stage expects every tensor of the manifest", VERIFY,
             "and r.stream.startswith(prefix)] if prefix else records", "] if prefix else records", VERIFY_TESTS),
    Mutation("verify: a meta-device tensor passes", VERIFY,
             'report.verdict, report.detail = MISSING, "on the meta device', 'report.detail = "on the meta device',
             VERIFY_TESTS),
    Mutation("verify: dtypes compared by size (bf16 read as fp16)", VERIFY,
             "if block.local.dtype != record.dtype:", "if block.local.dtype.itemsize != record.dtype.itemsize:",
             VERIFY_TESTS),
    Mutation("verify: report.ok ignores unverified tensors", VERIFY,
             "return not self.failures and not self.unverified", "return not self.failures", VERIFY_TESTS),
    Mutation("verify: missing tensors not a failure", VERIFY, "FAILURES = (MISMATCH, MISSING, SHAPE, DTYPE, INVALID)",
             "FAILURES = (MISMATCH, SHAPE, DTYPE, INVALID)", VERIFY_TESTS),
    Mutation("verify: offsets of blocks ignored", VERIFY,
             "items.append((key, tensor, record, (offsets or {}).get(key)))",
             "items.append((key, tensor, record, None))", VERIFY_TESTS),
    Mutation("regenerate_: region writes placed without the block's offset", REPLAY,
             "local_coords = tuple((c[inside] - a).to(", "local_coords = tuple((c[inside] + 0 * a).to(", VERIFY_TESTS),
    # ---- replay ----
    Mutation("replay: dirac_ with groups: ones where in == out", REPLAY,
             "ones = coords[1] == coords[0] % out_per_group",
             "ones = coords[1] == coords[0]", VERIFY_TESTS),
    Mutation("replay: writes of a newer stream format replayed as this one", REPLAY,
             "if write.format_version != FORMAT_VERSION:", "if write.format_version < FORMAT_VERSION:", VERIFY_TESTS),
    # verify compares elements bit for bit with ``values`` (these cast to the dtype) before any float64 check:
    # a constant's float64 expectation is never what decides (equivalent since verify's engine was rewritten)
    Mutation("replay: constants expected in float64, not rounded to the dtype", REPLAY,
             "cast = torch.empty((), dtype=self.dtype).fill_(value).double()",
             "cast = torch.tensor(float(value), dtype=torch.float64)", VERIFY_TESTS, expect=WITHIN),
    Mutation("replay: a user callable reported as an invalid entry", REPLAY,
             'raise NotReplayable("not verifiable", f"written by {write.fn}, a user callable',
             'raise NotReplayable("invalid entry", f"written by {write.fn}, a user callable', VERIFY_TESTS),
    Mutation("replay: sparse_ zeros per column rounded down", REPLAY,
             'self.num_zeros = math.ceil(write.args["sparsity"] * self.rows)',
             'self.num_zeros = int(write.args["sparsity"] * self.rows)', VERIFY_TESTS),
    # ---- manifests ----
    Mutation("manifest: older manifest versions read as this one", MANIFEST,
             'if data.get("manifest_version") != MANIFEST_VERSION:',
             'if data.get("manifest_version") > MANIFEST_VERSION:',
             VERIFY_TESTS),
    Mutation("manifest: a write's format version dropped when read", MANIFEST,
             "for k, v in args.items()}, seed, region, version)", "for k, v in args.items()}, seed, region)",
             VERIFY_TESTS),
    Mutation("manifest: the format version not passed on when re-recorded", MANIFEST,
             "write.region, format_version=write.format_version)", "write.region)", VERIFY_TESTS),
    Mutation("manifest: aliases not followed", MANIFEST, "        name = self.aliases.get(name, name)\n", "",
             VERIFY_TESTS),
    Mutation("manifest: non-finite arguments read back as strings", MANIFEST,
             "None if args is None else {k: _arg_value(v) for k, v in args.items()}", "args", VERIFY_TESTS),
    Mutation("manifest: a region one past the tensor's end accepted", MANIFEST,
             "if region.numel and region.last >= math.prod(shape):\n                raise ValueError(f\"{where}",
             "if region.numel and region.last > math.prod(shape):\n                raise ValueError(f\"{where}",
             VERIFY_TESTS),
    Mutation("manifest: region membership walks dims in stored order", MANIFEST,
             "for size, stride in sorted(self.dims(), key=lambda d: -d[1]):", "for size, stride in self.dims():",
             VERIFY_TESTS),
    Mutation("contract: bf16 rounding allowed a whole ulp (truncation passes)", "triton_init/contract.py",
             "torch.float16: 0.5, torch.bfloat16: 0.5}", "torch.float16: 0.5, torch.bfloat16: 1.0}", VERIFY_TESTS),
    # ---- the CLI ----
    Mutation("CLI verify: unverified exits 1 (as a failure)", CLI_VERIFY,
             "return EXIT_OK if report.ok else EXIT_UNVERIFIED", "return EXIT_OK if report.ok else EXIT_FAILED",
             CLI_TESTS),
    Mutation("CLI verify: exit codes of bad input and unverified swapped", CLI_VERIFY,
             "EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNVERIFIED = 0, 1, 2, 3",
             "EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNVERIFIED = 0, 1, 3, 2", CLI_TESTS),
    Mutation("CLI verify: a failure exits 0 when others are unverified", CLI_VERIFY,
             "    if report.failures:\n        return EXIT_FAILED",
             "    if report.failures and not report.unverified:\n        return EXIT_FAILED", CLI_TESTS),
    Mutation("CLI verify: --prefix not passed on", CLI_VERIFY, "seed=args.seed, prefix=args.prefix,",
             "seed=args.seed,", CLI_TESTS),
    Mutation("CLI verify: checkpoints under 'model' not unwrapped", CLI_VERIFY,
             'STATE_DICT_KEYS = ("state_dict", "model", "module"', 'STATE_DICT_KEYS = ("state_dict", "module"',
             CLI_TESTS),
    Mutation("CLI verify: a directory's first .safetensors file only", CLI_VERIFY,
             "return _SafetensorsFiles(files)", "return _SafetensorsFiles(files[:1])", CLI_TESTS),
    Mutation("CLI: the dtype alias half taken as bf16", "triton_init/cli/_common.py", '"half": "fp16"',
             '"half": "bf16"',
             CLI_TESTS),
    Mutation("CLI init: an output in a missing folder not checked before the work", "triton_init/_files.py",
             "    if not os.path.isdir(folder):\n", "    if False:\n", CLI_TESTS),
]


@dataclass
class Result:
    mutation: Mutation
    outcome: str = ""  # caught, survived, not run, not found, error
    seconds: float = 0.0
    caught_by: list = field(default_factory=list)
    detail: str = ""

    @property
    def as_expected(self) -> bool:
        if self.mutation.expect == GPU_ONLY:
            return self.outcome == "not run"
        if self.mutation.expect == WITHIN:
            return self.outcome in ("caught", "survived")
        return self.outcome == "caught"


def _source_files() -> list:
    """The repository's files as git sees them (tracked, and untracked but not ignored)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                         capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def make_copy(parent: Path) -> Path:
    """A copy of the repository under ``parent``/repo that imports as ``triton_init`` by itself (with the CPU
    executor's build, where there is one, so that CPU tensors run what they run here)."""
    repo = parent / "repo"
    for name in _source_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (repo / "triton_init" / "kernels").symlink_to(repo / "kernels", target_is_directory=True)
    for built in (ROOT / "triton_init").glob("_native*"):  # the CPU executor as built (git ignores it)
        shutil.copy2(built, repo / "triton_init" / built.name)
    return repo


# Builds the copy's C extension in place from setup.py's own Extension list, without the project metadata
# step (which needs a newer setuptools than a plain venv may have): the build an editable install makes.
BUILD_NATIVE = """
import runpy, setuptools
found = {}
setuptools.setup = lambda **kwargs: found.update(kwargs)
runpy.run_path("setup.py")
dist = setuptools.Distribution({"ext_modules": found["ext_modules"]})
dist.get_command_obj("build_ext").inplace = True
dist.run_command("build_ext")
"""


def build_native(repo: Path) -> None:
    """Rebuild the copy's ``triton_init._native`` from its (mutated) ``csrc/``; raise if it does not build."""
    for built in (repo / "triton_init").glob("_native*"):
        built.unlink()
    out = subprocess.run([sys.executable, "-c", BUILD_NATIVE], cwd=repo, env=_env(repo), capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0 or not any((repo / "triton_init").glob("_native*")):
        raise RuntimeError(f"the mutated C does not build: {(out.stdout + out.stderr).strip()[-2000:]}")


def pattern_count(mutation: Mutation, root: Path = ROOT) -> int:
    path = root / mutation.path
    return path.read_text().count(mutation.old) if path.is_file() else 0


def _module_of(path: str) -> str:
    if path.startswith("csrc/"):
        return "triton_init._native"
    stem = path[:-3].replace("/", ".")
    return "triton_init." + stem if path.startswith("kernels/") else stem


def _env(repo: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def verify_import(repo: Path, mutation: Mutation | None) -> None:
    """Fail unless the copy's own modules are what ``import triton_init`` gives there (with the mutation)."""
    module = _module_of(mutation.path) if mutation else "triton_init.kernels.fill"
    probe = ("import importlib, sys, triton_init; m = importlib.import_module(sys.argv[1]); "
             "print(triton_init.__file__); print(m.__file__)")
    out = subprocess.run([sys.executable, "-c", probe, module], cwd=repo, env=_env(repo), capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"the copy does not import: {out.stderr.strip()[-2000:]}")
    package_file, module_file = (Path(line).resolve() for line in out.stdout.split())
    for imported in (package_file, module_file):
        if not imported.is_relative_to(repo.resolve()):
            raise RuntimeError(f"{imported} is imported instead of the copy under {repo}")
    if mutation and mutation.path.startswith("csrc/"):
        if module_file.stat().st_mtime < (repo / mutation.path).stat().st_mtime:
            raise RuntimeError(f"{module_file} was built before the mutation")
    elif mutation and mutation.new not in module_file.read_text():
        raise RuntimeError(f"{module_file} does not hold the mutation")


def run_tests(repo: Path, args, junit: Path, timeout: float):
    """(pytest's return code, the failed node ids, the output's tail). A test that kills the process (an
    out-of-bounds store can corrupt the interpreter's memory) is found in faulthandler's traceback, or else
    as the last test pytest started (``-v`` names each test as it starts; output unbuffered)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-v", "-p", "no:cacheprovider", f"--junitxml={junit}", *args]
    env = dict(_env(repo), PYTHONUNBUFFERED="1")
    try:
        out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, [], f"timed out after {timeout:.0f} s"
    failed = []
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                module = case.get("classname", "").replace(".", "/")
                failed.append(f"{module}.py::{case.get('name')}")
    elif out.returncode < 0:
        frames = re.findall(r'File "[^"]*/(tests/test_\w+\.py)", line \d+ in (test_\w+)', out.stderr)
        started = re.findall(r"^(tests/test_\w+\.py::\S+)", out.stdout, re.MULTILINE)
        failed = [f"{path}::{name}" for path, name in frames[:1]] or started[-1:]
    return out.returncode, failed, (out.stdout + out.stderr)[-3000:]


def check(mutation: Mutation, timeout: float, keep: bool) -> Result:
    result = Result(mutation)
    if mutation.expect == GPU_ONLY:
        result.outcome, result.detail = "not run", "GPU-only: device check (pytest -m gpu)"
        return result
    start = time.monotonic()
    parent = Path(tempfile.mkdtemp(prefix="mutation-"))
    try:
        repo = make_copy(parent)
        target = repo / mutation.path
        text = target.read_text() if target.is_file() else ""
        if text.count(mutation.old) != 1:
            count = text.count(mutation.old)
            result.outcome = "not found" if count == 0 else "error"
            result.detail = (f"pattern not found in {mutation.path}: the code changed since the mutation was "
                             "written (update or drop it)" if count == 0 else
                             f"the pattern occurs {count} times in {mutation.path}: make it unique")
            return result
        target.write_text(text.replace(mutation.old, mutation.new))
        if mutation.path.startswith("csrc/"):
            build_native(repo)
        verify_import(repo, mutation)
        code, failed, tail = run_tests(repo, mutation.tests, parent / "junit.xml", timeout)
        if code == 0:
            result.outcome = "survived"
        elif (code == 1 or code is not None and code < 0) and failed:
            result.outcome, result.caught_by = "caught", failed
            if code < 0:
                result.detail = f"the test process died (signal {-code})"
        else:
            result.outcome, result.detail = "error", f"pytest returned {code}: {tail}"
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        result.outcome, result.detail = "error", str(exc)
    finally:
        result.seconds = time.monotonic() - start
        if not keep:
            shutil.rmtree(parent, ignore_errors=True)
    return result


def control(results, timeout: float) -> tuple:
    """(passed, message): the catching tests run on an unmutated copy, where they must all pass."""
    node_ids = sorted({node for r in results for node in r.caught_by})
    if not node_ids:
        return True, "control: no catching tests to re-run"
    parent = Path(tempfile.mkdtemp(prefix="mutation-control-"))
    try:
        repo = make_copy(parent)
        verify_import(repo, None)
        code, failed, tail = run_tests(repo, node_ids, parent / "junit.xml", timeout)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    if code == 0:
        return True, f"control: the {len(node_ids)} catching tests pass on the unmutated copy"
    return False, f"CONTROL FAILED (pytest returned {code}; failing unmutated: {failed}):\n{tail}"


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def markdown_table(results) -> str:
    lines = ["| mutation | file | changes output | result | s | caught by / note |", "|---|---|---|---|---:|---|"]
    for r in results:
        note = " ".join([*(c.removeprefix("tests/") for c in r.caught_by[:1]), *r.detail.splitlines()[:1]])
        flag = "" if r.as_expected else " **unexpected**"
        lines.append(f"| {r.mutation.name} | `{r.mutation.path}` | {r.mutation.expect} | {r.outcome}{flag} | "
                     f"{r.seconds:.0f} | {note.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="mutations checked at once (default 2)")
    parser.add_argument("--only", action="append", default=[],
                        help="only mutations whose name contains this (repeatable)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per mutation's test run")
    parser.add_argument("--skip", action="append", default=[],
                        help="leave out mutations whose name contains this (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown (tests/README.md's)")
    args = parser.parse_args(argv)
    mutations = [m for m in MUTATIONS if (not args.only or any(o.lower() in m.name.lower() for o in args.only))
                 and not any(o.lower() in m.name.lower() for o in args.skip)]
    if args.list:
        for m in mutations:
            count = pattern_count(m)
            applies = "applies" if count == 1 else ("NOT FOUND" if count == 0 else f"MATCHES {count}x")
            print(f"{m.name:72} {m.path:28} {m.expect:16} {applies}")
        return 0
    start, cpu_start = time.monotonic(), _children_cpu_seconds()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(check, m, args.timeout, args.keep) for m in mutations]
        results = []
        for future in futures:
            results.append(future.result())
            r = results[-1]
            print(f"  {r.outcome:8} {r.seconds:6.0f} s  {r.mutation.name}", file=sys.stderr, flush=True)
    print(f"{'mutation':72} {'file':28} {'changes output':16} {'result':9} {'s':>5}  caught by / note")
    print("-" * 170)
    for r in results:
        note = " ".join([*r.caught_by[:1], *r.detail.splitlines()[:1]])
        flag = "" if r.as_expected else "  <-- UNEXPECTED"
        print(f"{r.mutation.name:72} {r.mutation.path:28} {r.mutation.expect:16} {r.outcome:9} {r.seconds:5.0f}  "
              f"{note}{flag}")
    for r in results:
        if r.outcome == "error":
            print(f"\n{r.mutation.name}: {r.detail}")
    counts = {o: sum(r.outcome == o for r in results) for o in ("caught", "survived", "not run", "not found", "error")}
    print(f"\n{len(results)} mutations: " + ", ".join(f"{n} {o}" for o, n in counts.items())
          + f"; {time.monotonic() - start:.0f} s with {args.jobs} jobs, {_children_cpu_seconds() - cpu_start:.0f} "
          f"CPU s (on a loaded machine, CPU s / cores bounds the wall time a quiet one takes; load now "
          f"{os.getloadavg()[0]:.1f})")
    control_passed, message = control(results, args.timeout)
    print(message)
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(results))
    unexpected = [r.mutation.name for r in results if not r.as_expected]
    if unexpected:
        print(f"not as expected: {unexpected}")
    return 0 if control_passed and not unexpected else 1


if __name__ == "__main__":
    sys.exit(main())
