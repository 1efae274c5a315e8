"""Offline SASS report: compile every kernel variant for sm_90 and count what each output element costs.

No GPU needed. Each variant in ``VARIANTS`` is compiled with ``triton.compile(ASTSource(...),
target=GPUTarget("cuda", 90, 32))``, with the divisibility-16 hints the runtime adds for aligned pointers
and counts, then disassembled with the cuobjdump shipped in triton's package. Prints a table and writes
``bench/results/sass.json``.

    python bench/sass_report.py [--out PATH] [--only SUBSTRING] [--jobs N]

To add a kernel, append a ``Variant`` to ``VARIANTS`` (see ``fill_variant``).
"""

import argparse
import concurrent.futures
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # the runtime's default; silences triton 3.9's warning
os.environ.pop("TRITON_INTERPRET", None)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "sass.json"
DTYPES = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp64": "fp64"}


@dataclass
class Variant:
    """One compiled kernel: what to compile and how many output elements one program writes."""

    kernel: str  # report name
    dtype: str  # output dtype, triton spelling (fp32, bf16, fp16, fp64)
    module: str  # importable module holding the jit function
    function: str  # the jit function's name
    signature: dict  # arg name -> triton type ("*bf16", "i32", "i64", "u32"); constexprs are filled in
    constexprs: dict  # arg name -> value
    divisible: tuple  # arg names the runtime marks divisible by 16 (aligned pointers, counts)
    elements_per_program: int
    num_warps: int = 4
    num_stages: int = 3
    options: dict = field(default_factory=dict)


def _import_kernels():
    """``triton_init.kernels``, or the top-level ``kernels`` dir of a source checkout that is not installed."""
    try:
        import triton_init.kernels  # noqa: F401

        return "triton_init.kernels"
    except ImportError:
        sys.path.insert(0, str(ROOT))
        import kernels  # noqa: F401

        return "kernels"


def fill_variant(kernel: str, dtype: str, dist: int, *, central_only=False, flat=True, block_groups=None,
                 num_warps=None, fast=True) -> Variant:
    """The fill kernel as the launcher runs it on a large contiguous tensor (FLAT, HEAD=0) or a strided view."""
    pkg = _import_kernels()
    fill = __import__(f"{pkg}.fill", fromlist=["fill"])
    block_groups = block_groups or fill.default_block_groups(dtype == "fp64", dist, central_only)
    num_warps = num_warps or fill.DEFAULT_NUM_WARPS
    sig = {"out_ptr": f"*{dtype}", "mem_offset": "i64", "n_inner": "i32", "inner_stride": "i32",
           "blocks_per_row": "i32", "size2": "i32", "size3": "i32"}
    for name in ("mstride1", "mstride2", "mstride3", "lstride1", "lstride2", "lstride3"):
        sig[name] = "i64"
    for name in ("base_lo", "base_hi", "seed_lo", "seed_hi", "stream_lo", "stream_hi"):
        sig[name] = "u32"
    for k in range(7):
        sig[f"prm{k}"] = "i64"
    const = {"DIST": dist, "BLOCK_GROUPS": block_groups, "FLAT": flat, "HEAD": 0, "CENTRAL_ONLY": central_only,
             "FAST": fast}
    extra = getattr(fill, "sass_constexprs", None)
    if extra is not None:  # constexprs the launcher derives from the call (e.g. an fp32 uniform path)
        const.update(extra(dtype, dist))
    divisible = ("out_ptr", "mem_offset", "n_inner")
    if flat:  # the runtime turns ints equal to 1 into constants
        for name in ("inner_stride", "size2", "size3"):
            sig.pop(name)
            const[name] = 1
    return Variant(kernel, dtype, f"{pkg}.fill", "_fill_kernel", sig, const, divisible, 4 * block_groups,
                   num_warps=num_warps)


