/* triton_init._native: the Python binding of the native CPU executor (stream_v1.c).
 *
 * It takes plain numbers (a data pointer, dtype and distribution codes, the coalesced layout, the call's
 * parameters) and needs no torch headers; triton_init/_cpu.py checks every argument before calling. The
 * GIL is released while the threads write.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "stream_v1.h"

/* Bumped whenever the arguments change, so that a stale build is noticed instead of misread. */
#define INTERFACE_VERSION 3

/* A sequence of at most ``max`` Python ints as 64-bit words: signed (int64_t bits) or, if ``is_unsigned``, in
 * [0, 2^64). Returns the count, or -1 with an exception set. */
static int read_words(PyObject *seq, uint64_t *out, int max, int is_unsigned, const char *name)
{
    PyObject *fast = PySequence_Fast(seq, name);
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > max) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: at most %d entries, got %zd", name, max, n);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, k);
        out[k] = is_unsigned ? PyLong_AsUnsignedLongLong(item) : (uint64_t)PyLong_AsLongLong(item);
        if (out[k] == (uint64_t)-1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return (int)n;
}

static int read_doubles(PyObject *seq, double *out, int count, const char *name)
{
    PyObject *fast = PySequence_Fast(seq, name);
    if (!fast)
        return -1;
    if (PySequence_Fast_GET_SIZE(fast) < count) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: %d values needed, got %zd", name, count, PySequence_Fast_GET_SIZE(fast));
        return -1;
    }
    for (int k = 0; k < count; k++) {
        out[k] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, k));
        if (out[k] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

static int read_call(ti_call *call, int out, int dist, int trunc_mode, PyObject *params, unsigned long long seed,
                     unsigned long long stream)
{
    memset(call, 0, sizeof *call);
    if (out < TI_OUT_F32 || out > TI_OUT_F16 || dist < TI_UNIFORM || dist > TI_TRUNC_NORMAL ||
        trunc_mode < TI_TRUNC_CENTRAL || trunc_mode > TI_TRUNC_GENERAL) {
        PyErr_SetString(PyExc_ValueError, "unknown output dtype, distribution or trunc_normal mode code");
        return -1;
    }
    call->out = out;
    call->dist = dist;
    call->trunc_mode = trunc_mode;
    call->seed = seed;
    call->stream = stream;
    int count = dist == TI_UNIFORM ? 2 : (dist == TI_NORMAL ? 2 : 7);
    return read_doubles(params, call->params, count, "params");
}

PyDoc_STRVAR(fill_doc,
"fill(data_ptr, out, dist, trunc_mode, params, seed, stream, sizes, mem_strides,\n"
"     logical_strides, base, threads, chunk, isa) -> threads used\n\n"
"Write stream format v1 values over a coalesced layout through data_ptr (see triton_init/_cpu.py).");

static int read_layout(ti_layout *layout, PyObject *sizes, PyObject *mem_strides, PyObject *logical_strides,
                       unsigned long long base)
{
    memset(layout, 0, sizeof *layout);
    int ndim = read_words(sizes, (uint64_t *)layout->sizes, TI_MAX_DIMS, 0, "sizes");
    if (ndim < 0 || read_words(mem_strides, (uint64_t *)layout->mem_strides, TI_MAX_DIMS, 0, "mem_strides") != ndim ||
        read_words(logical_strides, layout->logical_strides, TI_MAX_DIMS, 1, "logical_strides") != ndim) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "sizes, mem_strides and logical_strides differ in length");
        return -1;
    }
    if (ndim == 0) {
        PyErr_SetString(PyExc_ValueError, "a layout has at least one dim");
        return -1;
    }
    for (int d = 0; d < ndim; d++)
        if (layout->sizes[d] < 0) {
            PyErr_SetString(PyExc_ValueError, "negative size");
            return -1;
        }
    layout->ndim = ndim;
    layout->base = base;
    return 0;
}

static PyObject *py_fill(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long data, seed, stream, base;
    long long chunk;
    int out, dist, trunc_mode, threads, isa;
    PyObject *params, *sizes, *mem_strides, *logical_strides;
    if (!PyArg_ParseTuple(args, "KiiiOKKOOOKiLi", &data, &out, &dist, &trunc_mode, &params, &seed,
                          &stream, &sizes, &mem_strides, &logical_strides, &base, &threads, &chunk, &isa))
        return NULL;
    ti_call call;
    ti_layout layout;
    if (read_call(&call, out, dist, trunc_mode, params, seed, stream) < 0 ||
        read_layout(&layout, sizes, mem_strides, logical_strides, base) < 0)
        return NULL;
    int used;
    Py_BEGIN_ALLOW_THREADS
    used = ti_fill((void *)(uintptr_t)data, &layout, &call, threads, chunk, isa);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(used);
}

PyDoc_STRVAR(compare_doc,
"compare(stored_ptr, out, dist, trunc_mode, params, seed, stream, sizes, mem_strides,\n"
"        logical_strides, base, tolerance, positions_ptr, threads, chunk, isa) -> count\n\n"
"Compare the stored values over a coalesced layout with stream format v1's: equal bits pass, and with\n"
"tolerance (None, or (z_tol, compute_ulps, rounding_ulps, uniform_ulps, compute_mantissa,\n"
"compute_min_exponent, out_mantissa, out_min_exponent)) values a float64 evaluation puts within the\n"
"contract; the local row-major positions of the others go to positions_ptr (int64, room for every\n"
"element), in order.");

