// Standalone gradient utilities over lists of arrays (float32, float64, bfloat16 and float16, mixed
// allowed): total norm, in-place scaling, in-place clamping. The Python layer (fusedopt/clip.py)
// adds torch.nn.utils semantics on top. Also LBFGS's dot product of two vectors.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <limits>
#include <optional>

#include <string>
#include <vector>

#include "array_checks.hpp"
#include "fusedopt/norm.hpp"
#include "fusedopt/overlap.hpp"
#include "fusedopt/dispatch.hpp"

namespace py = pybind11;

namespace fusedopt::bind {

namespace {

// Arrays of a list, split by dtype (float32, float64; bfloat16 and float16 where `low`), each in
// any dense layout, read and written in memory order (a norm sums in that order, as a step's norm
// pass does for its gradients). Slot 0 holds the data (and slot 1 the same pointer, so the norm
// kernels, which read slot 1 in a step, can read either).
struct SplitArrays {
    ArraySet sets[kDTypeCount];
    std::vector<const ArraySet*> nonempty() const {
        std::vector<const ArraySet*> v;
        for (const ArraySet& s : sets)
            if (!s.segments.empty()) v.push_back(&s);
        return v;
    }
};

SplitArrays split(const py::list& arrays, bool written, const char* name, bool low = false) {
    SplitArrays out;
    for (int t = 0; t < kDTypeCount; ++t) out.sets[t].dtype = static_cast<DType>(t);
    for (std::size_t i = 0; i < arrays.size(); ++i) {
        const CheckedArray a =
            check_array(arrays[i], written, [&] { return std::string(name) + "[" + std::to_string(i) + "]"; }, low,
                        /*any_dense=*/true);
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
            const SplitArrays s = split(arrays, false, "grads", true);
            NormResult r;
            {
                py::gil_scoped_release release;
                r = total_norm(s.nonempty(), 1, p, active_kernels(), current_exec());
            }
            return py::make_tuple(r.norm, r.nonfinite);
        },
        py::arg("arrays"), py::arg("norm_type"),
        "(norm, nonfinite): the norm_type-norm over every element of every array, float64 accumulation.");
    m.def("norm_chunk_size", [](std::size_t total) { return norm_chunk_size(total); }, py::arg("total"),
          "The norm pass's chunk size for a range of `total` elements (its fixed grid).");
    m.def(
        "shard_norm",
        [](py::list arrays, std::size_t total, std::size_t offset, py::function combine) {
            // The 2-norm of a range of `total` elements of which this process holds `arrays`
            // (concatenated: elements [offset, offset + their size)), with the bits one norm pass over
            // the whole range would give: this shard's chunks of the same grid, then `combine`
            // (every process's chunk partials summed: each chunk has one owner, the rest add 0).
            const SplitArrays s = split(arrays, false, "grads", true);
            const std::vector<const ArraySet*> used = s.nonempty();
            if (used.size() > 1) throw py::type_error("grads: a shard's gradients must share one dtype");
            const ArraySet& set = used.empty() ? s.sets[0] : *used[0];
            const std::size_t chunk = norm_chunk_size(total);
            const std::size_t end = offset + set.total();
            if ((offset % chunk != 0 && offset != total) || end > total || (end % chunk != 0 && end != total))
                throw py::value_error("offset: the shard [" + std::to_string(offset) + ", " + std::to_string(end) +
                                      ") is not on the norm's chunk grid (" + std::to_string(chunk) + ") of " +
                                      std::to_string(total) + " elements");
            const std::size_t nchunks = (total + chunk - 1) / chunk;
            const KernelTable& k = active_kernels();
            const Exec e = current_exec();
            auto pass = [&](NormKind kind, double p, NormScale scale) {
                std::vector<NormPartials> mine(kMaxNormChunks);
                if (set.total()) {
                    py::gil_scoped_release release;
                    k.norm.get_chunks(set.dtype)(set.list(), 1, kind, p, scale, chunk, mine.data(), e);
                }
                py::array_t<double> parts({std::size_t(2), nchunks});
                auto w = parts.mutable_unchecked<2>();
                for (std::size_t c = 0; c < nchunks; ++c) w(0, c) = w(1, c) = 0.0;
                for (std::size_t c = 0, first = offset / chunk; first + c < nchunks && c * chunk < set.total(); ++c) {
                    w(0, first + c) = mine[c].sum;
                    w(1, first + c) = mine[c].max_abs;
                }
                combine(parts);
                auto r = parts.unchecked<2>();
                std::vector<NormPartials> all(nchunks);
                for (std::size_t c = 0; c < nchunks; ++c) {
                    all[c].sum = r(0, c);
                    all[c].max_abs = r(1, c);
                    all[c].min_abs = std::numeric_limits<double>::infinity();  // a 2-norm reads no minimum
                }
                return fold_norm_partials(all.data(), nchunks);
            };
            const NormResult r = norm_from_passes(pass, 2.0);
            return py::make_tuple(r.norm, r.nonfinite);
        },
        py::arg("arrays"), py::arg("total"), py::arg("offset"), py::arg("combine"),
        "(norm, nonfinite): the 2-norm over every process's shard of a range, bit for bit the norm "
        "pass over the whole range; combine(parts) sums a (2, chunks) float64 array over processes in place.");
    m.def(
        "scale_",
        [](py::list arrays, double factor) {
            const SplitArrays s = split(arrays, true, "grads", true);
            check_distinct(s, "grads");
            py::gil_scoped_release release;
            const KernelTable& k = active_kernels();
            const Exec e = current_exec();
            for (const ArraySet* set : s.nonempty()) k.elementwise.scale(set->list(), factor, set->dtype, e);
        },
        py::arg("arrays"), py::arg("factor"), "x *= factor for every array, in place.");
    m.def(
        "clamp_",
        [](py::list arrays, double lo, double hi) {
            const SplitArrays s = split(arrays, true, "grads", true);
            check_distinct(s, "grads");
            py::gil_scoped_release release;
            const KernelTable& k = active_kernels();
            const Exec e = current_exec();
            for (const ArraySet* set : s.nonempty()) k.elementwise.clamp(set->list(), lo, hi, set->dtype, e);
        },
        py::arg("arrays"), py::arg("lo"), py::arg("hi"), "x = clamp(x, lo, hi) for every array, in place (NaN kept).");
    m.def(
        "lane_dot",
        [](py::handle x, py::handle y) {
            const CheckedArray a = check_array(x, false, [] { return std::string("x"); });
            const CheckedArray b = check_array(y, false, [] { return std::string("y"); });
            if (a.ndim != 1 || b.ndim != 1)
                throw py::value_error("x, y: expected 1-D arrays, got shapes " + shape_string(a.ndim, a.shape) +
                                      " and " + shape_string(b.ndim, b.shape));
            if (a.dtype != b.dtype)
                throw py::type_error("y: dtype " + dtype_name(b.dtype) + " differs from x's " + dtype_name(a.dtype));
            if (a.size != b.size)
                throw py::value_error("y: " + std::to_string(b.size) + " elements, x has " + std::to_string(a.size));
            const DotKernels& k = active_kernels().dot;
            const Exec e = current_exec();
            std::optional<py::gil_scoped_release> release;
            if (a.size >= 16384) release.emplace();  // (a few microseconds: let other threads run)
            return a.dtype == DType::f32 ? static_cast<double>(k.f32(static_cast<const float*>(a.data),
                                                                     static_cast<const float*>(b.data), a.size, e))
                                         : k.f64(static_cast<const double*>(a.data),
                                                 static_cast<const double*>(b.data), a.size, e);
        },
        py::arg("x"), py::arg("y"),
        "x . y of two 1-D float32 or float64 arrays of one dtype, in their dtype's arithmetic, in a fixed order "
        "(the same bits on every SIMD target, CPU and thread count; kernels/lane_dot.hpp), returned as a float.");
}

}  // namespace fusedopt::bind
