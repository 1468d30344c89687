// fusedopt._core.Engine: the native optimizer that owns the step. It holds the param groups
// (the user's dicts, read every step so schedulers and edits take effect), the per-parameter
// state dicts and counters, and a validated plan of every array. One step is one call: resolve
// and check each group's hyperparameters, check the gradients, derive the scalars (float64),
// release the GIL for the norm pass and one parallel region, then advance the counters. A step
// that raises writes nothing; a lock per optimizer serializes steps and state reads.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "array_checks.hpp"
#include "row_sparse.hpp"
#include "state_arena.hpp"
#include "state_slots.hpp"
#include "fusedopt/dispatch.hpp"
#include "fusedopt/engine.hpp"
#include "fusedopt/overlap.hpp"
#include "fusedopt/team.hpp"

namespace py = pybind11;

namespace fusedopt::bind {

std::string shape_string(int ndim, const Py_ssize_t* shape) {
    std::string s = "(";
    for (int i = 0; i < ndim; ++i)
        s += std::to_string(shape[i]) + (ndim == 1 || i + 1 < ndim ? "," : "") + (i + 1 < ndim ? " " : "");
    return s + ")";
}

std::string dtype_name(DType t) {
    switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::bf16: return "bfloat16";
    case DType::f16: return "float16";
    case DType::u8: return "uint8";
    }
    return "?";
}

PyObject* bfloat16_type() {
    static PyObject* const type = [] {
        try {
            return py::object(py::module_::import("ml_dtypes").attr("bfloat16")).release().ptr();  // kept
        } catch (const py::error_already_set&) {
            return static_cast<PyObject*>(nullptr);
        }
    }();
    return type;
}

namespace {

constexpr int kMaxSlots = kMaxOperands - 2;

// A module-level Python object this file keeps for the life of the process: never released, so
// no destructor runs after the interpreter has finalized.
py::handle forever(py::object o) { return o.release(); }

// repr(h), cut to 80 characters (an int of 400 digits, a large array).
std::string repr_of(py::handle h) {
    std::string r = py::repr(h);
    return r.size() <= 80 ? r : r.substr(0, 77) + "...";
}
std::string type_name(py::handle h) { return Py_TYPE(h.ptr())->tp_name; }

// A parameter's key in messages: its name quoted, or its position.
std::string label(py::handle key) { return PyUnicode_Check(key.ptr()) ? repr_of(key) : std::string(py::str(key)); }
std::string describe(const char* role, py::handle key) {
    if (role == nullptr) return "parameter " + label(key);
    return std::string(role) + " for parameter " + label(key);
}

const RuleInfo& rule_at(int index) { return active_kernels().rules[index]; }

int find_rule(const std::string& name) {
    const KernelTable& k = active_kernels();
    for (int i = 0; i < k.rule_count; ++i)
        if (name == k.rules[i].name) return i;
    throw py::value_error("rule: unknown update rule '" + name + "'");
}

// `x` (a gradient or a state array; who() names it, called only for a message) must have its
// parameter's shape and `dtype` (the parameter's for a gradient, its slot's for state).
template <class Who>
void check_like(const CheckedArray& x, const CheckedArray& p, DType dtype, Who&& who) {
    if (x.dtype != dtype)
        throw py::type_error(who() + ": dtype " + dtype_name(x.dtype) + " does not match the parameter's " +
                             (dtype == p.dtype ? dtype_name(p.dtype)
                                               : dtype_name(p.dtype) + " (its state is " + dtype_name(dtype) + ")"));
    if (!same_shape(x, p))
        throw py::value_error(who() + ": shape " + shape_string(x.ndim, x.shape) + " does not match the parameter's " +
                              shape_string(p.ndim, p.shape));
}

// The parameter's extents as a Segment carries them (segments.hpp).
void set_extents(Segment& s, const CheckedArray& p) {
    s.size = p.size;
    s.ndim = p.ndim;
    s.matrices = 1;
    s.rows = 1;
    s.cols = p.ndim == 0 ? 1 : static_cast<std::size_t>(p.shape[p.ndim - 1]);
    if (p.ndim >= 2) {
        s.rows = static_cast<std::size_t>(p.shape[p.ndim - 2]);
        for (int i = 0; i + 2 < p.ndim; ++i) s.matrices *= static_cast<std::size_t>(p.shape[i]);
    }
}

// `x`, a state array of slot `k`, must have the slot's dtype and shape.
template <class Who>
void check_slot(const CheckedArray& x, const CheckedArray& p, const SlotLayout& layout, int k, Who&& who) {
    std::vector<Py_ssize_t> shape;
    const DType dtype = layout.dtype(k, p.dtype);
    if (layout.param_shaped(k)) return check_like(x, p, dtype, who);
    if (!layout.shape(k, p, shape))
        throw py::value_error(who() + ": a parameter of shape " + shape_string(p.ndim, p.shape) + " has no such state");
    if (x.dtype != dtype)
        throw py::type_error(who() + ": dtype " + dtype_name(x.dtype) + " is not the slot's " + dtype_name(dtype));
    bool same = x.ndim == int(shape.size());
    for (int i = 0; same && i < x.ndim; ++i) same = x.shape[i] == shape[static_cast<std::size_t>(i)];
    if (!same)
        throw py::value_error(who() + ": shape " + shape_string(x.ndim, x.shape) + " is not the " +
                              shape_string(int(shape.size()), shape.data()) + " a parameter of shape " +
                              shape_string(p.ndim, p.shape) + " keeps");
}

// Rules with per-matrix state (SlotShape rows/cols: Adafactor's factors) index a >= 2-D
// parameter's elements as matrices of its last two axes in C order, and their factors so too:
// other dense layouts (Fortran order, channels_last, ...) are refused where the array is taken
// (construction, add_param_group, load_state_dict, a replacement), never misread.
bool per_matrix_state(const RuleInfo& r) {
    for (int k = 0; k < r.slot_count; ++k)
        if (r.slots[k].shape == SlotShape::rows || r.slots[k].shape == SlotShape::cols) return true;
    return false;
}

bool c_order(const CheckedArray& a) {
    if (a.size == 0) return true;
    Py_ssize_t expected = Py_ssize_t(dtype_size(a.dtype));
    for (int i = a.ndim - 1; i >= 0; --i) {
        if (a.shape[i] > 1 && a.strides[i] != expected) return false;
        expected *= a.shape[i];
    }
    return true;
}

template <class Who>
void check_matrix_layout(const RuleInfo& r, const CheckedArray& a, Who&& who) {
    if (a.ndim >= 2 && per_matrix_state(r) && !c_order(a))
        throw py::value_error(who() + ": must be C-contiguous: rule '" + r.name + "' keeps per-row and per-column " +
                              "state of the last two axes in C order (Fortran order, channels_last and other layouts are not "
                              "supported); give a C-ordered array (numpy.ascontiguousarray) as the parameter");
}

// HyperCheck::optional_nonnegative given as None (resolved as NaN): the machine epsilon of the
// dtype of the group's first parameter that steps, as torch's Adafactor takes eps1 for the group.
void fill_dtype_epsilon(const RuleInfo& r, double* values, DType t) {
    const double eps = t == DType::f64 ? 0x1p-52 : t == DType::f32 ? 0x1p-23 : t == DType::bf16 ? 0x1p-7 : 0x1p-10;
    int at = 0;
    for (int h = 0; h < r.hyper_count; ++h)
        for (int i = 0; i < (r.hypers[h].kind == HyperKind::pair ? 2 : 1); ++i, ++at)
            if (r.hypers[h].check == HyperCheck::optional_nonnegative && values[at] != values[at]) values[at] = eps;
}

// Dict keys as interned Python strings made once: a hot lookup builds no string (as
// PyDict_GetItemString would), and finds keys written as literals in Python by identity.
py::object interned(const char* text) {
    PyObject* s = PyUnicode_InternFromString(text);
    if (!s) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(s);
}

// A dict's item or null, without PyDict_GetItem's saving and restoring of the error state.
PyObject* dict_get(PyObject* dict, PyObject* key) {
    PyObject* v = PyDict_GetItemWithError(dict, key);
    if (!v && PyErr_Occurred()) throw py::error_already_set();
    return v;
}

struct CommonKeys {
    py::handle params = forever(interned("params"));
    py::handle param_names = forever(interned("param_names"));
    py::handle step = forever(interned("step"));
};
const CommonKeys& common_keys() {
    static const CommonKeys k;
    return k;
}

// A rule's extra float counters (NAdam's mu_product; ASGD's eta and mu): the k-th one's name in
// the state dict (null: the rule has none) and its place in Counters.
constexpr int kExtraCounters = 2;
constexpr double Counters::*kExtra[kExtraCounters] = {&Counters::extra, &Counters::extra2};
const char* extra_name(const RuleInfo& r, int k) { return k == 0 ? r.extra_counter : r.extra2_counter; }
// The counters of a parameter whose state is created now (`fresh`: for this step).
Counters initial_counters(const RuleInfo& r, bool fresh) {
    Counters c;
    c.extra = r.extra_initial;
    c.extra2 = r.extra2_initial;
    c.fresh = fresh;
    return c;
}

// A rule's hyperparameter, slot and counter names as Python strings, made once per engine.
struct RuleNames {
    std::vector<py::object> hypers, slots;
    std::vector<std::string> slot_text;
    py::object extras[kExtraCounters];  // null where the rule has no such counter
    explicit RuleNames(const SlotLayout& layout) {
        const RuleInfo& r = *layout.rule;
        for (int h = 0; h < r.hyper_count; ++h) hypers.push_back(interned(r.hypers[h].name));
        for (int k = 0; k < layout.count(); ++k) {
            slot_text.push_back(layout.name(k));
            slots.push_back(interned(slot_text.back().c_str()));
        }
        for (int k = 0; k < kExtraCounters; ++k)
            if (extra_name(r, k)) extras[k] = interned(extra_name(r, k));
    }
};

// ---- hyperparameters ---------------------------------------------------------------------------

bool is_number(py::handle v) {
    if (PyBool_Check(v.ptr())) return false;
    if (PyFloat_Check(v.ptr()) || PyLong_Check(v.ptr())) return true;
    static const py::handle floating = forever(py::module_::import("numpy").attr("floating"));
    static const py::handle integer = forever(py::module_::import("numpy").attr("integer"));
    return py::isinstance(v, floating) || py::isinstance(v, integer);
}

bool is_bool(py::handle v) {
    static const py::handle numpy_bool = forever(py::module_::import("numpy").attr("bool_"));
    return PyBool_Check(v.ptr()) || py::isinstance(v, numpy_bool);
}

// Where a hyperparameter sits, for messages: built only when one is needed.
struct Where {
    const std::string* text = nullptr;  // given by the caller, or
    std::size_t group = 0;              // " (param group N)"
    std::string str() const { return text ? *text : " (param group " + std::to_string(group) + ")"; }
};

// A real number as a double. TypeError for anything else (bool, str, complex, None), ValueError
// for an int too large for a double (Python's float() would raise OverflowError).
template <class Label>
double real_value(py::handle v, Label&& label) {
    if (PyFloat_CheckExact(v.ptr())) return PyFloat_AS_DOUBLE(v.ptr());
    if (!is_number(v)) throw py::type_error(label() + ": expected a number, got " + type_name(v));
    const double x = PyFloat_Check(v.ptr()) ? PyFloat_AS_DOUBLE(v.ptr()) : PyFloat_AsDouble(v.ptr());
    if (x == -1.0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) throw py::error_already_set();
        PyErr_Clear();
        throw py::value_error(label() + ": " + repr_of(v) + " is too large for a float64");
    }
    return x;
}

