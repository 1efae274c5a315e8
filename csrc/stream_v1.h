/* The native CPU executor of stream format v1 (README "Stream format v1"): what the Python binding calls. */
#ifndef TRITON_INIT_STREAM_V1_H
#define TRITON_INIT_STREAM_V1_H

#include <stdint.h>

enum { TI_UNIFORM = 0, TI_NORMAL = 1, TI_TRUNC_NORMAL = 2 };
/* How trunc_normal inverts the normal CDF: the kernels' fp32 paths (ndtri_coeffs.h: CENTRAL, UNTRUNCATED, WIDE,
   TAIL), chosen by kernels/trunc_paths.py, or float64 for the calls the kernels leave to the float64 reference
   (triton_init/_format.py kernel_exact: some p below fp32's normal range). */
#include "ndtri_coeffs.h"
enum { TI_TRUNC_GENERAL = 4 };
enum { TI_OUT_F32 = 0, TI_OUT_F64 = 1, TI_OUT_BF16 = 2, TI_OUT_F16 = 3 };
/* Instruction sets: the best this CPU runs, or the baseline every target machine has. */
enum { TI_ISA_BEST = 0, TI_ISA_BASELINE = 1 };

#define TI_MAX_DIMS 64

typedef struct {
    int dist, trunc_mode, out;
    uint64_t seed, stream;
    /* uniform: (a, b - a); normal: (mean, std); trunc_normal: (mean, std, Phi(alpha), Phi(-beta), mass, lo, hi)
       with lo, hi the outermost output-dtype values inside [a, b]. */
    double params[7];
} ti_call;

/* A coalesced layout (triton_init/_layout.py): dims outermost first, the last a run of consecutive logical
   indices; element strides in memory, strides in the logical row-major index, the logical index of element 0. */
typedef struct {
    int ndim;
    int64_t sizes[TI_MAX_DIMS], mem_strides[TI_MAX_DIMS];
    uint64_t logical_strides[TI_MAX_DIMS];
    uint64_t base;
} ti_layout;

/* Write the values of every element of ``layout`` through ``out`` on up to ``threads`` threads, which claim
   ``chunk`` elements at a time (neither changes a value). Returns the number of threads used. */
int ti_fill(void *out, const ti_layout *layout, const ti_call *call, int threads, int64_t chunk, int isa);

/* The stream-format contract (triton_init/contract.py) for ti_compare's float64 check: a stored x passes if
   |x - exact| <= z_tol * std * max(1, |z|) + compute_ulps * ulp_c(|exact| + |mean|) + rounding_ulps * ulp_o(exact)
   (normal) or uniform_ulps * ulp_f32(exact) + rounding_ulps * ulp_o(exact) (uniform); ulp_c and ulp_o are the
   spacings of the compute and output dtypes (mantissa bits, smallest normal exponent). */
typedef struct {
    double z_tol, compute_ulps, rounding_ulps, uniform_ulps;
    int compute_mantissa, compute_min_exponent, out_mantissa, out_min_exponent;
} ti_tolerance;

/* Compare the values of every element of ``layout`` with those stored through ``stored`` on up to ``threads``
   threads: equal bits pass; with ``tolerance`` (uniform and normal calls, fp32/bf16/float64 outputs), so does a
   value that a float64 evaluation of the exact value, with a margin for its own error, puts within the
   contract. ``positions`` (room for every element) receives the local row-major positions of the others, in
   order. Returns how many, or -1 where memory ran out. */
int64_t ti_compare(const void *stored, const ti_layout *layout, const ti_call *call, const ti_tolerance *tolerance,
                   int64_t *positions, int threads, int64_t chunk, int isa);

/* The values of the groups whose Philox words are given (words[4 i + lane]), in element order: the
   transforms alone, for exhaustive checks over every u(w). */
void ti_transform_words(void *out, const uint32_t *words, int64_t groups, const ti_call *call, int isa);

/* The instruction set ``isa`` resolves to on this CPU: "x86-64-v3" or "baseline". */
const char *ti_isa_name(int isa);

#endif
