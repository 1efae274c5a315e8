/* Stream format v1 on the CPU: Philox4x32-10 words, u(w), uniform, Box-Muller normal and the trunc_normal
 * inverse CDF, written through a data pointer over a coalesced layout.
 *
 * Work goes in blocks of BLOCK_GROUPS Philox groups held as structure-of-arrays, so that the compiler
 * vectorizes every loop: the Philox rounds (32x32 -> 64-bit multiplies), then the transforms, whose
 * transcendentals are polynomials written here (log, log2, sin/cos of 2 pi u; the inverse CDF's pieces are the
 * kernels', from the generated ndtri_coeffs.h), then the cast and store. Arithmetic is IEEE single or double
 * with no contraction into fma (-ffp-contract=off), so every instruction set and architecture gives the same
 * bits (bench/cross_arch_check.sh); only the rare float64 trunc_normal calls use libm. Every value is a
 * function of its logical index alone: threads and blocks may split the work anywhere.
 */
#include "stream_v1.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define TI_INLINE static inline __attribute__((always_inline))
#define TI_ALIGNED __attribute__((aligned(64)))
#else
#define TI_INLINE static inline
#define TI_ALIGNED
#endif

#if defined(__GNUC__) && defined(__x86_64__)
#define TI_X86_AVX2 1  /* an AVX2 variant beside the baseline one, chosen at run time */
#include <immintrin.h>
#endif

#define BLOCK_GROUPS 256
#define BLOCK_VALUES (4 * BLOCK_GROUPS)
#define PHILOX_ROUNDS 10
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define MAX_THREADS 256
/* Flat fills from this size on store around the caches (on CPUs with streaming stores): more than the
   last-level caches of the small machines this runs on, so the data would not stay in them anyway. */
#define STREAMING_BYTES ((int64_t)32 << 20)

#define SQRT2 1.4142135623730951
#define HALF_PI 1.5707963267948966
#define LN_2PI 1.8378770664093453
/* ln 2 = LN2_HI + LN2_LO with LN2_HI short enough that e * LN2_HI is exact for |e| < 2^8 */
#define LN2_HI 0.693145751953125f
#define LN2_LO 1.42860682030941723212e-6f
#define LN2 0.6931471805599453
#define LN2_F32 0.693147182f

/* ---- the per-call constants, in the forms the loops use ---- */

/* A trunc_normal fp32 path's constants (as kernels/fill.py _trunc_setup makes them): CENTRAL: k0 + k1 m = x =
   2p - 1 for the mantissa m = u + 1 - 2^-24; WIDE: k0 + k2 u = 128 p and k1 + k2 (1 - u) = 128 q; TAIL:
   k0 + k1 v = 128 pp for v = u, or 1 - u where k2 = 1 (the upper tail); UNTRUNCATED: none (p = u). The pieces' coefficients are times std (for fp32 outputs; 1 for float64
   ones) and the sign of z (-1 for the upper tail), so that a value is mean + x' F' with x' = x or 64 x. */
typedef struct {
    float k0, k1, k2;
    float poly[TI_NDTRI_WIDE_DEGREE + 1];  /* CENTRAL for the CENTRAL path, WIDE for the others */
    float far[TI_NDTRI_FAR_DEGREE + 1];    /* FAR, for the TAIL path */
} trunc_fp32;

typedef struct {
    int dist, trunc_mode, out;
    int streaming;  /* a flat run too large for the caches: stores that bypass them where the ISA has them */
    uint32_t round_key0[PHILOX_ROUNDS], round_key1[PHILOX_ROUNDS];
    uint32_t stream_lo, stream_hi;
    double a, width;                        /* uniform */
    double mean, std;                       /* normal, trunc_normal */
    float mean32, std32;
    trunc_fp32 trunc;                       /* trunc_normal's fp32 paths */
    float lo32, hi32;
    double p_lo, q_hi, mass, lo, hi;        /* trunc_normal GENERAL, and the clamp for float64 outputs */
} prepared;

static void prepare(prepared *pc, const ti_call *call)
{
    memset(pc, 0, sizeof *pc);
    pc->dist = call->dist;
    pc->trunc_mode = call->trunc_mode;
    pc->out = call->out;
    uint32_t k0 = (uint32_t)call->seed, k1 = (uint32_t)(call->seed >> 32);
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        pc->round_key0[r] = k0;
        pc->round_key1[r] = k1;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    pc->stream_lo = (uint32_t)call->stream;
    pc->stream_hi = (uint32_t)(call->stream >> 32);
    const double *prm = call->params;
    if (call->dist == TI_UNIFORM) {
        pc->a = prm[0];
        pc->width = prm[1];
        return;
    }
    pc->mean = prm[0];
    pc->std = prm[1];
    pc->mean32 = (float)prm[0];
    pc->std32 = (float)prm[1];
    if (call->dist == TI_NORMAL)
        return;
    pc->p_lo = prm[2];
    pc->q_hi = prm[3];
    pc->mass = prm[4];
    pc->lo = prm[5];
    pc->hi = prm[6];
    pc->lo32 = (float)prm[5];
    pc->hi32 = (float)prm[6];
    if (call->trunc_mode == TI_TRUNC_GENERAL)
        return;
    /* the fp32 paths take std into their polynomials (mean + x (std F)); float64 outputs scale z in float64 */
    trunc_fp32 *t = &pc->trunc;
    const double p_lo = prm[2], q_hi = prm[3], mass = prm[4];
    int upper = 0;
    if (call->trunc_mode == TI_TRUNC_CENTRAL) {
        t->k1 = (float)(2.0 * mass);
        t->k0 = (float)((2.0 * p_lo - 1.0) - (double)t->k1 * 0.99999994039535522);
    } else if (call->trunc_mode == TI_TRUNC_WIDE) {
        t->k0 = (float)(128.0 * p_lo);
        t->k1 = (float)(128.0 * q_hi);
        t->k2 = (float)(128.0 * mass);
    } else if (call->trunc_mode == TI_TRUNC_TAIL) {  /* one tail: the upper one draws 1 - u and negates z */
        upper = q_hi < p_lo;
        t->k0 = (float)(128.0 * (upper ? q_hi : p_lo));
        t->k1 = (float)(128.0 * mass);
        t->k2 = upper ? 1.0f : 0.0f;
    }
    const double scale = (call->out == TI_OUT_F64 ? 1.0 : prm[1]) * (upper ? -1.0 : 1.0);
    const int central = call->trunc_mode == TI_TRUNC_CENTRAL;
    for (int k = 0; k <= (central ? TI_NDTRI_CENTRAL_DEGREE : TI_NDTRI_WIDE_DEGREE); k++)
        t->poly[k] = (float)((central ? TI_NDTRI_CENTRAL : TI_NDTRI_WIDE)[k] * scale);
    for (int k = 0; k <= TI_NDTRI_FAR_DEGREE; k++)
        t->far[k] = (float)(TI_NDTRI_FAR[k] * scale);
}

/* ---- bits ---- */

