// The rule contract: what an update rule declares once, in its own header under rules/, and
// what the engine and the bindings learn from it. Pure data and function pointers, shared by
// every SIMD target; the rule headers themselves are compiled once per target (kernels_target.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "fusedopt/segments.hpp"

namespace fusedopt {

// What every rule does to a gradient element before using it: clamp to [lo, hi] (value
// clipping; +-inf when off, which changes no bits), then multiply by scale (-1 for maximize,
// times the global-norm clipping coefficient; exact when it is +-1). The caller's gradient
// array is only read.
struct GradTransform {
    double scale = 1.0;
    double lo = -__builtin_inf();
    double hi = __builtin_inf();
};

// A hyperparameter as a param group holds it. Its resolved value occupies one double in the
// rule's value array (a pair two: name[0], name[1]; a flag 0 or 1; a choice its index).
enum class HyperKind : unsigned char { number, flag, pair, choice };
// [0, inf), [0, 1); initially_nonnegative: [0, inf) in the constructor's defaults only (torch checks
// lr there alone, so a scheduler may take it below 0 mid-run, and such a checkpoint loads).
enum class HyperCheck : unsigned char { none, nonnegative, unit_interval, initially_nonnegative };

struct HyperSpec {
    const char* name;
    HyperKind kind;
    HyperCheck check = HyperCheck::none;
    const char* const* choices = nullptr;  // choice: the allowed strings; pair: its two names (null-terminated)
};

// A state array: shaped like its parameter and zero-filled when created. Adafactor's row and
// column factors and LAMB's per-array norms extend this (docs/architecture.md, "Growing the contract").
struct SlotSpec {
    const char* name;
};

// A rule's per-parameter counters: torch's 'step' and at most one more float (NAdam's mu_product).
struct Counters {
    std::int64_t step = 0;  // steps taken before this one
    double extra = 0.0;
    bool fresh = false;     // the state was created for this step (SGD's first momentum step)
};

// A rule's cross-hyperparameter check failed: which hyperparameter, and why.
struct HyperError {
    const char* hyper = nullptr;  // null: no error
    const char* message = nullptr;
};

constexpr int kMaxHyperValues = 16;
constexpr std::size_t kMaxScalarBytes = 128;

// Updates elements [lo, hi) of one segment (operands as SlotSpec order, from slot 2).
using ChunkKernel = void (*)(const Segment&, std::size_t lo, std::size_t hi, const void* scalars,
                             const GradTransform&);

struct RuleInfo {
    const char* name;
    const HyperSpec* hypers;
    int hyper_count;
    int value_count;            // doubles in the resolved value array
    int maximize_value;         // index of the 'maximize' flag's value, or -1
    const SlotSpec* slots;
    int slot_count;
    bool has_step;              // keeps torch's per-parameter 'step'
    const char* extra_counter;  // name of Counters::extra in the state dict, or null
    double extra_initial;
    HyperError (*check)(const double* values);
    unsigned (*slots_used)(const double* values);  // bit k: slot k is read and written
    // The step's float64 scalars, written into `out` (kMaxScalarBytes).
    void (*derive)(const double* values, const Counters& c, void* out);
    // Counters::extra after a successful step (step itself is advanced by the engine).
    double (*advance_extra)(const double* values, const Counters& c);
    ChunkKernel kernel[2];      // by DType: f32, f64
};

}  // namespace fusedopt
