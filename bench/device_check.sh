#!/usr/bin/env bash
# One command for a GPU machine (NVIDIA, or AMD with a ROCm build of torch): the GPU tests, the throughput run,
# a verify pass, everything under $OUT.
#
#   bash bench/device_check.sh            # from the repository root; OUT defaults to bench/results/device-check
#
# Needs python3 with torch and triton (no installs: the package is imported from this checkout). Writes
#   $OUT/device_check.log    everything printed
#   $OUT/pytest_gpu.log      pytest -m gpu (the target's approximate math over every u, > 2^31 elements, ...)
#   $OUT/throughput.json     bench/throughput.py records; $OUT/throughput.png its plot (if matplotlib)
#   $OUT/shard_bench.json    bench/shard_bench.py: one rank's 1/8 shard of Llama-3-70B in bf16 vs torch
#   $OUT/shard_8b.log        triton-init init --hf-config (Llama-3-8B's config): transformers' own init recorded
#                            on the meta device, one rank's FSDP2 1/8 shard written from that plan, in bf16
#   $OUT/verify.json         bench/verify_check.py: models materialized here, verified against their manifests
#   $OUT/verify_bench.json   bench/verify_bench.py: every-element verify on the device vs the kernels' generation
#   $OUT/isa.json            bench/isa_report.py for this GPU's architecture, under this machine's triton
#   $OUT/frameworks.json     bench/frameworks.py: each installed framework's init, own vs under intercept
#   $OUT/<device>-<date>.json  the summary to commit as bench/results/<device>-<date>.json
# Budget: under 6.5 minutes (pytest <= 110 s, throughput <= 75 s, shard bench <= 45 s, 8B shard <= 40 s,
# verify <= 30 s, verify bench <= 60 s, ISA report <= 25 s, frameworks <= 15 s; throughput.json and
# frameworks.json are rewritten after every row, so a timeout keeps what was measured; frameworks not installed
# on the machine are skipped by name, the 8B shard without transformers exits 2).
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$REPO/bench/results/device-check}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
exec > >(tee "$OUT/device_check.log") 2>&1
cd "$REPO"
export PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1
unset TRITON_INTERPRET

