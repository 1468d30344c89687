// fusedopt._core: wiring only. Each area registers itself from its own file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace fusedopt::bind {
void register_runtime(py::module_& m);
void register_optimizer(py::module_& m);
void register_clip(py::module_& m);
void register_probe(py::module_& m);
void register_wrappers(py::module_& m);
void register_state_arena(py::module_& m);
}  // namespace fusedopt::bind

PYBIND11_MODULE(_core, m) {
    m.doc() = "fusedopt native kernels: fused optimizer steps over NumPy arrays (see fusedopt/_core.pyi)";
    fusedopt::bind::register_runtime(m);
    fusedopt::bind::register_optimizer(m);
    fusedopt::bind::register_clip(m);
    fusedopt::bind::register_probe(m);
    fusedopt::bind::register_wrappers(m);
    fusedopt::bind::register_state_arena(m);
}
