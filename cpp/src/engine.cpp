#include "fusedopt/engine.hpp"

#include <algorithm>
#include <cmath>

#include "fusedopt/norm.hpp"
#include "fusedopt/team.hpp"

namespace fusedopt {
namespace {

// The kernels' walker: one parallel region over a concatenated range, cut into cache-line-aligned
// pieces (small totals stay on the calling thread).
#include "fusedopt/kernels/parallel.hpp"

// The norm pass: one norm per scope (per group, or one over everything).
std::vector<NormResult> scope_norms(const StepPlan& plan, const SegmentList& l, bool per_group, const KernelTable& k,
                                    const Exec& e) {
    const int scopes = per_group ? plan.group_count : 1;
    bool one_dtype = true;
    for (const StepUnit& unit : plan.units) one_dtype = one_dtype && unit.dtype == plan.units[0].dtype;
    if (scopes == 1 && one_dtype && !plan.units.empty())  // the plan's own list, not a copy of it
        return {total_norm(std::vector<TypedList>{{plan.units[0].dtype, l}}, 1, 2.0, k, e)};
    std::vector<ArraySet> sets(static_cast<std::size_t>(scopes) * kDTypeCount);
    for (std::size_t s = 0; s < plan.segments.size(); ++s) {
        const StepUnit& unit = plan.units[plan.unit_of[s]];
        ArraySet& set = sets[static_cast<std::size_t>(per_group ? unit.group : 0) * kDTypeCount + int(unit.dtype)];
        set.dtype = unit.dtype;
        set.append(plan.segments[s]);
    }
    std::vector<NormResult> norms;
    for (int g = 0; g < scopes; ++g) {
        std::vector<const ArraySet*> mine;
        for (int d = 0; d < kDTypeCount; ++d) {
            const ArraySet& set = sets[static_cast<std::size_t>(g) * kDTypeCount + d];
            if (set.total()) mine.push_back(&set);
        }
        norms.push_back(total_norm(mine, 1, 2.0, k, e));
    }
    return norms;
}

// The rule's per-array reduction passes (rule.hpp, ReduceInfo): per pass, every reducing
// array's chunks (a grid fixed by its shape: the plan's ReduceLayout) on the team in any order,
// each writing its own partials, then each array finished in order into its values (value_at[s]:
// the first of segment s's).

// Whether an array is small and taken in one chunk by every pass that reduces it (and some pass
// does): then it is fused (engine.hpp, FusedArray), its passes' widths written into f.
bool fusable(const ReduceInfo& r, const Segment& seg, FusedArray& f) {
    if (seg.size == 0 || seg.size > kReduceChunk) return false;  // larger: split over the team
    bool reduces = false;
    for (int pass = 0; pass < r.passes; ++pass) {
        const ChunkGrid g = chunk_grid(seg, r.whole_rows(pass, seg));
        f.width[pass] = r.width(pass, seg, g.len);
        if (!f.width[pass]) continue;
        if (g.block != seg.size || g.len < g.block) return false;
        reduces = true;
    }
    return reduces;
}

const ReduceLayout& reduce_layout(const StepPlan& plan) {
    ReduceLayout& out = plan.reduce_layout;
    if (out.built) return out;
    const ReduceInfo& r = *plan.reduce;
    const std::size_t n = plan.segments.size();
    out.value_at.assign(n + 1, 0);
    out.is_fused.assign(n, 0);
    for (std::size_t s = 0; s < n; ++s) {
        out.value_at[s + 1] = out.value_at[s] + r.values(plan.segments[s]);
        FusedArray f{s, {}};
        if (!fusable(r, plan.segments[s], f)) continue;
        out.fused.push_back(f);
        out.is_fused[s] = 1;
        out.fused_width = std::max(out.fused_width, *std::max_element(f.width, f.width + r.passes));
        out.fused_elements += plan.segments[s].size;
    }
    for (int pass = 0; pass < r.passes; ++pass) {
        ReducePassLayout& l = out.passes[pass];  // (empty: a plan's layout starts so, and clear() resets it)
        for (std::size_t s = 0; s < n; ++s) {
            const Segment& seg = plan.segments[s];
            const ChunkGrid g = chunk_grid(seg, r.whole_rows(pass, seg));
            const std::size_t width = g.len && !out.is_fused[s] ? r.width(pass, seg, g.len) : 0;
            if (!width) continue;
            l.arrays.push_back(s);
            l.first.push_back(l.items.size());
            l.width.push_back(width);
            for (std::size_t b = 0; b < seg.size; b += g.block)
                for (std::size_t lo = b; lo < b + g.block; lo += g.len) {
                    l.items.push_back({s, lo, lo + g.len < b + g.block ? lo + g.len : b + g.block, l.partials});
                    l.starts.push_back(lo);
                    l.partials += width;
                }
            l.starts.push_back(l.items.back().hi);
        }
        l.first.push_back(l.items.size());
    }
    out.built = true;
    return out;
}

// A thread's partials and values, kept from step to step: a step of 1000 arrays allocated, grew
// and zeroed them each time (LAMB on 1000 one-element arrays: 1168 -> 1078 instructions per
// array). The result: the arrays' values (segment s's from values[value_at[s]]).
struct ReduceBuffers {
    std::vector<double> values;
    std::vector<double> partials;
    std::vector<double> fused_partials;  // (one fused array's at a time: run_fused)
};

// (Not inlined: GCC re-derives a thread_local's address at each use, a __tls_get_addr call in a
// shared library; through this reference it is derived once per step.)
[[gnu::noinline]] ReduceBuffers& thread_reduce_buffers() {
    thread_local ReduceBuffers buffers;
    return buffers;
}

constexpr std::size_t kReducePiecesPerThread = 64;  // pieces of chunks: small enough to balance

// Chunk [lo, hi) of an array of `unit` in a reduction pass, its partials into out (16-bit
// parameters: the float32 pass on their widened values).
inline void reduce_range(const ReduceInfo& r, int pass, const StepUnit& unit, const Segment& seg, std::size_t lo,
                         std::size_t hi, const double* array_values, const GradTransform& gt, double* out) {
    if (unit.scratch)
        r.chunk_scratch(pass, seg, lo, hi, unit.scalars, array_values, gt, unit.storage, out);
    else
        r.chunk[unit.dtype == DType::f64](pass, seg, lo, hi, unit.scalars, array_values, gt, out);
}

// Elements [lo, hi) of an array of `unit` updated by its kernel (array_values: what its
// reductions finished, or null), through float32 scratch where its storage needs it.
inline void update_range(const StepUnit& unit, const Segment& seg, std::size_t lo,
                         std::size_t hi, const double* array_values, const GradTransform& gt) {
    if (unit.scratch)
        unit.scratch(seg, lo, hi, unit.kernel, unit.scalars, array_values, gt, unit.storage);
    else
        unit.kernel(seg, lo, hi, unit.scalars, array_values, gt);
}

// The fused arrays (engine.hpp, FusedArray): each one's passes, finishes and update in turn, its
// partials in the running thread's buffer.
void run_fused(const StepPlan& plan, const std::vector<GradTransform>& grad, const Exec& e, double* values) {
    const ReduceInfo& r = *plan.reduce;
    const ReduceLayout& layout = plan.reduce_layout;
    const std::vector<FusedArray>& fused = layout.fused;
    auto arrays = [&](std::size_t first, std::size_t last) {
        FlushDenormals flush(e.flush_denormals);
        std::vector<double>& mine = thread_reduce_buffers().fused_partials;
        mine.resize(layout.fused_width);
        double* part = mine.data();
        for (std::size_t i = first; i < last; ++i) {
            const FusedArray& f = fused[i];
            const Segment& seg = plan.segments[f.seg];
            const std::uint32_t u = plan.unit_of[f.seg];
            const StepUnit& unit = plan.units[u];
            double* v = values + layout.value_at[f.seg];
            const std::size_t starts[2] = {0, seg.size};
            for (int pass = 0; pass < r.passes; ++pass) {
                if (!f.width[pass]) continue;
                std::fill(part, part + f.width[pass], 0.0);  // (a chunk may add into its partials)
                reduce_range(r, pass, unit, seg, 0, seg.size, v, grad[u], part);
                r.finish[unit.dtype == DType::f64](pass, seg, unit.scalars, part, f.width[pass], starts, 1, v);
            }
            update_range(unit, seg, 0, seg.size, v, grad[u]);
        }
    };
    const std::size_t n = fused.size();
    const int nt = splits_work(layout.fused_elements, e) ? e.threads : 1;
    if (nt == 1 || n < 2) return arrays(0, n);
    const std::size_t pieces = std::min(n, static_cast<std::size_t>(nt) * kReducePiecesPerThread);
    auto piece = [&](std::size_t i) { arrays(i * n / pieces, (i + 1) * n / pieces); };
    run_on_team(pieces, nt, piece);
}

// Every array's reduction values: the fused arrays updated too (run_fused), the others' passes
// each on the team, then finished in order.
const std::vector<double>& run_reductions(const StepPlan& plan, const SegmentList& l,
                                          const std::vector<GradTransform>& grad, const Exec& e) {
    const ReduceInfo& r = *plan.reduce;
    const ReduceLayout& layout = reduce_layout(plan);
    ReduceBuffers& buffers = thread_reduce_buffers();
    std::vector<double>& values = buffers.values;
    std::vector<double>& partials = buffers.partials;
    values.assign(layout.value_at.back(), 0.0);
    if (!layout.fused.empty()) run_fused(plan, grad, e, values.data());
    const int nt = team_size(l, e);
    for (int pass = 0; pass < r.passes; ++pass) {
        const ReducePassLayout& p = layout.passes[pass];
        const std::vector<ReduceItem>& items = p.items;
        partials.assign(p.partials, 0.0);
        // Consecutive chunks make a piece, the denormal setting switched once per piece: per chunk,
        // its ~10 ns came once per array for many small ones.
        auto chunks = [&](std::size_t first, std::size_t last) {
            FlushDenormals flush(e.flush_denormals);
            for (std::size_t i = first; i < last; ++i) {
                const ReduceItem& it = items[i];
                const std::uint32_t u = plan.unit_of[it.seg];
                reduce_range(r, pass, plan.units[u], plan.segments[it.seg], it.lo, it.hi,
                             values.data() + layout.value_at[it.seg], grad[u], partials.data() + it.out);
            }
        };
        const std::size_t n = items.size();
        if (n == 0) continue;
        if (nt == 1 || n < 2) {
            chunks(0, n);
        } else {
            const std::size_t pieces = std::min(n, static_cast<std::size_t>(nt) * kReducePiecesPerThread);
            auto piece = [&](std::size_t k) { chunks(k * n / pieces, (k + 1) * n / pieces); };
            run_on_team(pieces, nt, piece);
        }
        FlushDenormals flush(e.flush_denormals);
        for (std::size_t k = 0; k < p.arrays.size(); ++k) {
            const std::size_t s = p.arrays[k], first = p.first[k], last = p.first[k + 1];
            const StepUnit& unit = plan.units[plan.unit_of[s]];
            r.finish[unit.dtype == DType::f64](pass, plan.segments[s], unit.scalars, partials.data() + items[first].out,
                                               p.width[k], p.starts.data() + first + k, last - first,
                                               values.data() + layout.value_at[s]);
        }
    }
    // Partials are kept only while small (many small arrays are what reuse helps): a large
    // matrix's (Adafactor: up to 256 chunks x its columns) would stay allocated after the step.
    constexpr std::size_t kKeptPartials = std::size_t(1) << 16;
    if (partials.capacity() > kKeptPartials) std::vector<double>().swap(partials);
    return values;
}

StepResult run_kernels(const StepPlan& plan, const SegmentList& l, const StepOptions& opt, const KernelTable& k,
                       const Exec& e) {
    StepResult result;
    const bool clip_norm = opt.max_norm >= 0.0;
    std::vector<double> coef(static_cast<std::size_t>(plan.group_count), 1.0);
    if (clip_norm || opt.check_finite) {
        result.norm_computed = true;
        const NormResult given{opt.given_norm, opt.given_norm * opt.given_norm, opt.given_nonfinite};
        const std::vector<NormResult> norms =
            opt.norm_given ? std::vector<NormResult>(opt.per_group_norm ? std::size_t(plan.group_count) : 1, given)
                           : scope_norms(plan, l, opt.per_group_norm, k, e);
        for (const NormResult& r : norms) {
            result.nonfinite = result.nonfinite || r.nonfinite;
            if (opt.per_group_norm) result.group_norms.push_back(r.norm);
        }
        result.grad_norm = norms.size() == 1 ? norms[0].norm : combined_norm(norms);
        if (result.nonfinite && opt.abort_on_nonfinite) {
            result.aborted = true;
            return result;
        }
        if (clip_norm)
            for (int g = 0; g < plan.group_count; ++g) {
                // torch: clamp(max_norm / (norm + 1e-6), max=1); NaN stays NaN.
                const double c = opt.max_norm / (norms[opt.per_group_norm ? g : 0].norm + 1e-6);
                coef[static_cast<std::size_t>(g)] = c < 1.0 || c != c ? c : 1.0;
            }
    }
    std::vector<GradTransform> grad(plan.units.size());
    for (std::size_t u = 0; u < plan.units.size(); ++u) {
        grad[u].scale = plan.units[u].sign * coef[static_cast<std::size_t>(plan.units[u].group)];
        if (opt.clip_value >= 0.0) {
            grad[u].lo = -opt.clip_value;
            grad[u].hi = opt.clip_value;
        }
    }
    const bool reduces = plan.reduce && plan.reduce->passes > 0;
    const double* vals = reduces ? run_reductions(plan, l, grad, e).data() : nullptr;
    const ReduceLayout& layout = plan.reduce_layout;  // (its fused arrays are updated already)
    const unsigned char* done = reduces && layout.fused_elements ? layout.is_fused.data() : nullptr;
    if (done && layout.fused_elements == l.total) return result;
    const std::size_t* val_at = reduces ? layout.value_at.data() : nullptr;
    if (!reduces) {  // element-wise: consecutive arrays of a unit with a run kernel in one call
        parallel_ranges(l, e, [&plan, &grad, &l](std::size_t begin, std::size_t end) {
            for (std::size_t s = segment_of(l, begin); s < l.count && l.starts[s] < end;) {
                const std::uint32_t u = plan.unit_of[s];
                const StepUnit& unit = plan.units[u];
                std::size_t last = s + 1;  // the run: [s, last)
                if (unit.run)
                    while (last < l.count && l.starts[last] < end && plan.unit_of[last] == u) ++last;
                const std::size_t lo = begin > l.starts[s] ? begin - l.starts[s] : 0;
                const std::size_t hi = (end < l.starts[last] ? end : l.starts[last]) - l.starts[last - 1];
                auto one = [&](const Segment& seg, std::size_t a, std::size_t b) {
                    update_range(unit, seg, a, b, nullptr, grad[u]);
                };
                if (unit.run)
                    unit.run(l.segments + s, last - s, lo, hi, unit.scalars, grad[u]);
                else if (hi > lo)  // (one array: [lo, hi) of segment s)
                    PeelLead<decltype(one)>{one}(l.segments[s], lo, hi);
                s = last;
            }
        });
        return result;
    }
    parallel_walk(l, e, [&plan, &grad, &l, vals, val_at, done](const Segment& seg, std::size_t lo, std::size_t hi) {
        const std::size_t s = static_cast<std::size_t>(&seg - l.segments);
        if (done && done[s]) return;
        const std::uint32_t u = plan.unit_of[s];
        update_range(plan.units[u], seg, lo, hi, vals ? vals + val_at[s] : nullptr, grad[u]);
    });
    return result;
}

}  // namespace

StepResult run_step(const StepPlan& plan, const StepOptions& opt, const KernelTable& k, const Exec& e) {
    const SegmentList l{plan.segments.data(), plan.starts.data(), plan.segments.size(), plan.starts.back(), plan.align};
    if (team_size(l, e) == 1) return run_kernels(plan, l, opt, k, e);  // one thread whatever TeamChoice says
    const bool team = plan.team.use_team();
    Exec mine = e;
    if (!team) mine.threads = 1;
    const std::int64_t start = steady_now_ns();
    StepResult result = run_kernels(plan, l, opt, k, mine);
    const std::int64_t end = steady_now_ns();
    plan.team.record(team, end - start);
    return result;
}

}  // namespace fusedopt
