"""Offline ISA report: every kernel variant the launchers pick, compiled for every target, counted per element.

No GPU needed. Each variant is a representative call that the launcher itself plans for the target
(``fill_launches``, ``flat_launches``, ``epilogue_launch``: the same constexprs, block sizes and warps as at
run time), compiled through Triton's own argument binder (the divisibility-16 and ints-equal-to-1
specialisations a launch adds) for sm_80, sm_90, sm_100 (SASS from the cuobjdump in triton's package) and
gfx942, gfx950 (AMDGCN from triton's bundled LLVM). Each trunc_normal path is its own variant, so every
count is straight-line code that the path executes. Prints a table and writes ``bench/results/isa.json``.

    python bench/isa_report.py [--out PATH] [--only REGEX] [--targets sm_90,gfx942|device] [--jobs N]
    python bench/isa_report.py --check   # the compile check: each specialisation for each target, small

Per (kernel, path, dtype, target): instructions per element, transcendental instructions per element, issue
cycles per element (AMD: quarter-rate VALU ops count 4), registers (VGPRs on AMD), spills (LDL/STL, or
AMD scratch bytes), the widest global store in bytes, and the predicted fraction of the GPU's write
roofline (see ``GPUS`` and bench/README.md).
"""

import argparse
import concurrent.futures
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # silences triton 3.9's warning; launches ask for fusion
os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "isa.json"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp64": 8}
SEED = 0x0123456789ABCDEF
STREAM = 0xFEDCBA9876543210


def _kernels():
    """The kernel modules (``triton_init.kernels``: install the package, or use bench/device_check.sh's shim)
    and ``interface``, the distribution codes they share with their callers."""
    from triton_init.kernels import fill, flat, interface, orthogonal, target

    return fill, flat, orthogonal, target, interface


# ---------------------------------------------------------------------------------------------------------
# the GPUs each target stands for, and what a count predicts there


@dataclass(frozen=True)
class GPU:
    """Throughput assumptions for one chip (see bench/README.md, "Roofline")."""

    name: str
    target: str  # sm_90, gfx942, ...
    units: int  # SMs or CUs
    clock_ghz: float  # boost clock
    lanes_per_clock: int  # thread-instructions issued per unit per clock
    transcendental_per_clock: int  # MUFU (NVIDIA) or transcendental VALU lanes (AMD) per unit per clock
    write_tbps: float  # write bandwidth, TB/s

    def predicted_fraction(self, record: dict) -> float:
        """min(1, compute rate / memory rate) in elements per second: the share of the write roofline."""
        memory = self.write_tbps * 1e12 / BYTES[record["dtype"]]
        issue = self.units * self.clock_ghz * 1e9 * self.lanes_per_clock / record["cycles_per_element"]
        rates = [issue]
        if record["transcendental_per_element"]:
            rates.append(self.units * self.clock_ghz * 1e9 * self.transcendental_per_clock
                         / record["transcendental_per_element"])
        return min(1.0, min(rates) / memory)


GPUS = (
    GPU("A100-SXM4-80GB", "sm_80", 108, 1.41, 64, 16, 2.0),
    GPU("H200", "sm_90", 132, 1.98, 128, 16, 4.8),
    GPU("B200", "sm_100", 148, 1.965, 128, 16, 8.0),
    GPU("MI300X", "gfx942", 304, 2.1, 64, 16, 5.3),
    GPU("MI355X", "gfx950", 256, 2.4, 64, 16, 8.0),
)


# ---------------------------------------------------------------------------------------------------------
# the variants: representative calls, planned by the launchers


@dataclass(frozen=True)
class Variant:
    """One kernel specialisation: the launcher's launch for ``call`` on a target."""

    kernel: str  # "fill", "flat" or "orthogonal_epilogue"
    path: str  # what it computes: "normal", "trunc_normal_untruncated", "normal_strided", ...
    dtype: str
    call: str  # the representative call, in words
    plan: object  # Target -> Launch

    @property
    def name(self) -> str:
        return f"{self.kernel}/{self.path}/{self.dtype}"


def _meta(shape, dtype):
    return torch.empty(shape, dtype=DTYPES[dtype] if isinstance(dtype, str) else dtype, device="meta")