def transposed_variant(kernel: str, dtype: str, dist: int) -> Variant:
    """The column-major tile path of the fill (orthogonal_'s Gaussian prep into QR's fp32 matrix)."""
    pkg = _import_kernels()
    fill = __import__(f"{pkg}.fill", fromlist=["fill"])
    sig = {"out_ptr": f"*{dtype}", "mem_offset": "i64", "n_rows": "i32", "n_cols": "i32", "col_stride": "i64",
           "row_groups": "i64", "col_tiles": "i32"}
    for name in ("base_group_lo", "base_group_hi", "seed_lo", "seed_hi", "stream_lo", "stream_hi"):
        sig[name] = "u32"
    for k in range(7):
        sig[f"prm{k}"] = "i64"
    const = {"DIST": dist, "TILE_ROWS": fill.TILE_ROWS, "TILE_GROUPS": fill.TILE_GROUPS, "CENTRAL_ONLY": False,
             "FAST": True}
    return Variant(kernel, dtype, f"{pkg}.fill", "_fill_transposed_kernel", sig, const,
                   ("out_ptr", "mem_offset", "n_rows", "n_cols", "col_stride", "row_groups"),
                   4 * fill.TILE_ROWS * fill.TILE_GROUPS, num_warps=fill.DEFAULT_NUM_WARPS)


def flat_variant(kernel: str, dtype: str, dist: int, *, central_only=False) -> Variant:
    """The segment-table kernel of ``kernels/flat.py`` (one launch over many parameters' pieces).

    Its arguments are read off the kernel: pointers are int64 tables (int32 for ``segment_ptr``), other
    runtime ints i32; VEC and ALIGNED, where the kernel has them, as for 16-byte aligned segments.
    """
    pkg = _import_kernels()
    flat = __import__(f"{pkg}.flat", fromlist=["flat"])
    fn = flat._flat_fill_kernel
    interface = __import__(f"{pkg}.interface", fromlist=["interface"])
    block_groups, num_warps = interface.DEFAULT_BLOCK_GROUPS, interface.DEFAULT_NUM_WARPS
    const = {"DIST": dist, "SEARCH_STEPS": 8, "BLOCK_GROUPS": block_groups, "CENTRAL_ONLY": central_only,
             "FAST": True, "EXACT_BF16": False, "VEC": 16 // {"fp64": 8, "fp32": 4}.get(dtype, 2),
             "ALIGNED": True, "UNIFORM_F32": dist == interface.UNIFORM and dtype != "fp64"}
    const = {k: v for k, v in const.items() if k in fn.arg_names}
    sig = {}
    for name in fn.arg_names:
        if name in const:
            continue
        if name == "out_ptr":
            sig[name] = f"*{dtype}"
        elif name == "segment_ptr":
            sig[name] = "*i32"
        elif name.endswith("_ptr"):
            sig[name] = "*i64"
        elif name.startswith("seed_"):
            sig[name] = "u32"
        else:
            sig[name] = "i32"
    divisible = tuple(n for n in fn.arg_names if n.endswith("_ptr"))
    return Variant(kernel, dtype, f"{pkg}.flat", "_flat_fill_kernel", sig, const, divisible,
                   4 * block_groups, num_warps=num_warps)


def orthogonal_variant(kernel: str, dtype: str, transposed: bool) -> Variant:
    """The orthogonal epilogue of ``kernels/orthogonal.py``: reads Q (fp32) and diag R, writes gain * Q * sign."""
    pkg = _import_kernels()
    ortho = __import__(f"{pkg}.orthogonal", fromlist=["orthogonal"])
    rows, cols = ortho.DEFAULT_BLOCK_ROWS, ortho.DEFAULT_BLOCK_COLS
    sig = {"out_ptr": f"*{dtype}", "q_ptr": "*fp32", "r_ptr": "*fp32", "col_index_ptr": "*i64",
           "col_mem_ptr": "*i64", "n_rows": "i32", "n_cols": "i32", "col_blocks": "i32", "row_offset": "i64",
           "out_row_stride": "i64", "q_stride0": "i64", "q_stride1": "i64", "r_diag_stride": "i64",
           "gain_bits": "i64"}
    const = {"TRANSPOSED": transposed, "BLOCK_ROWS": rows, "BLOCK_COLS": cols}
    divisible = ("out_ptr", "q_ptr", "r_ptr", "col_index_ptr", "col_mem_ptr", "n_cols", "out_row_stride",
                 "q_stride0" if transposed else "q_stride1")
    return Variant(kernel, dtype, f"{pkg}.orthogonal", "_orthogonal_epilogue_kernel", sig, const, divisible,
                   rows * cols, num_warps=ortho.DEFAULT_NUM_WARPS)


def _has_module(name: str) -> bool:
    try:
        __import__(f"{_import_kernels()}.{name}", fromlist=[name])
        return True
    except ImportError:
        return False


