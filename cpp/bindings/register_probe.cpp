// Memory-traffic probe for the benchmark: the reads and writes of an optimizer's access
// pattern with trivial arithmetic, so a kernel's time can be compared with the machine's limit.
// Prepared once (`Probe`): a call runs the kernel alone, so over many arrays it stays a floor
// for a step (the checks of 1000 arrays on every call made it slower than an SGD step).
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "array_checks.hpp"
#include "fusedopt/norm.hpp"
#include "fusedopt/dispatch.hpp"

namespace py = pybind11;

namespace fusedopt::bind {
namespace {

class Probe {
public:
    Probe(py::list written, py::list grads) {
        const std::size_t n = grads.size();
        rw_ = written.size();
        if (rw_ < 1 || rw_ > 4) throw py::value_error("written: expected 1 to 4 lists of arrays");
        for (std::size_t i = 0; i < n; ++i) {
            const CheckedArray g = check_array(grads[i], false, [&] { return "grads[" + std::to_string(i) + "]"; }, true);
            if (i == 0) set_.dtype = g.dtype;
            if (g.dtype != set_.dtype) throw py::type_error("grads: one dtype per probe");
            Segment seg{};
            seg.size = g.size;
            seg.data[1] = g.data;
            arrays_.push_back(py::reinterpret_borrow<py::object>(grads[i]));
            for (std::size_t k = 0; k < rw_; ++k) {
                const py::list lst = written[k].cast<py::list>();
                if (lst.size() != n) throw py::value_error("written: each list must match grads in length");
                const CheckedArray a =
                    check_array(lst[i], true, [&] { return "written[" + std::to_string(k) + "]"; }, true, false, false, k > 0);
                if (a.size != g.size || (k == 0 && a.dtype != g.dtype))
                    throw py::value_error("written: arrays must match grads in size (and the first list in dtype)");
                if (k > 0 && state_bytes_ && dtype_size(a.dtype) != state_bytes_)
                    throw py::value_error("written: the state lists must share one itemsize");
                if (k > 0) state_bytes_ = dtype_size(a.dtype);
                seg.data[k == 0 ? 0 : k + 1] = a.data;
                arrays_.push_back(py::reinterpret_borrow<py::object>(lst[i]));
            }
            set_.append(seg);
        }
        param_bytes_ = dtype_size(set_.dtype);
        if (rw_ == 1) state_bytes_ = param_bytes_;
        plain_ = state_bytes_ == param_bytes_ && !low_precision(set_.dtype);
        if (!plain_ && (param_bytes_ == 8 || state_bytes_ == 8))
            throw py::type_error("written: float64 only with float64 state");
    }

    void run() const {
        // An array moved since (resize, a new buffer) is refused, never read where it was.
        for (std::size_t i = 0, at = 0; i < set_.segments.size(); ++i)
            for (std::size_t k = 0; k <= rw_; ++k, ++at) {
                const void* was = set_.segments[i].data[k == 0 ? 1 : k == 1 ? 0 : k];
                if (py::detail::array_proxy(arrays_[at].ptr())->data != was)
                    throw py::value_error("probe: an array was reallocated after the probe was prepared");
            }
        py::gil_scoped_release release;
        const KernelTable& k = active_kernels();
        if (plain_)
            (set_.dtype == DType::f32 ? k.probe.f32 : k.probe.f64)(set_.list(), static_cast<int>(rw_), current_exec());
        else
            k.probe.mixed(set_.list(), static_cast<int>(rw_), static_cast<int>(param_bytes_),
                          static_cast<int>(state_bytes_), current_exec());
    }

private:
    std::vector<py::object> arrays_;  // per array i: grads[i], then written[k][i] (kept alive)
    ArraySet set_;
    std::size_t rw_ = 0, param_bytes_ = 0, state_bytes_ = 0;  // state_bytes_: of written[1..]
    bool plain_ = false;
};

}  // namespace

void register_probe(py::module_& m) {
    py::class_<Probe>(m, "Probe",
                      "For the benchmark: prepared once, each call does a[i] += g[i] for each array of each list "
                      "in `written` (1 to 4 lists); the state lists (written[1:]) may be narrower (bfloat16, "
                      "uint8: compressed state) and are then incremented as integers.")
        .def(py::init<py::list, py::list>(), py::arg("written"), py::arg("grads"))
        .def("__call__", &Probe::run);
    m.def(
        "probe", [](py::list written, py::list grads) { Probe(written, grads).run(); }, py::arg("written"),
        py::arg("grads"), "Probe(written, grads)() once.");
}

}  // namespace fusedopt::bind
