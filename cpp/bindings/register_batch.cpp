// fusedopt._core.Batch: one optimizer step. The Python layer adds one entry per param group
// (and step count); add_* checks every array and records raw pointers, run() checks that no
// written buffer overlaps another, then runs the norm pass and the kernels without the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <map>
#include <memory>
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

// What the step needs to redo per add() call when the batch is reused (a plan).
struct AddRecord {
    py::list params;
    py::object labels;
    std::vector<std::pair<std::size_t, std::size_t>> where;  // param i -> (entry, segment)
    std::vector<std::size_t> entries;                        // entries this call made
    std::function<void(const py::dict&)> set_scalars;
    std::size_t count = 0;                                   // parameters
};

struct PyBatch {
    Batch core;
    std::vector<EntryInfo> info;
    std::vector<AddRecord> records;       // one per add() call, for step()
    std::vector<py::object> keep_alive;   // the lists (and so the arrays) the pointers come from
    bool frozen = false;                  // a plan: parameters and state fixed, see step()
};

std::string param_label(const py::object& labels, std::size_t i) {
    if (!labels.is_none()) return std::string(py::repr(py::reinterpret_borrow<py::list>(labels)[i]));
    return std::to_string(i);
}

std::string describe(const std::string& role, const py::object& labels, std::size_t i) {
    if (role == "params") return "parameter " + param_label(labels, i);
    return role + " for parameter " + param_label(labels, i);
}

void check_like(const CheckedArray& x, const CheckedArray& p, const char* role, const py::object& labels,
                std::size_t i) {
    if (x.dtype != p.dtype)
        throw py::type_error(describe(role, labels, i) + ": dtype " + dtype_name(x.dtype) +
                             " does not match the parameter's " + dtype_name(p.dtype));
    if (!same_shape(x, p))
        throw py::value_error(describe(role, labels, i) + ": shape " + shape_string(x.ndim, x.shape) +
                              " does not match the parameter's " + shape_string(p.ndim, p.shape));
}

py::list as_list(const py::object& o, const char* name) {
    if (!py::isinstance<py::list>(o))
        throw py::type_error(std::string(name) + ": expected a list of arrays, got " +
                             std::string(py::str(py::type::of(o).attr("__name__"))));
    return py::reinterpret_borrow<py::list>(o);
}

