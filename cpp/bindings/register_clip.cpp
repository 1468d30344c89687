// Standalone gradient utilities over lists of arrays (mixed float32/float64 allowed):
// total norm, in-place scaling, in-place clamping. The Python layer (fusedopt/clip.py) adds
// torch.nn.utils semantics on top.
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "array_checks.hpp"
#include "fusedopt/norm.hpp"
#include "fusedopt/overlap.hpp"
#include "fusedopt/dispatch.hpp"

namespace py = pybind11;

namespace fusedopt::bind {

namespace {

// Arrays of a list, split by dtype. Slot 0 holds the data (and slot 1 the same pointer, so
// the norm kernels, which read slot 1 in a step, can read either).
struct SplitArrays {
    ArraySet sets[2];
    std::vector<const ArraySet*> nonempty() const {
        std::vector<const ArraySet*> v;
        for (const ArraySet& s : sets)
            if (!s.segments.empty()) v.push_back(&s);
        return v;
    }
};

SplitArrays split(const py::list& arrays, bool written, const char* name) {
    SplitArrays out;
    out.sets[0].dtype = DType::f32;
    out.sets[1].dtype = DType::f64;
    for (std::size_t i = 0; i < arrays.size(); ++i) {
        const CheckedArray a =
            check_array(arrays[i], written, [&] { return std::string(name) + "[" + std::to_string(i) + "]"; });
        Segment seg{};
        seg.size = a.size;
        seg.data[0] = a.data;
        seg.data[1] = a.data;
        out.sets[static_cast<int>(a.dtype)].append(seg);
    }
    return out;
}

void check_distinct(const SplitArrays& s, const char* name) {
    std::vector<Span> spans;
    for (const ArraySet& set : s.sets)
        for (const Segment& seg : set.segments)
            if (seg.size) spans.push_back(make_span(seg.data[0], seg.size, set.dtype, true, 0, 0));
    if (first_overlap(spans).found)
        throw py::value_error(std::string(name) + ": two arrays share memory; each must be updated once");
}

}  // namespace

void register_clip(py::module_& m) {
    m.def(
        "total_norm",
        [](py::list arrays, double p) {
            const SplitArrays s = split(arrays, false, "grads");
            NormResult r;
            {
                py::gil_scoped_release release;
                r = total_norm(s.nonempty(), 1, p, active_kernels(), current_exec());
            }
            return py::make_tuple(r.norm, r.nonfinite);
        },
        py::arg("arrays"), py::arg("norm_type"),
        "(norm, nonfinite): the norm_type-norm over every element of every array, float64 accumulation.");
    m.def(
        "scale_",
        [](py::list arrays, double factor) {
            const SplitArrays s = split(arrays, true, "grads");
            check_distinct(s, "grads");
            py::gil_scoped_release release;
            const KernelTable& k = active_kernels();
            const Exec e = current_exec();
            for (const ArraySet* set : s.nonempty())
                (set->dtype == DType::f32 ? k.elementwise.scale_f32 : k.elementwise.scale_f64)(set->list(), factor, e);
        },
        py::arg("arrays"), py::arg("factor"), "x *= factor for every array, in place.");
    m.def(
        "clamp_",
        [](py::list arrays, double lo, double hi) {
            const SplitArrays s = split(arrays, true, "grads");
            check_distinct(s, "grads");
            py::gil_scoped_release release;
            const KernelTable& k = active_kernels();
            const Exec e = current_exec();
            for (const ArraySet* set : s.nonempty())
                (set->dtype == DType::f32 ? k.elementwise.clamp_f32 : k.elementwise.clamp_f64)(set->list(), lo, hi, e);
        },
        py::arg("arrays"), py::arg("lo"), py::arg("hi"), "x = clamp(x, lo, hi) for every array, in place (NaN kept).");
}

}  // namespace fusedopt::bind