TI_INLINE uint32_t f32_bits(float x) { uint32_t b; memcpy(&b, &x, 4); return b; }
TI_INLINE float bits_f32(uint32_t b) { float x; memcpy(&x, &b, 4); return x; }
TI_INLINE double bits_f64(uint64_t b) { double x; memcpy(&x, &b, 8); return x; }

/* u(w) = ((w >> 9) + 1/2) 2^-23, exact: the top 23 bits as the mantissa m = 1 + k 2^-23, minus 1 - 2^-24. */
TI_INLINE float mantissa_f32(uint32_t w) { return bits_f32((w >> 9) | 0x3F800000u); }
TI_INLINE float u01_f32(uint32_t w) { return mantissa_f32(w) - 0.99999994039535522f; }
TI_INLINE double u01_f64(uint32_t w)
{
    return bits_f64(((uint64_t)(w >> 9) << 29) | 0x3FF0000000000000ull) - 0.99999994039535522;
}

/* fp32 -> bf16, rounded to nearest even (finite values). */
TI_INLINE uint16_t f32_to_bf16(float x)
{
    uint32_t b = f32_bits(x);
    return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

/* fp32 -> fp16, rounded to nearest even (finite values; overflow gives infinity). */
TI_INLINE uint16_t f32_to_f16(float x)
{
    uint32_t b = f32_bits(x);
    uint32_t sign = (b >> 16) & 0x8000u;
    uint32_t mag = b & 0x7FFFFFFFu;
    /* normal range: exponent bias 127 -> 15, the 13 dropped bits rounded to nearest even; a carry out of
       the mantissa steps the exponent, up to infinity (0x7C00) */
    uint32_t normal = (mag - 0x38000000u + 0xFFFu + ((mag >> 13) & 1u)) >> 13;
    /* below 2^-14: adding 1/2 lines fp16's subnormal step 2^-24 up with fp32's ulp in [1/2, 1), so the
       addition's own rounding to nearest even rounds the value */
    uint32_t subnormal = f32_bits(bits_f32(mag) + 0.5f) - 0x3F000000u;
    uint32_t h = mag < 0x38800000u ? subnormal : (mag >= 0x47800000u ? 0x7C00u : normal);
    return (uint16_t)(h | sign);
}

/* ---- transcendentals in fp32, as straight-line code the compiler vectorizes ---- */

/* ln x for a normal fp32 x > 0: x = 2^e m with m in [sqrt(1/2), sqrt(2)), f = m - 1 exact, s = f / (2 + f),
   ln m = 2 atanh(s) = f - s (f - s^2 (2/3 + 2/5 s^2 + 2/7 s^4)) (|s| < 0.172: the next term is 8e-8 relative).
   Relative accuracy holds near x = 1 too, where Box-Muller's small radii need it. In two steps, which
   normal_values runs as separate loops: ln_split returns s and gives f and e (as a float), ln_join the log. */
TI_INLINE float ln_split(float x, float *f_out, float *e_out)
{
    uint32_t bits = f32_bits(x);
    int32_t e = (int32_t)(bits - 0x3F3504F3u) >> 23;
    float m = bits_f32(bits - ((uint32_t)e << 23));
    float f = m - 1.0f;
    *f_out = f;
    *e_out = (float)e;
    return f / (2.0f + f);
}

TI_INLINE float ln_join(float s, float f, float ef)
{
    float s2 = s * s;
    float tail = s2 * ((float)(2.0 / 3.0) + s2 * ((float)(2.0 / 5.0) + s2 * (float)(2.0 / 7.0)));
    float ln_m = f - s * (f - tail);
    return ef * LN2_HI + (ln_m + ef * LN2_LO);
}

/* log2 x for a normal fp32 x > 0, for the inverse CDF's variable, whose pieces need it to about 1e-5 absolute
   (tests/test_native.py): x = 2^e m as in ln_split, log2 m = f P(f) for f = m - 1 in [-0.293, 0.415], P the
   degree-5 minimax fit of log2(1 + f) / f (fp32 coefficients; at most 2.3e-6 off evaluated in fp32). No
   division: a third cheaper than ln_join's series and ln_split's division. */
#define LOG2_P0 1.44271362f
#define LOG2_P1 -0.721133769f
#define LOG2_P2 0.479338467f
#define LOG2_P3 -0.367457390f
#define LOG2_P4 0.322237790f
#define LOG2_P5 -0.206789091f

TI_INLINE float log2_f32(float x)
{
    uint32_t bits = f32_bits(x);
    int32_t e = (int32_t)(bits - 0x3F3504F3u) >> 23;
    float f = bits_f32(bits - ((uint32_t)e << 23)) - 1.0f;
    float f2 = f * f;
    float p = (LOG2_P0 + LOG2_P1 * f) + f2 * ((LOG2_P2 + LOG2_P3 * f) + f2 * (LOG2_P4 + LOG2_P5 * f));
    return (float)e + f * p;
}

/* cos and sin of 2 pi u for u = u(w): quadrant k = round(4u) and f = 4u - k in [-1/2, 1/2] are exact (4u is
   an odd multiple of 2^-22), then Taylor polynomials of cos and sin of (pi/2) f, |(pi/2) f| <= pi/4 (the
   first terms left out are below 3e-8 and 2e-9), and the quadrant's swap and signs: three steps, which
   normal_values runs as separate loops. */
#define SIN_C1 ((float)HALF_PI)
#define SIN_C3 ((float)(-HALF_PI * HALF_PI * HALF_PI / 6.0))
#define SIN_C5 ((float)(HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI / 120.0))
#define SIN_C7 ((float)(-HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI / 5040.0))
#define SIN_C9 ((float)(HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI \
                        / 362880.0))
#define COS_C2 ((float)(-HALF_PI * HALF_PI / 2.0))
#define COS_C4 ((float)(HALF_PI * HALF_PI * HALF_PI * HALF_PI / 24.0))
#define COS_C6 ((float)(-HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI / 720.0))
#define COS_C8 ((float)(HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI * HALF_PI / 40320.0))

TI_INLINE float quarter_turns(float u, int32_t *k_out)
{
    float x = 4.0f * u;
    int32_t k = (int32_t)(x + 0.5f);
    *k_out = k;
    return x - (float)k;
}

TI_INLINE float sin_quarter(float f)
{
    float f2 = f * f;
    return f * (SIN_C1 + f2 * (SIN_C3 + f2 * (SIN_C5 + f2 * (SIN_C7 + f2 * SIN_C9))));
}

TI_INLINE float cos_quarter(float f)
{
    float f2 = f * f;
    return 1.0f + f2 * (COS_C2 + f2 * (COS_C4 + f2 * (COS_C6 + f2 * COS_C8)));
}

TI_INLINE void quadrant(int32_t k, float sin_f, float cos_f, float *cos_out, float *sin_out)
{
    /* cos(kpi/2 + t), sin(kpi/2 + t) for k = 0, 1, 2, 3: (c, s), (-s, c), (-c, -s), (s, -c) */
    uint32_t odd = (uint32_t)k & 1u;
    float c = odd ? sin_f : cos_f;
    float s = odd ? cos_f : sin_f;
    *cos_out = bits_f32(f32_bits(c) ^ ((((uint32_t)k + 1u) & 2u) << 30));
    *sin_out = bits_f32(f32_bits(s) ^ (((uint32_t)k & 2u) << 30));
}