// A hyperparameter's check (HyperCheck); `construction`: the constructor's defaults are checked.
double number_value(py::handle v, const char* name, int index, const Where& where, HyperCheck check,
                    bool construction) {
    auto label = [&] { return std::string(name) + (index >= 0 ? "[" + std::to_string(index) + "]" : "") + where.str(); };
    if (check == HyperCheck::optional_nonnegative && v.is_none()) return __builtin_nan("");
    const double x = real_value(v, label);
    const bool nonnegative = check == HyperCheck::nonnegative || check == HyperCheck::unit_interval ||
                             check == HyperCheck::optional_nonnegative ||
                             (check == HyperCheck::initially_nonnegative && construction);
    if (nonnegative && !(x >= 0.0)) throw py::value_error(label() + ": must be >= 0, got " + repr_of(v));
    if (check == HyperCheck::unit_interval && !(x < 1.0))
        throw py::value_error(label() + ": must be in [0, 1), got " + repr_of(v));
    return x;
}

// A flag: True or False (a numpy.bool_ too), never an arbitrary truthy object ("no" is not False).
double flag_value(py::handle v, const char* name, const Where& where) {
    if (!is_bool(v)) throw py::type_error(std::string(name) + where.str() + ": expected a bool, got " + type_name(v));
    return PyObject_IsTrue(v.ptr()) == 1;
}

// Evaluates a callable hyperparameter at the step count.
py::object resolved(py::handle v, std::int64_t count) {
    if (PyCallable_Check(v.ptr())) return py::reinterpret_borrow<py::object>(v)(count);
    return py::reinterpret_borrow<py::object>(v);
}

// ", got <value>" for a rule's refusal of hyperparameter `hyper` ("betas[0]": the pair's item),
// read again from the group (only when there is an error: the steady step keeps no copies).
std::string refused_value(const RuleInfo& r, const RuleNames& names, py::handle group, std::int64_t count,
                          const std::string& hyper) {
    const std::size_t bracket = hyper.find('[');
    const std::string base = hyper.substr(0, bracket);
    for (int h = 0; h < r.hyper_count; ++h) {
        if (base != r.hypers[h].name) continue;
        PyObject* raw = dict_get(group.ptr(), names.hypers[static_cast<std::size_t>(h)].ptr());
        if (!raw) return "";
        py::object v = resolved(raw, count);
        if (PyTuple_CheckExact(v.ptr())) {  // a pair's items may be callables too (torch-style)
            py::tuple items(PyTuple_GET_SIZE(v.ptr()));
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(v.ptr()); ++i)
                items[i] = resolved(PyTuple_GET_ITEM(v.ptr(), i), count);
            v = items;
        }
        if (bracket != std::string::npos && (PyTuple_Check(v.ptr()) || PyList_Check(v.ptr()))) {
            const Py_ssize_t i = std::stoi(hyper.substr(bracket + 1));
            if (i < PySequence_Size(v.ptr())) v = py::reinterpret_steal<py::object>(PySequence_GetItem(v.ptr(), i));
        }
        return ", got " + repr_of(v);
    }
    return "";
}

// A group's hyperparameters, resolved at `count`, checked, as the rule's value array. `objects`
// (when given) receives the resolved Python values by name, for the NumPy reference.
void resolve_group(const RuleInfo& r, const RuleNames& names, py::handle group, std::int64_t count,
                   const Where& where, double* values, py::dict* objects, bool construction = false) {
    if (!PyDict_Check(group.ptr()))
        throw py::type_error("param group" + where.str() + ": expected a dict, got " + type_name(group));
    int at = 0;
    for (int h = 0; h < r.hyper_count; ++h) {
        const HyperSpec& spec = r.hypers[h];
        PyObject* raw = dict_get(group.ptr(), names.hypers[static_cast<std::size_t>(h)].ptr());
        if (!raw) throw py::value_error(std::string(spec.name) + where.str() + ": missing from the param group");
        py::object v = resolved(raw, count);
        switch (spec.kind) {
        case HyperKind::number:
            values[at++] = number_value(v, spec.name, -1, where, spec.check, construction);
            break;
        case HyperKind::flag:
            values[at++] = flag_value(v, spec.name, where);
            break;
        case HyperKind::pair: {
            const std::string pair_text = std::string("(") + spec.choices[0] + ", " + spec.choices[1] + ")";
            if (!(PyTuple_Check(v.ptr()) || PyList_Check(v.ptr())) || PySequence_Size(v.ptr()) != 2)
                throw py::value_error(std::string(spec.name) + where.str() + ": expected a pair " + pair_text + ", got " +
                                      repr_of(v));
            py::tuple items(2);
            for (int i = 0; i < 2; ++i) {
                py::object item = py::reinterpret_steal<py::object>(PySequence_GetItem(v.ptr(), i));
                if (PyTuple_CheckExact(v.ptr())) item = resolved(item, count);  // torch-style (lr, callable)
                values[at++] = number_value(item, spec.name, i, where, spec.check, construction);
                items[i] = item;
            }
            v = items;
            break;
        }
        case HyperKind::choice: {
            int index = -1;
            if (PyUnicode_Check(v.ptr()))
                for (int i = 0; spec.choices[i]; ++i)
                    if (py::cast<std::string>(v) == spec.choices[i]) index = i;
            if (index < 0) {
                std::string allowed = "(";
                for (int i = 0; spec.choices[i]; ++i) allowed += std::string(i ? ", '" : "'") + spec.choices[i] + "'";
                throw py::value_error(std::string(spec.name) + where.str() + ": must be one of " + allowed + "), got " +
                                      repr_of(v));
            }
            values[at++] = index;
            break;
        }
        }
        if (objects) (*objects)[names.hypers[static_cast<std::size_t>(h)]] = v;
    }
    const HyperError err = r.check(values);
    if (err.hyper)
        throw py::value_error(std::string(err.hyper) + where.str() + ": " + err.message +
                              refused_value(r, names, group, count, err.hyper));
}


// ---- counters as a state dict holds them ------------------------------------------------------

// A counter (a parameter's 'step', step_count, skipped_steps): a whole number >= 0, as an int of
// any size, a NumPy integer, or a whole float (a 0-d array or a tensor, as torch saves 'step').
// what() names it in messages.
template <class What>
std::int64_t whole_count(py::handle v, What&& what) {
    auto bad = [&] { return what() + " must be a whole number >= 0, got " + repr_of(v); };
    if (is_bool(v)) throw py::type_error(bad());
    if (PyIndex_Check(v.ptr())) {  // int, numpy integer: exact at any size
        const py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
        if (!i) throw py::error_already_set();
        int overflow = 0;
        const long long s = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
        if (overflow || s < 0) throw py::value_error(bad());
        return s;
    }
    const double f = PyFloat_AsDouble(v.ptr());  // a float, 0-d array, tensor
    if (f == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::type_error(bad());
    }
    if (!(std::isfinite(f) && f == std::floor(f) && f >= 0 && f < 9.2e18)) throw py::value_error(bad());
    return static_cast<std::int64_t>(f);
}

// `arg` names where the state came from in messages: "state_dict" (load_state_dict) or "state".
std::int64_t whole_step(py::handle v, py::handle key, const char* arg) {
    return whole_count(v, [&] { return std::string(arg) + ": 'step' of parameter " + label(key); });
}

// ---- the engine ---------------------------------------------------------------------------------

// A parameter's state arrays as validated (array null where absent), with their data, elements
// (SlotShape) and stamps (read in exposed mode only: opt.state handed out).
struct ParamSlots {
    py::object array[kMaxSlots];
    void* data[kMaxSlots] = {};
    std::size_t size[kMaxSlots] = {};
    ArrayStamp stamp[kMaxSlots];

    void set(int k, py::object a, void* d, std::size_t n) {
        stamp[k] = ArrayStamp::of(a);
        array[k] = std::move(a);
        data[k] = d;
        size[k] = n;
    }
    void clear(int k) {
        array[k] = py::object();
        data[k] = nullptr;
        stamp[k] = ArrayStamp{};
    }
};

// The fields every step reads come first, together: a step over many arrays finds each
// parameter's evicted from the cache by the previous step's data.
struct Param {
    py::object array, state;       // state: the dict, or None before the first step
    CheckedArray checked;          // as validated (reallocation and reshapes are noticed)
    ArrayStamp stamp;              // of the array as validated (up to 4 dimensions)
    Counters counters;
    std::size_t group = 0;
    const void* last_grad = nullptr;  // checked against the written buffers already
    py::object key;
    std::vector<Py_ssize_t> more_dims;  // its shape as validated, when it has no stamp
    // Its state arrays, out of line (one allocation), as a steady step's loops over every
    // parameter read none of them: those loops find the parameters evicted by the last step's
    // data stream and pay per line and page they span (1000 arrays of 1000, SGD momentum, the
    // checks: 1240 -> 240 bytes per parameter, 23 -> 18 us at 1 thread).
    std::unique_ptr<ParamSlots> slot{new ParamSlots};

    const Py_ssize_t* shape() const { return stamp.valid() ? stamp.shape : more_dims.data(); }
};

// Asks for a parameter's fields that every step reads (they come first). (The prefetch helpers
// are always inlined: GCC deletes calls it did not inline to a function that only prefetches.)
[[gnu::always_inline]] inline void prefetch_param(const std::vector<Param>& params, std::size_t i) {
    if (i >= params.size()) return;
    const char* p = reinterpret_cast<const char*>(&params[i]);
    const char* end = reinterpret_cast<const char*>(&params[i].key);
    for (; p < end; p += 64) __builtin_prefetch(p);
}

// ValueError naming both sides of an overlap (spans' owner: a parameter's index; slot 0 the
// parameter, 1 its gradient, 2.. its state).
[[noreturn]] void throw_overlap(const RuleNames& names, const std::vector<Param>& params, const Overlap& o) {
    auto side = [&](const Span& s) {
        const char* role = s.slot == 0   ? nullptr
                           : s.slot == 1 ? "grads"
                                         : names.slot_text[static_cast<std::size_t>(s.slot - 2)].c_str();
        return describe(role, params[s.owner].key);
    };
    throw py::value_error(side(o.a) + " and " + side(o.b) + " share memory; every updated array must have its own buffer");
}

struct Group {
    py::object dict, params;  // the user's group dict and its 'params' list, as validated
};

// A parameter a step updates, and its unit (whatever segments it became).
struct Stepped {
    std::size_t param;
    std::uint32_t unit;
};