double scalar(const py::dict& d, const char* key) {
    PyObject* v = PyDict_GetItemString(d.ptr(), key);
    if (!v) throw py::key_error(std::string("scalars: missing '") + key + "'");
    const double x = PyFloat_AsDouble(v);
    if (x == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    return x;
}

bool flag(const py::dict& d, const char* key) {
    PyObject* v = PyDict_GetItemString(d.ptr(), key);
    if (!v) throw py::key_error(std::string("scalars: missing '") + key + "'");
    const int t = PyObject_IsTrue(v);
    if (t < 0) throw py::error_already_set();
    return t != 0;
}

// Each rule: its state arrays (slots 2, 3, ... in this order), how to read its per-step
// scalars from a dict, and which states the scalars make necessary.
void parse(const py::dict& d, SgdScalars& s) {
    s.lr = scalar(d, "lr"); s.momentum = scalar(d, "momentum"); s.dampening = scalar(d, "dampening");
    s.weight_decay = scalar(d, "weight_decay"); s.nesterov = flag(d, "nesterov");
    s.first_step = flag(d, "first_step"); s.classic = flag(d, "classic");
}
void parse(const py::dict& d, AdagradScalars& s) {
    s.clr = scalar(d, "clr"); s.weight_decay = scalar(d, "weight_decay"); s.eps = scalar(d, "eps");
}
void parse(const py::dict& d, RmspropScalars& s) {
    s.lr = scalar(d, "lr"); s.alpha = scalar(d, "alpha"); s.eps = scalar(d, "eps");
    s.weight_decay = scalar(d, "weight_decay"); s.momentum = scalar(d, "momentum"); s.centered = flag(d, "centered");
}
void parse(const py::dict& d, AdamScalars& s) {
    s.beta1 = scalar(d, "beta1"); s.beta2 = scalar(d, "beta2"); s.eps = scalar(d, "eps");
    s.weight_decay = scalar(d, "weight_decay"); s.step_size = scalar(d, "step_size");
    s.bc2_sqrt = scalar(d, "bc2_sqrt"); s.decay = scalar(d, "decay"); s.amsgrad = flag(d, "amsgrad");
    s.decoupled = flag(d, "decoupled");
}
void parse(const py::dict& d, AdamaxScalars& s) {
    s.beta1 = scalar(d, "beta1"); s.beta2 = scalar(d, "beta2"); s.eps = scalar(d, "eps");
    s.weight_decay = scalar(d, "weight_decay"); s.clr = scalar(d, "clr");
}
void parse(const py::dict& d, NadamScalars& s) {
    s.beta1 = scalar(d, "beta1"); s.beta2 = scalar(d, "beta2"); s.eps = scalar(d, "eps");
    s.weight_decay = scalar(d, "weight_decay"); s.bc2 = scalar(d, "bc2"); s.grad_coef = scalar(d, "grad_coef");
    s.avg_coef = scalar(d, "avg_coef"); s.decay = scalar(d, "decay"); s.decoupled = flag(d, "decoupled");
}
void parse(const py::dict& d, RadamScalars& s) {
    s.beta1 = scalar(d, "beta1"); s.beta2 = scalar(d, "beta2"); s.eps = scalar(d, "eps");
    s.weight_decay = scalar(d, "weight_decay"); s.lr = scalar(d, "lr"); s.bc1 = scalar(d, "bc1");
    s.bc2_sqrt = scalar(d, "bc2_sqrt"); s.rect = scalar(d, "rect"); s.decay = scalar(d, "decay");
    s.rectified = flag(d, "rectified"); s.decoupled = flag(d, "decoupled");
}
void parse(const py::dict& d, LionScalars& s) {
    s.lr = scalar(d, "lr"); s.beta1 = scalar(d, "beta1"); s.beta2 = scalar(d, "beta2"); s.decay = scalar(d, "decay");
}

// Which of a rule's states (bit i: slot 2 + i) these scalars need; the others are ignored.
unsigned needed(const SgdScalars& s) { return (s.momentum != 0.0 || s.classic) ? 1u : 0u; }
unsigned needed(const AdagradScalars&) { return 1u; }
unsigned needed(const RmspropScalars& s) { return 1u | (s.momentum > 0.0 ? 2u : 0u) | (s.centered ? 4u : 0u); }
unsigned needed(const AdamScalars& s) { return 3u | (s.amsgrad ? 4u : 0u); }
unsigned needed(const AdamaxScalars&) { return 3u; }
unsigned needed(const NadamScalars&) { return 3u; }
unsigned needed(const RadamScalars&) { return 3u; }
unsigned needed(const LionScalars&) { return 1u; }

template <class S>
void add_rule(PyBatch& b, RuleKernels<S> KernelTable::*rule, const std::vector<const char*>& state_names,
              const py::object& params_obj, const py::object& grads_obj, const py::object& states_obj,
              const py::dict& scalars, const py::object& labels, int group, bool maximize) {
    auto shared = std::make_shared<S>();
    parse(scalars, *shared);
    const unsigned need = needed(*shared);
    const py::list params = as_list(params_obj, "params");
    const std::size_t n = params.size();
    const bool has_grads = !grads_obj.is_none();
    const py::list grads = has_grads ? as_list(grads_obj, "grads") : py::list();
    if (has_grads && grads.size() != n)
        throw py::value_error("grads: expected " + std::to_string(n) + " arrays (one per parameter), got " +
                              std::to_string(grads.size()));
    if (!labels.is_none() && as_list(labels, "labels").size() != n)
        throw py::value_error("labels: expected one per parameter");
    if (group < 0) throw py::value_error("group must be >= 0");
    const py::list states = as_list(states_obj, "states");
    if (states.size() > state_names.size())
        throw py::value_error("states: this rule takes at most " + std::to_string(state_names.size()) + " lists");
    std::vector<py::object> state_lists;  // None where the scalars do not use the state
    int operands = 2;
    for (std::size_t k = 0; k < state_names.size(); ++k) {
        const py::object given = k < states.size() ? py::object(states[k]) : py::object(py::none());
        if (!(need & (1u << k))) {
            state_lists.push_back(py::none());
            continue;
        }
        if (given.is_none()) throw py::value_error(std::string(state_names[k]) + ": required by these options");
        py::list l = as_list(given, state_names[k]);
        if (l.size() != n)
            throw py::value_error(std::string(state_names[k]) + ": expected " + std::to_string(n) + " arrays, got " +
                                  std::to_string(l.size()));
        state_lists.push_back(l);
        operands = static_cast<int>(k) + 3;
    }

    BatchEntry by_dtype[2];
    EntryInfo info_by_dtype[2];
    std::vector<int> dtype_of(n);
    for (std::size_t i = 0; i < n; ++i) {
        const CheckedArray p = check_array(params[i], true, [&] { return describe("params", labels, i); });
        Segment seg{};
        seg.size = p.size;
        seg.data[0] = p.data;
        if (has_grads) {
            const CheckedArray g = check_array(grads[i], false, [&] { return describe("grads", labels, i); });
            check_like(g, p, "grads", labels, i);
            seg.data[1] = g.data;
        }
        for (std::size_t k = 0; k < state_lists.size(); ++k) {
            if (state_lists[k].is_none()) continue;
            const char* role = state_names[k];
            const py::handle arr = PyList_GET_ITEM(state_lists[k].ptr(), static_cast<Py_ssize_t>(i));
            const CheckedArray st = check_array(arr, true, [&] { return describe(role, labels, i); });
            check_like(st, p, role, labels, i);
            seg.data[2 + k] = st.data;
        }
        const int d = static_cast<int>(p.dtype);
        dtype_of[i] = d;
        by_dtype[d].arrays.dtype = p.dtype;
        by_dtype[d].arrays.append(seg);
        info_by_dtype[d].index.push_back(i);
    }
    std::vector<std::string> slot_names(static_cast<std::size_t>(operands));
    slot_names[0] = "params";
    slot_names[1] = "grads";
    for (std::size_t k = 0; k < state_lists.size(); ++k)
        if (!state_lists[k].is_none()) slot_names[2 + k] = state_names[k];

    AddRecord rec;
    rec.params = params;
    rec.labels = labels;
    rec.count = n;
    rec.where.resize(n);
    std::size_t entry_of_dtype[2] = {0, 0};
    for (int d = 0; d < 2; ++d) {
        if (by_dtype[d].arrays.segments.empty()) continue;
        BatchEntry& e = by_dtype[d];
        const DType dtype = e.arrays.dtype;
        e.operands = operands;
        e.group = group;
        e.grad.scale = maximize ? -1.0 : 1.0;
        e.launch = [rule, shared, dtype](const KernelTable& k, const SegmentList& l, const GradTransform& gt,
                                         const Exec& ex) { (k.*rule).get(dtype)(l, *shared, gt, ex); };
        entry_of_dtype[d] = b.core.entries().size();
        rec.entries.push_back(entry_of_dtype[d]);
        b.core.add(std::move(e));
        info_by_dtype[d].labels = labels;
        info_by_dtype[d].slot_names = slot_names;
        b.info.push_back(std::move(info_by_dtype[d]));
    }
    std::size_t seg_of_dtype[2] = {0, 0};
    for (std::size_t i = 0; i < n; ++i) rec.where[i] = {entry_of_dtype[dtype_of[i]], seg_of_dtype[dtype_of[i]]++};
    rec.set_scalars = [shared, need](const py::dict& d) {
        S s;
        parse(d, s);
        if (needed(s) != need) throw py::value_error("scalars: these options need other state arrays; add again");
        *shared = s;
    };
    b.records.push_back(std::move(rec));
    b.keep_alive.push_back(params);
    if (has_grads) b.keep_alive.push_back(grads);
    for (const py::object& l : state_lists)
        if (!l.is_none()) b.keep_alive.push_back(l);
}

using AddFn = void (*)(PyBatch&, const py::object&, const py::object&, const py::object&, const py::dict&,
                       const py::object&, int, bool);

#define FUSEDOPT_RULE(NAME, MEMBER, SCALARS, ...)                                                            \
    {NAME, [](PyBatch& b, const py::object& p, const py::object& g, const py::object& st, const py::dict& sc, \
              const py::object& lab, int grp, bool mx) {                                                      \
         add_rule<SCALARS>(b, &KernelTable::MEMBER, {__VA_ARGS__}, p, g, st, sc, lab, grp, mx);               \
     }}

const std::map<std::string, AddFn>& rules() {
    static const std::map<std::string, AddFn> table = {
        FUSEDOPT_RULE("sgd", sgd, SgdScalars, "momentum_buffer"),
        FUSEDOPT_RULE("adagrad", adagrad, AdagradScalars, "sum"),
        FUSEDOPT_RULE("rmsprop", rmsprop, RmspropScalars, "square_avg", "momentum_buffer", "grad_avg"),
        FUSEDOPT_RULE("adam", adam, AdamScalars, "exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
        FUSEDOPT_RULE("adamax", adamax, AdamaxScalars, "exp_avg", "exp_inf"),
        FUSEDOPT_RULE("nadam", nadam, NadamScalars, "exp_avg", "exp_avg_sq"),
        FUSEDOPT_RULE("radam", radam, RadamScalars, "exp_avg", "exp_avg_sq"),
        FUSEDOPT_RULE("lion", lion, LionScalars, "exp_avg"),
    };
    return table;
}
#undef FUSEDOPT_RULE

std::string overlap_side(const PyBatch& b, std::size_t entry, std::size_t segment, int slot) {
    const EntryInfo& info = b.info[entry];
    return describe(info.slot_names[static_cast<std::size_t>(slot)], info.labels, info.index[segment]);
}

[[noreturn]] void throw_overlap(const PyBatch& b, const Overlap& o) {
    throw py::value_error(overlap_side(b, o.entry_a, o.segment_a, o.slot_a) + " and " +
                          overlap_side(b, o.entry_b, o.segment_b, o.slot_b) +
                          " share memory; every updated array must have its own buffer");
}

void check_batch(const PyBatch& b) {
    const Overlap o = b.core.find_overlap();
    if (o.found)
        throw_overlap(b, o);
}

StepOptions step_options(const py::object& max_norm, bool per_group, const py::object& clip_value,
                         bool check_finite, bool abort_on_nonfinite) {
    StepOptions opt;
    if (!max_norm.is_none()) opt.max_norm = max_norm.cast<double>();
    if (!clip_value.is_none()) opt.clip_value = clip_value.cast<double>();
    opt.per_group_norm = per_group;
    opt.check_finite = check_finite;
    opt.abort_on_nonfinite = abort_on_nonfinite;
    return opt;
}

py::dict execute(PyBatch& b, const StepOptions& opt) {
    StepResult r;
    {
        py::gil_scoped_release release;
        r = b.core.run(opt, active_kernels(), current_exec());
    }
    py::dict out;
    out["grad_norm"] = r.norm_computed ? py::object(py::float_(r.grad_norm)) : py::object(py::none());
    out["group_norms"] = r.group_norms;
    out["nonfinite"] = r.nonfinite;
    out["aborted"] = r.aborted;
    return out;
}

py::dict run_batch(PyBatch& b, py::object max_norm, bool per_group, py::object clip_value, bool check_finite,
                   bool abort_on_nonfinite) {
    if (b.frozen) throw py::value_error("run: a frozen batch (a plan) steps with step()");
    for (const BatchEntry& e : b.core.entries())
        for (const Segment& seg : e.arrays.segments)
            if (seg.size && !seg.data[1]) throw py::value_error("run: grads were not given to add()");
    check_batch(b);
    py::dict out = execute(b, step_options(max_norm, per_group, clip_value, check_finite, abort_on_nonfinite));
    b.keep_alive.clear();
    return out;
}

void freeze_batch(PyBatch& b) {
    const Overlap o = b.core.freeze();
    if (o.found)
        throw_overlap(b, o);
    b.frozen = true;
}

// A plan's step: new gradients (checked like add()'s, and against every written buffer) and
// new scalars per add() call, then the same run. Nothing is written before every check passed.
py::dict step_batch(PyBatch& b, const py::list& grads, const py::list& scalars, const py::list& maximize,
                    py::object max_norm, bool per_group, py::object clip_value, bool check_finite,
                    bool abort_on_nonfinite) {
    if (!b.frozen) throw py::value_error("step: freeze() the batch first");
    const std::size_t nadd = b.records.size();
    if (grads.size() != nadd || scalars.size() != nadd || maximize.size() != nadd)
        throw py::value_error("step: expected one grads list, scalars dict and maximize flag per add() call");
    for (std::size_t k = 0; k < nadd; ++k) {
        AddRecord& rec = b.records[k];
        const py::list gl = as_list(grads[k], "grads");
        if (gl.size() != rec.count)
            throw py::value_error("grads: expected " + std::to_string(rec.count) +
                                  " arrays (one per parameter), got " + std::to_string(gl.size()));
        for (std::size_t i = 0; i < rec.count; ++i) {
            const py::handle gh = PyList_GET_ITEM(gl.ptr(), static_cast<Py_ssize_t>(i));
            const py::handle ph = PyList_GET_ITEM(rec.params.ptr(), static_cast<Py_ssize_t>(i));
            const CheckedArray g = check_array(gh, false, [&] { return describe("grads", rec.labels, i); });
            const CheckedArray p = check_array(ph, true, [&] { return describe("params", rec.labels, i); });
            check_like(g, p, "grads", rec.labels, i);
            const auto [e, seg] = rec.where[i];
            b.core.entries()[e].arrays.segments[seg].data[1] = g.data;
            const Overlap o = b.core.find_grad_overlap(e, seg);
            if (o.found)
                throw_overlap(b, o);
        }
        rec.set_scalars(py::reinterpret_borrow<py::dict>(scalars[k]));
        const double sign = py::cast<bool>(maximize[k]) ? -1.0 : 1.0;
        for (std::size_t e : rec.entries) b.core.entries()[e].grad.scale = sign;
    }
    return execute(b, step_options(max_norm, per_group, clip_value, check_finite, abort_on_nonfinite));
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
    py::class_<PyBatch>(m, "Batch", "One optimizer step: add() per param group, then run(); or a plan: "
                                     "add() without grads, freeze(), then step() every step.")
        .def(py::init<>())
        .def(
            "add",
            [](PyBatch& b, const std::string& rule, py::object params, py::object grads, py::object states,
               py::dict scalars, py::object labels, int group, bool maximize) {
                if (b.frozen) throw py::value_error("add: the batch is frozen");
                const auto& table = rules();
                const auto it = table.find(rule);
                if (it == table.end()) throw py::value_error("rule: unknown update rule '" + rule + "'");
                it->second(b, params, grads, states, scalars, labels, group, maximize);
            },
            py::arg("rule"), py::arg("params"), py::arg("grads"), py::arg("states"), py::kw_only(),
            py::arg("scalars"), py::arg("labels") = py::none(), py::arg("group") = 0, py::arg("maximize") = false,
            "Check every array of one param group (grads may be None for a plan) and record the update.")
        .def("check", &check_batch, "Raise ValueError if two buffers overlap where one is written; run nothing.")
        .def("run", &run_batch, py::kw_only(), py::arg("max_norm") = py::none(), py::arg("per_group") = false,
             py::arg("clip_value") = py::none(), py::arg("check_finite") = false,
             py::arg("abort_on_nonfinite") = false,
             "Check overlaps, then (optionally) the gradient-norm pass, then every kernel, without the GIL. "
             "Returns {grad_norm, group_norms, nonfinite, aborted}; aborted means nothing was written.")
        .def("freeze", &freeze_batch, "Check the written buffers once and keep this batch as a plan for step().")
        .def("step", &step_batch, py::arg("grads"), py::arg("scalars"), py::arg("maximize"), py::kw_only(),
             py::arg("max_norm") = py::none(), py::arg("per_group") = false, py::arg("clip_value") = py::none(),
             py::arg("check_finite") = false, py::arg("abort_on_nonfinite") = false,
             "A plan's step: per add() call a list of grads, a scalars dict and the maximize flag; as run().");
}

}  // namespace fusedopt::bind
