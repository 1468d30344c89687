// Row-sparse gradients (fusedopt.RowSparse: indices into the parameter's first axis, and one
// row of gradient per index), as the step sees them: checked at the boundary as strictly as a
// dense gradient, then coalesced into one segment per distinct row, so that only those rows of
// the parameter and its state are read and written (docs/sparse.md).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "array_checks.hpp"

namespace fusedopt::bind {

namespace py = pybind11;

// fusedopt.RowSparse (or a subclass).
inline bool is_row_sparse(py::handle h) {
    static PyObject* const type = py::object(py::module_::import("fusedopt.sparse").attr("RowSparse")).release().ptr();  // kept
    return PyObject_TypeCheck(h.ptr(), reinterpret_cast<PyTypeObject*>(type)) != 0;
}

struct CheckedSparse {
    const void* indices = nullptr;
    bool wide = false;         // int64 indices, else int32
    std::size_t count = 0;     // indices (rows given)
    std::size_t row_size = 0;  // elements in one row
    CheckedArray rows;
    std::int64_t index(std::size_t k) const {
        return wide ? static_cast<const std::int64_t*>(indices)[k] : static_cast<const std::int32_t*>(indices)[k];
    }
};

// Index width in bytes of an integer dtype number, or 0 when it is not int32 or int64.
inline int index_width(int type_num) {
    using api = py::detail::npy_api;
    if (type_num == api::NPY_INT_) return int(sizeof(int)) == 4 ? 4 : 0;
    if (type_num == api::NPY_LONG_) return int(sizeof(long));
    if (type_num == api::NPY_LONGLONG_) return int(sizeof(long long)) == 8 ? 8 : 0;
    return 0;
}

// `who()` names the gradient ("grads for parameter 'emb'"). The parameter `p` needs a first axis;
// the rows must have its dtype and shape (len(indices),) + p.shape[1:]; every index in range.
template <class Who>
CheckedSparse check_row_sparse(py::handle g, const CheckedArray& p, Who&& who) {
    if (p.ndim == 0) throw py::value_error(who() + ": a 0-d parameter has no rows; give it a dense gradient");
    if (low_precision(p.dtype))  // their repeated rows would need 16-bit sums; not built
        throw py::type_error(who() + ": row-sparse gradients need a float32 or float64 parameter, got " +
                             dtype_name(p.dtype));
    Py_ssize_t stride = Py_ssize_t(dtype_size(p.dtype));  // rows are contiguous only in C order
    for (int i = p.ndim - 1; i >= 0; stride *= p.shape[i], --i)
        if (p.shape[i] > 1 && (!p.strides || p.strides[i] != stride))
            throw py::value_error(who() + ": row-sparse gradients need a C-ordered parameter (its rows contiguous)");
    const py::object idx = g.attr("indices"), rows = g.attr("rows");
    auto ind = [&] { return who() + ": indices"; };
    auto& api = py::detail::npy_api::get();
    if (!api.PyArray_Check_(idx.ptr()) || !plain_or_memmap(idx))
        throw py::type_error(ind() + ": expected a numpy.ndarray of int32 or int64, got " +
                             std::string(Py_TYPE(idx.ptr())->tp_name));
    const auto* a = py::detail::array_proxy(idx.ptr());
    const auto* d = py::detail::array_descriptor_proxy(a->descr);
    const int width = index_width(d->type_num);
    if (width == 0)
        throw py::type_error(ind() + ": dtype " + std::string(py::str(idx.attr("dtype"))) +
                             " is not supported; use int32 or int64");
    if (d->byteorder == '>') throw py::value_error(ind() + ": byte order is not native");
    if (a->nd != 1) throw py::value_error(ind() + ": must be 1-d, got shape " + shape_string(a->nd, a->dimensions));
    if (!(a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) || !(a->flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        throw py::value_error(ind() + ": must be C-contiguous and aligned");
    CheckedSparse s;
    s.indices = a->data;
    s.wide = width == 8;
    s.count = static_cast<std::size_t>(a->dimensions[0]);
    s.rows = check_array(rows, false, [&] { return who() + ": rows"; });
    if (s.rows.dtype != p.dtype)
        throw py::type_error(who() + ": rows: dtype " + dtype_name(s.rows.dtype) + " does not match the parameter's " +
                             dtype_name(p.dtype));
    bool ok = s.rows.ndim == p.ndim && static_cast<std::size_t>(s.rows.shape[0]) == s.count;
    for (int i = 1; ok && i < p.ndim; ++i) ok = s.rows.shape[i] == p.shape[i];
    if (!ok) {
        std::vector<Py_ssize_t> want(p.shape, p.shape + p.ndim);
        want[0] = static_cast<Py_ssize_t>(s.count);
        throw py::value_error(who() + ": rows: shape " + shape_string(s.rows.ndim, s.rows.shape) +
                              " does not match (len(indices),) + the parameter's trailing shape " +
                              shape_string(p.ndim, want.data()));
    }
    s.row_size = 1;
    for (int i = 1; i < p.ndim; ++i) s.row_size *= static_cast<std::size_t>(p.shape[i]);
    const std::int64_t n = p.shape[0];
    for (std::size_t k = 0; k < s.count; ++k) {
        const std::int64_t r = s.index(k);
        if (r < 0 || r >= n)
            throw py::value_error(ind() + ": indices[" + std::to_string(k) + "] = " + std::to_string(r) +
                                  " is out of range for a parameter of " + std::to_string(n) + " rows");
    }
    return s;
}

// Coalesces row-sparse gradients into distinct rows, in order of first appearance. A row given
// once is read where the caller put it; a row given several times gets the sum of its copies,
// added in the order given (as torch's coalesce adds them), built in scratch when the step runs.
class RowCoalescer {
public:
    struct Row {
        std::int64_t index;      // row of the parameter
        const void* grad;        // the caller's row, or null: scratch at byte `sum`
        std::size_t sum;
    };

    void clear() {
        adds_.clear();
        scratch_bytes_ = 0;
    }

    // The distinct rows of `s` (already checked), appended to `out`. Leaves its marks clean.
    void coalesce(const CheckedSparse& s, std::int64_t n_rows, DType dtype, std::vector<Row>& out) {
        if (mark_.size() < static_cast<std::size_t>(n_rows)) mark_.resize(static_cast<std::size_t>(n_rows), 0);
        const std::size_t bytes = s.row_size * dtype_size(dtype);
        const auto* base = static_cast<const unsigned char*>(s.rows.data);
        const std::size_t first = out.size();
        for (std::size_t k = 0; k < s.count; ++k) {
            std::uint32_t& m = mark_[static_cast<std::size_t>(s.index(k))];
            if (m == 0) {
                out.push_back({s.index(k), base + k * bytes, 0});
                m = static_cast<std::uint32_t>(out.size() - first);
                continue;
            }
            Row& row = out[first + m - 1];
            if (row.grad) {  // its second copy: the sum starts from the first
                row.sum = scratch_bytes_;
                scratch_bytes_ += (bytes + 63) & ~std::size_t(63);  // rows on their own cache lines
                adds_.push_back({row.sum, row.grad, s.row_size, dtype, true});
                row.grad = nullptr;
            }
            adds_.push_back({row.sum, base + k * bytes, s.row_size, dtype, false});
        }
        for (std::size_t u = first; u < out.size(); ++u) mark_[static_cast<std::size_t>(out[u].index)] = 0;
    }

    // Scratch for this step's sums (call after every coalesce, before the step runs); returns
    // its start.
    void* prepare() {
        if (scratch_.size() * 8 < scratch_bytes_ + 64) scratch_.resize(scratch_bytes_ / 8 + 8);
        auto at = reinterpret_cast<std::uintptr_t>(scratch_.data());
        return reinterpret_cast<void*>((at + 63) & ~std::uintptr_t(63));
    }

    // Builds the sums (no Python here: runs without the GIL).
    void run_sums(void* scratch) const {
        for (const Add& a : adds_) {
            void* dst = static_cast<unsigned char*>(scratch) + a.dst;
            if (a.dtype == DType::f32) add_row(static_cast<float*>(dst), static_cast<const float*>(a.src), a.n, a.first);
            else add_row(static_cast<double*>(dst), static_cast<const double*>(a.src), a.n, a.first);
        }
    }
    bool has_sums() const { return !adds_.empty(); }

private:
    struct Add {
        std::size_t dst;  // scratch offset in bytes
        const void* src;
        std::size_t n;
        DType dtype;
        bool first;       // copy, else add
    };
    template <class T>
    static void add_row(T* dst, const T* src, std::size_t n, bool first) {
        if (first) {
            std::memcpy(dst, src, n * sizeof(T));
            return;
        }
        for (std::size_t i = 0; i < n; ++i) dst[i] = dst[i] + src[i];
    }

    std::vector<std::uint32_t> mark_;  // per row: 0, or 1 + its position among this parameter's distinct rows
    std::vector<Add> adds_;
    std::size_t scratch_bytes_ = 0;
    std::vector<double> scratch_;
};

}  // namespace fusedopt::bind
