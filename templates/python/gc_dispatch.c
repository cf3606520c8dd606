/* graphc's call path: a small CPython extension, built once per machine and Python, that
 * checks the arguments of a compiled function, binds its symbolic dims, allocates its outputs,
 * calls the program and applies the updates, without a Python-level loop.
 *
 * It never raises for bad arguments: it returns NotImplemented and the Python path, which
 * knows how to word the error, runs instead. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <stdint.h>

#define GC_MAX_ARGS 512
#define GC_MAX_RANK 16

typedef int (*gc_run_fn)(void *ctx, void *const *bufs, const int64_t *dims);

/* Spec layout (an int64 numpy array built by graphc.runtime.fastcall):
 *   n_inputs, n_shared, n_consts, n_outputs, n_dims, n_updates, single_output
 *   per input:  type_num, ndim, ndim x axis code (>= 0 static size, -1-k: symbolic dim k)
 *   per output: kind (0 fresh, 1 in place into shared j), type_num or j, ndim, axis codes
 *   per update: output index, shared index
 *
 * Optional last argument: the dims already computed (a list of n_dims Python ints), for
 * functions whose dims are not all input sizes (slices with run-time bounds: graphc's
 * runtime/value_binding.py computes them first); the input shapes are then checked against them.
 * A Python int is accepted for an int64 or int32 scalar input (f(index)), and a numpy scalar of
 * the input's dtype for an int64, int32, float64 or float32 one.
 */
