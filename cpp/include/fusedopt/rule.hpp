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
// optional_nonnegative: [0, inf) or None (resolved as NaN, then, at a step, as the machine epsilon of
// the dtype of the group's first parameter that steps: torch's Adafactor eps1).
enum class HyperCheck : unsigned char { none, nonnegative, unit_interval, initially_nonnegative, optional_nonnegative };

struct HyperSpec {
    const char* name;
    HyperKind kind;
    HyperCheck check = HyperCheck::none;
    const char* const* choices = nullptr;  // choice: the allowed strings; pair: its two names (null-terminated)
};

// A state array's shape, from its parameter's (torch's keepdim conventions); zero-filled when
// created, checked against it when loaded or replaced, saved as it is.
enum class SlotShape : unsigned char {
    param,       // like the parameter
    unfactored,  // like the parameter, for parameters of fewer than 2 dimensions (absent otherwise)
    rows,        // >= 2-D parameters only: shape[:-1] + (1,), one value per row (Adafactor's row_var)
    cols,        // >= 2-D parameters only: shape[:-2] + (1, shape[-1]), per column of each matrix
    scalar,      // shape (): one value per array
};

// Whether a state array may be stored compressed (state_dtype "bfloat16" or "int8",
// docs/compressed_state.md), and its values' sign, which int8's code book uses: `none` keeps
// the rule's state in the parameter's precision (the rule refuses compressed state).
enum class SlotCodec : unsigned char { none, any_sign, nonnegative };

struct SlotSpec {
    const char* name;
    SlotShape shape = SlotShape::param;
    SlotCodec codec = SlotCodec::none;
};
constexpr SlotSpec signed_slot(const char* name) { return {name, SlotShape::param, SlotCodec::any_sign}; }
constexpr SlotSpec nonnegative_slot(const char* name) { return {name, SlotShape::param, SlotCodec::nonnegative}; }

// Elements of a slot for a parameter of these extents (Segment), or -1 where it has none.
inline long long slot_elements(SlotShape s, const Segment& seg) {
    const bool factored = seg.ndim >= 2;
    switch (s) {
    case SlotShape::param: return static_cast<long long>(seg.size);
    case SlotShape::unfactored: return factored ? -1 : static_cast<long long>(seg.size);
    case SlotShape::rows: return factored ? static_cast<long long>(seg.matrices * seg.rows) : -1;
    case SlotShape::cols: return factored ? static_cast<long long>(seg.matrices * seg.cols) : -1;
    case SlotShape::scalar: return 1;
    }
    return -1;
}

// A rule's per-parameter counters: torch's 'step' and at most two more floats (NAdam's
// mu_product; ASGD's eta and mu), each a Python float in the state dict.
struct Counters {
    std::int64_t step = 0;  // steps taken before this one
    double extra = 0.0;     // the rule's extra_counter
    double extra2 = 0.0;    // its extra2_counter
    bool fresh = false;     // the state was created for this step (SGD's first momentum step)
    bool sparse = false;    // the gradients are row-sparse (torch rounds some sparse paths differently)
};

// Whether a rule takes row-sparse gradients (fusedopt.RowSparse; docs/sparse.md).
enum class SparseGrads : unsigned char { refused, accepted, required };

// A rule's cross-hyperparameter check failed: which hyperparameter, and why.
struct HyperError {
    const char* hyper = nullptr;  // null: no error
    const char* message = nullptr;
};

constexpr int kMaxHyperValues = 16;
constexpr std::size_t kMaxScalarBytes = 128;

// Updates elements [lo, hi) of one segment (operands as SlotSpec order, from slot 2);
// `array_values`: what the rule's reductions finished for this array (null without reductions).
using ChunkKernel = void (*)(const Segment&, std::size_t lo, std::size_t hi, const void* scalars,
                             const double* array_values, const GradTransform&);

// Updates consecutive segments segs[0, count) of one unit in place: the first from element lo,
// the last up to element hi, the others whole; each range as the walker cuts it (a long one from
// a segment's start runs its lead apart). One call for a run of arrays, the rule's kernel called
// directly from the loop over them: per array, the walker's indirect call through the unit and
// the type-erased entry were ~60 of the ~390 instructions a steady step spent on an array of 16.
using RunKernel = void (*)(const Segment* segs, std::size_t count, std::size_t lo, std::size_t hi, const void* scalars,
                           const GradTransform&);

struct Storage;  // (kernel_table.hpp)
// A rule's float32 chunk kernel run on float32 scratch, for 16-bit parameters or compressed
// state (kernels/scratch.hpp).
using ScratchKernel = void (*)(const Segment&, std::size_t lo, std::size_t hi, ChunkKernel f32, const void* scalars,
                               const double* array_values, const GradTransform&, const Storage&);

