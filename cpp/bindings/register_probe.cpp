// Memory-traffic probe for the benchmark: the reads and writes of an optimizer's access
// pattern with trivial arithmetic, so a kernel's time can be compared with the machine's limit.
// Prepared once (`Probe`): a call compares each array with its stamp (as a steady step does)
// and runs the kernel, so over many arrays it stays a floor for a step (checking 1000 arrays in
// full on every call made it slower than an SGD step).
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
        for (std::size_t k = 0; k < rw_; ++k)
            if (written[k].cast<py::list>().size() != n)
                throw py::value_error("written: each list must match grads in length");
        for (std::size_t i = 0; i < n; ++i) {
            Segment seg{};
            for (std::size_t k = 0; k <= rw_; ++k) {  // the gradient, then each written list's
                arrays_.push_back(py::reinterpret_borrow<py::object>(k == 0 ? grads[i] : written[k - 1].cast<py::list>()[i]));
                const CheckedArray a = checked(arrays_.size() - 1);
                stamps_.push_back(ArrayStamp::of(arrays_.back()));
                if (k == 0) {
                    if (i == 0) set_.dtype = a.dtype;
                    if (a.dtype != set_.dtype) throw py::type_error("grads: one dtype per probe");
                    seg.size = a.size;
                } else {
                    if (a.size != seg.size || (k == 1 && a.dtype != set_.dtype))
                        throw py::value_error("written: arrays must match grads in size (and the first list in dtype)");
                    if (k > 1 && state_bytes_ && dtype_size(a.dtype) != state_bytes_)
                        throw py::value_error("written: the state lists must share one itemsize");
                    if (k > 1) state_bytes_ = dtype_size(a.dtype);
                }
                seg.data[slot(k)] = a.data;
            }
            set_.append(seg);
        }
        param_bytes_ = dtype_size(set_.dtype);
        if (rw_ == 1) state_bytes_ = param_bytes_;
        plain_ = state_bytes_ == param_bytes_ && !low_precision(set_.dtype);
        if (plain_)  // pieces start on the first written array's cache lines, as a step's do
            for (Segment& seg : set_.segments) seg.lead = lead_to_line(seg.data[0], param_bytes_);
        if (!plain_ && (param_bytes_ == 8 || state_bytes_ == 8))
            throw py::type_error("written: float64 only with float64 state");
    }

    void run() const {
        // An array moved or changed since (resize, a new dtype or shape set in place) is refused
        // before anything is written.
        for (std::size_t i = 0, at = 0; i < set_.segments.size(); ++i)
            for (std::size_t k = 0; k <= rw_; ++k, ++at) {
                const Segment& seg = set_.segments[i];
                PyObject* x = arrays_[at].ptr();
                bool same = py::detail::array_proxy(x)->data == seg.data[slot(k)];
                if (same && !(stamps_[at].valid() && stamps_[at].matches(x))) {
                    const CheckedArray a = checked(at);  // (no stamp, or another: the checks again)
                    same = a.size == seg.size && dtype_size(a.dtype) == (k < 2 ? param_bytes_ : state_bytes_);
                }
                if (!same) throw py::value_error("probe: an array was reallocated or changed after the probe was made");
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
    // Array k of a parameter (0: its gradient, k: written[k - 1]) is the segment's operand slot(k).
    static int slot(std::size_t k) { return k == 0 ? 1 : k == 1 ? 0 : static_cast<int>(k); }

    CheckedArray checked(std::size_t at) const {
        const std::size_t k = at % (rw_ + 1), i = at / (rw_ + 1);
        const auto name = [&] { return k == 0 ? "grads[" + std::to_string(i) + "]" : "written[" + std::to_string(k - 1) + "]"; };
        return check_array(arrays_[at], k > 0, name, true, false, false, k > 1);
    }

    std::vector<py::object> arrays_;     // per parameter: its gradient, then written[k][i] (kept alive)
    std::vector<ArrayStamp> stamps_;     // (the same order)
    ArraySet set_;
    std::size_t rw_ = 0, param_bytes_ = 0, state_bytes_ = 0;  // state_bytes_: of written[1..]
    bool plain_ = false;
};

}  // namespace

void register_probe(py::module_& m) {
    py::class_<Probe>(m, "Probe",
                      "For the benchmark: made once, each call does a[i] += g[i] for each array of each list in "
                      "`written` (1 to 4 lists); the state lists (written[1:]) may be narrower (bfloat16, uint8: "
                      "compressed state) and are then incremented as integers.")
        .def(py::init<py::list, py::list>(), py::arg("written"), py::arg("grads"))
        .def("__call__", &Probe::run);
    m.def(
        "probe", [](py::list written, py::list grads) { Probe(written, grads).run(); }, py::arg("written"),
        py::arg("grads"), "Probe(written, grads)() once.");
}

}  // namespace fusedopt::bind
