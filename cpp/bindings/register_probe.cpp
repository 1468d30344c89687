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
            for (std::size_t i = 0; i < n; ++i) {
                const CheckedArray g = check_array(grads[i], false, [&] { return "grads[" + std::to_string(i) + "]"; });
                if (i == 0) set.dtype = g.dtype;
                Segment seg{};
                seg.size = g.size;
                seg.data[1] = g.data;
                for (std::size_t k = 0; k < rw; ++k) {
                    const py::list lst = written[k].cast<py::list>();
                    if (lst.size() != n) throw py::value_error("written: each list must match grads in length");
                    const CheckedArray a = check_array(lst[i], true, [&] { return "written[" + std::to_string(k) + "]"; });
                    if (a.dtype != g.dtype || a.size != g.size)
                        throw py::value_error("written: arrays must match grads in dtype and size");
                    seg.data[k == 0 ? 0 : k + 1] = a.data;
                }
                if (g.dtype != set.dtype) throw py::type_error("grads: one dtype per probe");
                set.append(seg);
            }
            py::gil_scoped_release release;
            const KernelTable& k = active_kernels();
            (set.dtype == DType::f32 ? k.probe.f32 : k.probe.f64)(set.list(), static_cast<int>(rw), current_exec());
        },
        py::arg("written"), py::arg("grads"),
        "For the benchmark: a[i] += g[i] for each array of each list in `written` (1 to 4 lists).");
}

}  // namespace fusedopt::bind
