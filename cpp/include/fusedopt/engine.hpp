// The native step: every group, bucket and dtype of an optimizer as one plan, then the optional
// gradient-norm pass and ONE parallel region over the concatenated element range of all of them.
// Pure C++: the bindings fill the plan from Python objects and run it without the GIL.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fusedopt/kernel_table.hpp"
#include "fusedopt/team.hpp"

namespace fusedopt {

// Arrays of one dtype that share one rule's scalars (a param group's parameters with the same
// counters): the segments whose unit_of names it.
struct StepUnit {
    ChunkKernel kernel = nullptr;  // with `scratch`: the float32 kernel, run on scratch
    RunKernel run = nullptr;       // kernel over runs of arrays (none with scratch or reductions)
    DType dtype = DType::f32;
    ScratchKernel scratch = nullptr;  // 16-bit parameters or compressed state (`storage` says how):
                                      // the rule's kernel on them
    Storage storage;
    int group = 0;           // clipping scope when norms are per group
    double sign = 1.0;       // -1 for maximize
    Counters counters;       // what its scalars were derived from
    alignas(16) unsigned char scalars[kMaxScalarBytes];
};

// The reduction passes' chunks (rule.hpp, ReduceInfo) over a plan's arrays. They follow from
// the arrays' shapes alone, so they are laid out on a plan's first step with reductions and kept
// while the plan is (a replayed step changes addresses and scalars, not shapes): a steady step
// over 1000 arrays that reduce nothing (LARS's 1-D ones) walked all of them for nothing.
struct ReduceItem {
    std::size_t seg, lo, hi, out;  // out: its partials' offset
};
struct ReducePassLayout {
    std::vector<ReduceItem> items;    // the chunks of the arrays this pass reduces, array by array
    std::vector<std::size_t> arrays;  // those arrays (segments), in order
    std::vector<std::size_t> first;   // arrays[k]'s chunks: items[first[k], first[k + 1])
    std::vector<std::size_t> width;   // arrays[k]'s partials per chunk
    std::vector<std::size_t> starts;  // arrays[k]'s chunk starts and end: from starts[first[k] + k]
    std::size_t partials = 0;
};
// A small array that every pass reducing it takes in one chunk: its passes, finishes and update
// run back to back on one thread while it is in cache, in one region with the other such
// arrays (not one region per pass with a barrier between): the same calls, so the same bits.
struct FusedArray {
    std::size_t seg;
    std::size_t width[kMaxReducePasses];  // partials of each pass (0: the pass skips it)
};
struct ReduceLayout {
    bool built = false;
    std::vector<std::size_t> value_at;  // segment s's values from value_at[s]; back(): all of them
    ReducePassLayout passes[kMaxReducePasses];  // over the arrays not fused
    std::vector<FusedArray> fused;
    std::vector<unsigned char> is_fused;  // per segment
    std::size_t fused_width = 0;          // the most partials any of them writes (per thread: one at a time)
    std::size_t fused_elements = 0;
};

struct StepPlan {
    std::vector<StepUnit> units;
    std::vector<Segment> segments;       // in parameter order
    std::vector<std::uint32_t> unit_of;  // per segment
    std::vector<std::size_t> starts{0};  // starts[i]: first element of segment i; back(): total
    int group_count = 1;
    std::size_t align = 16;  // pieces start at multiples of this many elements of a segment
    const ReduceInfo* reduce = nullptr;  // the rule's per-array reductions (null or no passes: none)
    // One thread or the team, from this optimizer's own step times; kept by clear(), so it
    // learns across steps. Mutable: run_step records into it.
    mutable TeamChoice team;
    mutable ReduceLayout reduce_layout;  // (run_step lays it out; clear() drops it)

    void add_segment(const Segment& s, std::size_t unit) {
        segments.push_back(s);
        unit_of.push_back(static_cast<std::uint32_t>(unit));
        starts.push_back(starts.back() + s.size);
    }
    void clear() {
        units.clear();
        segments.clear();
        unit_of.clear();
        starts.assign(1, 0);
        align = 16;
        reduce_layout = ReduceLayout{};
    }
};

struct StepOptions {
    double max_norm = -1.0;        // < 0: no norm clipping
    bool per_group_norm = false;   // else one norm over every unit
    double clip_value = -1.0;      // < 0: no value clipping
    bool check_finite = false;     // run the norm pass even without clipping
    bool abort_on_nonfinite = false;
    // A global norm computed elsewhere (fusedopt.distributed: over every process's shard), used
    // instead of the norm pass, and whether that pass saw a non-finite gradient.
    bool norm_given = false;
    double given_norm = 0.0;
    bool given_nonfinite = false;
};

struct StepResult {
    bool norm_computed = false;
    double grad_norm = 0.0;             // over all units
    std::vector<double> group_norms;    // per group (per_group_norm only)
    bool nonfinite = false;
    bool aborted = false;               // nothing was written
};

// The norm pass (when asked), then every unit's kernel in one parallel region; on the team
// or on one thread as plan.team chooses, and timed for it.
StepResult run_step(const StepPlan& plan, const StepOptions& opt, const KernelTable& k, const Exec& e);

}  // namespace fusedopt
