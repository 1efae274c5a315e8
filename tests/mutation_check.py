"""Mutation check: plant realistic bugs in the kernels and their launchers, one at a time, in a temporary
copy of the repository, run the CPU tests that guard each, and print a caught / survived table.

    python tests/mutation_check.py [--jobs 2] [--only SUBSTRING ...] [--list] [--keep]

Each mutation is an exact text replacement that must match once. The copy imports as ``triton_init`` from
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
             "tl.store(ptrs, values.to(out_ptr.dtype.element_ty),",
             'tl.store(ptrs, values.to(out_ptr.dtype.element_ty, fp_downcast_rounding="rtz"),'),
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
]


@dataclass
class Result:
    mutation: Mutation
    outcome: str = ""  # caught, survived, not run, error
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


def _module_of(path: str) -> str:
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
    if mutation and mutation.new not in module_file.read_text():
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
        text = target.read_text()
        if text.count(mutation.old) != 1:
            result.outcome = "error"
            result.detail = f"the mutation's text occurs {text.count(mutation.old)} times in {mutation.path}"
            return result
        target.write_text(text.replace(mutation.old, mutation.new))
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="mutations checked at once (default 2)")
    parser.add_argument("--only", action="append", default=[],
                        help="only mutations whose name contains this (repeatable)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per mutation's test run")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    args = parser.parse_args(argv)
    mutations = [m for m in MUTATIONS if not args.only or any(o.lower() in m.name.lower() for o in args.only)]
    if args.list:
        for m in mutations:
            print(f"{m.name:64} {m.path:24} {m.expect}")
        return 0
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(check, m, args.timeout, args.keep) for m in mutations]
        results = []
        for future in futures:
            results.append(future.result())
            r = results[-1]
            print(f"  {r.outcome:8} {r.seconds:6.0f} s  {r.mutation.name}", file=sys.stderr, flush=True)
    print(f"{'mutation':64} {'file':24} {'changes output':16} {'result':9} {'s':>5}  caught by / note")
    print("-" * 150)
    for r in results:
        note = " ".join([*r.caught_by[:1], *r.detail.splitlines()[:1]])
        flag = "" if r.as_expected else "  <-- UNEXPECTED"
        print(f"{r.mutation.name:64} {r.mutation.path:24} {r.mutation.expect:16} {r.outcome:9} {r.seconds:5.0f}  "
              f"{note}{flag}")
    for r in results:
        if r.outcome == "error":
            print(f"\n{r.mutation.name}: {r.detail}")
    counts = {o: sum(r.outcome == o for r in results) for o in ("caught", "survived", "not run", "error")}
    print(f"\n{len(results)} mutations: " + ", ".join(f"{n} {o}" for o, n in counts.items())
          + f"; {time.monotonic() - start:.0f} s with {args.jobs} jobs")
    control_passed, message = control(results, args.timeout)
    print(message)
    unexpected = [r.mutation.name for r in results if not r.as_expected]
    if unexpected:
        print(f"not as expected: {unexpected}")
    return 0 if control_passed and not unexpected else 1


if __name__ == "__main__":
    sys.exit(main())
