// What every rule header builds on; included inside the per-target namespace (kernels_target.cpp),
// before the rule headers. A rule is a struct `<file name>_rule` deriving from RuleBase with:
//   name, hypers[] (HyperSpec, in the order of its Value enum), slots[] (SlotSpec),
//   slots_used(values), struct Scalars, derive(values, counters) -> Scalars (float64),
//   template <class T> kernel(segment, lo, hi, scalars, grad transform): the per-element loop;
// and, where they differ from RuleBase: has_step, extra_counter/extra_initial/advance_extra (and
// extra2_...: a second float counter), check, sparse_grads/sparse_refusal (row-sparse gradients:
// one segment per touched row, docs/sparse.md).
// A rule with per-array reductions (rule.hpp, ReduceInfo) sets reduce_passes and defines
//   array_values(segment), whole_rows(pass, segment), partial_width(pass, segment, len),
//   template <class T> reduce(pass, segment, lo, hi, scalars, values, grad, out),
//   template <class T> finish(pass, segment, scalars, partials, width, starts, chunks, values),
// and its kernel takes the array's values before the grad transform. State of another shape than
// the parameter (per row, per column) is indexed from seg.offset + the element's index (a 16-bit
// parameter's blocks and chunks run on float32 copies that start at the block).
// A rule may also take 16-bit storage in one hand-vectorized loop (kernels/vector_storage.hpp):
// vector_slots = SlotCounts<...> (the counts of state operands its loop takes; with several,
// vector_slot_count(scalars) picks the step's) and
//   template <class V, int S, class Run> vector_element(scalars, grad transform, run): its
//   constants as V (simd.hpp's float32 vectors), then run(f) once with its element function
//   f(p, g, state...) on V (or no call: the scratch path takes it, with the same bits); a rule
//   with reductions takes (scalars, segment, its array's values, grad transform, run).
// (Every rule but Adafactor and SparseAdam.)

struct RuleBase {
    static constexpr int reduce_passes = 0;
    static constexpr bool has_step = true;
    static constexpr const char* extra_counter = nullptr;
    static constexpr double extra_initial = 0.0;
    static constexpr const char* extra2_counter = nullptr;
    static constexpr double extra2_initial = 0.0;
    static HyperError check(const double*) { return {}; }
    static double advance_extra(const double*, const Counters& c) { return c.extra; }
    static double advance_extra2(const double*, const Counters& c) { return c.extra2; }
    static constexpr SparseGrads sparse_grads = SparseGrads::refused;
    static HyperError sparse_refusal(const double*) { return {}; }
    using vector_slots = SlotCounts<>;
};

// The factor p is multiplied by before a decoupled update: 1 - lr*weight_decay, in float64.
inline double decoupled_decay(double lr, double weight_decay, bool decoupled) {
    return decoupled ? 1.0 - lr * weight_decay : 1.0;
}

// Calls body(i) for i in [0, n) in order, for a loop that writes `out` without reading it
// (ASGD's ax while mu is 1). Stores train no prefetcher before their misses reach L2, so such a
// stream started cold on every small array: 1000 arrays of 1K, 2 threads, ~30 ns more per array
// than the same loop reading it. So its lines are asked for, for write, 8 lines ahead (never past
// its end: a line there may be another thread's). GCC vectorizes the line-long inner loop.
template <class T, class Body>
[[gnu::always_inline]] inline void loop_writing_only(T* out, std::size_t n, Body&& body) {
    constexpr std::size_t line = 64 / sizeof(T), ahead = 8 * line;
    for (std::size_t b = 0; b < ahead && b < n; b += line) __builtin_prefetch(out + b, 1);
    std::size_t i = 0;
    for (; i + ahead + line <= n; i += line) {
        __builtin_prefetch(out + i + ahead, 1);
        for (std::size_t j = i; j < i + line; ++j) body(j);
    }
    for (; i < n; ++i) body(i);
}

constexpr HyperSpec number(const char* name) { return {name, HyperKind::number, HyperCheck::nonnegative}; }
constexpr HyperSpec learning_rate() { return {"lr", HyperKind::number, HyperCheck::initially_nonnegative}; }
constexpr HyperSpec flag(const char* name) { return {name, HyperKind::flag}; }
constexpr const char* kBetaNames[] = {"beta1", "beta2", nullptr};
constexpr HyperSpec betas_pair() { return {"betas", HyperKind::pair, HyperCheck::unit_interval, kBetaNames}; }
