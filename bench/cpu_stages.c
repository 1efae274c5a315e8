/* Where the native executor's time goes: each stage of a block (Philox words, the transform, the interleave and
 * store) timed on its own over 2^22 elements, and the whole one-thread fill, in CPU time per value (the least of
 * 15 runs), for each instruction set. It includes csrc/stream_v1.c itself to reach its per-stage functions:
 *
 *     cc -O3 -g0 -ffp-contract=off -fno-math-errno -fno-trapping-math -Icsrc bench/cpu_stages.c \
 *        -o /tmp/cpu_stages -lpthread -lm && /tmp/cpu_stages
 */
#include "../csrc/stream_v1.c"

#include <stdio.h>
#include <time.h>

#define VALUES ((int64_t)1 << 22)
#define RUNS 15

static double thread_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    const char *name;
    int dist, trunc_mode;
    double params[7];
} op;

/* trunc_normal(std 0.02) on [-2, 2] and on +-2 std: Phi(alpha), Phi(-beta), their mass, the clamp */
static const op OPS[] = {
    {"uniform(-0.1, 0.1)", TI_UNIFORM, 0, {-0.1, 0.2}},
    {"normal(0, 0.02)", TI_NORMAL, 0, {0.0, 0.02}},
    {"trunc_normal [-2, 2]", TI_TRUNC_NORMAL, TI_TRUNC_UNTRUNCATED, {0.0, 0.02, 0.0, 0.0, 1.0, -2.0, 2.0}},
    {"trunc_normal +-2 std", TI_TRUNC_NORMAL, TI_TRUNC_CENTRAL,
     {0.0, 0.02, 0.022750131948179195, 0.022750131948179195, 0.9544997361036416, -0.04, 0.04}},
};

static void profile(const op *o, int out, int isa, char *dst)
{
    ti_call call = {.dist = o->dist, .trunc_mode = o->trunc_mode, .out = out, .seed = 1, .stream = 0x5EED};
    memcpy(call.params, o->params, sizeof call.params);
    prepared pc;
    prepare(&pc, &call);
    const isa_kernels *k = kernels_for(isa);
    static scratch s;
    ti_layout layout = {.ndim = 1, .sizes = {VALUES}, .mem_strides = {1}, .logical_strides = {1}};
    double best[4] = {1e30, 1e30, 1e30, 1e30};
    for (int run = 0; run < RUNS; run++) {
        double t[5];
        t[0] = thread_seconds();
        for (int64_t g = 0; g < VALUES / 4; g += BLOCK_GROUPS)
            k->words(&pc, (uint64_t)g, BLOCK_GROUPS, &s);
        t[1] = thread_seconds();
        for (int64_t g = 0; g < VALUES / 4; g += BLOCK_GROUPS)
            k->transform(&pc, BLOCK_GROUPS, &s);
        t[2] = thread_seconds();
        for (int64_t g = 0; g < VALUES / 4; g += BLOCK_GROUPS)
            k->store(&pc, &s, 0, BLOCK_VALUES, dst + 4 * g * element_size(out), 1);
        t[3] = thread_seconds();
        ti_fill(dst, &layout, &call, 1, 1 << 16, isa);
        t[4] = thread_seconds();
        for (int i = 0; i < 4; i++)
            best[i] = t[i + 1] - t[i] < best[i] ? t[i + 1] - t[i] : best[i];
    }
    printf("| %s | %s | %s | %.3f | %.3f | %.3f | %.3f |\n", o->name,
           out == TI_OUT_F32 ? "fp32" : "bf16", ti_isa_name(isa), 1e9 * best[0] / VALUES, 1e9 * best[1] / VALUES,
           1e9 * best[2] / VALUES, 1e9 * best[3] / VALUES);
}

int main(void)
{
    char *dst = aligned_alloc(64, (size_t)VALUES * 4);
    memset(dst, 0, (size_t)VALUES * 4);
    printf("ns per value, one thread, CPU time, least of %d runs over 2^22 values\n\n", RUNS);
    printf("| op | dtype | isa | words | transform | store | whole fill |\n|---|---|---|---|---|---|---|\n");
    for (int isa = TI_ISA_BEST; isa <= TI_ISA_BASELINE; isa++)
        for (size_t o = 0; o < sizeof OPS / sizeof OPS[0]; o++)
            for (int out = TI_OUT_F32; out <= TI_OUT_BF16; out += TI_OUT_BF16 - TI_OUT_F32)
                profile(&OPS[o], out, isa, dst);
    free(dst);
    return 0;
}