def default_variants() -> list:
    """The table: every kernel the library launches, as the runtime would compile it for a large tensor."""
    codes = __import__(f"{_import_kernels()}.interface", fromlist=["interface"])
    uniform, normal, trunc_normal = codes.UNIFORM, codes.NORMAL, codes.TRUNC_NORMAL
    variants = []
    for dtype in DTYPES:
        variants.append(fill_variant("uniform", dtype, uniform))
        variants.append(fill_variant("normal", dtype, normal))
        variants.append(fill_variant("trunc_normal_central", dtype, trunc_normal, central_only=True))
        variants.append(fill_variant("trunc_normal", dtype, trunc_normal))
    variants.append(fill_variant("normal_strided", "bf16", normal, flat=False))
    variants.append(transposed_variant("orthogonal_prep", "fp32", normal))
    if _has_module("flat"):
        variants.append(flat_variant("flat_normal", "bf16", normal))
        variants.append(flat_variant("flat_trunc_normal_central", "bf16", trunc_normal, central_only=True))
    if _has_module("orthogonal"):
        variants.append(orthogonal_variant("orthogonal_epilogue", "bf16", False))
        variants.append(orthogonal_variant("orthogonal_epilogue_t", "bf16", True))
    variants.extend(_optional_variants())
    return variants


def _optional_variants() -> list:
    """Kernels other modules register: a module-level ``sass_variants(Variant)`` returning a list."""
    pkg = _import_kernels()
    found = []
    for name in ("orthogonal", "flat"):
        try:
            module = __import__(f"{pkg}.{name}", fromlist=[name])
        except ImportError:
            continue
        make = getattr(module, "sass_variants", None)
        if make is not None:
            found.extend(make(Variant))
    return found


VARIANTS = default_variants


# ---------------------------------------------------------------------------------------------------------
# compile and disassemble


def _cuobjdump() -> str:
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not path.exists():
        raise FileNotFoundError(f"cuobjdump not found at {path}")
    return str(path)


def _attrs(fn, names):
    """The divisibility hints in the form this triton version's ASTSource takes."""
    index = {n: i for i, n in enumerate(fn.arg_names)}
    try:  # triton <= 3.2: an AttrsDescriptor
        from triton.backends.compiler import AttrsDescriptor

        return AttrsDescriptor.from_dict({"arg_properties": {"tt.divisibility": [index[n] for n in names]},
                                          "cls": "AttrsDescriptor"})
    except ImportError:  # triton >= 3.3: {(arg index,): [[name, value]]}
        return {(index[n],): [["tt.divisibility", 16]] for n in names}


def compile_cubin(v: Variant) -> bytes:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    module = __import__(v.module, fromlist=[v.function])
    fn = getattr(module, v.function)
    fn = getattr(fn, "fn", fn) if not hasattr(fn, "arg_names") else fn
    defaults = {name: p.default for name, p in inspect.signature(fn.fn).parameters.items()
                if p.default is not inspect.Parameter.empty}
    signature, constexprs = {}, dict(v.constexprs)
    for name in fn.arg_names:
        if name in v.constexprs:
            signature[name] = "constexpr"
        elif name in v.signature:
            signature[name] = v.signature[name]
        elif name in defaults:  # a constexpr with a default the launcher leaves alone
            signature[name] = "constexpr"
            constexprs[name] = defaults[name]
        else:
            raise KeyError(f"{v.kernel}: no type for argument {name!r}")
    src = ASTSource(fn, signature, constexprs=constexprs, attrs=_attrs(fn, v.divisible))
    options = {"num_warps": v.num_warps, "num_stages": v.num_stages, **v.options}
    compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options)
    return compiled.asm["cubin"]


INSTRUCTION = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;")


def parse_sass(text: str) -> list:
    """The instructions of a ``cuobjdump -sass`` listing, as strings without address and encoding."""
    return [m.group(1) for m in map(INSTRUCTION.match, text.splitlines()) if m]


def opcode(instruction: str) -> str:
    """'@!P0 STG.E.128 [R2.64], R4' -> 'STG.E.128'."""
    parts = instruction.split()
    if parts and parts[0].startswith("@"):
        parts = parts[1:]
    return parts[0] if parts else ""


def store_width(op: str) -> int:
    """Bytes written by one global store opcode (STG.E.128 -> 16)."""
    suffixes = op.split(".")[1:]
    for s, width in (("128", 16), ("64", 8), ("U16", 2), ("S16", 2), ("U8", 1), ("S8", 1)):
        if s in suffixes:
            return width
    return 4