# kernels/ becomes triton_init.kernels only when the package is installed; otherwise build a shim
# package whose files are links into this checkout, and run python with -P so that the checkout's own
# triton_init (without kernels) does not shadow it.
if ! "$PYTHON" -P -c "import triton_init.kernels.fill" 2>/dev/null; then
    SHIM="$(mktemp -d)"
    mkdir -p "$SHIM/triton_init"
    for f in "$REPO"/triton_init/*; do ln -s "$f" "$SHIM/triton_init/"; done
    ln -s "$REPO/kernels" "$SHIM/triton_init/kernels"
    export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
    echo "shim: $SHIM/triton_init -> $REPO/{triton_init,kernels}"
fi

echo "== machine"
date -u +%Y-%m-%dT%H:%M:%SZ
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,driver_version --format=csv,noheader 2>/dev/null \
    || rocm-smi --showproductname --showmeminfo vram --showclocks 2>/dev/null \
    || echo "neither nvidia-smi nor rocm-smi"
"$PYTHON" -P -c "import sys, torch, triton, triton_init.kernels.target as t; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'hip' if torch.version.hip else 'cuda', torch.version.hip or torch.version.cuda, \
'triton', triton.__version__, 'gpu', torch.cuda.is_available(), torch.cuda.get_device_name() if \
torch.cuda.is_available() else '', t.of_device(torch.device('cuda')) if torch.cuda.is_available() else '')"

echo "== pytest -m gpu"
start=$SECONDS
timeout 110 "$PYTHON" -P -m pytest "$REPO/tests" -m gpu -q -p no:cacheprovider --durations=8 --rootdir "$REPO" \
    2>&1 | tee "$OUT/pytest_gpu.log"
pytest_rc=$?
echo "pytest rc=$pytest_rc in $((SECONDS - start)) s"

echo "== throughput"
start=$SECONDS
timeout 75 "$PYTHON" -P "$REPO/bench/throughput.py" --quick --out "$OUT"
throughput_rc=$?
echo "throughput rc=$throughput_rc in $((SECONDS - start)) s"

echo "== shard bench (1/8 of Llama-3-70B, bf16)"
start=$SECONDS
timeout 45 "$PYTHON" -P "$REPO/bench/shard_bench.py" --model llama-3-70b --dtype bf16 --world-size 8 --rank 0 \
    --repeats 2 --json "$OUT/shard_bench.json"
shard_rc=$?
echo "shard bench rc=$shard_rc in $((SECONDS - start)) s"

echo "== 8B shard (transformers Llama-3-8B: its init recorded on meta, rank 0 of 8 written from the plan, bf16)"
start=$SECONDS
timeout 40 "$PYTHON" -P -m triton_init init --hf-config "$REPO/bench/configs/llama-3-8b" --device cuda --dtype bf16 \
    --world-size 8 --rank 0 --no-progress 2>&1 | tee "$OUT/shard_8b.log"
shard_8b_rc=$?
echo "8B shard rc=$shard_8b_rc in $((SECONDS - start)) s"

echo "== verify (llama-3-8b bf16 and every init, materialized here, against their manifests)"
start=$SECONDS
timeout 30 "$PYTHON" -P "$REPO/bench/verify_check.py" --json "$OUT/verify.json"
verify_rc=$?
echo "verify rc=$verify_rc in $((SECONDS - start)) s"

echo "== verify throughput (every element compared on the device, against the kernels' generation rate)"
start=$SECONDS
timeout 60 "$PYTHON" -P "$REPO/bench/verify_bench.py" --device cuda --sets gpt2-small 1b --repeats 3 \
    --json "$OUT/verify_bench.json"
verify_bench_rc=$?
echo "verify bench rc=$verify_bench_rc in $((SECONDS - start)) s"

echo "== ISA report (this GPU's architecture, this machine's triton)"
start=$SECONDS
timeout 25 "$PYTHON" -P "$REPO/bench/isa_report.py" --targets device --out "$OUT/isa.json" | tail -60
isa_rc=$?
echo "isa rc=$isa_rc in $((SECONDS - start)) s"

echo "== frameworks (own init vs under intercept, the installed ones)"
start=$SECONDS
timeout 15 "$PYTHON" -P "$REPO/bench/frameworks.py" --device cuda --sizes small --repeats 2 \
    --json "$OUT/frameworks.json"
frameworks_rc=$?
echo "frameworks rc=$frameworks_rc in $((SECONDS - start)) s"

"$PYTHON" -P - "$OUT" "$pytest_rc" "$throughput_rc" "$isa_rc" "$shard_rc" "$verify_rc" "$frameworks_rc" \
    "$verify_bench_rc" "$shard_8b_rc" <<'EOF'
import datetime, json, re, sys
from pathlib import Path
out, pytest_rc, throughput_rc, isa_rc, shard_rc, verify_rc, frameworks_rc, verify_bench_rc, shard_8b_rc = (
    Path(sys.argv[1]), *map(int, sys.argv[2:]))
import torch, triton
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no-gpu"
log = (out / "pytest_gpu.log").read_text() if (out / "pytest_gpu.log").exists() else ""
summary = [line for line in log.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else None
record = {
    "device": device, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "torch_version": torch.__version__, "triton_version": triton.__version__,
    "backend": "hip" if torch.version.hip else "cuda",
    "pytest_gpu": {"rc": pytest_rc, "summary": summary[-1:] }, "throughput_rc": throughput_rc, "isa_rc": isa_rc,
    "throughput": load("throughput.json"), "isa": load("isa.json"),
    "shard_bench_rc": shard_rc, "shard_bench": load("shard_bench.json"),
    "shard_8b_rc": shard_8b_rc, "shard_8b": [line for line in ((out / "shard_8b.log").read_text().splitlines()
                                                if (out / "shard_8b.log").exists() else []) if "rank" in line],
    "verify_rc": verify_rc, "verify": load("verify.json"),
    "verify_bench_rc": verify_bench_rc, "verify_bench": load("verify_bench.json"),
    "frameworks_rc": frameworks_rc, "frameworks": load("frameworks.json"),
}
name = re.sub(r"[^A-Za-z0-9]+", "-", device).strip("-").lower() + "-" + datetime.date.today().isoformat() + ".json"
(out / name).write_text(json.dumps(record, indent=1) + "\n")
print(f"summary -> {out / name}")
EOF
echo "== done: pytest rc=$pytest_rc, throughput rc=$throughput_rc, shard bench rc=$shard_rc, 8B shard rc=$shard_8b_rc, \
verify rc=$verify_rc, verify bench rc=$verify_bench_rc, isa rc=$isa_rc, frameworks rc=$frameworks_rc"
exit $(( pytest_rc != 0 || throughput_rc != 0 || verify_rc != 0 || verify_bench_rc != 0 ))
