// Checks every array once at the boundary, before any kernel runs. An in-place update must
// never land in a converted temporary, so nothing here converts: wrong dtype, layout or
// flags is an error that names the argument.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <string>
#include <utility>

#include "fusedopt/segments.hpp"

namespace fusedopt::bind {

namespace py = pybind11;

struct CheckedArray {
    void* data = nullptr;
    std::size_t size = 0;
    DType dtype = DType::f32;
    int ndim = 0;
    const Py_ssize_t* shape = nullptr;
    const Py_ssize_t* strides = nullptr;  // bytes
    bool dense = true;                    // its elements fill [data, data + size * itemsize)
};

std::string shape_string(int ndim, const Py_ssize_t* shape);
std::string dtype_name(DType t);

// A plain ndarray, or a numpy.memmap (its data is the mapped buffer, updated in place). Other
// subclasses are refused: the kernels would ignore what they add (a MaskedArray's mask).
inline bool plain_or_memmap(py::handle h) {
    if (Py_TYPE(h.ptr()) == py::detail::npy_api::get().PyArray_Type_) return true;
    static PyObject* const memmap = py::object(py::module_::import("numpy").attr("memmap")).release().ptr();  // kept
    return PyObject_TypeCheck(h.ptr(), reinterpret_cast<PyTypeObject*>(memmap)) != 0;
}

// ml_dtypes.bfloat16's scalar type, or null when ml_dtypes is not installed (then no array has it).
PyObject* bfloat16_type();

// The array's dtype as the kernels know it; false for any other.
inline bool known_dtype(const py::detail::PyArrayDescr_Proxy* d, DType& out) {
    switch (d->type_num) {
    case py::detail::npy_api::NPY_FLOAT_: out = DType::f32; return true;
    case py::detail::npy_api::NPY_DOUBLE_: out = DType::f64; return true;
    case 23: out = DType::f16; return true;  // NPY_HALF
    case py::detail::npy_api::NPY_UBYTE_: out = DType::u8; return true;
    default: break;
    }
    if (d->type_num >= 256 && d->typeobj == bfloat16_type()) {  // a user-defined dtype (NPY_USERDEF)
        out = DType::bf16;
        return true;
    }
    return false;
}

// Whether the elements fill one block of memory, in some order of the axes (C order, Fortran
// order, channels_last, any permutation): strides, sorted, are the running products of the
// sizes of the faster axes. Negative strides are refused (the data pointer is not the block's
// start). Axes of length 1 have any stride; an empty array is dense.
inline bool dense_layout(int ndim, const Py_ssize_t* shape, const Py_ssize_t* strides, Py_ssize_t itemsize) {
    Py_ssize_t order[64][2];  // NPY_MAXDIMS is 64 (NumPy 2), 32 before
    int n = 0;
    for (int i = 0; i < ndim; ++i) {
        if (shape[i] == 0) return true;
        if (shape[i] == 1) continue;
        if (strides[i] <= 0) return false;
        order[n][0] = strides[i];
        order[n][1] = shape[i];
        ++n;
    }
    for (int i = 1; i < n; ++i)  // insertion sort by stride
        for (int j = i; j > 0 && order[j][0] < order[j - 1][0]; --j) std::swap(order[j], order[j - 1]);
    Py_ssize_t expected = itemsize;
    for (int i = 0; i < n; ++i) {
        if (order[i][0] != expected) return false;
        expected *= order[i][1];
    }
    return true;
}

// Arrays a and b (of any itemsizes) lay out their elements in the same order: equal strides
// in elements on every axis longer than 1 (both dense, same shape).
inline bool same_layout(const CheckedArray& a, Py_ssize_t a_item, const CheckedArray& b, Py_ssize_t b_item) {
    for (int i = 0; i < a.ndim; ++i)
        if (a.shape[i] > 1 && a.strides[i] * b_item != b.strides[i] * a_item) return false;  // (aligned: exact multiples)
    return true;
}

// `describe()` names the array for messages, e.g. "grads for parameter 'W1'"; it is called
// only when a check fails. `low`: bfloat16 and float16 are accepted (optimizer parameters and
// gradients; not the standalone clip functions). `any_dense`: any dense layout, not only C order
// (optimizer parameters and state); `strided`: any layout at all (`dense` says which; an
// optimizer's gradients, which it copies when their layout is not their parameter's);
// `codes`: uint8 accepted (int8 optimizer state's codes).
template <class Describe>
CheckedArray check_array(py::handle h, bool written, Describe&& describe, bool low = false, bool any_dense = false,
                         bool strided = false, bool codes = false) {
    auto& api = py::detail::npy_api::get();
    if (!api.PyArray_Check_(h.ptr()))
        throw py::type_error(describe() + ": expected a numpy.ndarray of float32 or float64, got " +
                             std::string(Py_TYPE(h.ptr())->tp_name));
    if (!plain_or_memmap(h))
        throw py::type_error(describe() + ": " + std::string(Py_TYPE(h.ptr())->tp_name) +
                             " is not accepted, only a plain numpy.ndarray or numpy.memmap (the update would "
                             "ignore what the subclass adds, such as a mask); pass numpy.asarray(x) if intended");
    const auto* a = py::detail::array_proxy(h.ptr());
    const auto* d = py::detail::array_descriptor_proxy(a->descr);
    CheckedArray c;
    if (!known_dtype(d, c.dtype) || (!low && low_precision(c.dtype)) || (!codes && c.dtype == DType::u8))
        throw py::type_error(describe() + ": dtype " + std::string(py::str(h.attr("dtype"))) +
                             " is not supported; use float32 or float64" +
                             (low ? " (or bfloat16, float16)" : ""));
    if (d->byteorder == '>')
        throw py::value_error(describe() + ": byte order is not native; use arr.astype(arr.dtype.newbyteorder('='))");
    const int flags = a->flags;
    const bool c_order = (flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) != 0;
    c.dense = c_order || ((any_dense || strided) && dense_layout(a->nd, a->dimensions, a->strides, static_cast<Py_ssize_t>(dtype_size(c.dtype))));
    if (!c.dense && !strided)
        throw py::value_error(describe() + (any_dense ? ": must be dense (C order, Fortran order or another order of its "
                                                        "axes; an in-place update cannot go through a copy)"
                                            : written ? ": must be C-contiguous (an in-place update cannot go through a copy)"
                                                      : ": must be C-contiguous (pass numpy.ascontiguousarray of it)"));
    if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        throw py::value_error(describe() + ": must be aligned");
    if (written && !(flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
        throw py::value_error(describe() + ": is read-only but is updated in place");
    c.data = a->data;
    c.ndim = a->nd;
    c.shape = a->dimensions;
    c.strides = a->strides;
    std::size_t n = 1;
    for (int i = 0; i < a->nd; ++i) n *= static_cast<std::size_t>(a->dimensions[i]);
    c.size = n;
    return c;
}

// What check_array's verdict on an array depends on, besides where its data is: its type, its
// dtype (the descriptor object: immutable, and held here so that its address is not reused),
// the flags the checks read, its shape and strides. An array with the stamp of one that passed
// the same checks passes them again, with the same dtype, shape and layout, so a steady step
// compares stamps (a few loads per array) instead of checking every parameter and gradient
// again. Arrays of more than kDims dimensions get no stamp and are always checked.
struct ArrayStamp {
    static constexpr int kDims = 4;
    static constexpr int kLayoutFlags = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                                        py::detail::npy_api::NPY_ARRAY_F_CONTIGUOUS_ |
                                        py::detail::npy_api::NPY_ARRAY_ALIGNED_;
    static constexpr int kWriteable = py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    PyTypeObject* type = nullptr;  // null: no stamp
    py::object descr;
    int flags = 0;  // (kLayoutFlags | kWriteable) bits
    int nd = 0;
    Py_ssize_t shape[kDims] = {}, strides[kDims] = {};

    // The stamp of an array that passed check_array (none for more than kDims dimensions).
    static ArrayStamp of(py::handle h) {
        ArrayStamp s;
        const auto* a = py::detail::array_proxy(h.ptr());
        if (a->nd > kDims) return s;
        s.type = Py_TYPE(h.ptr());
        s.descr = py::reinterpret_borrow<py::object>(a->descr);
        s.flags = a->flags & (kLayoutFlags | kWriteable);
        s.nd = a->nd;
        for (int i = 0; i < a->nd; ++i) {
            s.shape[i] = a->dimensions[i];
            s.strides[i] = a->strides[i];
        }
        return s;
    }
    bool valid() const { return type != nullptr; }
    // Whether any object `x` is an array of this stamp; `flags_read`: the flag bits that must
    // agree (a gradient need not be writeable).
    bool matches(PyObject* x, int flags_read = kLayoutFlags | kWriteable) const {
        if (Py_TYPE(x) != type) return false;  // (an ndarray's type or a subclass': x is an ndarray)
        const auto* a = py::detail::array_proxy(x);
        if (a->descr != descr.ptr() || ((a->flags ^ flags) & flags_read) != 0 || a->nd != nd) return false;
        for (int i = 0; i < nd; ++i)
            if (a->dimensions[i] != shape[i] || a->strides[i] != strides[i]) return false;
        return true;
    }
};

inline bool same_shape(const CheckedArray& x, const CheckedArray& y) {
    if (x.ndim != y.ndim) return false;
    for (int i = 0; i < x.ndim; ++i)
        if (x.shape[i] != y.shape[i]) return false;
    return true;
}

}  // namespace fusedopt::bind
