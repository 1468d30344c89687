// A whole optimizer step, validated before anything runs: the entries (one per param group,
// dtype and step count), the optional gradient-norm pass, then the fused update kernels.
// Pure C++: the bindings fill it from Python lists and call run() without the GIL.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "fusedopt/kernel_table.hpp"

namespace fusedopt {

// Arrays of one dtype, seen as one concatenated element range.
struct ArraySet {
    DType dtype = DType::f32;
    std::vector<Segment> segments;
    std::vector<std::size_t> starts{0};

    void append(const Segment& s) {
        segments.push_back(s);
        starts.push_back(starts.back() + s.size);
    }
    std::size_t total() const { return starts.back(); }
    SegmentList list() const { return {segments.data(), starts.data(), segments.size(), starts.back()}; }
};

struct NormResult {
    double norm = 0.0;     // NaN when some element is NaN
    double power_sum = 0;  // sum of |g|^p in float64 (p = 2 in steps), used to merge groups
    bool nonfinite = false;
};

// The p-norm of operand `slot` over all arrays of all sets, float64 accumulation.
// p = inf / -inf give max / min |g|. Scaled so float64 inputs near the overflow or underflow
// threshold still give the exact-to-rounding answer. Bitwise independent of the thread count.
NormResult total_norm(const std::vector<const ArraySet*>& sets, int slot, double p, const KernelTable& k,
                      const Exec& e);

using Launch = std::function<void(const KernelTable&, const SegmentList&, const GradTransform&, const Exec&)>;

struct BatchEntry {
    ArraySet arrays;
    int operands = 2;          // slots used: 0 p, 1 g, 2.. states (null slots are absent states)
    int group = 0;             // clipping scope when norms are per group
    GradTransform grad;        // maximize sign; the step adds clipping
    Launch launch;
};

struct StepOptions {
    double max_norm = -1.0;        // < 0: no norm clipping
    bool per_group_norm = false;   // else one norm over every entry
    double clip_value = -1.0;      // < 0: no value clipping
    bool check_finite = false;     // run the norm pass even without clipping
    bool abort_on_nonfinite = false;
};

struct StepResult {
    bool norm_computed = false;
    double grad_norm = 0.0;             // over all entries
    std::vector<double> group_norms;    // indexed by group id (per_group_norm only)
    bool nonfinite = false;
    bool aborted = false;               // nothing was written
};

// Two written buffers, or a written and a read one, share memory.
struct Overlap {
    bool found = false;
    std::size_t entry_a = 0, segment_a = 0, entry_b = 0, segment_b = 0;
    int slot_a = 0, slot_b = 0;
};

// A buffer of one operand of one segment, for overlap checks.
struct Span {
    std::uintptr_t begin, end;
    bool written;
    std::size_t entry, segment;
    int slot;
};

class Batch {
public:
    void add(BatchEntry e) { entries_.push_back(std::move(e)); }
    const std::vector<BatchEntry>& entries() const { return entries_; }
    std::vector<BatchEntry>& entries() { return entries_; }
    Overlap find_overlap() const;
    StepResult run(const StepOptions& opt, const KernelTable& k, const Exec& e) const;

    // A batch kept across steps (a plan): the written buffers (parameters, state), sorted once;
    // then only the gradients are new each step and are checked against them.
    Overlap freeze();
    Overlap find_grad_overlap(std::size_t entry, std::size_t segment) const;

private:
    std::vector<BatchEntry> entries_;
    std::vector<Span> written_;  // sorted by begin, disjoint (freeze)
};

}  // namespace fusedopt
