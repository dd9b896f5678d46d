/* The Python entry of a compiled model's dlc_predict.
 *
 * cffi's argument conversions (ffi.from_buffer on x and y, the cdata checks) cost ~1 us a
 * call, several times the forward pass of a small network at batch 1.  This module checks
 * the input array with NumPy's C API, allocates y and calls the model's entry point through
 * its address, in ~0.1 us.  It knows nothing of a model but the tuple it is handed; the
 * library itself is still built and loaded by cffi.
 *
 * Predictor(entry, local, fallback) is a model's predict in one C call: the Python frames of
 * a method and its workspace lookup cost as much again at batch 1.  It takes this thread's
 * workspace from the threading.local `local`, and hands every case it does not finish (an
 * array to convert, no workspace yet in this thread, a failed call) to `fallback`, the
 * Python path, which converts, allocates or names the error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <stddef.h>

typedef int (*predict_fn)(const void *params, const void *x, void *y, size_t batch,
                          void *workspace, int threads);

enum { ENTRY_FUNCTION, ENTRY_PARAMS, ENTRY_N_INPUTS, ENTRY_N_OUTPUTS, ENTRY_TYPENUM,
       ENTRY_THREADS, ENTRY_OUTPUT_TYPENUM, ENTRY_SIZE };

/* Batches at least this large run with the GIL released. */
#define RELEASE_GIL_ROWS 16

static void *address(PyObject *entry, int field)
{
    return PyLong_AsVoidPtr(PyTuple_GET_ITEM(entry, field));
}

static long integer(PyObject *entry, int field)
{
    return PyLong_AsLong(PyTuple_GET_ITEM(entry, field));
}

/* Whether x is a C-contiguous, native-endian (batch, n_inputs) array of the model's dtype. */
static int fits(PyObject *x, PyObject *entry)
{
    if (!PyArray_Check(x)) {
        return 0;
    }
    PyArrayObject *array = (PyArrayObject *)x;
    return PyArray_NDIM(array) == 2 && PyArray_DIM(array, 0) > 0
           && PyArray_DIM(array, 1) == integer(entry, ENTRY_N_INPUTS)
           && PyArray_TYPE(array) == integer(entry, ENTRY_TYPENUM)
           && PyArray_ISCARRAY_RO(array) && PyArray_ISNOTSWAPPED(array);
}

/* predict(entry, x, workspace) -> y, or None when x does not fit (the caller converts it
 * or raises a clear error), or dlc_predict's nonzero status as an int.
 * entry = (function, params, n_inputs, n_outputs, NumPy type number of x, threads,
 * NumPy type number of y);
 * function, params and workspace are addresses. */
static PyObject *predict(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != ENTRY_SIZE) {
        PyErr_SetString(PyExc_TypeError, "predict(entry, x, workspace)");
        return NULL;
    }
    PyObject *entry = args[0];
    if (!fits(args[1], entry)) {
        Py_RETURN_NONE;
    }
    PyArrayObject *x = (PyArrayObject *)args[1];
    npy_intp shape[2] = {PyArray_DIM(x, 0), integer(entry, ENTRY_N_OUTPUTS)};
    PyObject *y = PyArray_SimpleNew(2, shape, (int)integer(entry, ENTRY_OUTPUT_TYPENUM));
    if (!y) {
        return NULL;
    }
    predict_fn function = (predict_fn)address(entry, ENTRY_FUNCTION);
    const void *params = address(entry, ENTRY_PARAMS);
    void *workspace = PyLong_AsVoidPtr(args[2]);
    int threads = (int)integer(entry, ENTRY_THREADS);
    if (!function || PyErr_Occurred()) {        /* not addresses: never call through them */
        Py_DECREF(y);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "predict: no function address in the entry");
        }
        return NULL;
    }
    const void *in = PyArray_DATA(x);
    void *out = PyArray_DATA((PyArrayObject *)y);
    size_t batch = (size_t)shape[0];
    int status;
    if (batch >= RELEASE_GIL_ROWS) {
        Py_BEGIN_ALLOW_THREADS
        status = function(params, in, out, batch, workspace, threads);
        Py_END_ALLOW_THREADS
    } else {
        status = function(params, in, out, batch, workspace, threads);
    }
    if (status != 0) {
        Py_DECREF(y);
        return PyLong_FromLong(status);
    }
    return y;
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *entry, *local, *fallback;
} Predictor;