/* ---- Philox4x32-10 over a block of groups, structure of arrays ---- */

TI_INLINE void philox_block(const prepared *pc, uint64_t first_group, int groups, uint32_t *restrict w0,
                            uint32_t *restrict w1, uint32_t *restrict w2, uint32_t *restrict w3)
{
    uint32_t key0[PHILOX_ROUNDS], key1[PHILOX_ROUNDS];
    memcpy(key0, pc->round_key0, sizeof key0);
    memcpy(key1, pc->round_key1, sizeof key1);
    const uint32_t lo = (uint32_t)first_group, hi = (uint32_t)(first_group >> 32);
    const uint32_t stream_lo = pc->stream_lo, stream_hi = pc->stream_hi;
    for (int i = 0; i < groups; i++) {
        uint32_t c0 = lo + (uint32_t)i;
        uint32_t c1 = hi + (c0 < lo);  /* the carry into the group index's high word */
        uint32_t c2 = stream_lo, c3 = stream_hi;
#pragma GCC unroll 10
        for (int r = 0; r < PHILOX_ROUNDS; r++) {
            uint64_t prod0 = (uint64_t)c0 * PHILOX_M0;
            uint64_t prod1 = (uint64_t)c2 * PHILOX_M1;
            uint32_t next0 = (uint32_t)(prod1 >> 32) ^ c1 ^ key0[r];
            uint32_t next2 = (uint32_t)(prod0 >> 32) ^ c3 ^ key1[r];
            c1 = (uint32_t)prod1;
            c3 = (uint32_t)prod0;
            c0 = next0;
            c2 = next2;
        }
        w0[i] = c0;
        w1[i] = c1;
        w2[i] = c2;
        w3[i] = c3;
    }
}

/* ---- transforms: the words of each lane -> that lane's values, in loops of short bodies (so that the CPU
   overlaps many iterations) over structure-of-arrays scratch ---- */

typedef struct {
    uint32_t w[4][BLOCK_GROUPS] TI_ALIGNED;  /* Philox words, by lane */
    float f[4][BLOCK_GROUPS] TI_ALIGNED;     /* values by lane for fp32, bf16 and fp16 outputs */
    double d[4][BLOCK_GROUPS] TI_ALIGNED;    /* values by lane for float64 outputs */
    float t[4][BLOCK_GROUPS] TI_ALIGNED;     /* normal_values' and trunc_path_values' steps between loops */
    int32_t k[BLOCK_GROUPS] TI_ALIGNED;
} scratch;

/* Polynomials by Estrin's scheme (pairs c[k] + c[k+1] x, then pairs of those with x^2, x^4, x^8): its
   dependency chains are a third as long as Horner's, which lets the CPU overlap the loop's iterations; the
   exhaustive tests bound its rounding. */
TI_INLINE float estrin6_f32(float x, const float *c)
{
    float x2 = x * x;
    float x4 = x2 * x2;
    float p01 = c[0] + c[1] * x, p23 = c[2] + c[3] * x, p45 = c[4] + c[5] * x;
    return (p01 + p23 * x2) + (p45 + c[6] * x2) * x4;
}

TI_INLINE float estrin10_f32(float x, const float *c)
{
    float x2 = x * x;
    float x4 = x2 * x2;
    float x8 = x4 * x4;
    float p01 = c[0] + c[1] * x, p23 = c[2] + c[3] * x, p45 = c[4] + c[5] * x, p67 = c[6] + c[7] * x;
    float p810 = c[8] + c[9] * x + c[10] * x2;
    return ((p01 + p23 * x2) + (p45 + p67 * x2) * x4) + p810 * x8;
}

/* (the forms of maxps/minps: the compiler vectorizes them without branches) */
TI_INLINE float clamp_f32(float v, float lo, float hi)
{
    v = v > lo ? v : lo;
    return v < hi ? v : hi;
}

TI_INLINE double clamp_f64(double v, double lo, double hi)
{
    v = v > lo ? v : lo;
    return v < hi ? v : hi;
}

/* a + (b - a) u(w) = a0 + step k for k = w >> 9, in float64 (k is exact in it, the result within a few
   float64 ulps of the exact value), then rounded once to the output dtype. */
TI_INLINE void uniform_values(const prepared *pc, int groups, scratch *restrict s)
{
    const double a0 = pc->a + pc->width * 0x1p-24, step = pc->width * 0x1p-23;
    for (int lane = 0; lane < 4; lane++) {
        const uint32_t *restrict w = s->w[lane];
        if (pc->out == TI_OUT_F64) {
            double *restrict v = s->d[lane];
            for (int i = 0; i < groups; i++)
                v[i] = a0 + step * (double)(int32_t)(w[i] >> 9);
        } else {
            float *restrict v = s->f[lane];
            for (int i = 0; i < groups; i++)
                v[i] = (float)(a0 + step * (double)(int32_t)(w[i] >> 9));
        }
    }
}

/* Box-Muller in fp32: lanes (0, 1) from the pair (w0, w1), lanes (2, 3) from (w2, w3). Each pair in five
   loops with short dependency chains (a CPU overlaps the iterations of a loop only as far as its scheduler
   holds them, and one chain through a whole log or sincos left most of its vector pipes idle: a third of the
   time on Zen 5): ln's division, the rest of the radius (times std for fp32 outputs) to the even lane's slot,
   the angle's quadrant, its polynomials, and the values. Every step is the same fp32 arithmetic as in one loop. */
TI_INLINE void normal_values(const prepared *pc, int groups, scratch *restrict s)
{
    const int f64 = pc->out == TI_OUT_F64;
    const float scale = f64 ? 1.0f : pc->std32;
    float *restrict t0 = s->t[0], *restrict t1 = s->t[1];
    int32_t *restrict quadrants = s->k;
    for (int lane = 0; lane < 4; lane += 2) {
        const uint32_t *restrict w = s->w[lane];
        float *restrict radius = s->f[lane];
        for (int i = 0; i < groups; i++)
            t0[i] = ln_split(u01_f32(w[i]), &t1[i], &radius[i]);
        for (int i = 0; i < groups; i++)
            radius[i] = scale * sqrtf(-2.0f * ln_join(t0[i], t1[i], radius[i]));
    }
    for (int lane = 0; lane < 4; lane += 2) {
        const uint32_t *restrict w = s->w[lane + 1];
        for (int i = 0; i < groups; i++)
            t0[i] = quarter_turns(u01_f32(w[i]), &quadrants[i]);
        for (int i = 0; i < groups; i++) {
            t1[i] = sin_quarter(t0[i]);
            t0[i] = cos_quarter(t0[i]);
        }
        if (f64) {
            const double mean = pc->mean, std = pc->std;
            const float *restrict radius = s->f[lane];
            double *restrict even = s->d[lane], *restrict odd = s->d[lane + 1];
            for (int i = 0; i < groups; i++) {
                float c, sn;
                quadrant(quadrants[i], t1[i], t0[i], &c, &sn);
                even[i] = mean + std * (double)(radius[i] * c);
                odd[i] = mean + std * (double)(radius[i] * sn);
            }
        } else {
            const float mean = pc->mean32;
            float *restrict even = s->f[lane], *restrict odd = s->f[lane + 1];
            for (int i = 0; i < groups; i++) {
                float c, sn;
                quadrant(quadrants[i], t1[i], t0[i], &c, &sn);
                float r = even[i];
                even[i] = mean + r * c;
                odd[i] = mean + r * sn;
            }
        }
    }
}

