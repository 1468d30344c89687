// The state a step creates, carved out of one zeroed buffer per (param group, dtype, slot), in
// parameter order, instead of one allocation per array. Allocated one by one, a parameter's
// state arrays interleave on the heap (exp_avg 0, exp_avg_sq 0, exp_avg 1, ...), so each slot's
// stream jumps at every array and the hardware prefetcher starts over 1000 times per step
// (measured, 1000 arrays of 1000 float32, Adam's access pattern, 1 thread: 1.37x the time of one
// array of 1M; the same parameters and gradients with the state from one buffer per slot: 0.94x,
// with 4 KiB pages as with 2 MiB ones; docs/state_arena.md). Each array is a NumPy view whose
// base keeps its buffer alive, laid out like its parameter (or in C order for a slot of another
// shape), on cache lines of its own, and placed as its parameter is on its lines (`phase`), so
// the step's vector stores straddle no line (Segment::lead; a parameter too short for its lead
// to be run apart has its state start a line: state_lead). Arrays over kMaxPooledBytes, and a
// pool of one array, get a buffer of their own (shared with nothing, freed with its array).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "array_checks.hpp"

namespace fusedopt::bind {

namespace py = pybind11;

// The elements of an array of this shape.
inline std::size_t element_count(const std::vector<Py_ssize_t>& shape) {
    std::size_t n = 1;
    for (Py_ssize_t d : shape) n *= static_cast<std::size_t>(d);
    return n;
}

// The byte phase (past a 64-byte boundary) at which an array of `item`-byte elements starts for
// its element `lead` to begin a cache line: where a parameter's state goes (Segment::lead).
inline std::size_t phase_for_lead(std::size_t lead, std::size_t item) { return (64 - lead * item % 64) % 64; }
// A parameter's Segment::lead where its elements may be cut anywhere: float32 and float64 (16-bit
// ones go through scratch blocks and vector steps of their own: 0).
inline std::uint8_t param_lead(const CheckedArray& p) {
    return low_precision(p.dtype) ? 0 : lead_to_line(p.data, dtype_size(p.dtype));
}
// The lead a parameter of `elements` whose own is `lead` has its new state placed for: its own
// where a step runs it apart (kPeelMinElements or more), so that every stream after it is on
// whole lines; else none, the state starting a line: the parameter's accesses straddle lines
// anyway, the state's need not (1000 arrays of 1000, AMD Zen 5, 2 threads, the bench's median
// over its 22 optimizers of the time against one array of 1M: 1.24-1.26x -> 1.19-1.23x).
inline std::size_t state_lead(std::size_t elements, std::size_t lead) { return elements >= kPeelMinElements ? lead : 0; }

class StateArena {
public:
    static constexpr std::size_t kAlign = 64;                // each array on its own cache lines
    static constexpr std::size_t kMaxPooledBytes = 1 << 20;  // larger arrays are streams of their own

    // First pass: array `slot` of parameter `param` (in `group`, of state dtype `dtype`) is to be
    // created with `bytes`, starting `phase` bytes past a 64-byte boundary. Calls come in
    // (param, slot) order.
    void reserve(std::size_t param, int slot, std::size_t group, DType dtype, std::size_t bytes,
                 std::size_t phase = 0) {
        if (bytes == 0) return;
        const bool alone = bytes > kMaxPooledBytes;
        std::size_t pool = alone ? pools_.size() : 0;  // (a new pool for an array alone)
        while (pool < pools_.size() && (pools_[pool].alone || !(pools_[pool].group == group &&
                                                                pools_[pool].slot == slot && pools_[pool].dtype == dtype)))
            ++pool;
        if (pool == pools_.size()) pools_.push_back(Pool{group, slot, dtype, alone});
        Pool& p = pools_[pool];
        const std::size_t offset = (p.bytes + kAlign - 1) / kAlign * kAlign + phase % kAlign;
        entries_.push_back(Entry{param, slot, pool, bytes, offset});
        p.bytes = offset + bytes;
        ++p.count;
    }

    // Whether (param, slot) was reserved in a buffer it shares with others.
    bool pooled(std::size_t param, int slot) const {
        const Entry* e = find(param, slot);
        return e && pools_[e->pool].count >= 2;
    }

    // Zeros of `dtype` and `shape` for (param, slot): a view into its pool when it was reserved
    // with this dtype and size, laid out like `like` (the parameter, dense) or in C order (null);
    // else what NumPy allocates alone (zeros_like(like_array, dtype) or zeros(shape, dtype)).
    py::object zeros(std::size_t param, int slot, py::handle dtype, const std::vector<Py_ssize_t>& shape,
                     const CheckedArray* like, py::handle like_array) {
        static const py::handle np_zeros = py::object(py::module_::import("numpy").attr("zeros")).release();          // kept
        static const py::handle np_zeros_like = py::object(py::module_::import("numpy").attr("zeros_like")).release();  // kept
        const Entry* e = find(param, slot);
        const py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype));
        DType kind;
        const std::size_t count = element_count(shape);
        const std::size_t item = static_cast<std::size_t>(dt.itemsize());
        if (!e || !known_dtype(py::detail::array_descriptor_proxy(dt.ptr()), kind) ||
            kind != pools_[e->pool].dtype || count * item != e->bytes)
            return like ? np_zeros_like(like_array, dtype) : np_zeros(py::tuple(py::cast(shape)), dtype);
        Pool& p = pools_[e->pool];
        if (!p.buffer) {
            p.buffer = np_zeros(py::int_(p.bytes + kAlign), "uint8");  // calloc: zero pages, touched by the step
            const auto at = reinterpret_cast<std::uintptr_t>(py::detail::array_proxy(p.buffer.ptr())->data);
            p.data = reinterpret_cast<char*>(at) + (kAlign - at % kAlign) % kAlign;
        }
        std::vector<Py_ssize_t> strides(shape.size());
        Py_ssize_t run = static_cast<Py_ssize_t>(item);  // C order
        for (std::size_t i = shape.size(); i-- > 0;) {
            strides[i] = run;
            run *= std::max<Py_ssize_t>(shape[i], 1);
        }
        if (like) {  // the parameter's order of axes (dense: its strides in elements, scaled)
            const auto p_item = static_cast<Py_ssize_t>(dtype_size(like->dtype));
            for (int i = 0; i < like->ndim; ++i)
                if (like->shape[i] > 1) strides[static_cast<std::size_t>(i)] = like->strides[i] / p_item * Py_ssize_t(item);
        }
        return py::array(dt, shape, strides, p.data + e->offset, p.buffer);
    }

private:
    struct Pool {
        std::size_t group;
        int slot;
        DType dtype;
        bool alone;  // over kMaxPooledBytes: shared with nothing
        std::size_t bytes = 0, count = 0;
        py::object buffer{};  // a uint8 ndarray: the views' base
        char* data = nullptr;
    };
    struct Entry {
        std::size_t param;
        int slot;
        std::size_t pool, bytes, offset;
    };

    const Entry* find(std::size_t param, int slot) const {
        const auto it = std::lower_bound(entries_.begin(), entries_.end(), Entry{param, slot, 0, 0, 0},
                                         [](const Entry& a, const Entry& b) {
                                             return a.param != b.param ? a.param < b.param : a.slot < b.slot;
                                         });
        return it != entries_.end() && it->param == param && it->slot == slot ? &*it : nullptr;
    }

    std::vector<Pool> pools_;
    std::vector<Entry> entries_;  // in (param, slot) order
};

}  // namespace fusedopt::bind