struct Options {
    StepOptions step;
    // bfloat16 / float16 parameters (docs/low_precision.md)
    bool master_weights = false;
    bool stochastic_rounding = false;
    std::uint64_t seed = 0;             // stochastic rounding (parameters, bfloat16 state)
    StateDtype state = StateDtype::native;  // compressed state (docs/compressed_state.md)
    bool raise_nonfinite = false;  // NonFiniteGradientError instead of a skipped step
    py::object reference;          // None: native kernels; else the NumPy reference, called as
                                   // reference(units, group_count, rule=, max_norm=, per_group=,
                                   // clip_value=, check_finite=) (fusedopt.reference.run_step)
};

const char* state_dtype_name(StateDtype t) {
    return t == StateDtype::bf16 ? "bfloat16" : t == StateDtype::int8 ? "int8" : "native";
}

// fusedopt.NonFiniteGradientError, raised by a step with nonfinite="raise".
struct NonFiniteGradient : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// State arrays a step creates (a first step, or an option that starts using a slot), kept
// aside until the step has succeeded.
struct NewState {
    std::size_t param;
    py::object arrays[kMaxSlots];
};

// What building a step's plan leaves for its run and its commit.
struct Built {
    std::vector<py::object> grad_copies;  // owned until the kernels are done
    std::vector<char> grad_copied;        // per stepped parameter (empty: a replayed plan)
    std::vector<Segment> whole;           // per stepped parameter: its whole arrays (a dense
                                          // gradient's data, null for a row-sparse one; the
                                          // slots these options use)
    std::vector<NewState> created;        // state the step creates, committed after it
    void* scratch = nullptr;              // the row-sparse gradients' sums
};

// Whether the last plan built can be run again with only the gradients' addresses and the
// units' scalars replaced (Engine::replay_plan): every parameter stepped with a dense gradient
// in its own layout, one segment each, and no state was created; and the SIMD target is the
// one whose kernels the plan's units hold (set_target applies to every later step).
struct Replay {
    bool valid = false;
    const KernelTable* table = nullptr;   // the target the plan was built for
    std::vector<std::size_t> unit_param;  // per unit: its first parameter (counters, rounding key)
    std::vector<unsigned> used;           // per unit: the slots its group's hyperparameters used
};

class Engine {
public:
    Engine(const std::string& rule, py::list groups, py::dict state, const Options& options)
        : rule_(find_rule(rule)),
          layout_{&rule_at(rule_), options.state, options.master_weights},
          names_of_rule_(layout_),
          slot_count_(layout_.count()),
          groups_list_(std::move(groups)),
          state_(std::move(state)),
          options_(options) {}

    py::list param_groups() const { return groups_list_; }
    std::int64_t step_count() const { return step_count_; }
    std::int64_t skipped_steps() const { return skipped_; }
    void set_count(std::int64_t& counter, py::handle value, const char* name);
    void set_step_count(py::handle v) { set_count(step_count_, v, "step_count"); }
    void set_skipped_steps(py::handle v) { set_count(skipped_, v, "skipped_steps"); }
    py::object last_grad_norm() const { return has_norm_ ? py::object(py::float_(last_norm_)) : py::object(py::none()); }
    std::vector<double> last_group_norms() const { return last_group_norms_; }

    void step(py::handle grads, py::handle grad_norm);
    py::list keys();
    py::list keys_unlocked() const;
    py::dict state_view();
    // (state with current counters, keys, step_count, skipped_steps), taken between steps.
    py::tuple snapshot(bool copy_arrays);
    void set_param_state(py::handle key, py::dict st);
    void load(py::list groups, py::dict state, py::handle step_count, py::handle skipped, const char* arg);
    void check_hyperparameters(py::handle group, std::int64_t count, const std::string& where,
                               bool construction) const {
        double values[kMaxHyperValues];
        resolve_group(rule_at(rule_), names_of_rule_, group, count, Where{&where}, values, nullptr, construction);
    }
    // Names of the state arrays a group's current hyperparameters use.
    std::vector<std::string> slots_used(py::handle group, std::int64_t count, const std::string& where) const {
        const RuleInfo& r = rule_at(rule_);
        double values[kMaxHyperValues];
        resolve_group(r, names_of_rule_, group, count, Where{&where}, values, nullptr);
        std::vector<std::string> names;
        const unsigned used = r.slots_used(values);
        for (int k = 0; k < r.slot_count; ++k)
            if (used & (1u << k)) names.push_back(r.slots[k].name);
        return names;
    }

    // A parameter as a step takes it (add_param_group: before the group is appended).
    void check_param(py::handle param, const std::string& where) const {
        auto who = [&] { return where; };
        check_matrix_layout(rule_at(rule_), check_array(param, true, who, true, true), who);
    }

    // {name: (shape, dtype name)} of the state arrays a group's current hyperparameters use for `param`.
    py::dict slot_shapes(py::handle group, std::int64_t count, const std::string& where, py::handle param) const {
        const RuleInfo& r = rule_at(rule_);
        double values[kMaxHyperValues];
        resolve_group(r, names_of_rule_, group, count, Where{&where}, values, nullptr);
        const CheckedArray p = check_array(param, false, [] { return std::string("param"); }, true, true);
        py::dict out;
        const unsigned used = layout_.used(r.slots_used(values), p.dtype);
        std::vector<Py_ssize_t> shape;
        for (int k = 0; k < slot_count_; ++k)
            if ((used & (1u << k)) && layout_.shape(k, p, shape))
                out[names_of_rule_.slots[static_cast<std::size_t>(k)]] =
                    py::make_tuple(py::tuple(py::cast(shape)), dtype_name(layout_.dtype(k, p.dtype)));
        return out;
    }

private:
    friend class Locked;
    bool groups_current() const;
    bool param_current(std::size_t i, PyObject* a) const;
    bool structure_current() const;
    bool steady_checks(py::handle grads, py::tuple& aligned);
    void advance_counters(const std::vector<double>& values, const Built& built);
    bool steady_pair(std::size_t i, PyObject* const* g);
    void rebuild(const char* arg = "state") { rebuild_from(groups_list_, state_, arg); }
    void rebuild_from(const py::list& groups_list, const py::dict& state, const char* arg);
    bool state_dicts_current() const;
    void read_state(Param& p, const RuleInfo& r, const char* arg) const;
    void sync_counters_to_dicts();
    void refresh_for_read();
    py::tuple aligned_grads(py::handle grads) const;
    CheckedArray dense_grad(std::size_t i, PyObject* g, const void* checked, bool& copy) const;
    void build_plan(std::vector<double>& values, PyObject* const* g, Built& built);
    bool replay_plan(std::vector<double>& values, PyObject* const* g, bool grads_checked);
    Counters counters_of(const Param& p) const;
    unsigned slots_of(const StepUnit& unit, const std::vector<double>& values) const;
    std::uint32_t key_of(const Storage& st, std::size_t i) const;
    void set_unit_step(StepUnit& unit, const double* v, const Counters& c) const;

    int rule_;
    SlotLayout layout_;
    RuleNames names_of_rule_;
    int slot_count_;  // layout_.count()
    py::list groups_list_;
    py::dict state_;
    Options options_;
    std::vector<Param> params_;
    std::vector<Group> groups_;
    mutable std::vector<std::size_t> group_first_;  // (groups_current: each group's first parameter)
    WrittenSpans written_;       // every parameter and state array
    bool valid_ = false;         // params_, groups_ and written_ describe the current structure
    bool exposed_ = false;       // opt.state was handed out: its dicts may be edited
    bool names_ = false;
    std::int64_t step_count_ = 0, skipped_ = 0;
    bool has_norm_ = false;
    double last_norm_ = 0;
    std::vector<double> last_group_norms_;
    StepPlan plan_;                    // reused across steps
    std::vector<Stepped> stepped_;      // the parameters this step updates
    Replay replay_;                     // whether plan_ and stepped_ can be run again
    RowCoalescer coalescer_;            // row-sparse gradients: their distinct rows, their sums
    std::mutex mutex_;
    std::atomic<std::thread::id> owner_{};
};

// Holds the optimizer's lock for a step or a state read. Waits without the GIL (the holder
// may need it to finish); refuses re-entry from the same thread (a hyperparameter callable
// that steps or reads the optimizer it is called from).
class Locked {
public:
    explicit Locked(Engine& e) : e_(e) {
        if (e.owner_.load() == std::this_thread::get_id())
            throw py::value_error("the optimizer is in the middle of a step on this thread (a hyperparameter "
                                  "callable may not step it or read its state)");
        if (!e.mutex_.try_lock()) {
            py::gil_scoped_release release;
            e.mutex_.lock();
        }
        e.owner_.store(std::this_thread::get_id());
    }
    ~Locked() {
        e_.owner_.store(std::thread::id{});
        e_.mutex_.unlock();
    }

private:
    Engine& e_;
};

void Engine::set_count(std::int64_t& counter, py::handle value, const char* name) {
    const std::int64_t v = whole_count(value, [&] { return std::string(name) + ":"; });
    Locked lock(*this);
    counter = v;
}

// A parameter's state key: its name where the group names them, else its position over all groups.
py::object key_at(PyObject* names, Py_ssize_t j, std::size_t position) {
    if (!names) return py::int_(position);
    PyObject* k = PySequence_GetItem(names, j);
    if (!k) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(k);
}

bool same_checked(const CheckedArray& now, const Param& p) {
    const CheckedArray& was = p.checked;
    if (now.data != was.data || now.size != was.size || now.dtype != was.dtype || now.ndim != was.ndim) return false;
    const Py_ssize_t* shape = p.shape();
    for (int i = 0; i < now.ndim; ++i)
        if (now.shape[i] != shape[i]) return false;
    return true;
}

// The loops over every parameter read a few Python objects per array (the array, its
// dimensions), scattered in memory and evicted by the previous step's data stream. Each iteration
// asks for a later one's early, so their cache misses overlap instead of queueing.
constexpr Py_ssize_t kPrefetchAhead = 8;
[[gnu::always_inline]] inline void prefetch_object(PyObject* a) {
    __builtin_prefetch(a);
    __builtin_prefetch(reinterpret_cast<const char*>(a) + 63);  // the header may straddle two lines
}
// Its dimensions: read through the header, so only for an array prefetched some iterations ago.
[[gnu::always_inline]] inline void prefetch_dims(PyObject* a) {
    if (py::detail::npy_api::get().PyArray_Check_(a)) __builtin_prefetch(py::detail::array_proxy(a)->dimensions);
}

// The array as check_array sees it, or nothing (data == nullptr) when it would fail.
CheckedArray peek(py::handle h, bool written) {
    try {
        return check_array(h, written, [] { return std::string(); }, true, true);
    } catch (const py::error_already_set&) {
        throw;
    } catch (const std::exception&) {
        return {};
    }
}

// The groups as validated: the same dicts holding the same 'params' lists, of as many
// parameters in all (group_first_: where each group's start).
bool Engine::groups_current() const {
    if (!valid_) return false;
    const Py_ssize_t ng = PyList_GET_SIZE(groups_list_.ptr());
    if (static_cast<std::size_t>(ng) != groups_.size()) return false;
    group_first_.clear();
    std::size_t at = 0;
    for (Py_ssize_t g = 0; g < ng; ++g) {
        const Group& group = groups_[static_cast<std::size_t>(g)];
        PyObject* d = PyList_GET_ITEM(groups_list_.ptr(), g);
        if (d != group.dict.ptr()) return false;
        PyObject* plist = dict_get(d, common_keys().params.ptr());
        if (plist != group.params.ptr() || !PyList_Check(plist)) return false;
        group_first_.push_back(at);
        at += static_cast<std::size_t>(PyList_GET_SIZE(plist));
    }
    group_first_.push_back(at);
    return at == params_.size();
}