def _trunc_params(dtype: str, mean, std, a, b):
    from triton_init.reference import dist_params

    codes = _kernels()[4]
    return dist_params(codes.TRUNC_NORMAL, DTYPES[dtype], mean=mean, std=std, a=a, b=b)


def _plan_fill(dtype: str, dist: int, params, sizes, mem_strides, logical_strides, base, target):
    fill = _kernels()[0]
    (launch,) = fill.fill_launches(_meta(sizes, dtype), dist, params, SEED, STREAM, sizes, mem_strides,
                                   logical_strides, base, target=target)
    return launch


def _plan_flat(dtype: str, dist: int, params, numel: int, aligned: bool, target):
    flat = _kernels()[1]
    start = 0 if aligned else 4 * 1000 + 3
    segments = [(0, start, numel, STREAM, params), (numel, start + 7 * numel, numel, STREAM + 1, params)]
    (launch,) = flat.flat_launches(_meta((2 * numel,), dtype), dist, segments, SEED, target=target)
    return launch


def _plan_epilogue(dtype: str, transposed: bool, rows: int, cols: int, target):
    orthogonal = _kernels()[2]
    q = _meta((cols, rows) if transposed else (rows, cols), torch.float32)
    index = _meta((cols,), torch.int64)
    return orthogonal.epilogue_launch(_meta((rows, cols), dtype), q, _meta((cols, cols), torch.float32), index, index,
                                      0, 1.0, transposed, target=target)


def _fill(dtype, dist, params, sizes, mem_strides, logical_strides, base=0):
    return functools.partial(_plan_fill, dtype, dist, params, sizes, mem_strides, logical_strides, base)


def _flat(dtype, dist, params, numel, aligned):
    return functools.partial(_plan_flat, dtype, dist, params, numel, aligned)


def _epilogue(dtype, transposed, rows, cols):
    return functools.partial(_plan_epilogue, dtype, transposed, rows, cols)


# Representative trunc_normal calls, one per path (kernels/trunc_paths.py), as (mean, std, a, b).
TRUNC_CALLS = {
    "central": (0.0, 0.02, -0.04, 0.04),  # +-2 std: variance scaling's truncated normal
    "untruncated": (0.0, 0.02, -2.0, 2.0),  # torchtitan's and timm's trunc_normal_(std=0.02): +-100 std
    "wide": (0.0, 1.0, -3.0, 3.0),  # +-3 std (torchtitan's output layer): the clamp acts
    "wide_unclamped": (0.0, 1.0, -6.0, 6.0),  # +-6 std: every value inside [a, b], no clamp
    "tail": (0.0, 1.0, 5.0, 7.0),
}


