# Vectorcall for compiled wrappers (PEP 590): a wrapper object calls through
# a C function pointer stored in the instance, so ``wrapper(*args)`` passes
# its arguments on as a C array, with no tuple or dict built per call.

from cpython.object cimport PyObject, PyTypeObject


cdef extern from "Python.h":
    ctypedef PyObject* (*vectorcallfunc)(
        PyObject* callable, PyObject** args, size_t nargsf, PyObject* kwnames
    )
    # Declared returning ``object``: Cython checks for NULL and raises.
    object PyObject_Vectorcall(object callable, PyObject** args, size_t nargsf, PyObject* kwnames)
    object PyVectorcall_Call(object callable, object args, object kwargs)
    unsigned long Py_TPFLAGS_HAVE_VECTORCALL
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)

    ctypedef struct TypeSlots "PyTypeObject":
        unsigned long tp_flags
        Py_ssize_t tp_vectorcall_offset

    # For awaitables whose await and send are C calls (see _calls_c).
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(PyObject* iter, PyObject* arg, PyObject** presult)
    ctypedef PyObject* (*unaryfunc)(PyObject*)
    ctypedef int (*sendfunc)(PyObject* iter, PyObject* value, PyObject** result)
    ctypedef struct AsyncMethods "PyAsyncMethods":
        unaryfunc am_await
        sendfunc am_send
    # A type's own constructor slot: ``kind.__new__(kind, *args)`` with no
    # attribute lookup and no ``__new__`` wrapper in between.
    ctypedef object (*newfunc)(PyTypeObject* kind, object args, PyObject* kwargs)
    ctypedef struct NewTypeSlots "PyTypeObject":
        newfunc tp_new
    ctypedef struct AsyncTypeSlots "PyTypeObject":
        AsyncMethods* tp_as_async
        unaryfunc tp_iternext


cdef inline void enable_vectorcall(type kind, Py_ssize_t offset) noexcept:
    """Make instances of ``kind`` callable through the pointer at ``offset``.

    ``kind`` must be a final cdef class that also defines ``__call__`` (the
    tp_call that CPython falls back to).
    """
    (<TypeSlots*>kind).tp_vectorcall_offset = offset
    (<TypeSlots*>kind).tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL


cdef inline tuple positional(PyObject** args, size_t nargsf):
    """The positional arguments of a vectorcall, as a tuple."""
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf)
    if n == 0:
        return ()
    return tuple([<object>args[i] for i in range(n)])


cdef inline dict keywords(PyObject** args, size_t nargsf, PyObject* kwnames):
    """The keyword arguments of a vectorcall, as a dict."""
    if kwnames is NULL:
        return {}
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf)
    cdef tuple names = <tuple>kwnames
    return {names[i]: <object>args[n + i] for i in range(len(names))}