// ---- per-array reductions (LAMB/LARS trust ratios, Adafactor's factored second moment) ----------
// A rule may declare up to kMaxReducePasses passes that run, inside the step's one native call,
// before its update region: each pass cuts every array into chunks fixed by its shape alone
// (chunk_grid), has each chunk write `width` float64 partials (on the team, any order), then
// finishes each array in order: its partials, chunk after chunk, become per-array values (and
// may update small state such as Adafactor's row and column factors) that the next pass and the
// update loop receive. Same bits at any thread count; sums inside a chunk use lane_sum's order.
constexpr int kMaxReducePasses = 2;

// Chunks never cross a block (a whole array, or one matrix of a >= 2-D array when a pass needs
// whole rows) and hold `len` elements (the last of a block fewer); `len` is a multiple of the
// row length when rows are whole.
struct ChunkGrid {
    std::size_t block = 0, len = 0;
};
constexpr std::size_t kReduceChunk = 8192;       // elements (a multiple of the 8 summing lanes)
constexpr std::size_t kMaxChunksPerBlock = 256;  // beyond it chunks grow (bounded partials)

inline ChunkGrid chunk_grid(const Segment& s, bool whole_rows) {
    ChunkGrid g;
    if (s.size == 0) return g;
    const auto div_up = [](std::size_t a, std::size_t b) { return (a + b - 1) / b; };
    if (whole_rows && s.ndim >= 2) {
        std::size_t rows = div_up(kReduceChunk, s.cols);
        const std::size_t few = div_up(s.rows, kMaxChunksPerBlock);
        if (few > rows) rows = few;
        g.block = s.rows * s.cols;
        g.len = rows * s.cols;
    } else {
        g.block = s.size;
        g.len = kReduceChunk * (div_up(s.size, kReduceChunk * kMaxChunksPerBlock) > 1
                                    ? div_up(s.size, kReduceChunk * kMaxChunksPerBlock) : 1);
    }
    return g;
}

struct ReduceInfo {
    int passes = 0;
    // Per-array values the passes finish (their count for this array).
    std::size_t (*values)(const Segment&) = nullptr;
    bool (*whole_rows)(int pass, const Segment&) = nullptr;
    // Partials one chunk of `len` elements writes; 0: the pass skips this array.
    std::size_t (*width)(int pass, const Segment&, std::size_t len) = nullptr;
    // Chunk [lo, hi) of the array: its partials into out[0, width) (zeroed before: it may add into them).
    void (*chunk[2])(int pass, const Segment&, std::size_t lo, std::size_t hi, const void* scalars,
                     const double* array_values, const GradTransform&, double* out) = {};
    // Chunk [lo, hi) of a 16-bit parameter's array: the float32 pass on its widened parameter
    // (or float32 master copy) and gradient.
    void (*chunk_scratch)(int pass, const Segment&, std::size_t lo, std::size_t hi, const void* scalars,
                          const double* array_values, const GradTransform&, const Storage&, double* out) = nullptr;
    // The array's chunks in order (chunk k: elements [starts[k], starts[k+1]), partials at
    // partials + k*width, scratch the finish may overwrite) into array_values (and small state).
    void (*finish[2])(int pass, const Segment&, const void* scalars, double* partials, std::size_t width,
                      const std::size_t* starts, std::size_t chunks, double* array_values) = {};
};

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
    const char* extra2_counter;  // name of Counters::extra2, or null
    double extra2_initial;
    HyperError (*check)(const double* values);
    unsigned (*slots_used)(const double* values);  // bit k: slot k is read and written
    // The step's float64 scalars, written into `out` (kMaxScalarBytes).
    void (*derive)(const double* values, const Counters& c, void* out);
    // Counters::extra and extra2 after a successful step (step itself is advanced by the engine).
    double (*advance_extra)(const double* values, const Counters& c);
    double (*advance_extra2)(const double* values, const Counters& c);
    ChunkKernel kernel[2];      // by DType: f32, f64
    RunKernel run[2];           // the same over runs of arrays (element-wise rules: else null)
    ScratchKernel scratch;      // kernel[0] on another storage (a rule's fused loop where it has one)
    ReduceInfo reduce;          // passes == 0: an element-wise rule
    SparseGrads sparse_grads;
    // Why these hyperparameters cannot take row-sparse gradients (hyper null: they can).
    HyperError (*sparse_refusal)(const double* values);
};

}  // namespace fusedopt