def variants(small: bool = False) -> list:
    """Every specialisation the launchers pick, each as a representative call: the flat fill for each
    distribution, trunc_normal path and dtype, then each other layout kind and kernel.

    The report plans the calls large (whole programs of the default block: the counts per element); the
    compile check plans them ``small``, which compiles the same code over shorter blocks, faster.
    """
    codes = _kernels()[4]
    n = 256 if small else 1 << 24
    rows, cols = (8, 64) if small else (4096, 1024)
    found = []
    for dtype in DTYPES:
        found.append(Variant("fill", "uniform", dtype, "uniform_(a=-1, b=1)",
                             _fill(dtype, codes.UNIFORM, (-1.0, 2.0), (n,), (1,), (1,))))
        found.append(Variant("fill", "normal", dtype, "normal_(std=0.02)",
                             _fill(dtype, codes.NORMAL, (0.0, 0.02), (n,), (1,), (1,))))
        for name, call in TRUNC_CALLS.items():
            found.append(Variant("fill", f"trunc_normal_{name}", dtype,
                                 "trunc_normal_(mean={:g}, std={:g}, a={:g}, b={:g})".format(*call),
                                 _fill(dtype, codes.TRUNC_NORMAL, _trunc_params(dtype, *call), (n,), (1,), (1,))))
    found.append(Variant("fill", "uniform_fp64_math", "fp32", "uniform_(a=0.1, b=0.7): b - a not exact in fp32",
                         _fill("fp32", codes.UNIFORM, (0.1, 0.6), (n,), (1,), (1,))))
    shard = cols // 2
    for dtype in ("bf16", "fp32"):
        found.append(Variant("fill", "normal_strided", dtype, f"normal_ of rank 3's tensor-parallel Shard(1) block "
                             f"({rows}, {shard}) of a ({rows}, {8 * shard}) weight: tiles of whole rows",
                             _fill(dtype, codes.NORMAL, (0.0, 0.02), (rows, shard), (shard, 1), (8 * shard, 1),
                                   base=3 * shard)))
    found.append(Variant("fill", "normal_strided_unaligned", "bf16", f"normal_ of a ({rows}, {cols - 1}) block at an "
                         "odd offset: rows that start mid-group",
                         _fill("bf16", codes.NORMAL, (0.0, 0.02), (rows, cols - 1), (cols, 1), (8 * cols - 3, 1),
                               base=5)))
    found.append(Variant("fill", "normal_scattered", "bf16", f"normal_ of a transposed ({rows}, {cols}) view at an odd "
                         "offset: one element per store",
                         _fill("bf16", codes.NORMAL, (0.0, 0.02), (cols, rows), (1, cols), (rows, 1), base=1)))
    found.append(Variant("fill", "normal_column_major", "fp32", "orthogonal_'s Gaussian into QR's column-major "
                         "matrix (tiles)", _fill("fp32", codes.NORMAL, (0.0, 1.0), (cols, rows), (1, cols), (rows, 1))))
    found.append(Variant("fill", "normal_unaligned", "bf16", "normal_ of a flat run starting mid-group",
                         _fill("bf16", codes.NORMAL, (0.0, 0.02), (n - 3,), (1,), (1,), base=4 * 1000 + 3)))
    segment = n // 2
    for dtype in ("bf16", "fp32"):
        found.append(Variant("flat", "normal", dtype, "init_flat_: normal segments, 16-byte aligned",
                             _flat(dtype, codes.NORMAL, (0.0, 0.02), segment, True)))
        found.append(Variant("flat", "trunc_normal_untruncated", dtype, "init_flat_: trunc_normal_(std=0.02)",
                             _flat(dtype, codes.TRUNC_NORMAL, _trunc_params(dtype, *TRUNC_CALLS["untruncated"]),
                                   segment, True)))
        found.append(Variant("flat", "trunc_normal_central", dtype, "init_flat_: trunc_normal_ on +-2 std",
                             _flat(dtype, codes.TRUNC_NORMAL, _trunc_params(dtype, *TRUNC_CALLS["central"]),
                                   segment, True)))
        found.append(Variant("flat", "uniform", dtype, "init_flat_: uniform segments",
                             _flat(dtype, codes.UNIFORM, (-1.0, 2.0), segment, True)))
    found.append(Variant("flat", "normal_unaligned", "bf16", "init_flat_: FSDP1 segments starting mid-group",
                         _flat("bf16", codes.NORMAL, (0.0, 0.02), segment - 5, False)))
    found.append(Variant("flat", "constant", "fp32", "init_flat_: constant segments",
                         _flat("fp32", codes.CONSTANT, (1.0,), segment, True)))
    for transposed in (False, True):
        found.append(Variant("orthogonal_epilogue", "transposed" if transposed else "direct", "bf16",
                             "orthogonal_: sign(diag R) * gain * Q, cast to bf16", _epilogue("bf16", transposed,
                                                                                              rows, cols)))
    return found


# The compile check (``--check``): each kernel function and layout kind, each distribution and trunc_normal path
# (clamped and not), each output dtype's store, fp64 math, for every target, planned small: 22 variants. The
# other report rows repeat these constructs in other dtypes or alignments.
COMPILE_CHECK = re.compile(
    r"^fill/(uniform|normal)/(fp32|bf16)$|^fill/normal/(fp16|fp64)$"
    r"|^fill/trunc_normal_(central|untruncated|wide|tail)/bf16$|^fill/trunc_normal_wide_unclamped/fp32$"
    r"|^fill/trunc_normal_central/fp64$|^fill/(uniform_fp64_math|normal_scattered|normal_column_major)/"
    r"|^fill/normal_strided/bf16$|^flat/(normal|trunc_normal_central)/bf16$|^flat/(trunc_normal_untruncated|constant)/fp32$"
    r"|^orthogonal_epilogue/")