/* trunc_normal's fp32 paths, as the kernels take them (kernels/philox.py trunc_normal_*, the path chosen per call
   by kernels/trunc_paths.py), with the pieces of ndtri_coeffs.h: Phi^-1(p) = x F(w), w = -ln(4 p q), q = 1 - p.
   The arithmetic differs where the kernels use fused multiply-adds: 1 - x^2 = (1 - x)(1 + x), one factor
   exact where |x| >= 1/2; 4096 (1 - x^2) = 128 p * 128 q, one rounding. tests/test_native.py checks every
   path over every u(w) against the exact values.
   z' (times std and the path's sign, folded into the coefficients) of one u, in two steps that
   trunc_path_values runs as separate loops (as normal_values does): trunc_variable returns the variable of the
   path's polynomial piece (log2 of 1 - x^2 or of 4096 p q) and gives the factor that the piece multiplies (x or
   64 x); trunc_piece returns z' = factor F. */
TI_INLINE float trunc_variable(const trunc_fp32 *t, int path, uint32_t w, float *factor)
{
    if (path == TI_TRUNC_CENTRAL) {  /* every p and q above about 0.0034: x = 2p - 1, F in log2(1 - x^2) */
        float x = t->k0 + t->k1 * mantissa_f32(w);  /* k0 = 2 p_lo - 1 - 2 mass (1 - 2^-24), see prepare */
        *factor = x;
        return log2_f32((1.0f - x) * (1.0f + x));
    }
    const float u = u01_f32(w);
    if (path == TI_TRUNC_TAIL) {  /* one tail, pp down to 2^-126 */
        float pp = t->k0 + t->k1 * (t->k2 != 0.0f ? 1.0f - u : u);  /* 1 - u is exact */
        *factor = pp - 64.0f;
        return log2_f32((128.0f - pp) * pp);
    }
    /* UNTRUNCATED (p = u: 128 p = 128 m - (128 - 2^-17) and 128 q = 128 - 128 p, both exact) and WIDE: every p
       and q at least about 2.8e-8; F / 64 in log2(128 p * 128 q) = log2(4096 (1 - x^2)), times 64 x = 128 p - 64 */
    float p = path == TI_TRUNC_UNTRUNCATED ? bits_f32((w >> 9) | 0x43000000u) - 127.99999237060547f
                                           : t->k0 + t->k2 * u;
    float q = path == TI_TRUNC_UNTRUNCATED ? 128.0f - p : t->k1 + t->k2 * (1.0f - u);
    *factor = p - 64.0f;
    return log2_f32(p * q);
}

TI_INLINE float trunc_piece(const trunc_fp32 *t, int path, float v, float factor)
{
    if (path == TI_TRUNC_CENTRAL)
        return factor * estrin6_f32(v, t->poly);
    if (path == TI_TRUNC_TAIL) {  /* WIDE below s = sqrt(w) = 4, FAR from there */
        float s = sqrtf((12.0f - v) * LN2_F32);
        return factor * (s >= (float)TI_NDTRI_TAIL_FAR_FROM_S ? estrin6_f32(s, t->far) : estrin10_f32(v, t->poly));
    }
    return factor * estrin10_f32(v, t->poly);
}

/* The values of an fp32 path, all four lanes in each loop (four independent dependency chains per iteration):
   the variables to the lanes' value slots and the factors to s->t, then mean + z', clamped into the outermost
   output-dtype values inside [a, b] (float64 outputs: mean + std z in float64). ``path`` is a constant where
   this is inlined: loops of their own for each. */
TI_INLINE void trunc_path_values(const prepared *pc, int path, int groups, scratch *restrict s)
{
    const trunc_fp32 t = pc->trunc;  /* a local copy: the stores cannot alias it */
    for (int i = 0; i < groups; i++)
        for (int lane = 0; lane < 4; lane++)
            s->f[lane][i] = trunc_variable(&t, path, s->w[lane][i], &s->t[lane][i]);
    if (pc->out == TI_OUT_F64) {
        const double mean = pc->mean, std = pc->std, lo = pc->lo, hi = pc->hi;
        for (int i = 0; i < groups; i++)
            for (int lane = 0; lane < 4; lane++)
                s->d[lane][i] = clamp_f64(mean + std * (double)trunc_piece(&t, path, s->f[lane][i], s->t[lane][i]),
                                          lo, hi);
    } else {
        const float mean = pc->mean32, lo = pc->lo32, hi = pc->hi32;
        for (int i = 0; i < groups; i++)
            for (int lane = 0; lane < 4; lane++)
                s->f[lane][i] = clamp_f32(mean + trunc_piece(&t, path, s->f[lane][i], s->t[lane][i]), lo, hi);
    }
}

TI_INLINE double horner_f64(double x, const double *c, int degree)
{
    double acc = c[degree];
    for (int k = degree - 1; k >= 0; k--)
        acc = acc * x + c[k];
    return acc;
}

/* Phi^-1(p) for tiny p (beyond the FAR piece's range, p below about 6e-39): Newton's method on
   ln Phi(z) = ln p from the asymptotic z^2 = t - ln t, t = -2 ln p - ln(2 pi). Each step squares the
   relative error, so four reach float64 precision. */
static double ndtri_far_tail(double p)
{
    const double log_p = log(p);
    const double t = -2.0 * log_p - LN_2PI;
    double z = -sqrt(t - log(t));
    for (int step = 0; step < 4; step++) {
        double log_phi_cdf = log(0.5 * erfc(-z / SQRT2));
        /* Phi(z) / phi(z), as an exponential of the difference of logarithms (phi(z) underflows first) */
        double ratio = exp(log_phi_cdf + 0.5 * z * z + 0.5 * LN_2PI);
        z -= (log_phi_cdf - log_p) * ratio;
    }
    return z;
}

/* Phi^-1(p) for p in [0, 1/2] in float64: the kernels' WIDE and FAR pieces (64 x F(w) / 64, x = 2p - 1,
   w = -ln(4 p (1 - p))) over the w they were fitted for, Newton's method beyond. */
static double ndtri_lower_f64(double p)
{
    if (!(p > 0.0))
        return -INFINITY;
    const double w = -log(4.0 * p * (1.0 - p));
    if (w > TI_NDTRI_FAR_W_HI)
        return ndtri_far_tail(p);
    const double x64 = 128.0 * p - 64.0;
    if (w <= TI_NDTRI_WIDE_W_LIMIT)
        return x64 * horner_f64(12.0 - w / LN2, TI_NDTRI_WIDE, TI_NDTRI_WIDE_DEGREE);
    return x64 * horner_f64(sqrt(w), TI_NDTRI_FAR, TI_NDTRI_FAR_DEGREE);
}

