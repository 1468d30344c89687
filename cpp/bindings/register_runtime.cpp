#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "build_info.hpp"
#include "fusedopt/dispatch.hpp"
#include "fusedopt/team.hpp"

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
    d["parallel_regions"] = parallel_regions();
    d["flush_denormal"] = flush_denormal();
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
    m.def("set_flush_denormal", &set_flush_denormal, py::arg("on"),
          "Whether optimizer steps flush denormal numbers to zero (FTZ and DAZ while the kernels run).");
    m.def("get_flush_denormal", &flush_denormal);
    m.def("_simulate_team_choice", [](const std::vector<std::pair<std::int64_t, std::int64_t>>& costs) {
        // Steps whose time is costs[i] = (one thread, team).
        TeamChoice choice;
        std::vector<bool> used;
        for (const auto& [single, team] : costs) {
            const bool use = choice.use_team();
            choice.record(use, use ? team : single);
            used.push_back(use);
        }
        return used;
    }, py::arg("costs"), "Testing hook: which mode each step of a simulated run would use.");
    m.def("_allow_byte_permutes", &allow_byte_permutes, py::arg("on"),
          "Tests: whether int8 state may be read with AVX512-VBMI's byte permutes where the CPU has them.");
    m.def("_allow_vector_loops", &allow_vector_loops, py::arg("on"),
          "Tests: whether a rule's vector loop may take 16-bit storage in place of the scratch path.");
    m.def("_take_vector_loop_count", &take_vector_loop_count, py::arg("counting"),
          "Tests: the elements rules' vector loops took since the last call (counted only while counting), "
          "and whether to count from now.");
    m.def("_pin_threads", &pin_team, py::arg("pinned"),
          "Testing hook: steps use the team whatever their timings say.");
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::invalid_argument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });
}

}  // namespace fusedopt::bind