def check_variants() -> list:
    return [v for v in variants(small=True) if COMPILE_CHECK.search(v.name)]


def targets(names=None) -> list:
    """The offline targets named (all by default); "device" is this machine's GPU, whatever its arch."""
    target = _kernels()[3]
    found = [t for t in target.OFFLINE_TARGETS if names is None or t.name in names]
    if names is not None and "device" in names:
        found.append(target.of_device(torch.device("cuda")))
    return found


# ---------------------------------------------------------------------------------------------------------
# compile


def compile_launch(launch, target):
    """Triton's compiled kernel for ``launch`` on ``target``, specialised on its arguments as a launch would be."""
    from triton.compiler import ASTSource, compile, make_backend
    from triton.runtime.jit import create_function_from_signature

    kernel = launch.kernel
    gpu_target = target.gpu_target()
    backend = make_backend(gpu_target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    kwargs = dict(launch.constexprs, **launch.options)
    bound_args, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound_args, specialization, options)
    return compile(ASTSource(kernel, signature, constexprs, attrs), target=gpu_target, options=options.__dict__)


def elements_per_program(launch) -> int:
    c = launch.constexprs
    if "TILE_ROWS" in c:
        return 4 * c["TILE_ROWS"] * c["TILE_GROUPS"]
    if "BLOCK_GROUPS" in c:
        return 4 * c["BLOCK_GROUPS"] * c.get("ROWS", 1)
    return c["BLOCK_ROWS"] * c["BLOCK_COLS"]


# ---------------------------------------------------------------------------------------------------------
# NVIDIA: SASS


def _cuobjdump() -> str:
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not path.exists():
        raise FileNotFoundError(f"cuobjdump not found at {path}")
    return str(path)


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
    return {
        "instructions": len(body),
        "cycles": len(body),
        "transcendental": sum(1 for op in body if op.startswith("MUFU")),
        "store_bytes": max((store_width(op) for op in stores), default=0),
        "spills": sum(1 for op in body if op.startswith("LDL") or op.startswith("STL")),
        "shared": sum(1 for op in body if op.startswith(("STS", "LDS", "BAR"))),
        "fp64": sum(1 for op in body if op.startswith(("DADD", "DMUL", "DFMA"))),
        "branches": sum(1 for op in body if op.startswith("BRA")),
    }


RESOURCES = re.compile(r"REG:(\d+).*?STACK:(\d+).*?SHARED:(\d+).*?LOCAL:(\d+)")


def parse_resources(text: str) -> dict:
    m = RESOURCES.search(text)
    if not m:
        return {}
    reg, stack, shared, local = map(int, m.groups())
    return {"registers": reg, "stack": stack, "shared_bytes": shared, "local_bytes": local}


def _nvidia_counts(compiled) -> dict:
    tool = _cuobjdump()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(compiled.asm["cubin"])
        sass = subprocess.run([tool, "-sass", path], capture_output=True, text=True, check=True).stdout
        res = subprocess.run([tool, "-res-usage", path], capture_output=True, text=True, check=True).stdout
    counts = count_sass(parse_sass(sass))
    counts["registers"] = parse_resources(res).get("registers")
    return counts


# ---------------------------------------------------------------------------------------------------------
# AMD: AMDGCN assembly

AMD_TRANSCENDENTAL = ("v_log_f32", "v_exp_f32", "v_sqrt_f32", "v_rsq_f32", "v_rcp_f32", "v_sin_f32", "v_cos_f32")
# VALU ops that take four passes of a SIMD on CDNA (quarter rate): transcendentals, 32-bit integer multiplies,
# fp64 FMAs on consumer parts do not apply (CDNA runs fp64 at full rate).
AMD_QUARTER_RATE = AMD_TRANSCENDENTAL + ("v_mad_u64_u32", "v_mad_i64_i32", "v_mul_hi_u32", "v_mul_lo_u32",
                                         "v_mul_hi_i32")
AMD_STORE_BYTES = {"dwordx4": 16, "b128": 16, "dwordx3": 12, "b96": 12, "dwordx2": 8, "b64": 8, "dword": 4,
                   "b32": 4, "short": 2, "b16": 2, "short_d16_hi": 2, "byte": 1, "b8": 1}


