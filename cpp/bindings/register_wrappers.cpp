// The wrappers' native pass (Lookahead, parameter averaging, Schedule-Free's train/eval swap):
// one call over pairs of arrays (mixed float32/float64; bfloat16 and float16 with their own
// dtype or float32), checked like a step's arrays, run without the GIL on the thread team
// (kernels/blend.hpp).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "array_checks.hpp"
#include "fusedopt/dispatch.hpp"
#include "fusedopt/norm.hpp"
#include "fusedopt/overlap.hpp"

namespace py = pybind11;

namespace fusedopt::bind {

namespace {

BlendOp blend_op(const std::string& op) {
    if (op == "lerp") return BlendOp::lerp;
    if (op == "lerp_sync") return BlendOp::lerp_sync;
    if (op == "div") return BlendOp::div;
    if (op == "copy") return BlendOp::copy;
    throw py::value_error("op: must be one of ('lerp', 'lerp_sync', 'div', 'copy'), got '" + op + "'");
}

double weight_of(py::handle x) {
    if (PyBool_Check(x.ptr()) || !PyNumber_Check(x.ptr()) || PyComplex_Check(x.ptr()))
        throw py::type_error("weights: expected real numbers, got " + std::string(Py_TYPE(x.ptr())->tp_name));
    const double v = PyFloat_AsDouble(x.ptr());
    if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    return v;
}

// Pairs of one pair of dtypes and one weight: one parallel pass each (a call has one or a few).
struct BlendSet {
    DType dtype, b_dtype;
    double weight;
    ArraySet arrays;
};

void blend(py::sequence a, py::sequence b, py::object weights, const std::string& op_name,
           std::pair<std::string, std::string> names) {
    const BlendOp op = blend_op(op_name);
    const std::size_t n = py::len(a);
    if (py::len(b) != n)
        throw py::value_error(names.second + ": expected " + std::to_string(n) + " arrays (one per array of " +
                              names.first + "), got " + std::to_string(py::len(b)));
    std::vector<double> w(n);
    if (py::isinstance<py::sequence>(weights) && !PyUnicode_Check(weights.ptr()) && !PyBytes_Check(weights.ptr())) {
        const auto seq = py::reinterpret_borrow<py::sequence>(weights);
        if (py::len(seq) != n)
            throw py::value_error("weights: expected " + std::to_string(n) + " numbers, got " +
                                  std::to_string(py::len(seq)));
        for (std::size_t i = 0; i < n; ++i) w[i] = weight_of(seq[i]);
    } else {
        const double x = weight_of(weights);
        for (double& v : w) v = x;
    }
    std::vector<py::object> keep;  // the arrays stay alive while the kernels run without the GIL
    std::vector<BlendSet> sets;
    std::vector<Span> spans;
    const bool b_written = op == BlendOp::lerp_sync;
    for (std::size_t i = 0; i < n; ++i) {
        const py::object ai = a[i], bi = b[i];
        auto who_a = [&] { return names.first + "[" + std::to_string(i) + "]"; };
        auto who_b = [&] { return names.second + "[" + std::to_string(i) + "]"; };
        const CheckedArray ca = check_array(ai, true, who_a, true);
        const CheckedArray cb = check_array(bi, b_written, who_b, true);
        if (ca.dtype != cb.dtype && !(low_precision(ca.dtype) && cb.dtype == DType::f32))
            throw py::type_error(who_b() + ": dtype " + dtype_name(cb.dtype) + " does not match " + who_a() + "'s " +
                                 dtype_name(ca.dtype) + (low_precision(ca.dtype) ? " (or float32)" : ""));
        if (!same_shape(ca, cb))
            throw py::value_error(who_b() + ": shape " + shape_string(cb.ndim, cb.shape) + " does not match " + who_a() +
                                  "'s " + shape_string(ca.ndim, ca.shape));
        keep.push_back(ai);
        keep.push_back(bi);
        if (ca.size == 0) continue;
        spans.push_back(make_span(ca.data, ca.size, ca.dtype, true, i, 0));
        spans.push_back(make_span(cb.data, cb.size, cb.dtype, b_written, i, 1));
        Segment seg{};
        seg.size = ca.size;
        seg.data[0] = ca.data;
        seg.data[1] = cb.data;
        std::size_t s = 0;
        while (s < sets.size() &&
               !(sets[s].dtype == ca.dtype && sets[s].b_dtype == cb.dtype && sets[s].weight == w[i]))
            ++s;
        if (s == sets.size()) sets.push_back({ca.dtype, cb.dtype, w[i], {}});
        sets[s].arrays.dtype = ca.dtype;
        sets[s].arrays.append(seg);
    }
    const Overlap o = first_overlap(spans);
    if (o.found) {
        auto side = [&](const Span& x) { return (x.slot == 0 ? names.first : names.second) + "[" + std::to_string(x.owner) + "]"; };
        throw py::value_error(side(o.a) + " and " + side(o.b) + " share memory; each array must have its own buffer");
    }
    py::gil_scoped_release release;
    const KernelTable& k = active_kernels();
    const Exec e = current_exec();
    for (const BlendSet& s : sets) {
        if (low_precision(s.dtype))
            k.blend.low(s.arrays.list(), op, s.weight, s.dtype, s.b_dtype, e);
        else
            k.blend.get(s.dtype)(s.arrays.list(), op, s.weight, e);
    }
}

}  // namespace

void register_wrappers(py::module_& m) {
    m.def("blend_", &blend, py::arg("a"), py::arg("b"), py::arg("weights"), py::arg("op"),
          py::arg("names") = std::make_pair(std::string("a"), std::string("b")),
          "One pass over pairs (a[i], b[i]) of same-shape float32/float64 arrays, in place:\n"
          "op 'lerp': a = lerp(a, b, w); 'lerp_sync': a = b = lerp(a, b, w); 'div': a = a + (b - a) / w;\n"
          "'copy': a = b. weights: one number, or one per pair. torch's rounding (torch.lerp with a\n"
          "scalar weight); names label the two lists in messages.");
}

}  // namespace fusedopt::bind
