// _core.pooled_copies: state arrays loaded by load_state_dict moved into one buffer per dtype,
// as a step creates them (state_arena.hpp, docs/state_arena.md).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "array_checks.hpp"
#include "state_arena.hpp"

namespace py = pybind11;

namespace fusedopt::bind {

void register_state_arena(py::module_& m) {
    m.def(
        "pooled_copies",
        [](py::list arrays, py::object like) {
            static const py::handle copyto = py::object(py::module_::import("numpy").attr("copyto")).release();  // kept
            const std::size_t n = arrays.size();
            std::vector<CheckedArray> checked(n);
            StateArena arena;
            const py::list likes = like.is_none() ? py::list() : py::list(like);
            for (std::size_t i = 0; i < n; ++i) {
                try {  // what the kernels take (float, dense); any other array stays itself
                    checked[i] = check_array(arrays[i], false, [] { return std::string("arrays"); }, true, true, false, true);
                } catch (const std::exception&) {
                    continue;
                }
                std::size_t lead = 0;  // placed as a step places its parameter's new state
                if (i < likes.size()) {
                    try {
                        const CheckedArray p = check_array(likes[i], false, [] { return std::string("like"); }, true, true);
                        if (p.size == checked[i].size) lead = state_lead(p.size, param_lead(p));
                    } catch (const std::exception&) {  // (no parameter to follow)
                    }
                }
                arena.reserve(i, 0, 0, checked[i].dtype, checked[i].size * dtype_size(checked[i].dtype),
                              phase_for_lead(lead, dtype_size(checked[i].dtype)));
            }
            py::list out;
            for (std::size_t i = 0; i < n; ++i) {
                if (!arena.pooled(i, 0)) {
                    out.append(arrays[i]);
                    continue;
                }
                const py::handle a = arrays[i];
                const CheckedArray& c = checked[i];
                py::object copy = arena.zeros(i, 0, a.attr("dtype"), std::vector<Py_ssize_t>(c.shape, c.shape + c.ndim), &c, a);
                copyto(copy, a);
                out.append(std::move(copy));
            }
            return out;
        },
        py::arg("arrays"), py::arg("like") = py::none(),
        "Copies of the arrays in one buffer per dtype, in order, each in its own layout (and placed on its cache "
        "lines as like[i], its float32/float64 parameter, is); an array over 1 MiB, alone of its dtype, or of a "
        "layout or dtype the kernels do not take is returned itself.");
}

}  // namespace fusedopt::bind
