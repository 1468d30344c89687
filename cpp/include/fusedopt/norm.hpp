// Gradient norms over many arrays (standalone clipping and the norm pass of a step).
#pragma once
#include <cstddef>
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

// Arrays of one dtype as a kernel walks them (an ArraySet's, or a plan's own).
struct TypedList {
    DType dtype;
    SegmentList list;
};

// The p-norm of operand `slot` over all arrays of all sets, float64 accumulation.
// p = inf / -inf give max / min |g|. Scaled so float64 inputs anywhere from subnormal to the
// largest finite value give the exact-to-rounding answer (no spurious overflow, underflow or
// NaN). Bitwise independent of the thread count.
NormResult total_norm(const std::vector<TypedList>& lists, int slot, double p, const KernelTable& k, const Exec& e);
NormResult total_norm(const std::vector<const ArraySet*>& sets, int slot, double p, const KernelTable& k,
                      const Exec& e);

// One pass over the whole range: the folded partials of a kind (at power p, scaled).
using NormPass = std::function<NormPartials(NormKind, double p, NormScale scale)>;
// total_norm's passes and branches over any source of passes: a sharded step's passes are its
// shard's chunk partials combined with every other rank's (fusedopt.distributed).
NormResult norm_from_passes(const NormPass& run, double p);

// The 2-norm of several scopes' 2-norms (a step's global norm from per-group ones): the square
// root of their power sums, rescaled where those under- or overflow.
double combined_norm(const std::vector<NormResult>& parts);

}  // namespace fusedopt
