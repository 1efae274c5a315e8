"""GPU throughput of triton_init's fills against torch.nn.init and the write ceiling of the same run.

For each op (uniform, normal, trunc_normal on +-2 std, trunc_normal_(std=0.02) on torch's default [-2, 2] as
torchtitan and timm call it, the orthogonal prep: normal into an fp32 column-major matrix), each dtype and
each size, it times triton_init and torch.nn.init's counterpart with ``triton.testing.do_bench`` (median),
rotating among buffers whose total exceeds the L2, and measures the write ceiling on the same bytes:
``fill_``, ``zero_`` and a copy (GB/s counting bytes read + written).

    python bench/throughput.py [--sizes 24,26,28,30,32] [--dtypes fp32,bf16,fp16] [--out DIR] [--quick]

GB/s = bytes written / time. Writes ``throughput.json`` (records with op, dtype, numel, gbps,
pct_of_write_ceiling, ratio_vs_torch, device, torch_version, triton_version) and ``throughput.png``
(matplotlib, if importable) into --out. Needs a GPU (torch's "cuda" device: NVIDIA, or AMD with a ROCm
build of torch); exits with status 2 without one.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ROTATE_BYTES = 512 * 2**20  # total bytes of the rotating buffers: several times the H200's 60 MB L2
SEED = 1234


def _ops():
    """op name -> (triton_init fill, torch.nn.init fill); each takes one buffer."""
    import triton_init

    return {
        "uniform": (lambda t: triton_init.uniform_(t, -0.1, 0.1, seed=SEED),
                    lambda t: torch.nn.init.uniform_(t, -0.1, 0.1)),
        "normal": (lambda t: triton_init.normal_(t, 0.0, 0.02, seed=SEED),
                   lambda t: torch.nn.init.normal_(t, 0.0, 0.02)),
        "trunc_normal": (lambda t: triton_init.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04, seed=SEED),
                         lambda t: torch.nn.init.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04)),
        "trunc_normal_std0.02": (lambda t: triton_init.trunc_normal_(t, 0.0, 0.02, seed=SEED),
                                 lambda t: torch.nn.init.trunc_normal_(t, 0.0, 0.02)),
        # orthogonal_'s Gaussian prep: normal(0, 1) of the logical row-major indices into the column-major
        # fp32 matrix QR takes (see triton_init._orthogonal.gaussian_prep)
        "orthogonal_prep": (lambda t: triton_init.normal_(t, 0.0, 1.0, seed=SEED),
                            lambda t: torch.nn.init.normal_(t, 0.0, 1.0)),
    }


def _buffers(numel: int, dtype: torch.dtype, device: str, column_major: bool = False):
    """Enough buffers of numel elements to rotate through more than ROTATE_BYTES (at least one)."""
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    count = max(1, math.ceil(ROTATE_BYTES / nbytes)) if device == "cuda" else 1
    if column_major:  # (m, m) with strides (1, m): what QR factors
        side = math.isqrt(numel)
        return [torch.empty((side, side), dtype=dtype, device=device).t() for _ in range(count)]
    return [torch.empty(numel, dtype=dtype, device=device) for _ in range(count)]


def _time_ms(fn, buffers, warmup_ms: int, rep_ms: int) -> float:
    state = {"k": 0}

    def call():
        fn(buffers[state["k"] % len(buffers)])
        state["k"] += 1

    if not buffers[0].is_cuda:  # the --device cpu smoke test: one warm-up, median of three
        call()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            call()
            times.append(1e3 * (time.perf_counter() - t0))
        return sorted(times)[1]
    from triton.testing import do_bench

    return do_bench(call, warmup=warmup_ms, rep=rep_ms, return_mode="median")


def measure(sizes, dtypes, warmup_ms: int, rep_ms: int, log=print, device: str = "cuda", on_row=None) -> list:
    import triton

    if device == "cuda":
        from triton_init.kernels.target import of_device

        device_name = torch.cuda.get_device_name()
        arch = of_device(torch.device("cuda")).name
        free = torch.cuda.mem_get_info()[0]
    else:
        device_name, arch, free = "cpu (smoke test)", "", 1 << 40
    common = {"device": device_name, "arch": arch, "backend": "hip" if torch.version.hip else "cuda",
              "torch_version": torch.__version__, "triton_version": triton.__version__}
    records = []
    ops = _ops()
    for log2 in sizes:
        numel = 1 << log2
        for dtype_name in dtypes:
            dtype = DTYPES[dtype_name]
            nbytes = numel * torch.empty((), dtype=dtype).element_size()
            if 2.5 * max(nbytes, ROTATE_BYTES) > free:  # the copy needs two, with headroom
                log(f"skip 2^{log2} {dtype_name}: {nbytes / 2**30:.1f} GiB does not fit twice")
                continue
            buffers = _buffers(numel, dtype, device)
            ceiling = {}
            for name, fn in (("fill_", lambda t: t.fill_(0.5)), ("zero_", lambda t: t.zero_())):
                ms = _time_ms(fn, buffers, warmup_ms, rep_ms)
                ceiling[name] = nbytes / ms / 1e6
            write_ceiling = max(ceiling.values())
            for name, gbps in ceiling.items():
                records.append({"op": name, "impl": "torch", "dtype": dtype_name, "numel": numel,
                                "gbps": round(gbps, 1), "pct_of_write_ceiling": round(100 * gbps / write_ceiling, 1),
                                "ratio_vs_torch": None, **common})
            src = buffers[0]
            dst = buffers[1] if len(buffers) > 1 else torch.empty_like(src)
            ms = _time_ms(lambda t, source=src: t.copy_(source), [dst], warmup_ms, rep_ms)
            records.append({"op": "copy", "impl": "torch", "dtype": dtype_name, "numel": numel,
                            "gbps": round(2 * nbytes / ms / 1e6, 1), "pct_of_write_ceiling": None,
                            "ratio_vs_torch": None, **common})
            del dst
            for op, (ours, theirs) in ops.items():
                if op == "orthogonal_prep":
                    if dtype_name != "fp32" or log2 % 2:
                        continue  # QR's prep is fp32; square matrices need an even power of two
                    bufs = _buffers(numel, dtype, device, column_major=True)
                else:
                    bufs = buffers
                t_ours = _time_ms(ours, bufs, warmup_ms, rep_ms)
                t_torch = _time_ms(theirs, bufs, warmup_ms, rep_ms)
                for impl, ms in (("triton_init", t_ours), ("torch", t_torch)):
                    gbps = nbytes / ms / 1e6
                    records.append({"op": op, "impl": impl, "dtype": dtype_name, "numel": numel,
                                    "gbps": round(gbps, 1),
                                    "pct_of_write_ceiling": round(100 * gbps / write_ceiling, 1),
                                    "ratio_vs_torch": round(t_torch / ms, 2) if impl == "triton_init" else 1.0,
                                    "ms": round(ms, 4), **common})
                del bufs
            del buffers
            if device == "cuda":
                torch.cuda.empty_cache()
            log(_row_summary(records, numel, dtype_name))
            if on_row is not None:  # partial results survive a timeout
                on_row(records)
    return records


def _row_summary(records, numel, dtype_name) -> str:
    rows = [r for r in records if r["numel"] == numel and r["dtype"] == dtype_name]
    parts = [f"2^{int(math.log2(numel))} {dtype_name}:"]
    for r in rows:
        if r["impl"] == "triton_init":
            parts.append(f"{r['op']} {r['gbps']:.0f} GB/s ({r['pct_of_write_ceiling']:.0f}%, "
                         f"{r['ratio_vs_torch']:.1f}x)")
        elif r["op"] in ("fill_", "zero_", "copy"):
            parts.append(f"{r['op']} {r['gbps']:.0f}")
    return "  ".join(parts)


def format_table(records) -> str:
    head = f"{'op':<16} {'impl':<12} {'dtype':<5} {'numel':>11} {'GB/s':>8} {'% ceil':>7} {'x torch':>8}"
    lines = [head, "-" * len(head)]
    for r in records:
        pct = "" if r["pct_of_write_ceiling"] is None else f"{r['pct_of_write_ceiling']:.1f}"
        ratio = "" if r["ratio_vs_torch"] is None else f"{r['ratio_vs_torch']:.2f}"
        lines.append(f"{r['op']:<16} {r['impl']:<12} {r['dtype']:<5} {r['numel']:>11} {r['gbps']:>8.1f} "
                     f"{pct:>7} {ratio:>8}")
    return "\n".join(lines)


def plot(records, path: Path) -> bool:
    """GB/s against size, one panel per op; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ops = ["uniform", "normal", "trunc_normal", "trunc_normal_std0.02", "orthogonal_prep"]
    fig, axes = plt.subplots(1, len(ops), figsize=(5 * len(ops), 4), sharey=True)
    for ax, op in zip(axes, ops, strict=True):
        for impl in ("triton_init", "torch"):
            for dtype in DTYPES:
                pts = sorted((r["numel"], r["gbps"]) for r in records
                             if r["op"] == op and r["impl"] == impl and r["dtype"] == dtype)
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", linestyle="-" if impl == "triton_init" else "--",
                            label=f"{impl} {dtype}")
        for dtype in DTYPES:
            pts = sorted((r["numel"], r["gbps"]) for r in records if r["op"] == "fill_" and r["dtype"] == dtype)
            if pts:
                ax.plot(*zip(*pts, strict=True), color="gray", linewidth=0.8, label=f"fill_ {dtype}")
        ax.set_xscale("log", base=2)
        ax.set_title(op)
        ax.set_xlabel("elements")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("GB/s written")
    axes[-1].legend(fontsize=7)
    device = records[0]["device"] if records else ""
    fig.suptitle(f"triton_init vs torch.nn.init, {device}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="24,26,28,30,32", help="log2 of the element counts")
    parser.add_argument("--dtypes", default="fp32,bf16,fp16")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="shorter timing (warmup 10 ms, rep 40 ms)")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # "cpu": smoke-test this script
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("throughput.py needs a GPU (torch's cuda device: NVIDIA, or AMD with ROCm torch)", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s]
    dtypes = [d for d in args.dtypes.split(",") if d]
    warmup, rep = (10, 40) if args.quick else (25, 100)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    def save(records):
        (args.out / "throughput.json").write_text(json.dumps(records, indent=1) + "\n")

    records = measure(sizes, dtypes, warmup, rep, log=lambda s: print(s, flush=True), device=args.device,
                      on_row=save)
    save(records)
    plotted = plot(records, args.out / "throughput.png")
    print(format_table(records))
    print(f"\n{len(records)} records in {time.perf_counter() - start:.0f} s -> {args.out / 'throughput.json'}"
          + ("" if plotted else " (no matplotlib: no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