/* trunc_normal in float64, for the calls the kernels leave to the float64 reference (some p below fp32's
   normal range). */
static double trunc_general_f64(const prepared *pc, uint32_t w)
{
    double p = pc->p_lo + pc->mass * u01_f64(w);
    double q = pc->q_hi + pc->mass * u01_f64(~w);  /* u(~w) = 1 - u(w) */
    int lower = p <= 0.5;
    double z = ndtri_lower_f64(lower ? p : q);
    return clamp_f64(pc->mean + pc->std * (lower ? z : -z), pc->lo, pc->hi);
}

TI_INLINE void trunc_values(const prepared *pc, int groups, scratch *restrict s)
{
    switch (pc->trunc_mode) {
    case TI_TRUNC_CENTRAL:
        trunc_path_values(pc, TI_TRUNC_CENTRAL, groups, s);
        break;
    case TI_TRUNC_UNTRUNCATED:
        trunc_path_values(pc, TI_TRUNC_UNTRUNCATED, groups, s);
        break;
    case TI_TRUNC_WIDE:
        trunc_path_values(pc, TI_TRUNC_WIDE, groups, s);
        break;
    case TI_TRUNC_TAIL:
        trunc_path_values(pc, TI_TRUNC_TAIL, groups, s);
        break;
    default:
        for (int lane = 0; lane < 4; lane++)
            for (int i = 0; i < groups; i++) {
                double v = trunc_general_f64(pc, s->w[lane][i]);
                if (pc->out == TI_OUT_F64)
                    s->d[lane][i] = v;
                else
                    s->f[lane][i] = (float)v;  /* lo and hi are output-dtype values: exact in fp32 */
            }
    }
}

TI_INLINE void transform(const prepared *pc, int groups, scratch *restrict s)
{
    if (pc->dist == TI_UNIFORM)
        uniform_values(pc, groups, s);
    else if (pc->dist == TI_NORMAL)
        normal_values(pc, groups, s);
    else
        trunc_values(pc, groups, s);
}

/* ---- stores: lanes -> element order, cast to the output dtype ---- */

static int element_size(int out) { return out == TI_OUT_F64 ? 8 : (out == TI_OUT_F32 ? 4 : 2); }

/* The values of groups [first, stop) in element order, as the output dtype, contiguous from ``dst``. */
TI_INLINE void interleave(const prepared *pc, const scratch *restrict s, int first, int stop, char *restrict dst)
{
    const int n = stop - first;
    switch (pc->out) {
    case TI_OUT_F32: {
        float *restrict out = (float *)dst;
        const float *restrict f0 = s->f[0] + first, *restrict f1 = s->f[1] + first;
        const float *restrict f2 = s->f[2] + first, *restrict f3 = s->f[3] + first;
        for (int i = 0; i < n; i++) {
            out[4 * i + 0] = f0[i];
            out[4 * i + 1] = f1[i];
            out[4 * i + 2] = f2[i];
            out[4 * i + 3] = f3[i];
        }
        break;
    }
    case TI_OUT_F64: {
        double *restrict out = (double *)dst;
        const double *restrict d0 = s->d[0] + first, *restrict d1 = s->d[1] + first;
        const double *restrict d2 = s->d[2] + first, *restrict d3 = s->d[3] + first;
        for (int i = 0; i < n; i++) {
            out[4 * i + 0] = d0[i];
            out[4 * i + 1] = d1[i];
            out[4 * i + 2] = d2[i];
            out[4 * i + 3] = d3[i];
        }
        break;
    }
    case TI_OUT_BF16: {
        uint16_t *restrict out = (uint16_t *)dst;
        const float *restrict f0 = s->f[0] + first, *restrict f1 = s->f[1] + first;
        const float *restrict f2 = s->f[2] + first, *restrict f3 = s->f[3] + first;
        for (int i = 0; i < n; i++) {
            out[4 * i + 0] = f32_to_bf16(f0[i]);
            out[4 * i + 1] = f32_to_bf16(f1[i]);
            out[4 * i + 2] = f32_to_bf16(f2[i]);
            out[4 * i + 3] = f32_to_bf16(f3[i]);
        }
        break;
    }
    default: {
        uint16_t *restrict out = (uint16_t *)dst;
        const float *restrict f0 = s->f[0] + first, *restrict f1 = s->f[1] + first;
        const float *restrict f2 = s->f[2] + first, *restrict f3 = s->f[3] + first;
        for (int i = 0; i < n; i++) {
            out[4 * i + 0] = f32_to_f16(f0[i]);
            out[4 * i + 1] = f32_to_f16(f1[i]);
            out[4 * i + 2] = f32_to_f16(f2[i]);
            out[4 * i + 3] = f32_to_f16(f3[i]);
        }
        break;
    }
    }
}

/* Values [head, head + count) of the block to ``dst`` at an element stride: whole groups of a contiguous run
   straight into place, the rest through a buffer. */
TI_INLINE void store_values(const prepared *pc, const scratch *restrict s, int head, int64_t count, char *dst,
                            int64_t stride)
{
    const int size = element_size(pc->out);
    int64_t done = 0;
    if (head == 0 && stride == 1) {
        interleave(pc, s, 0, (int)(count >> 2), dst);
        done = count & ~(int64_t)3;
    }
    if (done == count)
        return;
    char buffer[BLOCK_VALUES * 8] TI_ALIGNED;
    const int first = (int)((head + done) >> 2);
    interleave(pc, s, first, (int)((head + count + 3) >> 2), buffer);
    const char *src = buffer + (head + done - 4 * (int64_t)first) * size;
    const int64_t rest = count - done;
    dst += done * stride * size;
    if (stride == 1) {
        memcpy(dst, src, (size_t)(rest * size));
    } else if (size == 2) {
        for (int64_t k = 0; k < rest; k++)
            memcpy(dst + k * stride * 2, src + k * 2, 2);
    } else if (size == 4) {
        for (int64_t k = 0; k < rest; k++)
            memcpy(dst + k * stride * 4, src + k * 4, 4);
    } else {
        for (int64_t k = 0; k < rest; k++)
            memcpy(dst + k * stride * 8, src + k * 8, 8);
    }
}

/* ---- one block: the functions each instruction set gets its own copy of ---- */

/* Groups rounded up to a multiple of 8, so that the vector loops need no remainder loop. */
TI_INLINE int whole_vectors(int groups) { return (groups + 7) & ~7; }

TI_INLINE void words_body(const prepared *pc, uint64_t first_group, int groups, scratch *s)
{
    philox_block(pc, first_group, whole_vectors(groups), s->w[0], s->w[1], s->w[2], s->w[3]);
}

TI_INLINE void transform_body(const prepared *pc, int groups, scratch *s) { transform(pc, whole_vectors(groups), s); }

TI_INLINE void store_body(const prepared *pc, const scratch *s, int head, int64_t count, char *dst, int64_t stride)
{
    store_values(pc, s, head, count, dst, stride);
}