static PyObject *workspace_name;

static PyObject *call_fallback(Predictor *self, PyObject *x)
{
    return PyObject_CallOneArg(self->fallback, x);
}

/* The input fits, this thread has its workspace and the call succeeds: y.  Otherwise the
 * fallback's answer. */
static PyObject *predictor_call(PyObject *callable, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames)
{
    Predictor *self = (Predictor *)callable;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames) {
        PyErr_SetString(PyExc_TypeError, "predict(X) takes one argument, the rows");
        return NULL;
    }
    PyObject *workspace = PyObject_GetAttr(self->local, workspace_name);
    if (!workspace) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }
        PyErr_Clear();
        return call_fallback(self, args[0]);
    }
    PyObject *call[3] = {self->entry, args[0], workspace};
    PyObject *y = predict(NULL, call, 3);
    Py_DECREF(workspace);
    if (y && PyArray_CheckExact(y)) {
        return y;
    }
    Py_XDECREF(y);
    PyErr_Clear();
    return call_fallback(self, args[0]);
}

static PyObject *predictor_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *entry, *local, *fallback;
    if (kwargs || !PyArg_ParseTuple(args, "O!OO:Predictor", &PyTuple_Type, &entry, &local,
                                    &fallback)) {
        if (kwargs) {
            PyErr_SetString(PyExc_TypeError, "Predictor(entry, local, fallback)");
        }
        return NULL;
    }
    if (PyTuple_GET_SIZE(entry) != ENTRY_SIZE || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "Predictor(entry, local, fallback): an entry tuple "
                                         "and a callable");
        return NULL;
    }
    Predictor *self = (Predictor *)type->tp_alloc(type, 0);
    if (!self) {
        return NULL;
    }
    self->vectorcall = predictor_call;
    Py_INCREF(entry);
    Py_INCREF(local);
    Py_INCREF(fallback);
    self->entry = entry, self->local = local, self->fallback = fallback;
    return (PyObject *)self;
}

static int predictor_traverse(Predictor *self, visitproc visit, void *arg)
{
    Py_VISIT(self->entry);
    Py_VISIT(self->local);
    Py_VISIT(self->fallback);
    return 0;
}

static int predictor_clear(Predictor *self)
{
    Py_CLEAR(self->entry);
    Py_CLEAR(self->local);
    Py_CLEAR(self->fallback);
    return 0;
}

static void predictor_dealloc(Predictor *self)
{
    PyObject_GC_UnTrack(self);
    predictor_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject predictor_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dlc._fastcall.Predictor",
    .tp_basicsize = sizeof(Predictor),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Predictor(entry, local, fallback)(X) -> y: a model's predict in one C call",
    .tp_new = predictor_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Predictor, vectorcall),
    .tp_traverse = (traverseproc)predictor_traverse,
    .tp_clear = (inquiry)predictor_clear,
    .tp_dealloc = (destructor)predictor_dealloc,
};

static PyMethodDef methods[] = {
    {"predict", (PyCFunction)(void (*)(void))predict, METH_FASTCALL,
     "predict(entry, x, workspace) -> y | None | status"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fastcall", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastcall(void)
{
    import_array();
    workspace_name = PyUnicode_InternFromString("workspace");
    if (!workspace_name || PyType_Ready(&predictor_type) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    Py_INCREF(&predictor_type);
    if (!module || PyModule_AddObject(module, "Predictor", (PyObject *)&predictor_type) < 0) {
        Py_XDECREF(module);
        Py_DECREF(&predictor_type);
        return NULL;
    }
    return module;
}