// Parameter i is `a`, the array as validated: not reallocated, reshaped, or given other strides
// or flags. Reads no Python state but the array's header, so the team may run it (no stamp:
// false there, checked in full by structure_current).
bool Engine::param_current(std::size_t i, PyObject* a) const {
    const Param& p = params_[i];
    return a == p.array.ptr() && p.stamp.valid() && p.stamp.matches(a) &&
           py::detail::array_proxy(a)->data == p.checked.data;
}

bool Engine::structure_current() const {
    if (!groups_current()) return false;
    std::size_t i = 0;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
        PyObject* plist = groups_[g].params.ptr();
        const Py_ssize_t n = PyList_GET_SIZE(plist);
        for (Py_ssize_t j = 0; j < n; ++j, ++i) {
            PyObject* a = PyList_GET_ITEM(plist, j);
            if (j + kPrefetchAhead < n) prefetch_object(PyList_GET_ITEM(plist, j + kPrefetchAhead));
            prefetch_param(params_, i + kPrefetchAhead);
            if (j + kPrefetchAhead / 2 < n) prefetch_dims(PyList_GET_ITEM(plist, j + kPrefetchAhead / 2));
            if (param_current(i, a)) continue;
            const Param& p = params_[i];
            if (a != p.array.ptr() || p.stamp.valid() || !same_checked(peek(a, true), p)) return false;
        }
    }
    return true;
}

// In exposed mode the state dicts may have been edited: the same arrays, unchanged in place,
// and the same counters, or a rebuild (which checks the new ones).
bool Engine::state_dicts_current() const {
    const RuleInfo& r = rule_at(rule_);
    for (const Param& p : params_) {
        PyObject* st = dict_get(state_.ptr(), p.key.ptr());
        if (st != (p.state.is_none() ? nullptr : p.state.ptr())) return false;
        if (!st) continue;
        for (int k = 0; k < slot_count_; ++k) {
            if (!layout_.applies(k, p.checked.dtype)) continue;
            PyObject* a = dict_get(st, names_of_rule_.slots[static_cast<std::size_t>(k)].ptr());
            if (a != p.slot->array[k].ptr()) return false;
            if (!a) continue;
            if (py::detail::array_proxy(a)->data != p.slot->data[k]) return false;  // reallocated
            // its dtype, shape, strides or flags set in place (no stamp: more than 4 dimensions,
            // checked in full by the rebuild)
            if (!p.slot->stamp[k].valid() || !p.slot->stamp[k].matches(a)) return false;
        }
        if (r.has_step) {
            PyObject* s = dict_get(st, common_keys().step.ptr());
            if (!s || !PyLong_CheckExact(s) || PyLong_AsLongLong(s) != p.counters.step) return false;
        }
        for (int k = 0; k < kExtraCounters; ++k) {
            if (!extra_name(r, k)) continue;
            PyObject* x = dict_get(st, names_of_rule_.extras[k].ptr());
            if (!x || !PyFloat_CheckExact(x) || PyFloat_AS_DOUBLE(x) != p.counters.*kExtra[k]) return false;
        }
    }
    return true;
}

// A state dict's arrays and counters, checked against the parameter.
void Engine::read_state(Param& p, const RuleInfo& r, const char* arg) const {
    for (int k = 0; k < slot_count_; ++k) {
        p.slot->clear(k);
        if (!layout_.applies(k, p.checked.dtype)) continue;
        PyObject* a = dict_get(p.state.ptr(), names_of_rule_.slots[static_cast<std::size_t>(k)].ptr());
        if (!a) continue;
        const char* role = names_of_rule_.slot_text[static_cast<std::size_t>(k)].c_str();
        auto who = [&] { return describe(role, p.key); };
        const CheckedArray c = check_array(a, true, who, true, true, false, true);
        check_slot(c, p.checked, layout_, k, who);
        if (k < r.slot_count && (r.slots[k].shape == SlotShape::rows || r.slots[k].shape == SlotShape::cols) &&
            !c_order(c))
            throw py::value_error(who() + ": must be C-contiguous (a parameter's per-row and per-column state is "
                                          "indexed in C order); give numpy.ascontiguousarray(...)");
        if (layout_.param_shaped(k) &&
            !same_layout(c, Py_ssize_t(dtype_size(c.dtype)), p.checked, Py_ssize_t(dtype_size(p.checked.dtype))))
            throw py::value_error(who() + ": its memory layout (strides) is not the parameter's; state arrays take the "
                                          "parameter's layout (numpy.empty_like(param, dtype=...))");
        p.slot->set(k, py::reinterpret_borrow<py::object>(a), c.data, c.size);
    }
    p.counters = Counters{};
    if (r.has_step) {
        PyObject* s = dict_get(p.state.ptr(), common_keys().step.ptr());
        if (!s) throw py::value_error(std::string(arg) + ": parameter " + label(p.key) + " lacks 'step'");
        p.counters.step = whole_step(s, p.key, arg);
    }
    for (int k = 0; k < kExtraCounters; ++k) {
        if (!extra_name(r, k)) continue;
        PyObject* x = dict_get(p.state.ptr(), names_of_rule_.extras[k].ptr());
        const std::string what = std::string(arg) + ": '" + extra_name(r, k) + "' of parameter " + label(p.key);
        if (!x) throw py::value_error(what + " is missing");
        double& value = p.counters.*kExtra[k];
        value = real_value(x, [&] { return what; });
        if (!std::isfinite(value)) throw py::value_error(what + " must be finite, got " + repr_of(x));
    }
}

// Validates every parameter and state array and their overlaps, from the groups and state dicts
// (`arg`: where the state came from, for messages). Builds aside: on error the previous plan stays.
// The plan refers to the dicts in `groups_list` and `state`, which must become the engine's.
void Engine::rebuild_from(const py::list& groups_list, const py::dict& state, const char* arg) {
    const RuleInfo& r = rule_at(rule_);
    std::unordered_map<PyObject*, std::size_t> old, old_state;  // by array, by state dict
    for (std::size_t i = 0; i < params_.size(); ++i) {
        old[params_[i].array.ptr()] = i;
        if (!params_[i].state.is_none()) old_state[params_[i].state.ptr()] = i;
    }
    std::vector<Param> params;
    std::vector<Group> groups;
    std::vector<Span> spans;
    bool names = false;
    const Py_ssize_t ng = PyList_GET_SIZE(groups_list.ptr());
    for (Py_ssize_t g = 0; g < ng; ++g) {
        py::handle d = PyList_GET_ITEM(groups_list.ptr(), g);
        if (!PyDict_Check(d.ptr())) throw py::type_error("param_groups[" + std::to_string(g) + "]: expected a dict");
        PyObject* plist = dict_get(d.ptr(), common_keys().params.ptr());
        if (!plist || !PyList_Check(plist))
            throw py::type_error("param_groups[" + std::to_string(g) + "]['params']: expected a list of arrays");
        PyObject* pnames = dict_get(d.ptr(), common_keys().param_names.ptr());
        names = pnames != nullptr;
        groups.push_back({py::reinterpret_borrow<py::object>(d), py::reinterpret_borrow<py::object>(plist)});
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(plist); ++j) {
            Param p;
            p.array = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(plist, j));
            p.key = key_at(pnames, j, params.size());
            const auto it = old.find(p.array.ptr());
            if (it != old.end() && p.key.equal(params_[it->second].key))
                p.key = params_[it->second].key;  // the object the state dict holds: lookups by identity
            p.group = static_cast<std::size_t>(g);
            p.checked = check_array(p.array, true, [&] { return describe(nullptr, p.key); }, true, true);
            if (layout_.state != StateDtype::native && p.checked.dtype == DType::f64)
                throw py::type_error(describe(nullptr, p.key) + ": dtype float64 with compressed state (state_dtype): "
                                     "it is for float32, bfloat16 and float16 parameters");
            check_matrix_layout(r, p.checked, [&] { return describe(nullptr, p.key); });
            p.stamp = ArrayStamp::of(p.array);
            if (!p.stamp.valid()) p.more_dims.assign(p.checked.shape, p.checked.shape + p.checked.ndim);
            PyObject* st = dict_get(state.ptr(), p.key.ptr());
            p.state = st ? py::reinterpret_borrow<py::object>(st) : py::object(py::none());
            if (st) {
                if (!PyDict_Check(st)) throw py::type_error("state[" + label(p.key) + "]: expected a dict");
                read_state(p, r, arg);
                // Not handed out, the dict's counters may be stale: the engine's are current. Found
                // by the state dict, not the array: a parameter replaced in its group's list keeps
                // its state dict (same key) and so its counters.
                const auto was = old_state.find(st);
                if (was != old_state.end() && !exposed_) p.counters = params_[was->second].counters;
            }
            const std::size_t index = params.size();
            for (int slot = 0; slot < slot_count_ + 2; ++slot) {  // the parameter, then its state
                void* data = slot == 0 ? p.checked.data : slot == 1 ? nullptr : p.slot->data[slot - 2];
                const DType t = slot == 0 ? p.checked.dtype : layout_.dtype(slot - 2, p.checked.dtype);
                const std::size_t size = slot < 2 ? p.checked.size : p.slot->size[slot - 2];
                if (data) spans.push_back(make_span(data, size, t, true, index, slot));
            }
            params.push_back(std::move(p));
        }
    }
    const Overlap o = first_overlap(spans);
    if (o.found) throw_overlap(names_of_rule_, params, o);
    params_ = std::move(params);
    groups_ = std::move(groups);
    written_.assign(std::move(spans));
    names_ = names;
    valid_ = true;
    replay_.valid = false;  // the plan's parameters are not these
}

void Engine::sync_counters_to_dicts() {
    const RuleInfo& r = rule_at(rule_);
    // One Python object per distinct value (usually one per step for all parameters).
    py::object step, extra[kExtraCounters];
    std::int64_t step_value = -1;
    double extra_value[kExtraCounters] = {};
    for (const Param& p : params_) {
        if (p.state.is_none()) continue;
        if (r.has_step) {
            if (!step || p.counters.step != step_value) step = py::int_(step_value = p.counters.step);
            if (PyDict_SetItem(p.state.ptr(), common_keys().step.ptr(), step.ptr()) < 0) throw py::error_already_set();
        }
        for (int k = 0; k < kExtraCounters; ++k) {
            if (!extra_name(r, k)) continue;
            const double x = p.counters.*kExtra[k];
            if (!extra[k] || x != extra_value[k]) extra[k] = py::float_(extra_value[k] = x);
            if (PyDict_SetItem(p.state.ptr(), names_of_rule_.extras[k].ptr(), extra[k].ptr()) < 0)
                throw py::error_already_set();
        }
    }
}

