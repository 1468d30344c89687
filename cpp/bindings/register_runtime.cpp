#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "build_info.hpp"
#include "fusedopt/dispatch.hpp"

namespace py = pybind11;

namespace fusedopt::bind {

namespace {

py::dict build_info() {
    py::dict d;
    py::list compiled, supported;
    for (const auto& t : compiled_targets()) {
        compiled.append(t.name);
        if (t.supported) supported.append(t.name);
    }
    d["version"] = FUSEDOPT_VERSION;
    d["compiled_targets"] = compiled;
    d["supported_targets"] = supported;
    d["best_target"] = best_supported_target();
    d["active_target"] = active_target();
    d["openmp"] = openmp_enabled();
    d["num_threads"] = num_threads();
    d["max_threads"] = max_threads();
    d["min_parallel_elements"] = min_parallel_elements();
    d["compiler"] = FUSEDOPT_COMPILER;
    d["common_flags"] = FUSEDOPT_COMMON_FLAGS;
    d["target_flags"] = FUSEDOPT_TARGET_FLAGS;
    return d;
}

}  // namespace

void register_runtime(py::module_& m) {
    m.def("runtime_info", &build_info, "Build and runtime facts as a dict (see fusedopt.runtime_info).");
    m.def("set_target", &set_active_target, py::arg("name"),
          "Make a compiled, CPU-supported SIMD target active; ValueError otherwise.");
    m.def("active_target", &active_target);
    m.def("set_num_threads", &set_num_threads, py::arg("n"));
    m.def("get_num_threads", &num_threads);
    m.def("set_min_parallel_elements", &set_min_parallel_elements, py::arg("n"),
          "Steps over fewer elements than this run on the calling thread.");
    m.def("get_min_parallel_elements", &min_parallel_elements);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::invalid_argument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });
}

}  // namespace fusedopt::bind