static PyObject *py_compare(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long stored, seed, stream, base, positions;
    long long chunk;
    int out, dist, trunc_mode, threads, isa;
    PyObject *params, *sizes, *mem_strides, *logical_strides, *tolerance_spec;
    if (!PyArg_ParseTuple(args, "KiiiOKKOOOKOKiLi", &stored, &out, &dist, &trunc_mode, &params, &seed,
                          &stream, &sizes, &mem_strides, &logical_strides, &base, &tolerance_spec, &positions,
                          &threads, &chunk, &isa))
        return NULL;
    ti_tolerance tolerance;
    if (tolerance_spec != Py_None) {
        double t[8];
        if (read_doubles(tolerance_spec, t, 8, "tolerance") < 0)
            return NULL;
        tolerance = (ti_tolerance){t[0], t[1], t[2], t[3], (int)t[4], (int)t[5], (int)t[6], (int)t[7]};
    }
    ti_call call;
    ti_layout layout;
    if (read_call(&call, out, dist, trunc_mode, params, seed, stream) < 0 ||
        read_layout(&layout, sizes, mem_strides, logical_strides, base) < 0)
        return NULL;
    int64_t found;
    Py_BEGIN_ALLOW_THREADS
    found = ti_compare((const void *)(uintptr_t)stored, &layout, &call, tolerance_spec != Py_None ? &tolerance : NULL,
                       (int64_t *)(uintptr_t)positions, threads, chunk, isa);
    Py_END_ALLOW_THREADS
    if (found < 0)
        return PyErr_NoMemory();
    return PyLong_FromLongLong(found);
}

PyDoc_STRVAR(transform_words_doc,
"transform_words(out_ptr, words_ptr, groups, out, dist, trunc_mode, params, isa)\n\n"
"The values of groups whose four Philox words are given (uint32, words[4 i + lane]), in element order:\n"
"the transforms alone, for checks over every value u(w) can take.");

static PyObject *py_transform_words(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long out_ptr, words_ptr;
    long long groups;
    int out, dist, trunc_mode, isa;
    PyObject *params;
    if (!PyArg_ParseTuple(args, "KKLiiiOi", &out_ptr, &words_ptr, &groups, &out, &dist, &trunc_mode, &params,
                          &isa))
        return NULL;
    ti_call call;
    if (read_call(&call, out, dist, trunc_mode, params, 0, 0) < 0)
        return NULL;
    if (groups < 0) {
        PyErr_SetString(PyExc_ValueError, "negative group count");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    ti_transform_words((void *)(uintptr_t)out_ptr, (const uint32_t *)(uintptr_t)words_ptr, groups, &call, isa);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_isa_name(PyObject *self, PyObject *args)
{
    (void)self;
    int isa = TI_ISA_BEST;
    if (!PyArg_ParseTuple(args, "|i", &isa))
        return NULL;
    return PyUnicode_FromString(ti_isa_name(isa));
}

/* The inverse-CDF coefficients this build compiled in (ndtri_coeffs.h), by piece: triton_init/_cpu.py refuses a
   build whose pieces differ from kernels/ndtri_coeffs.py. */
static PyObject *py_ndtri_coeffs(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    const struct { const char *name; const double *c; int n; } pieces[] = {
        {"CENTRAL", TI_NDTRI_CENTRAL, TI_NDTRI_CENTRAL_DEGREE + 1},
        {"WIDE", TI_NDTRI_WIDE, TI_NDTRI_WIDE_DEGREE + 1},
        {"FAR", TI_NDTRI_FAR, TI_NDTRI_FAR_DEGREE + 1},
    };
    PyObject *result = PyDict_New();
    if (!result)
        return NULL;
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
        PyObject *tuple = PyTuple_New(pieces[k].n);
        if (!tuple) {
            Py_DECREF(result);
            return NULL;
        }
        for (int i = 0; i < pieces[k].n; i++) {
            PyObject *value = PyFloat_FromDouble(pieces[k].c[i]);
            if (!value) {
                Py_DECREF(tuple);
                Py_DECREF(result);
                return NULL;
            }
            PyTuple_SET_ITEM(tuple, i, value);
        }
        int failed = PyDict_SetItemString(result, pieces[k].name, tuple);
        Py_DECREF(tuple);
        if (failed) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

static PyMethodDef methods[] = {
    {"fill", py_fill, METH_VARARGS, fill_doc},
    {"compare", py_compare, METH_VARARGS, compare_doc},
    {"transform_words", py_transform_words, METH_VARARGS, transform_words_doc},
    {"ndtri_coeffs", py_ndtri_coeffs, METH_NOARGS, "ndtri_coeffs() -> the compiled inverse-CDF pieces, by name"},
    {"isa_name", py_isa_name, METH_VARARGS, "isa_name(isa=ISA_BEST) -> the instruction set the kernels use here"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "triton_init._native",
    "The native CPU executor of stream format v1 (csrc/stream_v1.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "INTERFACE_VERSION", INTERFACE_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "ISA_BEST", TI_ISA_BEST) < 0 ||
        PyModule_AddIntConstant(m, "ISA_BASELINE", TI_ISA_BASELINE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