typedef struct {
    const char *name;
    void (*words)(const prepared *, uint64_t, int, scratch *);
    void (*transform)(const prepared *, int, scratch *);
    void (*store)(const prepared *, const scratch *, int, int64_t, char *, int64_t);
    void (*finish)(void);  /* after a thread's stores, before they count as done */
} isa_kernels;

static void words_baseline(const prepared *pc, uint64_t first_group, int groups, scratch *s)
{
    words_body(pc, first_group, groups, s);
}

static void transform_baseline(const prepared *pc, int groups, scratch *s) { transform_body(pc, groups, s); }

static void store_baseline(const prepared *pc, const scratch *s, int head, int64_t count, char *dst, int64_t stride)
{
    store_body(pc, s, head, count, dst, stride);
}

static void finish_baseline(void) {}

static const isa_kernels BASELINE = {"baseline", words_baseline, transform_baseline, store_baseline, finish_baseline};

#ifdef TI_X86_AVX2
#define TI_AVX2 __attribute__((target("avx2,fma")))

/* The high words of the eight products a * m: vpmuludq multiplies the even lanes, and the odd ones after a
   shift; a blend puts the halves back in place without crossing lanes. (The low words are one vpmulld.) */
TI_AVX2 static inline __attribute__((always_inline)) __m256i mulhi_avx2(__m256i a, __m256i m)
{
    __m256i even = _mm256_mul_epu32(a, m);
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    return _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

/* x, as a value the compiler cannot see into: it keeps c ^ key apart from the product's high word, which
   GCC would otherwise reassociate into (hi ^ c) ^ key, one more step on each round's dependency chain. */
TI_AVX2 static inline __attribute__((always_inline)) __m256i opaque_avx2(__m256i x)
{
    __asm__("" : "+x"(x));
    return x;
}

/* Vectors of 8 groups that words_avx2 takes through the rounds together: the rounds are a chain of
   dependent multiplies, and only several independent chains keep the CPU's vector pipes busy (2: 0.44 ns per
   value on Zen 5, 4: 0.35, 8: 0.34; BLOCK_GROUPS a multiple of 8 times this). */
#define PHILOX_VECTORS 4
_Static_assert(BLOCK_GROUPS % (8 * PHILOX_VECTORS) == 0, "whole iterations of words_avx2 per block");

/* philox_block with AVX2 intrinsics: GCC's own vectorization of the 32x32 -> 64-bit products shuffles the
   halves across lanes and runs at half this speed. */
TI_AVX2 static void words_avx2(const prepared *pc, uint64_t first_group, int groups, scratch *s)
{
    const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0), m1 = _mm256_set1_epi32((int)PHILOX_M1);
    const __m256i sign = _mm256_set1_epi32(INT32_MIN);
    const uint32_t lo = (uint32_t)first_group;
    const __m256i lo_biased = _mm256_xor_si256(_mm256_set1_epi32((int)lo), sign);
    const __m256i hi = _mm256_set1_epi32((int)(uint32_t)(first_group >> 32));
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i stream_lo = _mm256_set1_epi32((int)pc->stream_lo);
    const __m256i stream_hi = _mm256_set1_epi32((int)pc->stream_hi);
    for (int i = 0; i < whole_vectors(groups); i += 8 * PHILOX_VECTORS) {
        __m256i c0[PHILOX_VECTORS], c1[PHILOX_VECTORS], c2[PHILOX_VECTORS], c3[PHILOX_VECTORS];
#pragma GCC unroll 8
        for (int v = 0; v < PHILOX_VECTORS; v++) {
            c0[v] = _mm256_add_epi32(_mm256_set1_epi32((int)(lo + (uint32_t)(i + 8 * v))), lane);
            /* the carry into the high word where the low word wrapped: c0 < lo, unsigned (-1 there) */
            c1[v] = _mm256_sub_epi32(hi, _mm256_cmpgt_epi32(lo_biased, _mm256_xor_si256(c0[v], sign)));
            c2[v] = stream_lo;
            c3[v] = stream_hi;
        }
#pragma GCC unroll 10
        for (int r = 0; r < PHILOX_ROUNDS; r++) {
            const __m256i k0 = _mm256_set1_epi32((int)pc->round_key0[r]);
            const __m256i k1 = _mm256_set1_epi32((int)pc->round_key1[r]);
#pragma GCC unroll 8
            for (int v = 0; v < PHILOX_VECTORS; v++) {
                __m256i next0 = _mm256_xor_si256(mulhi_avx2(c2[v], m1), opaque_avx2(_mm256_xor_si256(c1[v], k0)));
                __m256i next2 = _mm256_xor_si256(mulhi_avx2(c0[v], m0), opaque_avx2(_mm256_xor_si256(c3[v], k1)));
                c1[v] = _mm256_mullo_epi32(c2[v], m1);
                c3[v] = _mm256_mullo_epi32(c0[v], m0);
                c0[v] = next0;
                c2[v] = next2;
            }
        }
#pragma GCC unroll 8
        for (int v = 0; v < PHILOX_VECTORS; v++) {
            _mm256_store_si256((__m256i *)&s->w[0][i + 8 * v], c0[v]);
            _mm256_store_si256((__m256i *)&s->w[1][i + 8 * v], c1[v]);
            _mm256_store_si256((__m256i *)&s->w[2][i + 8 * v], c2[v]);
            _mm256_store_si256((__m256i *)&s->w[3][i + 8 * v], c3[v]);
        }
    }
}

TI_AVX2 static void transform_avx2(const prepared *pc, int groups, scratch *s) { transform_body(pc, groups, s); }

/* Contiguous runs of a large fill go through an L1 buffer and then to memory with streaming stores, which
   skip reading each cache line before writing it (half the memory traffic when the fill is memory-bound). */
TI_AVX2 static void store_avx2(const prepared *pc, const scratch *s, int head, int64_t count, char *dst,
                               int64_t stride)
{
    if (!pc->streaming || stride != 1) {
        store_body(pc, s, head, count, dst, stride);
        return;
    }
    const int size = element_size(pc->out);
    char buffer[BLOCK_VALUES * 8] TI_ALIGNED;
    interleave(pc, s, 0, (head + (int)count + 3) >> 2, buffer);
    const char *src = buffer + head * size;
    size_t bytes = (size_t)count * (size_t)size;
    size_t lead = (size_t)(-(uintptr_t)dst & 31);  /* up to the first 32-byte boundary */
    if (lead > bytes)
        lead = bytes;
    memcpy(dst, src, lead);
    size_t k = lead;
    for (; k + 32 <= bytes; k += 32)
        _mm256_stream_si256((__m256i *)(dst + k), _mm256_loadu_si256((const __m256i *)(src + k)));
    memcpy(dst + k, src + k, bytes - k);
}

/* Streaming stores are weakly ordered: fence them before the chunk counts as done. */
TI_AVX2 static void finish_avx2(void) { _mm_sfence(); }

static const isa_kernels AVX2 = {"x86-64 AVX2", words_avx2, transform_avx2, store_avx2, finish_avx2};
#endif