// The gradients as a tuple aligned with the parameters (None where a parameter has none). The
// tuple owns them: another thread may change the caller's list or dict while the kernels run
// without the GIL, and an array dropped from it must not be freed under them.
py::tuple Engine::aligned_grads(py::handle grads) const {
    const std::size_t n = params_.size();
    py::tuple out(n);
    auto& api = py::detail::npy_api::get();
    static const py::handle numpy_scalar = forever(py::module_::import("numpy").attr("generic"));
    auto put = [&](std::size_t i, PyObject* g) {
        // A NumPy scalar (what np.sum returns) is a 0-d parameter's gradient as a 0-d array.
        // (g's type first: its header is read here anyway, the parameter's fields are not)
        const int scalar = g != Py_None && !api.PyArray_Check_(g) && params_[i].checked.ndim == 0
                               ? PyObject_IsInstance(g, numpy_scalar.ptr()) : 0;
        if (scalar < 0) throw py::error_already_set();
        if (scalar) {
            g = api.PyArray_FromAny_(g, nullptr, 0, 0, 0, nullptr);
            if (!g) throw py::error_already_set();
        } else {
            Py_INCREF(g);
        }
        PyTuple_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), g);
    };
    static const py::handle mapping = forever(py::module_::import("collections.abc").attr("Mapping"));
    static const py::handle sequence = forever(py::module_::import("collections.abc").attr("Sequence"));
    if (PyDict_Check(grads.ptr()) || (!PyList_Check(grads.ptr()) && !PyTuple_Check(grads.ptr()) &&
                                      !api.PyArray_Check_(grads.ptr()) && py::isinstance(grads, mapping))) {
        const py::object d = PyDict_Check(grads.ptr()) ? py::reinterpret_borrow<py::object>(grads)
                                                       : py::object(py::dict(py::reinterpret_borrow<py::object>(grads)));
        if (!names_) throw py::type_error("grads: a dict of grads needs parameters given by name");
        Py_ssize_t found = 0;
        for (std::size_t i = 0; i < n; ++i) {
            PyObject* g = dict_get(d.ptr(), params_[i].key.ptr());
            found += g != nullptr;
            put(i, g ? g : Py_None);
        }
        if (found != PyDict_Size(d.ptr())) {
            py::set known;
            for (const Param& p : params_) known.add(p.key);
            for (auto item : py::reinterpret_borrow<py::dict>(d))
                if (!known.contains(item.first)) throw py::value_error("grads: no parameter named " + repr_of(item.first));
        }
        return out;
    }
    if (api.PyArray_Check_(grads.ptr()) || is_row_sparse(grads)) {
        if (n != 1)
            throw py::type_error("grads: expected " + std::to_string(n) + " gradients (a list or dict), got one " +
                                 (is_row_sparse(grads) ? "fusedopt.RowSparse" : "array"));
        put(0, grads.ptr());
        return out;
    }
    if (PyList_Check(grads.ptr()) || PyTuple_Check(grads.ptr()) ||
        (!PyUnicode_Check(grads.ptr()) && !PyBytes_Check(grads.ptr()) && py::isinstance(grads, sequence))) {
        const py::object seq = (PyList_Check(grads.ptr()) || PyTuple_Check(grads.ptr()))
                                   ? py::reinterpret_borrow<py::object>(grads)
                                   : py::object(py::list(py::reinterpret_borrow<py::object>(grads)));
        const Py_ssize_t len = PySequence_Fast_GET_SIZE(seq.ptr());
        if (static_cast<std::size_t>(len) != n)
            throw py::value_error("grads: expected " + std::to_string(n) + " gradients (one per parameter), got " +
                                  std::to_string(len));
        PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
        for (std::size_t i = 0; i < n; ++i) put(i, items[i]);
        return out;
    }
    throw py::type_error("grads: expected a list or dict of arrays, got " + type_name(grads));
}