static PyObject *call(PyObject *self, PyObject *args) {
    PyArrayObject *spec_arr;
    unsigned long long fn_addr, ctx_addr;
    PyObject *arrays, *shareds, *consts, *name_value, *given_dims = Py_None;
    if (!PyArg_ParseTuple(args, "O!KKOOOO|O", &PyArray_Type, &spec_arr, &fn_addr, &ctx_addr,
                          &arrays, &shareds, &consts, &name_value, &given_dims))
        return NULL;
    const int64_t *s = (const int64_t *)PyArray_DATA(spec_arr);
    const int64_t n_in = s[0], n_sh = s[1], n_const = s[2], n_out = s[3], n_dims = s[4];
    const int64_t n_upd = s[5], single = s[6];
    s += 7;
    if (!PyTuple_Check(arrays) || PyTuple_GET_SIZE(arrays) != n_in) Py_RETURN_NOTIMPLEMENTED;
    if (n_in + n_sh + n_const + n_out > GC_MAX_ARGS || n_dims > GC_MAX_ARGS) Py_RETURN_NOTIMPLEMENTED;
    void *bufs[GC_MAX_ARGS];
    int64_t dims[GC_MAX_ARGS];
    char bound[GC_MAX_ARGS];
    memset(bound, 0, (size_t)n_dims);
    if (given_dims != Py_None) {
        if (!PyList_CheckExact(given_dims) || PyList_GET_SIZE(given_dims) != n_dims)
            Py_RETURN_NOTIMPLEMENTED;
        for (int64_t k = 0; k < n_dims; k++) {
            dims[k] = PyLong_AsLongLong(PyList_GET_ITEM(given_dims, k));
            if (dims[k] == -1 && PyErr_Occurred()) { PyErr_Clear(); Py_RETURN_NOTIMPLEMENTED; }
            bound[k] = 1;
        }
    }
    int64_t scalars[GC_MAX_ARGS];  /* the values of Python ints given for scalar inputs */
    int64_t slot = 0;
    for (int64_t i = 0; i < n_in; i++) {
        PyObject *o = PyTuple_GET_ITEM(arrays, i);
        const int64_t type_num = s[0], ndim = s[1];
        if (PyLong_CheckExact(o) && ndim == 0 && (type_num == NPY_INT64 || type_num == NPY_INT32)) {
            int overflow;
            const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
            if (overflow || (v == -1 && PyErr_Occurred())) { PyErr_Clear(); Py_RETURN_NOTIMPLEMENTED; }
            if (type_num == NPY_INT32) {
                if (v < INT32_MIN || v > INT32_MAX) Py_RETURN_NOTIMPLEMENTED;
                const int32_t narrow = (int32_t)v;
                memcpy(&scalars[i], &narrow, sizeof narrow);
            } else {
                scalars[i] = v;
            }
            bufs[slot++] = &scalars[i];
            s += 2;
            continue;
        }
        if (ndim == 0 && PyArray_IsScalar(o, Generic) && (type_num == NPY_INT64 ||
                type_num == NPY_INT32 || type_num == NPY_FLOAT64 || type_num == NPY_FLOAT32)) {
            /* A numpy scalar of the input's dtype (np.int64(i), np.float32(lr)) */
            PyArray_Descr *descr = PyArray_DescrFromScalar(o);
            if (!descr) return NULL;
            const int same = descr->type_num == type_num;
            Py_DECREF(descr);
            if (!same) Py_RETURN_NOTIMPLEMENTED;
            PyArray_ScalarAsCtype(o, &scalars[i]);
            bufs[slot++] = &scalars[i];
            s += 2;
            continue;
        }
        if (!PyArray_CheckExact(o)) Py_RETURN_NOTIMPLEMENTED;
        PyArrayObject *a = (PyArrayObject *)o;
        if (PyArray_TYPE(a) != type_num || PyArray_NDIM(a) != ndim || !PyArray_IS_C_CONTIGUOUS(a) ||
            !PyArray_ISNOTSWAPPED(a) || !PyArray_ISALIGNED(a))
            Py_RETURN_NOTIMPLEMENTED;
        const npy_intp *shape = PyArray_DIMS(a);
        for (int64_t d = 0; d < ndim; d++) {
            const int64_t code = s[2 + d];
            if (code >= 0) {
                if (shape[d] != code) Py_RETURN_NOTIMPLEMENTED;
            } else {
                const int64_t k = -1 - code;
                if (!bound[k]) { dims[k] = shape[d]; bound[k] = 1; }
                else if (dims[k] != shape[d]) Py_RETURN_NOTIMPLEMENTED;
            }
        }
        bufs[slot++] = PyArray_DATA(a);
        s += 2 + ndim;
    }
    for (int64_t k = 0; k < n_dims; k++)
        if (!bound[k]) Py_RETURN_NOTIMPLEMENTED;
    /* An output of rank above GC_MAX_RANK goes to the checked path: its shape would not fit. */
    {
        const int64_t *t = s;
        for (int64_t o = 0; o < n_out; o++) {
            if (t[2] > GC_MAX_RANK) Py_RETURN_NOTIMPLEMENTED;
            t += 3 + t[2];
        }
    }
    /* Shared values: the current array of each shared variable. */
    PyObject *values[GC_MAX_ARGS];
    for (int64_t j = 0; j < n_sh; j++) {
        PyObject *v = PyObject_GetAttr(PyList_GET_ITEM(shareds, j), name_value);
        if (!v) return NULL;
        values[j] = v;  /* borrowed below through the shared variable; released at the end */
        bufs[slot++] = PyArray_DATA((PyArrayObject *)v);
    }
    for (int64_t c = 0; c < n_const; c++)
        bufs[slot++] = PyArray_DATA((PyArrayObject *)PyList_GET_ITEM(consts, c));
    PyObject *outs = PyList_New(n_out);
    if (!outs) goto fail_values;
    for (int64_t o = 0; o < n_out; o++) {
        const int64_t kind = s[0], what = s[1], ndim = s[2];
        PyObject *arr;
        if (kind == 1) {
            arr = values[what];
            Py_INCREF(arr);
        } else {
            npy_intp shape[GC_MAX_RANK];
            for (int64_t d = 0; d < ndim; d++) shape[d] = s[3 + d] >= 0 ? s[3 + d] : dims[-1 - s[3 + d]];
            arr = PyArray_SimpleNew((int)ndim, shape, (int)what);
            if (!arr) { Py_DECREF(outs); goto fail_values; }
        }
        PyList_SET_ITEM(outs, o, arr);
        bufs[slot++] = PyArray_DATA((PyArrayObject *)arr);
        s += 3 + ndim;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = ((gc_run_fn)(uintptr_t)fn_addr)((void *)(uintptr_t)ctx_addr, bufs, dims);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        Py_DECREF(outs);
        for (int64_t j = 0; j < n_sh; j++) Py_DECREF(values[j]);
        return PyLong_FromLong(rc);  /* the caller reads the message from the context */
    }
    /* Updates land only now, after the whole program succeeded. */
    for (int64_t u = 0; u < n_upd; u++) {
        PyObject *sv = PyList_GET_ITEM(shareds, s[1]);
        if (PyObject_SetAttr(sv, name_value, PyList_GET_ITEM(outs, s[0])) != 0) {
            Py_DECREF(outs);
            goto fail_values;
        }
        s += 2;
    }
    for (int64_t j = 0; j < n_sh; j++) Py_DECREF(values[j]);
    const int64_t n_user = n_out - n_upd;
    if (single) {
        PyObject *r = PyList_GET_ITEM(outs, 0);
        Py_INCREF(r);
        Py_DECREF(outs);
        return r;
    }
    if (n_user == n_out) return outs;
    PyObject *user = PyList_GetSlice(outs, 0, n_user);
    Py_DECREF(outs);
    return user;
fail_values:
    for (int64_t j = 0; j < n_sh; j++) Py_DECREF(values[j]);
    return NULL;
}

static PyMethodDef methods[] = {
    {"call", call, METH_VARARGS, "Run a compiled graphc program (fast path)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gc_dispatch", NULL, -1, methods};

PyMODINIT_FUNC PyInit_gc_dispatch(void) {
    import_array();
    return PyModule_Create(&module);
}
