// fusedopt._core.Batch: one optimizer step. The Python layer adds one entry per param group
// (and step count); add_* checks every array and records raw pointers, run() checks that no
// written buffer overlaps another, then runs the norm pass and the kernels without the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <vector>

#include "array_checks.hpp"
#include "fusedopt/batch.hpp"
#include "fusedopt/dispatch.hpp"

namespace py = pybind11;

namespace fusedopt::bind {

namespace {

struct EntryInfo {
    py::object labels;                    // list of display names, or None
    std::vector<std::string> slot_names;  // slot -> argument name
    std::vector<std::size_t> index;       // segment -> position in the add_* lists
};

struct PyBatch {
    Batch core;
    std::vector<EntryInfo> info;
    std::vector<py::object> keep_alive;   // the lists (and so the arrays) until run() returns
};

std::string param_label(const py::object& labels, std::size_t i) {
    if (!labels.is_none()) return std::string(py::repr(py::reinterpret_borrow<py::list>(labels)[i]));
    return std::to_string(i);
}

std::string describe(const std::string& role, const py::object& labels, std::size_t i) {
    if (role == "params") return "parameter " + param_label(labels, i);
    return role + " for parameter " + param_label(labels, i);
}

struct StateArg {
    const char* name;
    int slot;
    py::object arrays;  // list, or None when the rule does not use this state
};

py::list as_list(const py::object& o, const char* name) {
    if (!py::isinstance<py::list>(o))
        throw py::type_error(std::string(name) + ": expected a list of arrays, got " +
                             std::string(py::str(py::type::of(o).attr("__name__"))));
    return py::reinterpret_borrow<py::list>(o);
}

template <class S>
void add_rule(PyBatch& b, RuleKernels<S> KernelTable::*rule, const S& scalars, const py::object& params_obj,
              const py::object& grads_obj, std::vector<StateArg> states, const py::object& labels, int group,
              bool maximize) {
    const py::list params = as_list(params_obj, "params");
    const py::list grads = as_list(grads_obj, "grads");
    const std::size_t n = params.size();
    if (grads.size() != n)
        throw py::value_error("grads: expected " + std::to_string(n) + " arrays (one per parameter), got " +
                              std::to_string(grads.size()));
    if (!labels.is_none() && as_list(labels, "labels").size() != n)
        throw py::value_error("labels: expected one per parameter");
    if (group < 0) throw py::value_error("group must be >= 0");
    std::vector<py::object> state_lists;  // None where the rule does not use the state
    int operands = 2;
    for (const StateArg& s : states) {
        if (s.arrays.is_none()) {
            state_lists.push_back(py::none());
            continue;
        }
        py::list l = as_list(s.arrays, s.name);
        if (l.size() != n)
            throw py::value_error(std::string(s.name) + ": expected " + std::to_string(n) + " arrays, got " +
                                  std::to_string(l.size()));
        state_lists.push_back(l);
        operands = std::max(operands, s.slot + 1);
    }

    BatchEntry by_dtype[2];
    EntryInfo info_by_dtype[2];
    for (std::size_t i = 0; i < n; ++i) {
        const CheckedArray p = check_array(params[i], true, [&] { return describe("params", labels, i); });
        const CheckedArray g = check_array(grads[i], false, [&] { return describe("grads", labels, i); });
        auto check_like = [&](const CheckedArray& x, const char* role) {
            if (x.dtype != p.dtype)
                throw py::type_error(describe(role, labels, i) + ": dtype " + dtype_name(x.dtype) +
                                     " does not match the parameter's " + dtype_name(p.dtype));
            if (!same_shape(x, p))
                throw py::value_error(describe(role, labels, i) + ": shape " + shape_string(x.ndim, x.shape) +
                                      " does not match the parameter's " + shape_string(p.ndim, p.shape));
        };
        check_like(g, "grads");
        Segment seg{};
        seg.size = p.size;
        seg.data[0] = p.data;
        seg.data[1] = g.data;
        for (std::size_t k = 0; k < states.size(); ++k) {
            if (state_lists[k].is_none()) continue;
            const char* role = states[k].name;
            const py::handle arr = PyList_GET_ITEM(state_lists[k].ptr(), static_cast<Py_ssize_t>(i));
            const CheckedArray s = check_array(arr, true, [&] { return describe(role, labels, i); });
            check_like(s, role);
            seg.data[states[k].slot] = s.data;
        }
        const int d = static_cast<int>(p.dtype);
        by_dtype[d].arrays.dtype = p.dtype;
        by_dtype[d].arrays.append(seg);
        info_by_dtype[d].index.push_back(i);
    }
    std::vector<std::string> slot_names(static_cast<std::size_t>(operands));
    slot_names[0] = "params";
    slot_names[1] = "grads";
    for (std::size_t k = 0; k < states.size(); ++k)
        if (!state_lists[k].is_none()) slot_names[static_cast<std::size_t>(states[k].slot)] = states[k].name;

    for (int d = 0; d < 2; ++d) {
        if (by_dtype[d].arrays.segments.empty()) continue;
        BatchEntry& e = by_dtype[d];
        const DType dtype = e.arrays.dtype;
        e.operands = operands;
        e.group = group;
        e.grad.scale = maximize ? -1.0 : 1.0;
        e.launch = [rule, scalars, dtype](const KernelTable& k, const SegmentList& l, const GradTransform& gt,
                                          const Exec& ex) { (k.*rule).get(dtype)(l, scalars, gt, ex); };
        b.core.add(std::move(e));
        info_by_dtype[d].labels = labels;
        info_by_dtype[d].slot_names = slot_names;
        b.info.push_back(std::move(info_by_dtype[d]));
    }
    b.keep_alive.push_back(params);
    b.keep_alive.push_back(grads);
    for (const py::object& l : state_lists)
        if (!l.is_none()) b.keep_alive.push_back(l);
}

std::string overlap_side(const PyBatch& b, std::size_t entry, std::size_t segment, int slot) {
    const EntryInfo& info = b.info[entry];
    return describe(info.slot_names[static_cast<std::size_t>(slot)], info.labels, info.index[segment]);
}

void check_batch(const PyBatch& b) {
    const Overlap o = b.core.find_overlap();
    if (o.found)
        throw py::value_error(overlap_side(b, o.entry_a, o.segment_a, o.slot_a) + " and " +
                              overlap_side(b, o.entry_b, o.segment_b, o.slot_b) +
                              " share memory; every updated array must have its own buffer");
}

py::dict run_batch(PyBatch& b, py::object max_norm, bool per_group, py::object clip_value, bool check_finite,
                   bool abort_on_nonfinite) {
    check_batch(b);
    StepOptions opt;
    if (!max_norm.is_none()) opt.max_norm = max_norm.cast<double>();
    if (!clip_value.is_none()) opt.clip_value = clip_value.cast<double>();
    opt.per_group_norm = per_group;
    opt.check_finite = check_finite;
    opt.abort_on_nonfinite = abort_on_nonfinite;
    StepResult r;
    {
        py::gil_scoped_release release;
        r = b.core.run(opt, active_kernels(), current_exec());
    }
    b.keep_alive.clear();
    py::dict out;
    out["grad_norm"] = r.norm_computed ? py::object(py::float_(r.grad_norm)) : py::object(py::none());
    out["group_norms"] = r.group_norms;
    out["nonfinite"] = r.nonfinite;
    out["aborted"] = r.aborted;
    return out;
}

}  // namespace

std::string shape_string(int ndim, const Py_ssize_t* shape) {
    std::string s = "(";
    for (int i = 0; i < ndim; ++i) s += std::to_string(shape[i]) + (ndim == 1 || i + 1 < ndim ? "," : "") + (i + 1 < ndim ? " " : "");
    return s + ")";
}

std::string dtype_name(DType t) { return t == DType::f32 ? "float32" : "float64"; }

void register_batch(py::module_& m) {
    m.def(
        "first_none",
        [](const py::list& items) -> Py_ssize_t {
            const Py_ssize_t n = PyList_GET_SIZE(items.ptr());
            for (Py_ssize_t i = 0; i < n; ++i)
                if (PyList_GET_ITEM(items.ptr(), i) == Py_None) return i;
            return -1;
        },
        py::arg("items"), "Index of the first None in a list, or -1 (no == comparisons on arrays).");
    m.def(
        "same_objects",
        [](const py::list& a, const py::list& b) {
            const Py_ssize_t n = PyList_GET_SIZE(a.ptr());
            if (n != PyList_GET_SIZE(b.ptr())) return false;
            for (Py_ssize_t i = 0; i < n; ++i)
                if (PyList_GET_ITEM(a.ptr(), i) != PyList_GET_ITEM(b.ptr(), i)) return false;
            return true;
        },
        py::arg("a"), py::arg("b"), "Whether two lists hold the very same objects, in order (identity, not ==).");
    py::class_<PyBatch>(m, "Batch", "One optimizer step: add_* per param group, then run().")
        .def(py::init<>())
        .def(
            "add_sgd",
            [](PyBatch& b, py::object params, py::object grads, py::object momentum_buffer, py::object labels,
               int group, bool maximize, double lr, double momentum, double dampening, double weight_decay,
               bool nesterov, bool first_step, bool classic) {
                SgdScalars s;
                s.lr = lr; s.momentum = momentum; s.dampening = dampening; s.weight_decay = weight_decay;
                s.nesterov = nesterov; s.first_step = first_step; s.classic = classic;
                if ((momentum != 0.0 || classic) && momentum_buffer.is_none())
                    throw py::value_error("momentum_buffer: required when momentum != 0");
                add_rule(b, &KernelTable::sgd, s, params, grads, {{"momentum_buffer", 2, momentum_buffer}}, labels,
                         group, maximize);
            },
            py::arg("params"), py::arg("grads"), py::arg("momentum_buffer"), py::kw_only(),
            py::arg("labels") = py::none(), py::arg("group") = 0, py::arg("maximize") = false, py::arg("lr"),
            py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
            py::arg("first_step"), py::arg("classic"))
        .def(
            "add_adagrad",
            [](PyBatch& b, py::object params, py::object grads, py::object sum, py::object labels, int group,
               bool maximize, double clr, double weight_decay, double eps) {
                AdagradScalars s;
                s.clr = clr; s.weight_decay = weight_decay; s.eps = eps;
                add_rule(b, &KernelTable::adagrad, s, params, grads, {{"sum", 2, sum}}, labels, group, maximize);
            },
            py::arg("params"), py::arg("grads"), py::arg("sum"), py::kw_only(), py::arg("labels") = py::none(),
            py::arg("group") = 0, py::arg("maximize") = false, py::arg("clr"), py::arg("weight_decay"),
            py::arg("eps"))
        .def(
            "add_rmsprop",
            [](PyBatch& b, py::object params, py::object grads, py::object square_avg, py::object momentum_buffer,
               py::object grad_avg, py::object labels, int group, bool maximize, double lr, double alpha, double eps,
               double weight_decay, double momentum, bool centered) {
                RmspropScalars s;
                s.lr = lr; s.alpha = alpha; s.eps = eps; s.weight_decay = weight_decay; s.momentum = momentum;
                s.centered = centered;
                if (momentum > 0.0 && momentum_buffer.is_none())
                    throw py::value_error("momentum_buffer: required when momentum > 0");
                if (centered && grad_avg.is_none()) throw py::value_error("grad_avg: required when centered");
                add_rule(b, &KernelTable::rmsprop, s, params, grads,
                         {{"square_avg", 2, square_avg},
                          {"momentum_buffer", 3, momentum > 0.0 ? momentum_buffer : py::none()},
                          {"grad_avg", 4, centered ? grad_avg : py::none()}},
                         labels, group, maximize);
            },
            py::arg("params"), py::arg("grads"), py::arg("square_avg"), py::arg("momentum_buffer"),
            py::arg("grad_avg"), py::kw_only(), py::arg("labels") = py::none(), py::arg("group") = 0,
            py::arg("maximize") = false, py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"),
            py::arg("momentum"), py::arg("centered"))
        .def(
            "add_adam",
            [](PyBatch& b, py::object params, py::object grads, py::object exp_avg, py::object exp_avg_sq,
               py::object max_exp_avg_sq, py::object labels, int group, bool maximize, double beta1, double beta2,
               double eps, double weight_decay, double step_size, double bc2_sqrt, double decay, bool amsgrad,
               bool decoupled) {
                AdamScalars s;
                s.beta1 = beta1; s.beta2 = beta2; s.eps = eps; s.weight_decay = weight_decay;
                s.step_size = step_size; s.bc2_sqrt = bc2_sqrt; s.decay = decay; s.amsgrad = amsgrad;
                s.decoupled = decoupled;
                if (amsgrad && max_exp_avg_sq.is_none())
                    throw py::value_error("max_exp_avg_sq: required when amsgrad");
                add_rule(b, &KernelTable::adam, s, params, grads,
                         {{"exp_avg", 2, exp_avg}, {"exp_avg_sq", 3, exp_avg_sq},
                          {"max_exp_avg_sq", 4, amsgrad ? max_exp_avg_sq : py::none()}},
                         labels, group, maximize);
            },
            py::arg("params"), py::arg("grads"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
            py::arg("max_exp_avg_sq"), py::kw_only(), py::arg("labels") = py::none(), py::arg("group") = 0,
            py::arg("maximize") = false, py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
            py::arg("step_size"), py::arg("bc2_sqrt"), py::arg("decay"), py::arg("amsgrad"), py::arg("decoupled"))
        .def(
            "add_adamax",
            [](PyBatch& b, py::object params, py::object grads, py::object exp_avg, py::object exp_inf,
               py::object labels, int group, bool maximize, double beta1, double beta2, double eps,
               double weight_decay, double clr) {
                AdamaxScalars s;
                s.beta1 = beta1; s.beta2 = beta2; s.eps = eps; s.weight_decay = weight_decay; s.clr = clr;
                add_rule(b, &KernelTable::adamax, s, params, grads, {{"exp_avg", 2, exp_avg}, {"exp_inf", 3, exp_inf}},
                         labels, group, maximize);
            },
            py::arg("params"), py::arg("grads"), py::arg("exp_avg"), py::arg("exp_inf"), py::kw_only(),
            py::arg("labels") = py::none(), py::arg("group") = 0, py::arg("maximize") = false, py::arg("beta1"),
            py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("clr"))
        .def(
            "add_nadam",
            [](PyBatch& b, py::object params, py::object grads, py::object exp_avg, py::object exp_avg_sq,
               py::object labels, int group, bool maximize, double beta1, double beta2, double eps,
               double weight_decay, double bc2, double grad_coef, double avg_coef, double decay, bool decoupled) {
                NadamScalars s;
                s.beta1 = beta1; s.beta2 = beta2; s.eps = eps; s.weight_decay = weight_decay; s.bc2 = bc2;
                s.grad_coef = grad_coef; s.avg_coef = avg_coef; s.decay = decay; s.decoupled = decoupled;
                add_rule(b, &KernelTable::nadam, s, params, grads,
                         {{"exp_avg", 2, exp_avg}, {"exp_avg_sq", 3, exp_avg_sq}}, labels, group, maximize);
            },
            py::arg("params"), py::arg("grads"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::kw_only(),
            py::arg("labels") = py::none(), py::arg("group") = 0, py::arg("maximize") = false, py::arg("beta1"),
            py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("bc2"), py::arg("grad_coef"),
            py::arg("avg_coef"), py::arg("decay"), py::arg("decoupled"))
        .def(
            "add_radam",
            [](PyBatch& b, py::object params, py::object grads, py::object exp_avg, py::object exp_avg_sq,
               py::object labels, int group, bool maximize, double beta1, double beta2, double eps,
               double weight_decay, double lr, double bc1, double bc2_sqrt, double rect, double decay,
               bool rectified, bool decoupled) {
                RadamScalars s;
                s.beta1 = beta1; s.beta2 = beta2; s.eps = eps; s.weight_decay = weight_decay; s.lr = lr;
                s.bc1 = bc1; s.bc2_sqrt = bc2_sqrt; s.rect = rect; s.decay = decay; s.rectified = rectified;
                s.decoupled = decoupled;
                add_rule(b, &KernelTable::radam, s, params, grads,
                         {{"exp_avg", 2, exp_avg}, {"exp_avg_sq", 3, exp_avg_sq}}, labels, group, maximize);
            },
            py::arg("params"), py::arg("grads"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::kw_only(),
            py::arg("labels") = py::none(), py::arg("group") = 0, py::arg("maximize") = false, py::arg("beta1"),
            py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("lr"), py::arg("bc1"),
            py::arg("bc2_sqrt"), py::arg("rect"), py::arg("decay"), py::arg("rectified"), py::arg("decoupled"))
        .def(
            "add_lion",
            [](PyBatch& b, py::object params, py::object grads, py::object exp_avg, py::object labels, int group,
               bool maximize, double lr, double beta1, double beta2, double decay) {
                LionScalars s;
                s.lr = lr; s.beta1 = beta1; s.beta2 = beta2; s.decay = decay;
                add_rule(b, &KernelTable::lion, s, params, grads, {{"exp_avg", 2, exp_avg}}, labels, group, maximize);
            },
            py::arg("params"), py::arg("grads"), py::arg("exp_avg"), py::kw_only(), py::arg("labels") = py::none(),
            py::arg("group") = 0, py::arg("maximize") = false, py::arg("lr"), py::arg("beta1"), py::arg("beta2"),
            py::arg("decay"))
        .def("check", &check_batch, "Raise ValueError if two buffers overlap where one is written; run nothing.")
        .def("run", &run_batch, py::kw_only(), py::arg("max_norm") = py::none(), py::arg("per_group") = false,
             py::arg("clip_value") = py::none(), py::arg("check_finite") = false,
             py::arg("abort_on_nonfinite") = false,
             "Check overlaps, then (optionally) the gradient-norm pass, then every kernel, without the GIL. "
             "Returns {grad_norm, group_norms, nonfinite, aborted}; aborted means nothing was written.");
}

}  // namespace fusedopt::bind