def parse_amdgcn(text: str) -> list:
    """The instructions of the first kernel in an AMDGCN listing (labels, directives and comments left out)."""
    body, inside = [], False
    for line in text.splitlines():
        stripped = line.split(";")[0].strip()
        if not inside:
            inside = bool(re.match(r"^[A-Za-z_][\w.]*:\s*$", stripped)) and not stripped.startswith(".")
            continue
        if not stripped or stripped.startswith(".") or stripped.endswith(":"):
            continue
        body.append(stripped)
        if stripped.startswith("s_endpgm"):
            break
    return body


def count_amdgcn(instructions: list) -> dict:
    ops = [i.split()[0] for i in instructions]
    body = [op for op in ops if not op.startswith("s_nop")]
    valu = [op for op in body if op.startswith("v_")]
    stores = [op for op in body if op.startswith(("global_store", "buffer_store", "flat_store"))]
    scratch = [op for op in body if op.startswith("scratch_")]
    return {
        "instructions": len(body),
        "valu": len(valu),
        "cycles": sum(4 if op.startswith(AMD_QUARTER_RATE) else 1 for op in valu),
        "transcendental": sum(1 for op in valu if op.startswith(AMD_TRANSCENDENTAL)),
        "store_bytes": max((AMD_STORE_BYTES.get(op.split("_", 2)[2], 4) for op in stores), default=0),
        "scratch_instructions": len(scratch),
        "shared": sum(1 for op in body if op.startswith(("ds_", "s_barrier"))),
        "fp64": sum(1 for op in valu if op.endswith(("_f64", "_f64_e32", "_f64_e64"))),
        "branches": sum(1 for op in body if op.startswith("s_cbranch")),
    }


def parse_amd_resources(text: str) -> dict:
    found = {}
    for key, pattern in (("registers", r"; NumVgprs: (\d+)"), ("agprs", r"; NumAgprs: (\d+)"),
                         ("sgprs", r"; TotalNumSgprs: (\d+)"), ("scratch_bytes", r"; ScratchSize: (\d+)"),
                         ("occupancy", r"; Occupancy: (\d+)")):
        m = re.search(pattern, text)
        if m:
            found[key] = int(m.group(1))
    return found


def _amd_counts(compiled) -> dict:
    text = compiled.asm["amdgcn"]
    counts = count_amdgcn(parse_amdgcn(text))
    resources = parse_amd_resources(text)
    counts.update(resources)
    counts["spills"] = resources.get("scratch_bytes", 0) + counts.pop("scratch_instructions")
    return counts


# ---------------------------------------------------------------------------------------------------------
# analysis


def analyse(variant: Variant, target) -> dict:
    import triton

    start = time.perf_counter()
    launch = variant.plan(target)
    compiled = compile_launch(launch, target)
    counts = _amd_counts(compiled) if target.backend == "hip" else _nvidia_counts(compiled)
    per_thread = elements_per_program(launch) / (launch.num_warps * target.warp_size)
    record = {
        "kernel": variant.kernel,
        "path": variant.path,
        "dtype": variant.dtype,
        "target": target.name,
        "call": variant.call,
        "instructions_per_element": round(counts["instructions"] / per_thread, 2),
        "cycles_per_element": round(counts["cycles"] / per_thread, 2),
        "transcendental_per_element": round(counts["transcendental"] / per_thread, 3),
        "registers": counts.get("registers"),
        "spills": counts["spills"],
        "store_bytes": counts["store_bytes"],
        "shared_per_element": round(counts["shared"] / per_thread, 3),
        "fp64_per_element": round(counts["fp64"] / per_thread, 3),
        "branches": counts["branches"],
        "elements_per_thread": per_thread,
        "num_warps": launch.num_warps,
        "constexprs": {k: v for k, v in launch.constexprs.items() if isinstance(v, (bool, int))},
        "triton_version": triton.__version__,
        "compile_s": round(time.perf_counter() - start, 2),
    }
    if target.backend == "hip":
        record["valu_per_element"] = round(counts["valu"] / per_thread, 2)
    for gpu in GPUS if variant.kernel != "orthogonal_epilogue" else ():  # write-only kernels: the write roofline
        if gpu.target == target.name:
            record["gpu"] = gpu.name
            record["predicted_fraction_of_write_roofline"] = round(gpu.predicted_fraction(record), 3)
    return record