static const isa_kernels *kernels_for(int isa)
{
#ifdef TI_X86_AVX2
    __builtin_cpu_init();
    if (isa == TI_ISA_BEST && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &AVX2;
#endif
    (void)isa;
    return &BASELINE;
}

const char *ti_isa_name(int isa) { return kernels_for(isa)->name; }

/* ---- walking a layout ---- */

/* ``count`` consecutive logical indices from ``logical``, stored from element ``mem`` at ``stride``. */
static void fill_run(char *out, const prepared *pc, const isa_kernels *k, scratch *s, uint64_t logical,
                     int64_t count, int64_t mem, int64_t stride)
{
    const int64_t size = element_size(pc->out);
    uint64_t group = logical >> 2;
    int head = (int)(logical & 3);
    while (count > 0) {
        int64_t take = BLOCK_VALUES - head;
        if (take > count)
            take = count;
        int groups = (int)((head + take + 3) >> 2);
        k->words(pc, group, groups, s);
        k->transform(pc, groups, s);
        k->store(pc, s, head, take, out + mem * size, stride);
        mem += take * stride;
        count -= take;
        group += BLOCK_GROUPS;
        head = 0;
    }
}

/* ---- verification: regenerate values and compare them with stored ones, bit for bit ---- */

/* The contract's ulp (contract.ulp) at |y|, or less: the spacing at |y| (the subnormal spacing below the
   normal range), and the smallest spacing of all where |y| is 0 or not a number, so that it never exceeds
   the spacing at any value at least |y|. */
static double ulp_at_most(double y, int mantissa, int min_exponent)
{
    y = fabs(y);
    int exponent = y > 0.0 && y <= 1.7976931348623157e308 ? ilogb(y) : min_exponent;
    return ldexp(1.0, (exponent < min_exponent ? min_exponent : exponent) - mantissa);
}

/* The stored value at ``at`` as a double (fp32, bf16 or float64 outputs). */
static double stored_value(const char *at, int out)
{
    if (out == TI_OUT_F64) {
        double v;
        memcpy(&v, at, 8);
        return v;
    }
    uint32_t bits;
    if (out == TI_OUT_F32) {
        memcpy(&bits, at, 4);
    } else {
        uint16_t half;
        memcpy(&half, at, 2);
        bits = (uint32_t)half << 16;
    }
    return (double)bits_f32(bits);
}

/* Whether the value stored at ``at`` for lane ``lane`` of group ``g`` of the block (its words in ``s``) provably
   meets the contract: the exact value evaluated in float64 (libm's log, sqrt, cos, sin: a few ulps of
   float64), every error of that evaluation (``margin``, a thousand times larger than it) taken from the
   tolerance and added to the difference, the tolerance's ulps taken at the smallest magnitude the exact value
   can have. Anything else (NaN, infinities, trunc_normal, float16) is left to the caller's float64 check. */
static int within_contract(const prepared *pc, const ti_tolerance *t, const scratch *s, int g, int lane,
                           const char *at)
{
    if (pc->out == TI_OUT_F16 || pc->dist == TI_TRUNC_NORMAL)
        return 0;
    const double x = stored_value(at, pc->out);
    double exact, tolerance, margin;
    if (pc->dist == TI_UNIFORM) {
        exact = pc->a + pc->width * u01_f64(s->w[lane][g]);
        margin = 1e-12 * (fabs(pc->a) + fabs(pc->width));
        double low = fabs(exact) - margin;
        tolerance = t->uniform_ulps * ulp_at_most(low, 23, -126) +
                    t->rounding_ulps * ulp_at_most(low, t->out_mantissa, t->out_min_exponent);
    } else {
        const int pair = lane & 2;
        double radius = sqrt(-2.0 * log(u01_f64(s->w[pair][g])));
        double angle = 6.283185307179586 * u01_f64(s->w[pair + 1][g]);
        double z = radius * ((lane & 1) ? sin(angle) : cos(angle));
        exact = pc->mean + pc->std * z;
        margin = 1e-12 * (fabs(pc->mean) + pc->std * (1.0 + fabs(z)));
        double low = fabs(exact) - margin;
        double z_low = fabs(z) - 1e-12 * (1.0 + fabs(z));
        tolerance = t->z_tol * pc->std * (z_low > 1.0 ? z_low : 1.0) +
                    t->compute_ulps * ulp_at_most(low + fabs(pc->mean), t->compute_mantissa, t->compute_min_exponent) +
                    t->rounding_ulps * ulp_at_most(low, t->out_mantissa, t->out_min_exponent);
    }
    return fabs(x - exact) + margin <= tolerance;  /* false for a NaN */
}

/* Appends to ``positions`` the local positions, from ``position``, of the ``count`` stored elements (at
   ``mem`` and ``stride``) whose bits differ from the values of consecutive logical indices from ``logical``
   and that ``tolerance`` (if given) does not clear; returns how many. */
static int64_t compare_run(const char *stored, const prepared *pc, const ti_tolerance *tolerance,
                           const isa_kernels *k, scratch *s, uint64_t logical, int64_t count, int64_t mem,
                           int64_t stride, int64_t position, int64_t *positions)
{
    const int size = element_size(pc->out);
    char values[BLOCK_VALUES * 8] TI_ALIGNED;
    uint64_t group = logical >> 2;
    int head = (int)(logical & 3);
    int64_t found = 0;
    while (count > 0) {
        int64_t take = BLOCK_VALUES - head;
        if (take > count)
            take = count;
        int groups = (int)((head + take + 3) >> 2);
        k->words(pc, group, groups, s);
        k->transform(pc, groups, s);
        k->store(pc, s, head, take, values, 1);
        const char *at = stored + mem * size;
        if (stride != 1 || memcmp(values, at, (size_t)(take * size)) != 0)
            for (int64_t i = 0; i < take; i++) {
                const char *element = at + i * stride * size;
                if (memcmp(values + i * size, element, (size_t)size) != 0 &&
                    (tolerance == NULL ||
                     !within_contract(pc, tolerance, s, (int)((head + i) >> 2), (int)((head + i) & 3), element)))
                    positions[found++] = position + i;
            }
        mem += take * stride;
        position += take;
        count -= take;
        group += BLOCK_GROUPS;
        head = 0;
    }
    return found;
}

/* Elements [first, stop) of the layout, in local row-major order: written through ``out``, or, where ``stored``
   is given, compared with it (the differing positions to ``positions``, in order; returns how many). */
static int64_t fill_range(char *out, const char *stored, const ti_tolerance *tolerance, int64_t *positions,
                          const ti_layout *layout, const prepared *pc, const isa_kernels *k, int64_t first,
                          int64_t stop)
{
    scratch s;
    int64_t found = 0;
    const int inner = layout->ndim - 1;
    const int64_t n = layout->sizes[inner], inner_stride = layout->mem_strides[inner];
    int64_t row = first / n, col = first % n;
    while (first < stop) {
        int64_t count = n - col < stop - first ? n - col : stop - first;
        uint64_t logical = layout->base;
        int64_t mem = 0, rest = row;
        for (int d = inner - 1; d >= 0; d--) {
            int64_t index = rest % layout->sizes[d];
            rest /= layout->sizes[d];
            logical += (uint64_t)index * layout->logical_strides[d];
            mem += index * layout->mem_strides[d];
        }
        if (stored != NULL)
            found += compare_run(stored, pc, tolerance, k, &s, logical + (uint64_t)col, count,
                                 mem + col * inner_stride, inner_stride, first, positions + found);
        else
            fill_run(out, pc, k, &s, logical + (uint64_t)col, count, mem + col * inner_stride, inner_stride);
        first += count;
        row++;
        col = 0;
    }
    return found;
}

void ti_transform_words(void *out, const uint32_t *words, int64_t groups, const ti_call *call, int isa)
{
    prepared pc;
    prepare(&pc, call);
    const isa_kernels *k = kernels_for(isa);
    scratch s;
    memset(&s, 0, sizeof s);
    for (int64_t g0 = 0; g0 < groups; g0 += BLOCK_GROUPS) {
        int n = groups - g0 < BLOCK_GROUPS ? (int)(groups - g0) : BLOCK_GROUPS;
        for (int i = 0; i < n; i++)
            for (int lane = 0; lane < 4; lane++)
                s.w[lane][i] = words[4 * (g0 + i) + lane];
        k->transform(&pc, n, &s);
        k->store(&pc, &s, 0, 4 * (int64_t)n, (char *)out + 4 * g0 * element_size(pc.out), 1);
    }
}

/* ---- threads ----
 * Threads claim chunks of elements in turn. The calling thread works too and then waits only for chunks other
 * threads have claimed, never for a thread to start: on a busy machine a helper may get its first time slice
 * after the calling thread has done everything, and then finds nothing left. So helpers are detached and the
 * work they share lives on the heap until the last one lets go of it.
 */

typedef struct {
    char *out;
    const char *stored;  /* a comparison (ti_compare): the values to check, instead of ``out`` to write */
    const ti_tolerance *tolerance;
    int64_t *positions, *found;  /* its differing positions, and how many each chunk found */
    ti_layout layout;
    prepared pc;
    const isa_kernels *kernels;
    int64_t numel, chunk, chunks;
    atomic_llong next_chunk, done_chunks;
    atomic_int holders;
    pthread_mutex_t lock;
    pthread_cond_t all_done;
} work;

static void work_on(work *w)
{
    for (;;) {
        int64_t c = atomic_fetch_add(&w->next_chunk, 1);
        if (c >= w->chunks)
            return;
        int64_t first = c * w->chunk, stop = w->numel - first < w->chunk ? w->numel : first + w->chunk;
        int64_t found = fill_range(w->out, w->stored, w->tolerance, w->stored != NULL ? w->positions + first : NULL,
                                   &w->layout, &w->pc, w->kernels, first, stop);
        if (w->stored != NULL)
            w->found[c] = found;
        else
            w->kernels->finish();
        if (atomic_fetch_add(&w->done_chunks, 1) + 1 == w->chunks) {
            pthread_mutex_lock(&w->lock);
            pthread_cond_broadcast(&w->all_done);
            pthread_mutex_unlock(&w->lock);
        }
    }
}

static void let_go(work *w)
{
    if (atomic_fetch_sub(&w->holders, 1) == 1) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->all_done);
        free(w);
    }
}