// The stochastic-rounding key of a parameter at a step (kernels/low_precision.hpp): splitmix64
// of (seed, step count, parameter index), so the bits depend on nothing else.
std::uint32_t rounding_key(std::uint64_t seed, std::int64_t step, std::size_t param) {
    auto mix = [](std::uint64_t z) {
        z += 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    const std::uint64_t k = mix(mix(mix(seed) ^ static_cast<std::uint64_t>(step)) ^ static_cast<std::uint64_t>(param));
    return static_cast<std::uint32_t>(k >> 32) | 1u;  // never 0, the key of units without it
}

// The plan's units for the NumPy reference: per unit (group, hyperparameters, counters, params,
// grads (a fusedopt.RowSparse as given), per slot the arrays or None (the master copy last, when
// kept), parameter indices).
py::list reference_units(const RuleInfo& r, int slot_count, const StepPlan& plan, const std::vector<Stepped>& stepped,
                         const std::vector<Segment>& whole,
                         const std::vector<Param>& params, PyObject* const* grads,
                         const std::vector<NewState>& created, const std::vector<py::dict>& hp) {
    std::vector<const NewState*> new_of(params.size(), nullptr);
    for (const NewState& n : created) new_of[n.param] = &n;
    py::list units;
    for (std::size_t u = 0; u < plan.units.size(); ++u) {
        const StepUnit& unit = plan.units[u];
        py::dict counters;
        counters["step"] = unit.counters.step;
        counters["fresh"] = unit.counters.fresh;
        if (unit.counters.sparse) counters["sparse"] = true;
        for (int k = 0; k < kExtraCounters; ++k)
            if (extra_name(r, k)) counters[extra_name(r, k)] = unit.counters.*kExtra[k];
        py::list ps, gs, slots, tags;
        for (int k = 0; k < slot_count; ++k) slots.append(py::none());
        std::size_t count = 0;  // parameters of the unit so far
        for (std::size_t s = 0; s < stepped.size(); ++s) {
            const Stepped& st = stepped[s];
            if (st.unit != u) continue;
            const std::size_t i = st.param;
            ps.append(params[i].array);
            gs.append(py::reinterpret_borrow<py::object>(grads[i]));
            tags.append(i);
            for (int k = 0; k < slot_count; ++k) {
                // None where a parameter has no such slot (these options leave it alone, or its
                // shape keeps none: Adafactor's factors or variance), so lists align with params.
                const bool has = whole[s].data[2 + k] != nullptr;
                if (!has && slots[k].is_none()) continue;
                if (slots[k].is_none()) {
                    py::list earlier;
                    for (std::size_t j = 0; j < count; ++j) earlier.append(py::none());
                    slots[k] = earlier;
                }
                const bool made = has && new_of[i] && new_of[i]->arrays[k];
                slots[k].cast<py::list>().append(!has ? py::object(py::none())
                                                 : made ? new_of[i]->arrays[k] : params[i].slot->array[k]);
            }
            ++count;
        }
        units.append(
            py::make_tuple(unit.group, hp[static_cast<std::size_t>(unit.group)], counters, ps, gs, slots, tags));
    }
    return units;
}

// A dense gradient checked against parameter i: `copy` set when its layout is not the
// parameter's (or it is not dense) and it must be read through a copy, else its overlap with
// the written arrays checked, unless it is at `checked` (an address already checked against them).
CheckedArray Engine::dense_grad(std::size_t i, PyObject* g, const void* checked, bool& copy) const {
    const Param& p = params_[i];
    CheckedArray ga;
    if (p.stamp.matches(g, ArrayStamp::kLayoutFlags)) {  // the parameter's dtype, shape and layout
        ga = p.checked;
        ga.data = py::detail::array_proxy(g)->data;
        copy = false;
    } else {
        auto who = [&] { return describe("grads", p.key); };
        ga = check_array(g, false, who, true, true, true);
        check_like(ga, p.checked, p.checked.dtype, who);
        const Py_ssize_t item = Py_ssize_t(dtype_size(ga.dtype));
        copy = !ga.dense || !same_layout(ga, item, p.checked, item);
    }
    if (!copy && ga.data != checked) {
        const Span read = make_span(ga.data, ga.size, ga.dtype, false, i, 1);
        if (const Span* w = written_.find(read.begin, read.end)) throw_overlap(names_of_rule_, params_, {true, *w, read});
    }
    return ga;
}

// Each parameter with a gradient a segment of the unit of its group, counters and dtype, the
// gradients checked; new state on the side (`built`).
void Engine::build_plan(std::vector<double>& values, PyObject* const* g, Built& built) {
    const RuleInfo& r = rule_at(rule_);
    const std::size_t ng = groups_.size();
    static const py::handle float32 = forever(py::module_::import("numpy").attr("float32"));
    static const py::handle uint8 = forever(py::module_::import("numpy").attr("uint8"));
    static const py::handle empty_like = forever(py::module_::import("numpy").attr("empty_like"));
    static const py::handle copyto = forever(py::module_::import("numpy").attr("copyto"));
    replay_.valid = false;
    plan_.clear();
    plan_.group_count = static_cast<int>(ng);
    plan_.reduce = &r.reduce;
    // Pieces of a team never share an int8 block (one scale for 256 elements) or a cache line.
    plan_.align = layout_.int8() ? kQuantBlock : layout_.state == StateDtype::bf16 ? 32 : 16;
    std::vector<Py_ssize_t> shape;
    stepped_.clear();
    coalescer_.clear();
    std::vector<RowCoalescer::Row> rows;  // distinct rows of the row-sparse gradients, in order
    std::vector<std::size_t> summed;      // plan segments whose gradient row is a sum in scratch
    bool any_sparse = false;              // (its segments are rows: never replayed as dense)
    // A parameter updated element by element with float32/64 state may be cut anywhere: at its
    // first cache line (Segment::lead), with its new state placed to match (state_lead).
    const auto lead_of = [this](const Param& p) -> std::uint8_t { return plan_.align == 16 ? param_lead(p.checked) : 0; };
    StateArena arena;  // the zeroed state the loop below creates, reserved in its order
    for (std::size_t i = 0; i < params_.size(); ++i) {
        if (g[i] == Py_None) continue;
        const Param& p = params_[i];
        const unsigned used = layout_.used(r.slots_used(&values[p.group * kMaxHyperValues]), p.checked.dtype);
        const std::size_t lead = state_lead(p.checked.size, lead_of(p));
        for (int k = 0; k < slot_count_; ++k)
            if ((used & (1u << k)) && k != layout_.master_slot() && !p.slot->data[k] && layout_.shape(k, p.checked, shape)) {
                const std::size_t item = dtype_size(layout_.dtype(k, p.checked.dtype));
                arena.reserve(i, k, p.group, layout_.dtype(k, p.checked.dtype), element_count(shape) * item,
                              layout_.param_shaped(k) ? phase_for_lead(lead, item) : 0);
            }
    }
    std::vector<char> epsilon_set(ng, 0);
    for (std::size_t i = 0; i < params_.size(); ++i) {
        if (i + kPrefetchAhead / 2 < params_.size()) prefetch_dims(g[i + kPrefetchAhead / 2]);
        if (g[i] == Py_None) continue;
        Param& p = params_[i];
        if (!epsilon_set[p.group]) {  // the group's first parameter that steps
            fill_dtype_epsilon(r, &values[p.group * kMaxHyperValues], p.checked.dtype);
            epsilon_set[p.group] = 1;
        }
        const double* v = &values[p.group * kMaxHyperValues];
        auto who = [&] { return describe("grads", p.key); };
        const bool sparse = is_row_sparse(g[i]);
        any_sparse = any_sparse || sparse;
        CheckedArray ga;
        CheckedSparse sg;
        bool copied = false;
        if (sparse) {
            if (layout_.state != StateDtype::native)
                throw py::type_error(who() + ": row-sparse gradients with compressed state (state_dtype) are not "
                                     "supported; give a dense array");
            if (r.sparse_grads == SparseGrads::refused)
                throw py::type_error(who() + ": rule '" + r.name + "' does not take row-sparse gradients (SGD, Adagrad, "
                                     "Adam, AdamW and SparseAdam do); give a dense array");
            const HyperError no = r.sparse_refusal(v);
            if (no.hyper) throw py::value_error(who() + ": " + no.hyper + Where{nullptr, p.group}.str() + ": " + no.message);
            sg = check_row_sparse(g[i], p.checked, who);
            const std::size_t index_bytes = sg.count * (sg.wide ? 8 : 4);
            for (const Span& s : {make_span(sg.rows.data, sg.rows.size, sg.rows.dtype, false, i, 1),
                                  make_span(sg.indices, index_bytes / 4, DType::f32, false, i, 1)}) {
                if (const Span* w = written_.find(s.begin, s.end)) throw_overlap(names_of_rule_, params_, {true, *w, s});
            }
        } else {
            if (r.sparse_grads == SparseGrads::required)
                throw py::type_error(who() + ": rule '" + r.name + "' takes row-sparse gradients only "
                                     "(fusedopt.RowSparse(indices, rows)), got " + type_name(g[i]) +
                                     "; use Adam for dense gradients");
            ga = dense_grad(i, g[i], p.last_grad, copied);
            if (copied) {  // another layout, or not dense: read through a copy in the parameter's layout
                py::object copy = empty_like(p.array);
                copyto(copy, py::handle(g[i]));
                ga = check_array(copy, false, who, true, true);
                built.grad_copies.push_back(std::move(copy));
            }
        }
        const bool low = low_precision(p.checked.dtype);
        const bool master = low && options_.master_weights;
        const unsigned used = layout_.used(r.slots_used(v), p.checked.dtype);
        const bool first = p.state.is_none();  // torch keeps no state where there is none to keep
        Segment seg{};
        set_extents(seg, p.checked);
        seg.data[0] = p.checked.data;
        seg.data[1] = ga.data;
        seg.lead = lead_of(p);
        NewState fresh{i, {}};
        bool creates = first && (used != 0 || r.has_step);
        for (int k = 0; k < slot_count_; ++k) {
            if (!(used & (1u << k)) || !layout_.shape(k, p.checked, shape)) continue;
            if (p.slot->data[k]) {
                seg.data[2 + k] = p.slot->data[k];
                continue;
            }
            const DType t = layout_.dtype(k, p.checked.dtype);
            const py::handle dtype = t == DType::f32    ? float32
                                     : t == DType::bf16 ? py::handle(bfloat16_type())
                                     : t == DType::u8   ? uint8
                                                        : p.array.attr("dtype");
            fresh.arrays[k] = k == layout_.master_slot() ? p.array.attr("astype")(float32)  // the master copy
                              : arena.zeros(i, k, dtype, shape,  // its layout, or C order
                                            layout_.param_shaped(k) ? &p.checked : nullptr, p.array);
            seg.data[2 + k] = py::detail::array_proxy(fresh.arrays[k].ptr())->data;
            creates = true;
        }
        if (creates) built.created.push_back(std::move(fresh));
        Counters c = counters_of(p);
        c.sparse = sparse;
        Storage lp;
        const bool compressed = layout_.state != StateDtype::native;
        if (low) {
            lp.param = p.checked.dtype;
            lp.master = master ? 2 + layout_.master_slot() : -1;
            lp.stochastic = options_.stochastic_rounding;
        }
        layout_.describe(lp);
        lp.key = key_of(lp, i);
        std::size_t u = 0;  // the unit of this group, dtype and counters (a group has one or a few)
        for (; u < plan_.units.size(); ++u) {
            const StepUnit& x = plan_.units[u];
            if (x.group == int(p.group) && x.dtype == p.checked.dtype && x.counters.step == c.step &&
                x.counters.extra == c.extra && x.counters.extra2 == c.extra2 && x.counters.fresh == c.fresh &&
                x.counters.sparse == sparse &&  // not c.sparse: that byte store read back with fresh as 16 bits stalled
                x.storage.key == lp.key)
                break;
        }
        if (u == plan_.units.size()) {
            StepUnit unit;
            unit.kernel = r.kernel[p.checked.dtype == DType::f64 ? 1 : 0];
            unit.dtype = p.checked.dtype;
            unit.scratch = low || compressed ? r.scratch : nullptr;
            unit.run = unit.scratch ? nullptr : r.run[p.checked.dtype == DType::f64 ? 1 : 0];
            unit.storage = lp;
            unit.group = static_cast<int>(p.group);
            set_unit_step(unit, v, c);
            plan_.units.push_back(unit);
        }
        stepped_.push_back({i, static_cast<std::uint32_t>(u)});
        built.whole.push_back(seg);
        built.grad_copied.push_back(copied);
        if (!sparse) {
            plan_.add_segment(seg, u);
            continue;
        }
        // One segment per distinct row: only those rows of the parameter and its state are touched.
        if (sg.row_size == 0) continue;
        rows.clear();
        coalescer_.coalesce(sg, p.checked.shape[0], p.checked.dtype, rows);
        const std::size_t row_bytes = sg.row_size * dtype_size(p.checked.dtype);  // float32/64: state alike
        for (const RowCoalescer::Row& row : rows) {
            Segment rs{};
            rs.size = sg.row_size;
            const std::size_t at = static_cast<std::size_t>(row.index) * row_bytes;
            for (int k = 0; k < kMaxOperands; ++k)
                if (k != 1 && seg.data[k]) rs.data[k] = static_cast<unsigned char*>(seg.data[k]) + at;
            rs.data[1] = const_cast<void*>(row.grad);
            if (!row.grad) {
                rs.data[1] = reinterpret_cast<void*>(row.sum);  // an offset until the scratch is placed
                summed.push_back(plan_.segments.size());
            }
            plan_.add_segment(rs, u);
        }
    }
    built.scratch = coalescer_.prepare();
    for (std::size_t s : summed)
        plan_.segments[s].data[1] =
            static_cast<unsigned char*>(built.scratch) + reinterpret_cast<std::uintptr_t>(plan_.segments[s].data[1]);
    replay_.table = &active_kernels();
    replay_.valid = built.created.empty() && built.grad_copies.empty() && !any_sparse &&
                    plan_.segments.size() == params_.size() && stepped_.size() == params_.size();
    replay_.unit_param.assign(plan_.units.size(), 0);
    for (std::size_t s = stepped_.size(); s-- > 0;) replay_.unit_param[stepped_[s].unit] = stepped_[s].param;  // (first)
    replay_.used.clear();
    for (const StepUnit& unit : plan_.units) replay_.used.push_back(slots_of(unit, values));
}

// The slots a unit's group's hyperparameters use for its dtype.
unsigned Engine::slots_of(const StepUnit& unit, const std::vector<double>& values) const {
    return layout_.used(rule_at(rule_).slots_used(&values[std::size_t(unit.group) * kMaxHyperValues]), unit.dtype);
}

// A parameter's counters for this step (fresh ones where it has no state yet).
Counters Engine::counters_of(const Param& p) const {
    return p.state.is_none() ? initial_counters(rule_at(rule_), true) : p.counters;
}

// The stochastic-rounding key of parameter i's unit at this step (0: it rounds nothing stochastically).
std::uint32_t Engine::key_of(const Storage& st, std::size_t i) const {
    return st.stochastic || layout_.state == StateDtype::bf16 ? rounding_key(options_.seed, step_count_, i) : 0;
}

// A unit's fields that follow the step: its counters, its gradients' sign and its scalars.
void Engine::set_unit_step(StepUnit& unit, const double* v, const Counters& c) const {
    const RuleInfo& r = rule_at(rule_);
    unit.sign = r.maximize_value >= 0 && v[r.maximize_value] != 0.0 ? -1.0 : 1.0;
    unit.counters = c;
    r.derive(v, c, unit.scalars);
}

// The steady state: the last plan again (Replay says when it may be), each segment given its
// new gradient (checked as build_plan checks it) and each unit its counters and scalars. False,
// having changed nothing that build_plan does not rebuild, when the plan must be built again:
// another SIMD target set, a gradient missing, not an array (row-sparse) or in another layout,
// or the hyperparameters using other slots.
bool Engine::replay_plan(std::vector<double>& values, PyObject* const* g, bool grads_checked) {
    if (!replay_.valid || replay_.table != &active_kernels()) return false;
    const RuleInfo& r = rule_at(rule_);
    std::vector<StepUnit>& units = plan_.units;
    for (std::size_t u = 0; u < units.size(); ++u)
        if (slots_of(units[u], values) != replay_.used[u]) return false;
    const std::size_t n = params_.size();
    auto& api = py::detail::npy_api::get();
    for (std::size_t i = 0; i < (grads_checked ? 0 : n); ++i) {  // (grads_checked: by steady_checks)
        if (i + kPrefetchAhead < n) prefetch_object(g[i + kPrefetchAhead]);
        if (i + kPrefetchAhead / 2 < n) prefetch_dims(g[i + kPrefetchAhead / 2]);
        if (Py_TYPE(g[i]) != params_[i].stamp.type && !api.PyArray_Check_(g[i]))
            return false;  // None, row-sparse, or an error build_plan reports
        Segment& seg = plan_.segments[i];  // (parameter i's: every parameter has one)
        bool copy = false;
        const CheckedArray ga = dense_grad(i, g[i], seg.data[1], copy);
        if (copy) return false;
        seg.data[1] = ga.data;
    }
    std::vector<char> epsilon_set(groups_.size(), 0);
    for (std::size_t u = 0; u < units.size(); ++u) {  // (a group's first unit holds its first parameter)
        StepUnit& unit = units[u];
        double* v = &values[std::size_t(unit.group) * kMaxHyperValues];
        if (!epsilon_set[std::size_t(unit.group)]) {
            fill_dtype_epsilon(r, v, unit.dtype);
            epsilon_set[std::size_t(unit.group)] = 1;
        }
        const std::size_t i = replay_.unit_param[u];
        unit.storage.key = key_of(unit.storage, i);
        set_unit_step(unit, v, counters_of(params_[i]));
    }
    return true;
}

// ---- a steady step's checks in one pass ---------------------------------------------------------
// A steady step (the last plan replayable) checks each parameter and its gradient together in one
// pass over the arrays: each compared with the parameter's stamp, a gradient at a new address
// searched among the written spans (steady_pair). Over many arrays this is most of the step's
// serial time, a few cache misses per array after the previous step's data stream, so when the
// helper threads are about to run the kernels anyway, they share it: the calling thread keeps
// the GIL and takes pieces too, so no Python code runs and what they read (list items, array
// headers, stamps, the written spans) stays as it is; they write only the gradients' addresses
// into the plan. Anything but a match everywhere makes the step check everything as before
// (structure_current, then replay_plan or build_plan), so errors are found and reported in the
// same order with the same messages.
constexpr std::size_t kTeamCheckMin = 256;   // parameters: fewer are checked faster alone
constexpr std::size_t kTeamCheckPiece = 64;  // parameters per piece

// Parameter i and its gradient as validated, the gradient's address recorded in the plan.
bool Engine::steady_pair(std::size_t i, PyObject* const* g) {
    const Param& p = params_[i];
    PyObject* a = PyList_GET_ITEM(groups_[p.group].params.ptr(), Py_ssize_t(i - group_first_[p.group]));
    if (!param_current(i, a) || !p.stamp.matches(g[i], ArrayStamp::kLayoutFlags)) return false;
    void* data = py::detail::array_proxy(g[i])->data;
    Segment& seg = plan_.segments[i];  // (parameter i's: the plan is replayable)
    if (data != seg.data[1]) {
        const Span read = make_span(data, p.checked.size, p.checked.dtype, false, i, 1);
        if (written_.find(read.begin, read.end)) return false;
        seg.data[1] = data;
    }
    return true;
}

// Whether every parameter and gradient passed (aligned: the gradients in parameter order); false
// having changed nothing that the full checks do not redo.
bool Engine::steady_checks(py::handle grads, py::tuple& aligned) {
    const std::size_t n = params_.size();
    if (n == 0 || !replay_.valid || !options_.reference.is_none()) return false;
    // (only containers whose alignment runs no user code: it runs again if this fails)
    if (!PyList_CheckExact(grads.ptr()) && !PyTuple_CheckExact(grads.ptr()) && !PyDict_CheckExact(grads.ptr()))
        return false;
    if (!groups_current() || (exposed_ && !state_dicts_current())) return false;
    const Exec e = step_exec();
    const bool team =  // (as run_step will decide for the kernels)
        n >= kTeamCheckMin && splits_work(plan_.starts.back(), e) && plan_.team.use_team();
    try {
        aligned = aligned_grads(grads);
    } catch (const std::exception&) {
        return false;
    }
    struct Context {
        Engine* engine;
        PyObject* const* g;
        std::size_t n;
        std::atomic<bool> failed{false};
    } ctx{this, &PyTuple_GET_ITEM(aligned.ptr(), 0), n};
    const std::size_t pieces = (n + kTeamCheckPiece - 1) / kTeamCheckPiece;
    const PieceFn check = [](void* c, std::size_t piece) {
        Context& x = *static_cast<Context*>(c);
        const std::size_t lo = piece * kTeamCheckPiece, hi = std::min(lo + kTeamCheckPiece, x.n);
        for (std::size_t i = lo; i < hi && !x.failed.load(std::memory_order_relaxed); ++i) {
            if (i + kPrefetchAhead < hi) prefetch_object(x.g[i + kPrefetchAhead]);
            if (!x.engine->steady_pair(i, x.g)) x.failed.store(true, std::memory_order_relaxed);
        }
    };
    if (team)
        run_pieces(pieces, e.threads, check, &ctx);
    else
        for (std::size_t p = 0; p < pieces && !ctx.failed.load(std::memory_order_relaxed); ++p) check(&ctx, p);
    return !ctx.failed.load();
}

// Every stepped parameter's counters after this step (and the gradient it last read, when it
// was not a copy).
void Engine::advance_counters(const std::vector<double>& values, const Built& built) {
    const RuleInfo& r = rule_at(rule_);
    const std::vector<char>& grad_copied = built.grad_copied;
    // (the rule's flags read once: loaded per parameter they made this loop ~75 instructions per
    // array for SGD, which has nothing to advance)
    const bool has_step = r.has_step, extras = r.extra_counter || r.extra2_counter;
    if (grad_copied.empty() && !has_step && !extras) return;
    bool advanced = false;  // last, last_group and the advanced values hold a computation
    Counters last;
    std::size_t last_group = 0;
    double advanced_extra = 0.0, advanced_extra2 = 0.0;
    const std::size_t n = stepped_.size();
    for (std::size_t s = 0; s < n; ++s) {
        if (s + kPrefetchAhead < n) {  // (the lines read here: the state, and the counters with last_grad)
            const Param& ahead = params_[stepped_[s + kPrefetchAhead].param];
            __builtin_prefetch(&ahead.state);
            __builtin_prefetch(&ahead.counters);
        }
        Param& p = params_[stepped_[s].param];
        if (!grad_copied.empty()) p.last_grad = grad_copied[s] ? nullptr : built.whole[s].data[1];  // a copy's address may come back
        if (p.state.is_none()) continue;
        if (extras) {
            // (a run of parameters with the same counters and group advances alike: once per run,
            // not a pow per parameter)
            if (!advanced || p.group != last_group || p.counters.step != last.step || p.counters.extra != last.extra ||
                p.counters.extra2 != last.extra2) {
                advanced = true;
                last = p.counters;
                last_group = p.group;
                const double* v = &values[p.group * kMaxHyperValues];
                advanced_extra = r.advance_extra(v, p.counters);
                advanced_extra2 = r.advance_extra2(v, p.counters);
            }
            p.counters.extra = advanced_extra;
            p.counters.extra2 = advanced_extra2;
        }
        if (has_step) ++p.counters.step;
    }
}

void Engine::step(py::handle grads, py::handle grad_norm) {
    Locked lock(*this);
    const RuleInfo& r = rule_at(rule_);
    StepOptions options = options_.step;
    if (!grad_norm.is_none()) {  // (norm, nonfinite) from fusedopt.distributed's sharded step
        if (!py::isinstance<py::tuple>(grad_norm) || py::len(grad_norm) != 2)
            throw py::type_error("grad_norm: expected a (norm, nonfinite) tuple");
        if (options.per_group_norm && PyList_GET_SIZE(groups_list_.ptr()) > 1)
            throw py::value_error("grad_norm: a given norm is global; per-group clipping computes its own");
        options.norm_given = true;
        options.given_norm = grad_norm[py::int_(0)].cast<double>();
        options.given_nonfinite = grad_norm[py::int_(1)].cast<bool>();
    }
    py::tuple grads_owned;
    const bool steady = steady_checks(grads, grads_owned);
    if (!steady) {
        if (!structure_current() || (exposed_ && !state_dicts_current())) rebuild();
        grads_owned = aligned_grads(grads);
    }
    PyObject* const* g = &PyTuple_GET_ITEM(grads_owned.ptr(), 0);

    // Hyperparameters of every group, resolved at the step count and checked.
    const std::size_t ng = groups_.size();
    std::vector<double> values(ng * kMaxHyperValues);
    const bool reference = !options_.reference.is_none();
    std::vector<py::dict> hp(reference ? ng : 0);
    for (std::size_t gi = 0; gi < ng; ++gi)
        resolve_group(r, names_of_rule_, groups_[gi].dict, step_count_, Where{nullptr, gi}, &values[gi * kMaxHyperValues],
                      reference ? &hp[gi] : nullptr);

    Built built;
    if (reference || !replay_plan(values, g, steady)) build_plan(values, g, built);
    std::vector<NewState>& created = built.created;

    // A native step that creates no state cannot fail from here unless its norm pass may skip
    // it: its counters advance now, while the checks have left the parameters in cache (after
    // the kernels' data stream the same loop took 6-8 us more over 1000 arrays of 1000).
    const bool counters_advanced = !reference && created.empty() && !options.abort_on_nonfinite;
    if (counters_advanced) advance_counters(values, built);

    // Run: the NumPy reference under the GIL, or the kernels without it.
    StepResult result;
    if (reference) {
        const StepOptions& o = options;
        auto optional = [](double x) { return x >= 0.0 ? py::object(py::float_(x)) : py::object(py::none()); };
        py::dict out = options_.reference(reference_units(r, slot_count_, plan_, stepped_, built.whole, params_, g, created, hp), ng,
                                          py::arg("rule") = r.name, py::arg("max_norm") = optional(o.max_norm),
                                          py::arg("per_group") = o.per_group_norm,
                                          py::arg("clip_value") = optional(o.clip_value),
                                          py::arg("check_finite") = o.check_finite,
                                          py::arg("master_weights") = options_.master_weights,
                                          py::arg("stochastic_rounding") = options_.stochastic_rounding,
                                          py::arg("seed") = options_.seed, py::arg("step_count") = step_count_,
                                          py::arg("state_dtype") = state_dtype_name(layout_.state),
                                          py::arg("grad_norm") = grad_norm);
        result.norm_computed = !out["grad_norm"].is_none();
        if (result.norm_computed) result.grad_norm = out["grad_norm"].cast<double>();
        result.group_norms = out["group_norms"].cast<std::vector<double>>();
        result.aborted = out["aborted"].cast<bool>();
    } else {
        const KernelTable& k = active_kernels();
        const Exec e = step_exec();
        py::gil_scoped_release release;
        coalescer_.run_sums(built.scratch);
        result = run_step(plan_, options, k, e);
    }

    // Commit: norms, then (unless skipped) new state and counters.
    has_norm_ = result.norm_computed;
    last_norm_ = result.grad_norm;
    last_group_norms_ = result.group_norms;
    if (result.aborted) {
        if (options_.raise_nonfinite)
            throw NonFiniteGradient("non-finite gradient (norm " + repr_of(py::float_(result.grad_norm)) +
                                    "); nothing was updated");
        ++skipped_;
        return;
    }
    for (NewState& n : created) {
        Param& p = params_[n.param];
        if (p.state.is_none()) {
            py::dict st;
            if (r.has_step) st[common_keys().step] = 0;
            for (int k = 0; k < slot_count_; ++k)
                if (n.arrays[k]) st[names_of_rule_.slots[static_cast<std::size_t>(k)]] = n.arrays[k];
            const Counters initial = initial_counters(r, false);
            for (int k = 0; k < kExtraCounters; ++k)
                if (extra_name(r, k)) st[names_of_rule_.extras[k]] = initial.*kExtra[k];
            PyDict_SetItem(state_.ptr(), p.key.ptr(), st.ptr());
            p.state = std::move(st);
            p.counters = initial;
        } else {
            for (int k = 0; k < slot_count_; ++k)
                if (n.arrays[k]) p.state[names_of_rule_.slots[static_cast<std::size_t>(k)]] = n.arrays[k];
        }
        for (int k = 0; k < slot_count_; ++k)
            if (n.arrays[k])
                p.slot->set(k, n.arrays[k], py::detail::array_proxy(n.arrays[k].ptr())->data,
                            n.arrays[k].attr("size").cast<std::size_t>());
        valid_ = false;  // the new arrays join the written buffers at the next step's rebuild
    }
    if (!counters_advanced) advance_counters(values, built);
    ++step_count_;
    if (exposed_) sync_counters_to_dicts();
}

py::list Engine::keys() {
    Locked lock(*this);
    return keys_unlocked();
}

py::list Engine::keys_unlocked() const {
    py::list out;
    const Py_ssize_t ng = PyList_GET_SIZE(groups_list_.ptr());
    for (Py_ssize_t g = 0; g < ng; ++g) {
        py::handle d = PyList_GET_ITEM(groups_list_.ptr(), g);
        const bool is_dict = PyDict_Check(d.ptr());
        PyObject* plist = is_dict ? dict_get(d.ptr(), common_keys().params.ptr()) : nullptr;
        PyObject* pnames = is_dict ? dict_get(d.ptr(), common_keys().param_names.ptr()) : nullptr;
        const Py_ssize_t n = plist && PyList_Check(plist) ? PyList_GET_SIZE(plist) : 0;
        for (Py_ssize_t j = 0; j < n; ++j) out.append(key_at(pnames, j, out.size()));
    }
    return out;
}

// Before the state is read: the counters written into the dicts. When the structure changed,
// the state is read as it stands (a step will report what is wrong with it).
void Engine::refresh_for_read() {
    if (!structure_current() || (exposed_ && !state_dicts_current())) {
        try {
            rebuild();
        } catch (const std::exception&) {
            return;
        }
    }
    sync_counters_to_dicts();
}

py::dict Engine::state_view() {
    Locked lock(*this);
    refresh_for_read();
    exposed_ = true;  // from now on every step reads the dicts back
    return state_;
}

py::tuple Engine::snapshot(bool copy_arrays) {
    Locked lock(*this);
    refresh_for_read();
    py::dict out;
    for (auto item : state_) {
        py::dict st;
        for (auto entry : py::reinterpret_borrow<py::dict>(item.second))
            st[entry.first] = copy_arrays && py::detail::npy_api::get().PyArray_Check_(entry.second.ptr())
                                  ? entry.second.attr("copy")()
                                  : py::reinterpret_borrow<py::object>(entry.second);
        out[item.first] = st;
    }
    return py::make_tuple(out, keys_unlocked(), step_count_, skipped_);
}

void Engine::set_param_state(py::handle key, py::dict st) {
    Locked lock(*this);
    state_[key] = st;
    valid_ = false;
}

// Everything is checked (counters, every group's hyperparameters at the new step count, every
// array) before anything is replaced. `arg` names the source in messages.
void Engine::load(py::list groups, py::dict state, py::handle step_count, py::handle skipped, const char* arg) {
    const std::int64_t count = whole_count(step_count, [&] { return std::string(arg) + ": 'step_count'"; });
    const std::int64_t skip = whole_count(skipped, [&] { return std::string(arg) + ": 'skipped_steps'"; });
    Locked lock(*this);
    const RuleInfo& r = rule_at(rule_);
    for (Py_ssize_t g = 0; g < PyList_GET_SIZE(groups.ptr()); ++g) {
        double values[kMaxHyperValues];
        resolve_group(r, names_of_rule_, PyList_GET_ITEM(groups.ptr(), g), count, Where{nullptr, std::size_t(g)},
                      values, nullptr);
    }
    rebuild_from(groups, state, arg);
    if (PyList_SetSlice(groups_list_.ptr(), 0, PyList_GET_SIZE(groups_list_.ptr()), groups.ptr()) < 0)
        throw py::error_already_set();
    state_.clear();
    for (auto item : state) state_[item.first] = item.second;
    step_count_ = count;
    skipped_ = skip;
    has_norm_ = false;
    last_group_norms_.clear();
}

py::dict rule_info(const std::string& name) {
    const RuleInfo& r = rule_at(find_rule(name));
    py::list hypers, slots;
    for (int h = 0; h < r.hyper_count; ++h) hypers.append(r.hypers[h].name);
    for (int k = 0; k < r.slot_count; ++k) slots.append(r.slots[k].name);
    py::dict d;
    d["hyperparameters"] = hypers;
    d["slots"] = slots;
    py::list codecs;  // how each slot may be compressed (state_dtype): None, "any_sign", "nonnegative"
    for (int k = 0; k < r.slot_count; ++k)
        codecs.append(r.slots[k].codec == SlotCodec::none          ? py::object(py::none())
                      : r.slots[k].codec == SlotCodec::nonnegative ? py::object(py::str("nonnegative"))
                                                                   : py::object(py::str("any_sign")));
    d["slot_codecs"] = codecs;
    d["has_step"] = r.has_step;
    d["reduce_passes"] = r.reduce.passes;
    d["extra_counter"] = r.extra_counter ? py::object(py::str(r.extra_counter)) : py::object(py::none());
    py::list extras;
    for (int k = 0; k < kExtraCounters; ++k)
        if (extra_name(r, k)) extras.append(extra_name(r, k));
    d["extra_counters"] = extras;
    return d;
}

}  // namespace