def count_sass(instructions: list) -> dict:
    """Executed-instruction counts of straight-line code: NOPs and the closing self-branch left out."""
    ops = [opcode(i) for i in instructions]
    # The listing ends with EXIT; BRA to itself; NOP padding. Branches before that are real control flow.
    last_exit = max((k for k, op in enumerate(ops) if op == "EXIT"), default=len(ops) - 1)
    body = [op for op in ops[: last_exit + 1] if op != "NOP"]
    stores = [op for op in body if op.startswith("STG") or op.startswith("ST.")]
    branches = sum(1 for op in body if op.startswith("BRA"))
    return {
        "instructions": len(body),
        "mufu": sum(1 for op in body if op.startswith("MUFU")),
        "store_bytes": max((store_width(op) for op in stores), default=0),
        "stores": len(stores),
        "spills": sum(1 for op in body if op.startswith("LDL") or op.startswith("STL")),
        "shared": sum(1 for op in body if op.startswith(("STS", "LDS", "BAR"))),
        "fp64": sum(1 for op in body if op.startswith(("DADD", "DMUL", "DFMA"))),
        "branches": branches,
    }


RESOURCES = re.compile(r"REG:(\d+).*?STACK:(\d+).*?SHARED:(\d+).*?LOCAL:(\d+)")


def parse_resources(text: str) -> dict:
    m = RESOURCES.search(text)
    if not m:
        return {}
    reg, stack, shared, local = map(int, m.groups())
    return {"registers": reg, "stack": stack, "shared_bytes": shared, "local_bytes": local}


def analyse(v: Variant) -> dict:
    import triton

    start = time.perf_counter()
    cubin = compile_cubin(v)
    tool = _cuobjdump()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        sass = subprocess.run([tool, "-sass", path], capture_output=True, text=True, check=True).stdout
        res = subprocess.run([tool, "-res-usage", path], capture_output=True, text=True, check=True).stdout
    counts = count_sass(parse_sass(sass))
    resources = parse_resources(res)
    per_thread = v.elements_per_program / (32 * v.num_warps)
    return {
        "kernel": v.kernel,
        "dtype": v.dtype,
        "instructions_per_element": round(counts["instructions"] / per_thread, 2),
        "mufu_per_element": round(counts["mufu"] / per_thread, 3),
        "store_bytes": counts["store_bytes"],
        "registers": resources.get("registers"),
        "spills": counts["spills"],
        "shared_per_element": round(counts["shared"] / per_thread, 3),
        "fp64_per_element": round(counts["fp64"] / per_thread, 3),
        "branches": counts["branches"],
        "elements_per_thread": per_thread,
        "num_warps": v.num_warps,
        "triton_version": triton.__version__,
        "compile_s": round(time.perf_counter() - start, 2),
    }


def _analyse_safely(v: Variant) -> dict:
    try:
        return analyse(v)
    except Exception as exc:  # report and go on: one broken variant must not hide the rest
        return {"kernel": v.kernel, "dtype": v.dtype, "error": f"{type(exc).__name__}: {exc}"}


def format_table(records: list) -> str:
    head = f"{'kernel':<26} {'dtype':<5} {'instr/el':>8} {'mufu/el':>8} {'store B':>7} {'regs':>5} {'spills':>6} " \
           f"{'smem/el':>7} {'f64/el':>6}"
    lines = [head, "-" * len(head)]
    for r in records:
        if "error" in r:
            lines.append(f"{r['kernel']:<26} {r['dtype']:<5} ERROR {r['error']}")
            continue
        lines.append(f"{r['kernel']:<26} {r['dtype']:<5} {r['instructions_per_element']:>8.2f} "
                     f"{r['mufu_per_element']:>8.3f} {r['store_bytes']:>7} {r['registers']!s:>5} {r['spills']:>6} "
                     f"{r['shared_per_element']:>7.3f} {r['fp64_per_element']:>6.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write (default: %(default)s)")
    parser.add_argument("--only", default=None, help="only variants whose 'kernel/dtype' matches this regex")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    variants = VARIANTS()
    if args.only:
        variants = [v for v in variants if re.search(args.only, f"{v.kernel}/{v.dtype}")]
    if args.jobs > 1 and len(variants) > 1:
        with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
            records = list(pool.map(_analyse_safely, variants))
    else:
        records = [_analyse_safely(v) for v in variants]
    print(format_table(records))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"\n{len(records)} variants in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
