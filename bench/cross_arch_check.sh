#!/usr/bin/env bash
# The native CPU executor gives the same bits on every instruction set and architecture: builds a small
# program that hashes csrc/stream_v1.c's output (every distribution and trunc_normal path, every output
# dtype, 3 threads in odd chunks, logical indices past 2^34) for this machine's best and baseline code and,
# where aarch64-linux-gnu-gcc and qemu-aarch64 exist (Debian: gcc-aarch64-linux-gnu, qemu-user), for
# aarch64, and compares the hashes. Needs a C compiler and python with triton_init (for the parameters).
#   usage: bash bench/cross_arch_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python - "$work/coeffs.h" <<'PY'
import sys

from triton_init import _cpu, reference
from triton_init._format import NORMAL, TRUNC_NORMAL, UNIFORM
import torch

calls = [(UNIFORM, dict(a=-0.75, b=2.5)), (NORMAL, dict(mean=0.25, std=1.5))] + [
    (TRUNC_NORMAL, dict(mean=0.0, std=std, a=a, b=b))
    for std, a, b in ((1.0, -2.0, 2.0), (0.02, -2.0, 2.0), (1.0, -6.0, 6.0), (1.0, 5.0, 7.0), (1.0, -40.0, -0.1),
                      (1.0, -30.0, -29.0))]
with open(sys.argv[1], "w") as f:
    f.write("static const struct { int dist, mode; double params[7]; } CALLS[] = {\n")
    for dist, kwargs in calls:
        params = reference.dist_params(dist, torch.float32, **kwargs)
        mode = _cpu.trunc_mode(params) if dist == TRUNC_NORMAL else 0
        f.write(f"    {{{dist}, {mode}, {{{', '.join(map(repr, params))}}}}},\n")
    f.write("};\n")
PY
cat > "$work/hash.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "stream_v1.h"
#include "coeffs.h"
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}
int main(int argc, char **argv)
{
    const int64_t n = 100003;
    void *buf = malloc(n * 8);
    ti_layout layout = {1, {n}, {1}, {1}, (1ull << 34) - 7};
    for (size_t c = 0; c < sizeof CALLS / sizeof CALLS[0]; c++)
        for (int out = TI_OUT_F32; out <= TI_OUT_F16; out++) {
            ti_call call;
            memset(&call, 0, sizeof call);
            call.dist = CALLS[c].dist;
            call.trunc_mode = CALLS[c].mode;
            call.out = out;
            call.seed = 0x9E3779B97F4A7C15ull;
            call.stream = 12345;
            memcpy(call.params, CALLS[c].params, sizeof call.params);
            ti_fill(buf, &layout, &call, 3, 4097, atoi(argv[1]));
            int size = out == TI_OUT_F64 ? 8 : (out == TI_OUT_F32 ? 4 : 2);
            printf("call %zu mode %d out %d: %016llx\n", c, CALLS[c].mode, out,
                   (unsigned long long)fnv1a(buf, (size_t)(n * size)));
        }
    return 0;
}
C
flags=(-O3 -g0 -ffp-contract=off -fno-math-errno -fno-trapping-math -Icsrc -I"$work")
cc "${flags[@]}" -o "$work/hash" "$work/hash.c" csrc/stream_v1.c -lm -lpthread
"$work/hash" 0 > "$work/best.txt"
"$work/hash" 1 > "$work/baseline.txt"
cmp "$work/best.txt" "$work/baseline.txt"
echo "this machine: best instruction set = baseline ($(wc -l < "$work/best.txt") hashes)"
if command -v aarch64-linux-gnu-gcc > /dev/null && command -v qemu-aarch64 > /dev/null; then
    aarch64-linux-gnu-gcc "${flags[@]}" -static -o "$work/hash_arm" "$work/hash.c" csrc/stream_v1.c -lm -lpthread
    qemu-aarch64 "$work/hash_arm" 0 > "$work/aarch64.txt"
    cmp "$work/best.txt" "$work/aarch64.txt"
    echo "aarch64 (qemu) = this machine"
else
    echo "no aarch64 cross compiler or qemu-aarch64: aarch64 not checked"
fi
