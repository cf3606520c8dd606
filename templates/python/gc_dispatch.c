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
#include <stddef.h>
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
 * given_dims (NULL: none): the dims already computed (a list of n_dims Python ints), for
 * functions whose dims are not all input sizes (slices with run-time bounds: graphc's
 * runtime/value_binding.py computes them first) or that have checks of dim expressions (made
 * in Python first); the input shapes are then checked against them.
 * A Python int is accepted for an int64 or int32 scalar input (f(index)), and a numpy scalar of
 * the input's dtype for an int64, int32, float64 or float32 one.
 */
static PyObject *run_checked(const int64_t *s, gc_run_fn fn, void *ctx, PyObject *const *argv,
                             Py_ssize_t nargs, PyObject *shareds, PyObject *consts,
                             PyObject *name_value, PyObject *given_dims) {
    const int64_t n_in = s[0], n_sh = s[1], n_const = s[2], n_out = s[3], n_dims = s[4];
    const int64_t n_upd = s[5], single = s[6];
    s += 7;
    if (nargs != n_in) Py_RETURN_NOTIMPLEMENTED;
    if (n_in + n_sh + n_const + n_out > GC_MAX_ARGS || n_dims > GC_MAX_ARGS) Py_RETURN_NOTIMPLEMENTED;
    void *bufs[GC_MAX_ARGS];
    int64_t dims[GC_MAX_ARGS];
    char bound[GC_MAX_ARGS];
    memset(bound, 0, (size_t)n_dims);
    if (given_dims != NULL) {
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
        PyObject *o = argv[i];
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
    rc = fn(ctx, bufs, dims);
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

/* call(spec, fn_addr, ctx_addr, arrays, shareds, consts, "_value"[, dims]): one call, the caller holds
   the lock (kept for callers that bind nothing; Function uses a Caller). */
static PyObject *call(PyObject *self, PyObject *args) {
    PyArrayObject *spec_arr;
    unsigned long long fn_addr, ctx_addr;
    PyObject *arrays, *shareds, *consts, *name_value, *given_dims = Py_None;
    if (!PyArg_ParseTuple(args, "O!KKOOOO|O", &PyArray_Type, &spec_arr, &fn_addr, &ctx_addr, &arrays,
                          &shareds, &consts, &name_value, &given_dims))
        return NULL;
    if (!PyTuple_Check(arrays)) Py_RETURN_NOTIMPLEMENTED;
    return run_checked((const int64_t *)PyArray_DATA(spec_arr), (gc_run_fn)(uintptr_t)fn_addr,
                       (void *)(uintptr_t)ctx_addr, &PyTuple_GET_ITEM(arrays, 0),
                       PyTuple_GET_SIZE(arrays), shareds, consts, name_value,
                       given_dims == Py_None ? NULL : given_dims);
}

/* A Caller binds one function's call once: Caller(spec, fn_addr, ctx_addr, shareds, consts,
 * lock, on_error, fallback[, prebind]), then caller(*arrays) takes the lock (a tuple of locks,
 * each acquired in order, or a context manager's __enter__/__exit__), runs, and calls on_error() (which raises) when the program
 * failed. Keyword arguments, or arguments it does not accept, go to fallback()(*args, **kwargs):
 * fallback is a weak reference to the Function's checked path (no reference cycle), called only
 * then. prebind (None: not needed) computes and checks the dims first, as a list, from the
 * arguments (graphc.runtime.checks.ArgumentChecker.prebind), or returns None: the checked path
 * then runs. Function's __call__ reaches a Caller without a Python frame (runtime/function.py).
 * Unpacking the seven arguments of call() was a fifth of a small call's instructions, the Python
 * frame around it another; a vectorcall with the rest bound here costs neither. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *spec, *shareds, *consts, *lock, *on_error, *fallback, *name_value, *prebind;
    const int64_t *words;
    gc_run_fn fn;
    void *ctx;
} Caller;

static PyObject *str_enter, *str_exit, *str_acquire, *str_release;

/* The locks of a call: a tuple of locks (a function's shared variables' locks, in their fixed
 * order), taken one by one and given back in reverse, or one context manager. Taking ten locks
 * through graphc's several-locks object (Python __enter__/__exit__ loops) cost ~3 us of an
 * imported model's call; its locks' own acquire/release from here cost a tenth of that. */
static void caller_give_back(PyObject *locks, Py_ssize_t taken) {
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);  /* (a release cannot lose the error in flight) */
    while (taken-- > 0) {
        PyObject *argv[1] = {PyTuple_GET_ITEM(locks, taken)};
        PyObject *r = PyObject_VectorcallMethod(str_release, argv, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r) Py_DECREF(r); else PyErr_WriteUnraisable(argv[0]);
    }
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

static int caller_enter(Caller *c) {
    if (PyTuple_CheckExact(c->lock)) {
        const Py_ssize_t n = PyTuple_GET_SIZE(c->lock);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *argv[1] = {PyTuple_GET_ITEM(c->lock, i)};
            PyObject *r = PyObject_VectorcallMethod(str_acquire, argv, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (!r) {  /* (an interrupt while waiting: give back what was taken) */
                caller_give_back(c->lock, i);
                return -1;
            }
            Py_DECREF(r);
        }
        return 0;
    }
    PyObject *lock_argv[1] = {c->lock};
    PyObject *entered = PyObject_VectorcallMethod(str_enter, lock_argv, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (!entered) return -1;
    Py_DECREF(entered);
    return 0;
}

/* Gives back the call's locks; -1 with an error set when a context manager's __exit__ failed. */
static int caller_exit(Caller *c) {
    if (PyTuple_CheckExact(c->lock)) {
        caller_give_back(c->lock, PyTuple_GET_SIZE(c->lock));
        return 0;
    }
    PyObject *lock_argv[4] = {c->lock, Py_None, Py_None, Py_None};
    PyObject *exited = PyObject_VectorcallMethod(str_exit, lock_argv, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (!exited) return -1;
    Py_DECREF(exited);
    return 0;
}

static PyObject *caller_fallback(Caller *c, PyObject *const *argv, size_t nargsf, PyObject *kw) {
    PyObject *checked = PyObject_CallNoArgs(c->fallback);
    if (!checked) return NULL;
    if (checked == Py_None) {
        Py_DECREF(checked);
        PyErr_SetString(PyExc_RuntimeError, "this graphc function was freed");
        return NULL;
    }
    PyObject *r = PyObject_Vectorcall(checked, argv, nargsf & ~PY_VECTORCALL_ARGUMENTS_OFFSET, kw);
    Py_DECREF(checked);
    return r;
}

static PyObject *caller_vectorcall(PyObject *op, PyObject *const *argv, size_t nargsf, PyObject *kw) {
    Caller *c = (Caller *)op;
    const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kw != NULL && PyTuple_GET_SIZE(kw) > 0) return caller_fallback(c, argv, nargsf, kw);
    PyObject *given_dims = NULL;
    if (c->prebind != Py_None) {
        PyObject *arg_tuple = PyTuple_New(nargs);
        if (!arg_tuple) return NULL;
        for (Py_ssize_t i = 0; i < nargs; i++) { Py_INCREF(argv[i]); PyTuple_SET_ITEM(arg_tuple, i, argv[i]); }
        given_dims = PyObject_CallOneArg(c->prebind, arg_tuple);
        Py_DECREF(arg_tuple);
        if (!given_dims) return NULL;
        if (!PyList_CheckExact(given_dims)) {  /* None: the checked path decides and words it */
            Py_DECREF(given_dims);
            return caller_fallback(c, argv, nargsf, kw);
        }
    }
    if (caller_enter(c) < 0) { Py_XDECREF(given_dims); return NULL; }
    PyObject *result = run_checked(c->words, c->fn, c->ctx, argv, nargs, c->shareds, c->consts,
                                   c->name_value, given_dims);
    Py_XDECREF(given_dims);
    PyObject *exc_type = NULL, *exc_value = NULL, *exc_tb = NULL;
    if (!result) PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    const int exited = caller_exit(c);
    if (!result) {
        if (exited < 0) PyErr_Clear();
        PyErr_Restore(exc_type, exc_value, exc_tb);
        return NULL;
    }
    if (exited < 0) { Py_DECREF(result); return NULL; }
    if (result == Py_NotImplemented) {
        Py_DECREF(result);
        return caller_fallback(c, argv, nargsf, kw);
    }
    if (PyLong_CheckExact(result)) {  /* the program failed: on_error() raises its message */
        Py_DECREF(result);
        PyObject *r = PyObject_CallNoArgs(c->on_error);
        if (r) {
            Py_DECREF(r);
            PyErr_SetString(PyExc_RuntimeError, "a compiled graphc program failed");
        }
        return NULL;
    }
    return result;
}

static PyObject *caller_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyArrayObject *spec;
    unsigned long long fn_addr, ctx_addr;
    PyObject *shareds, *consts, *lock, *on_error, *fallback, *prebind = Py_None;
    if (!PyArg_ParseTuple(args, "O!KKO!O!OOO|O:Caller", &PyArray_Type, &spec, &fn_addr, &ctx_addr,
                          &PyList_Type, &shareds, &PyList_Type, &consts, &lock, &on_error, &fallback,
                          &prebind))
        return NULL;
    if (PyArray_TYPE(spec) != NPY_INT64 || !PyArray_IS_C_CONTIGUOUS(spec) || PyArray_NDIM(spec) != 1
            || PyArray_DIM(spec, 0) < 7) {
        PyErr_SetString(PyExc_ValueError, "Caller: spec must be a C-contiguous int64 vector");
        return NULL;
    }
    Caller *c = (Caller *)type->tp_alloc(type, 0);
    if (!c) return NULL;
    c->vectorcall = caller_vectorcall;
    Py_INCREF(spec); c->spec = (PyObject *)spec;
    Py_INCREF(shareds); c->shareds = shareds;
    Py_INCREF(consts); c->consts = consts;
    Py_INCREF(lock); c->lock = lock;
    Py_INCREF(on_error); c->on_error = on_error;
    Py_INCREF(fallback); c->fallback = fallback;
    Py_INCREF(prebind); c->prebind = prebind;
    c->name_value = PyUnicode_InternFromString("_value");
    if (!c->name_value) { Py_DECREF(c); return NULL; }
    c->words = (const int64_t *)PyArray_DATA(spec);
    c->fn = (gc_run_fn)(uintptr_t)fn_addr;
    c->ctx = (void *)(uintptr_t)ctx_addr;
    return (PyObject *)c;
}

static int caller_traverse(Caller *c, visitproc visit, void *arg) {
    Py_VISIT(c->spec); Py_VISIT(c->shareds); Py_VISIT(c->consts); Py_VISIT(c->lock);
    Py_VISIT(c->on_error); Py_VISIT(c->fallback); Py_VISIT(c->prebind);
    return 0;
}

static int caller_clear(Caller *c) {
    Py_CLEAR(c->spec); Py_CLEAR(c->shareds); Py_CLEAR(c->consts); Py_CLEAR(c->lock);
    Py_CLEAR(c->on_error); Py_CLEAR(c->fallback); Py_CLEAR(c->name_value); Py_CLEAR(c->prebind);
    return 0;
}

static void caller_dealloc(Caller *c) {
    PyObject_GC_UnTrack(c);
    caller_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyTypeObject CallerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gc_dispatch.Caller",
    .tp_basicsize = sizeof(Caller),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "One compiled function's fast call, its arguments bound once.",
    .tp_new = caller_new,
    .tp_dealloc = (destructor)caller_dealloc,
    .tp_traverse = (traverseproc)caller_traverse,
    .tp_clear = (inquiry)caller_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Caller, vectorcall),
};

static PyMethodDef methods[] = {
    {"call", call, METH_VARARGS, "Run a compiled graphc program (fast path)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gc_dispatch", NULL, -1, methods};

PyMODINIT_FUNC PyInit_gc_dispatch(void) {
    import_array();
    str_enter = PyUnicode_InternFromString("__enter__");
    str_exit = PyUnicode_InternFromString("__exit__");
    str_acquire = PyUnicode_InternFromString("acquire");
    str_release = PyUnicode_InternFromString("release");
    if (!str_enter || !str_exit || !str_acquire || !str_release || PyType_Ready(&CallerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&CallerType);
    if (PyModule_AddObject(m, "Caller", (PyObject *)&CallerType) < 0) {
        Py_DECREF(&CallerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