void register_optimizer(py::module_& m) {
    py::register_exception<NonFiniteGradient>(m, "NonFiniteGradientError", PyExc_FloatingPointError);
    m.def("rule_names", [] {
        std::vector<std::string> names;
        const KernelTable& k = active_kernels();
        for (int i = 0; i < k.rule_count; ++i) names.push_back(k.rules[i].name);
        return names;
    }, "Every update rule compiled in (one header each under cpp/include/fusedopt/rules/).");
    m.def(
        "check_array",
        [](py::handle array, const std::string& name, bool written, bool low_precision, bool dense) {
            check_array(array, written, [&] { return name; }, low_precision, dense);
        },
        py::arg("array"), py::arg("name"), py::kw_only(), py::arg("written") = true, py::arg("low_precision") = false,
        py::arg("dense") = false,
        "The boundary's check of one array (TypeError/ValueError naming it), as a step makes it "
        "(low_precision: bfloat16 and float16 accepted; dense: any dense layout, not only C order; both as for "
        "optimizer parameters).");
    m.def(
        "first_overlap",
        [](const py::list& arrays) -> py::object {
            std::vector<Span> spans;
            spans.reserve(arrays.size());
            for (std::size_t i = 0; i < arrays.size(); ++i) {
                const CheckedArray c = check_array(arrays[i], false, [&] { return "arrays[" + std::to_string(i) + "]"; },
                                                   true, true);
                if (c.size) spans.push_back(make_span(c.data, c.size, c.dtype, true, i, 0));
            }
            const Overlap o = first_overlap(spans);
            if (!o.found) return py::none();
            return py::make_tuple(std::min(o.a.owner, o.b.owner), std::max(o.a.owner, o.b.owner));
        },
        py::arg("arrays"),
        "(i, j), i < j: two of these dense arrays (parameters, checked) that share memory; None if none do.");
    m.def("rule_info", &rule_info, py::arg("name"),
          "A rule's declaration: its hyperparameters (as param groups name them), state slots, counters.");
    py::class_<Engine>(m, "Engine",
                       "The native optimizer: owns the step over a list of param-group dicts and a state dict.")
        .def(py::init([](const std::string& rule, py::list groups, py::dict state, py::object max_norm,
                         bool per_group, py::object clip_value, const std::string& nonfinite, py::object reference,
                         bool master_weights, bool stochastic_rounding, std::uint64_t seed, py::object state_dtype) {
                 Options o;
                 o.master_weights = master_weights;
                 if (!state_dtype.is_none()) {
                     const std::string t = py::str(state_dtype);
                     if (t != "bfloat16" && t != "int8")
                         throw py::value_error("state_dtype: must be None, 'bfloat16' or 'int8', got " + repr_of(state_dtype));
                     o.state = t == "int8" ? StateDtype::int8 : StateDtype::bf16;
                     if (o.state == StateDtype::bf16 && !bfloat16_type())
                         throw py::value_error("state_dtype: 'bfloat16' needs the ml_dtypes package");
                     const SlotLayout layout{&rule_at(find_rule(rule)), o.state, master_weights};
                     if (const char* why = layout.refusal())
                         throw py::value_error("state_dtype: rule '" + rule + "' cannot keep compressed state: " + why);
                 }
                 o.stochastic_rounding = stochastic_rounding;
                 o.seed = seed;
                 if (!max_norm.is_none()) o.step.max_norm = max_norm.cast<double>();
                 if (!clip_value.is_none()) o.step.clip_value = clip_value.cast<double>();
                 o.step.per_group_norm = per_group;
                 o.step.check_finite = o.step.abort_on_nonfinite = nonfinite != "propagate";
                 o.raise_nonfinite = nonfinite == "raise";
                 o.reference = std::move(reference);
                 return new Engine(rule, std::move(groups), std::move(state), o);
             }),
             py::arg("rule"), py::arg("param_groups"), py::arg("state"), py::kw_only(),
             py::arg("max_norm") = py::none(), py::arg("per_group") = false, py::arg("clip_value") = py::none(),
             py::arg("nonfinite") = "propagate", py::arg("reference") = py::none(),
             py::arg("master_weights") = false, py::arg("stochastic_rounding") = false, py::arg("seed") = 0,
             py::arg("state_dtype") = py::none())
        .def("step", &Engine::step, py::arg("grads"), py::kw_only(), py::arg("grad_norm") = py::none(),
             "One whole step: checks, scalars, the norm pass and every kernel; all or nothing. "
             "grad_norm=(norm, nonfinite): a global norm computed elsewhere, used instead of the norm pass.")
        .def("keys", &Engine::keys, "The state keys of every parameter, in order over all groups.")
        .def("state", &Engine::state_view, "The live state dict (counters brought up to date).")
        .def("snapshot", &Engine::snapshot, py::arg("copy_arrays") = true,
             "(state, keys, step_count, skipped_steps) between two steps: new dicts, current counters, "
             "the arrays copied (or shared).")
        .def("set_param_state", &Engine::set_param_state, py::arg("key"), py::arg("state"))
        .def("load", [](Engine& e, py::list groups, py::dict state, py::handle step_count, py::handle skipped) {
                 e.load(std::move(groups), std::move(state), step_count, skipped, "state_dict");
             }, py::arg("param_groups"), py::arg("state"), py::arg("step_count"), py::arg("skipped_steps"),
             "Replace groups, state and counters; checked, all or nothing.")
        .def("check_hyperparameters", &Engine::check_hyperparameters, py::arg("group"), py::arg("count"),
             py::arg("where"), py::kw_only(), py::arg("construction") = false,
             "Raise TypeError/ValueError for a group's invalid hyperparameters (construction: the "
             "constructor's defaults, where torch checks lr).")
        .def("slots_used", &Engine::slots_used, py::arg("group"), py::arg("count"), py::arg("where") = "")
        .def("check_param", &Engine::check_param, py::arg("param"), py::arg("where"),
             "Checks a parameter array as a step takes it (dtype, layout, writeable), naming it `where`.")
        .def("slot_shapes", &Engine::slot_shapes, py::arg("group"), py::arg("count"), py::arg("where"), py::arg("param"),
             "{name: shape} of the state arrays the group's hyperparameters keep for this parameter.")
        .def_property_readonly("param_groups", &Engine::param_groups)
        .def_property("step_count", &Engine::step_count,
                      [](Engine& e, py::handle v) { e.set_step_count(v); })
        .def_property("skipped_steps", &Engine::skipped_steps,
                      [](Engine& e, py::handle v) { e.set_skipped_steps(v); })
        .def_property_readonly("last_grad_norm", &Engine::last_grad_norm)
        .def_property_readonly("last_group_grad_norms", &Engine::last_group_norms);
}

}  // namespace fusedopt::bind