static void *helper(void *arg)
{
    work *w = (work *)arg;
    work_on(w);
    let_go(w);
    return NULL;
}

/* Runs ``proto``'s chunks on up to ``threads`` threads (the calling one included); returns the threads used. */
static int run_work(const work *proto, int threads)
{
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > proto->chunks)
        threads = (int)proto->chunks;
    work *w = threads > 1 ? (work *)malloc(sizeof(work)) : NULL;
    if (w == NULL) {
        work single = *proto;
        atomic_init(&single.next_chunk, 0);
        atomic_init(&single.done_chunks, 0);
        pthread_mutex_init(&single.lock, NULL);
        pthread_cond_init(&single.all_done, NULL);
        work_on(&single);
        pthread_mutex_destroy(&single.lock);
        pthread_cond_destroy(&single.all_done);
        return 1;
    }
    *w = *proto;
    atomic_init(&w->next_chunk, 0);
    atomic_init(&w->done_chunks, 0);
    atomic_init(&w->holders, 1);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->all_done, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int started = 0;
    for (int t = 1; t < threads; t++) {
        pthread_t id;
        atomic_fetch_add(&w->holders, 1);
        if (pthread_create(&id, &attr, helper, w) != 0) {  /* no thread to be had: fewer helpers */
            atomic_fetch_sub(&w->holders, 1);
            break;
        }
        started++;
    }
    pthread_attr_destroy(&attr);
    work_on(w);
    pthread_mutex_lock(&w->lock);
    while (atomic_load(&w->done_chunks) < w->chunks)
        pthread_cond_wait(&w->all_done, &w->lock);
    pthread_mutex_unlock(&w->lock);
    let_go(w);
    return started + 1;
}

/* The work of one call over ``layout``, before its threads start; numel 0 for an empty layout. */
static void plan_work(work *w, const ti_layout *layout, const ti_call *call, int64_t chunk, int isa)
{
    memset(w, 0, sizeof *w);
    int64_t numel = 1;
    for (int d = 0; d < layout->ndim; d++)
        numel *= layout->sizes[d];
    w->layout = *layout;
    prepare(&w->pc, call);
    w->kernels = kernels_for(isa);
    w->numel = numel;
    w->chunk = chunk < 1 ? 1 : chunk;
    w->chunks = numel == 0 ? 0 : (numel - 1) / w->chunk + 1;
}

int ti_fill(void *out, const ti_layout *layout, const ti_call *call, int threads, int64_t chunk, int isa)
{
    work w;
    plan_work(&w, layout, call, chunk, isa);
    if (w.numel == 0)
        return 0;
    w.out = (char *)out;
    w.pc.streaming = layout->ndim == 1 && layout->mem_strides[0] == 1 &&
                     w.numel * element_size(call->out) >= STREAMING_BYTES;
    return run_work(&w, threads);
}

int64_t ti_compare(const void *stored, const ti_layout *layout, const ti_call *call, const ti_tolerance *tolerance,
                   int64_t *positions, int threads, int64_t chunk, int isa)
{
    work w;
    plan_work(&w, layout, call, chunk, isa);
    if (w.numel == 0)
        return 0;
    w.stored = (const char *)stored;
    w.tolerance = tolerance;
    w.positions = positions;
    w.found = (int64_t *)malloc((size_t)w.chunks * sizeof(int64_t));
    if (w.found == NULL)
        return -1;
    run_work(&w, threads);
    int64_t total = 0;
    for (int64_t c = 0; c < w.chunks; c++) {  /* each chunk's positions to the front, in order */
        if (total != c * w.chunk)
            memmove(positions + total, positions + c * w.chunk, (size_t)w.found[c] * sizeof(int64_t));
        total += w.found[c];
    }
    free(w.found);
    return total;
}
