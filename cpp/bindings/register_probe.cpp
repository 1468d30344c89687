// Memory-traffic probe for the benchmark: the reads and writes of an optimizer's access
// pattern with trivial arithmetic, so a kernel's time can be compared with the machine's limit.
#include <pybind11/pybind11.h>

#include <string>

#include "array_checks.hpp"
#include "fusedopt/norm.hpp"
#include "fusedopt/dispatch.hpp"

namespace py = pybind11;

namespace fusedopt::bind {

void register_probe(py::module_& m) {
    m.def(
        "probe",
        [](py::list written, py::list grads) {
            const std::size_t n = grads.size();
            const std::size_t rw = written.size();
            if (rw < 1 || rw > 4) throw py::value_error("written: expected 1 to 4 lists of arrays");
            ArraySet set;
            std::size_t state_bytes = 0;  // of written[1..]
            for (std::size_t i = 0; i < n; ++i) {
                const CheckedArray g = check_array(grads[i], false, [&] { return "grads[" + std::to_string(i) + "]"; }, true);
                if (i == 0) set.dtype = g.dtype;
                if (g.dtype != set.dtype) throw py::type_error("grads: one dtype per probe");
                Segment seg{};
                seg.size = g.size;
                seg.data[1] = g.data;
                for (std::size_t k = 0; k < rw; ++k) {
                    const py::list lst = written[k].cast<py::list>();
                    if (lst.size() != n) throw py::value_error("written: each list must match grads in length");
                    const CheckedArray a =
                        check_array(lst[i], true, [&] { return "written[" + std::to_string(k) + "]"; }, true, false, false, k > 0);
                    if (a.size != g.size || (k == 0 && a.dtype != g.dtype))
                        throw py::value_error("written: arrays must match grads in size (and the first list in dtype)");
                    if (k > 0 && state_bytes && dtype_size(a.dtype) != state_bytes)
                        throw py::value_error("written: the state lists must share one itemsize");
                    if (k > 0) state_bytes = dtype_size(a.dtype);
                    seg.data[k == 0 ? 0 : k + 1] = a.data;
                }
                set.append(seg);
            }
            const std::size_t param_bytes = dtype_size(set.dtype);
            if (rw == 1) state_bytes = param_bytes;
            const bool plain = state_bytes == param_bytes && !low_precision(set.dtype);
            if (!plain && (param_bytes == 8 || state_bytes == 8))
                throw py::type_error("written: float64 only with float64 state");
            py::gil_scoped_release release;
            const KernelTable& k = active_kernels();
            if (plain)
                (set.dtype == DType::f32 ? k.probe.f32 : k.probe.f64)(set.list(), static_cast<int>(rw), current_exec());
            else
                k.probe.mixed(set.list(), static_cast<int>(rw), static_cast<int>(param_bytes), static_cast<int>(state_bytes),
                              current_exec());
        },
        py::arg("written"), py::arg("grads"),
        "For the benchmark: a[i] += g[i] for each array of each list in `written` (1 to 4 lists); the "
        "state lists (written[1:]) may be narrower (bfloat16, uint8: compressed state) and are then "
        "incremented as integers.");
}

}  // namespace fusedopt::bind