def compile_only(variant: Variant, target) -> dict:
    """The compile check's record: the variant built for the target (to its cubin or hsaco), nothing counted."""
    start = time.perf_counter()
    compile_launch(variant.plan(target), target)
    return {"kernel": variant.kernel, "path": variant.path, "dtype": variant.dtype, "target": target.name,
            "compile_s": round(time.perf_counter() - start, 2)}


def _analyse_safely(job) -> dict:
    variant, target, check = job
    try:
        return compile_only(variant, target) if check else analyse(variant, target)
    except Exception as exc:  # report and go on: one broken variant must not hide the rest
        return {"kernel": variant.kernel, "path": variant.path, "dtype": variant.dtype, "target": target.name,
                "error": f"{type(exc).__name__}: {exc}"[:2000]}


def format_table(records: list) -> str:
    head = (f"{'kernel/path':<40} {'dtype':<5} {'target':<7} {'instr/el':>8} {'cyc/el':>7} {'trans/el':>8} "
            f"{'store B':>7} {'regs':>5} {'spills':>6} {'roofline':>8}")
    lines = [head, "-" * len(head)]
    for r in records:
        label = f"{r['kernel']}/{r['path']}"
        if "error" in r:
            lines.append(f"{label:<40} {r['dtype']:<5} {r['target']:<7} ERROR {r['error'].splitlines()[0][:200]}")
            continue
        fraction = r.get("predicted_fraction_of_write_roofline")
        lines.append(f"{label:<40} {r['dtype']:<5} {r['target']:<7} {r['instructions_per_element']:>8.2f} "
                     f"{r['cycles_per_element']:>7.2f} {r['transcendental_per_element']:>8.3f} {r['store_bytes']:>7} "
                     f"{r['registers']!s:>5} {r['spills']:>6} "
                     f"{'' if fraction is None else format(fraction, '.0%'):>8}")
    return "\n".join(lines)


def markdown(records: list) -> str:
    """bench/README.md's table: instructions per element and the predicted share of the write roofline, by target."""
    names = [t.name for t in targets()]
    rows: dict = {}
    for r in records:
        if "error" not in r:
            rows.setdefault((f"{r['kernel']}/{r['path']}", r["dtype"]), {})[r["target"]] = r
    lines = ["| kernel/path | dtype | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for (label, dtype), by_target in rows.items():
        cells = []
        for name in names:
            r = by_target.get(name)
            fraction = None if r is None else r.get("predicted_fraction_of_write_roofline")
            cells.append("" if r is None else f"{r['instructions_per_element']:.1f}"
                         + ("" if fraction is None else f" ({fraction:.0%})"))
        lines.append(f"| {label} | {dtype} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write (default: %(default)s)")
    parser.add_argument("--no-out", action="store_true", help="write no JSON (the compile check)")
    parser.add_argument("--only", default=None, help="only variants whose 'kernel/path/dtype' matches this regex")
    parser.add_argument("--targets", default=None,
                        help="comma-separated: sm_80,sm_90,sm_100,gfx942,gfx950, or device (this machine's GPU)")
    parser.add_argument("--check", action="store_true",
                        help="the compile check: COMPILE_CHECK's variants planned small, no JSON")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--markdown", type=Path, default=None, help="print this report JSON as bench/README's table")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    start = time.perf_counter()
    chosen = check_variants() if args.check else variants()
    chosen = [v for v in chosen if not args.only or re.search(args.only, v.name)]
    jobs = [(v, t, args.check) for t in targets(args.targets.split(",") if args.targets else None) for v in chosen]
    if args.jobs > 1 and len(jobs) > 1:
        with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
            records = list(pool.map(_analyse_safely, jobs))
    else:
        records = [_analyse_safely(job) for job in jobs]
    if args.check:
        for r in records:
            print(f"{r['kernel']}/{r['path']}/{r['dtype']} {r['target']}: " + r.get("error", f"{r['compile_s']} s"))
    else:
        print(format_table(records))
    if not (args.no_out or args.check):
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"\n{len(records)} compiles in {time.perf_counter() - start:.1f} s"
          + ("" if args.no_out or args.check else f" -> {args.out}"))
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
