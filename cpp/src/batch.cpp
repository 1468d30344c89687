#include "fusedopt/batch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace fusedopt {

namespace {

std::size_t element_size(DType t) { return t == DType::f32 ? 4 : 8; }

NormPartials run_norm(const std::vector<const ArraySet*>& sets, int slot, NormKind kind, double p,
                      double scale, const KernelTable& k, const Exec& e) {
    NormPartials total;
    total.min_abs = std::numeric_limits<double>::infinity();
    for (const ArraySet* s : sets) {
        if (s->total() == 0) continue;
        const NormPartials part = k.norm.get(s->dtype)(s->list(), slot, kind, p, scale, e);
        total.sum += part.sum;
        total.max_abs = std::max(total.max_abs, part.max_abs);
        total.min_abs = std::min(total.min_abs, part.min_abs);
        total.nan = total.nan || part.nan;
    }
    return total;
}

// A power of two near 1/x, so that x * scale is about 1 and the scaling is exact.
double inverse_power_of_two(double x) {
    int exponent = 0;
    std::frexp(x, &exponent);
    return std::ldexp(1.0, -exponent);
}

}  // namespace

NormResult total_norm(const std::vector<const ArraySet*>& sets, int slot, double p, const KernelTable& k,
                      const Exec& e) {
    NormResult r;
    const bool is_inf = std::isinf(p);
    const NormKind first = (p == 1.0) ? NormKind::l1 : NormKind::l2;
    NormPartials a = run_norm(sets, slot, first, 2.0, 1.0, k, e);
    r.nonfinite = a.nan || std::isinf(a.max_abs);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (a.nan) {
        r.norm = r.power_sum = nan;
        return r;
    }
    if (is_inf) {
        const bool empty = a.min_abs == std::numeric_limits<double>::infinity() && a.max_abs == 0.0;
        r.norm = p > 0 ? a.max_abs : (empty ? 0.0 : a.min_abs);
        r.power_sum = r.norm;
        return r;
    }
    if (std::isinf(a.max_abs) || a.max_abs == 0.0) {  // inf, or all zeros (or empty)
        r.norm = r.power_sum = a.max_abs;
        return r;
    }
    const bool plain = p == 1.0 || p == 2.0;
    const double tiny = 0x1p-900, huge = 0x1p+900;
    if (plain && a.sum > tiny && a.sum < huge) {
        r.power_sum = a.sum;
        r.norm = p == 2.0 ? std::sqrt(a.sum) : a.sum;
        return r;
    }
    // Rescale by a power of two of the largest magnitude: no overflow, no lost underflow.
    const double scale = inverse_power_of_two(a.max_abs);
    const NormKind kind = p == 2.0 ? NormKind::l2 : (p == 1.0 ? NormKind::l1 : NormKind::pnorm);
    const NormPartials b = run_norm(sets, slot, kind, p, scale, k, e);
    r.norm = (p == 2.0 ? std::sqrt(b.sum) : (p == 1.0 ? b.sum : std::pow(b.sum, 1.0 / p))) / scale;
    r.power_sum = std::pow(r.norm, p);
    return r;
}

namespace {

std::vector<Span> collect_spans(const std::vector<BatchEntry>& entries, bool written_only) {
    std::vector<Span> spans;
    for (std::size_t ei = 0; ei < entries.size(); ++ei) {
        const BatchEntry& en = entries[ei];
        const std::size_t esz = element_size(en.arrays.dtype);
        for (std::size_t si = 0; si < en.arrays.segments.size(); ++si) {
            const Segment& s = en.arrays.segments[si];
            if (s.size == 0) continue;
            for (int slot = 0; slot < en.operands; ++slot) {
                if (!s.data[slot] || (written_only && slot == 1)) continue;
                const auto b = reinterpret_cast<std::uintptr_t>(s.data[slot]);
                spans.push_back({b, b + s.size * esz, slot != 1, ei, si, slot});
            }
        }
    }
    std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.begin < y.begin; });
    return spans;
}

// Sorted spans: the first pair sharing memory where at least one side is written.
Overlap first_overlap(const std::vector<Span>& spans) {
    Overlap o;
    const Span* widest_written = nullptr;  // written span reaching furthest so far
    const Span* widest_any = nullptr;
    for (const Span& s : spans) {
        const Span* hit = nullptr;
        if (widest_written && s.begin < widest_written->end) hit = widest_written;
        else if (s.written && widest_any && s.begin < widest_any->end) hit = widest_any;
        if (hit) {
            o.found = true;
            o.entry_a = hit->entry; o.segment_a = hit->segment; o.slot_a = hit->slot;
            o.entry_b = s.entry; o.segment_b = s.segment; o.slot_b = s.slot;
            return o;
        }
        if (s.written && (!widest_written || s.end > widest_written->end)) widest_written = &s;
        if (!widest_any || s.end > widest_any->end) widest_any = &s;
    }
    return o;
}

}  // namespace

Overlap Batch::find_overlap() const { return first_overlap(collect_spans(entries_, false)); }

Overlap Batch::freeze() {
    written_ = collect_spans(entries_, true);
    return first_overlap(written_);
}

Overlap Batch::find_grad_overlap(std::size_t entry, std::size_t segment) const {
    Overlap o;
    const BatchEntry& en = entries_[entry];
    const Segment& s = en.arrays.segments[segment];
    if (s.size == 0 || !s.data[1]) return o;
    const auto b = reinterpret_cast<std::uintptr_t>(s.data[1]);
    const auto e = b + s.size * element_size(en.arrays.dtype);
    // written_ is sorted and disjoint: only the last span starting before `e` can overlap.
    auto it = std::lower_bound(written_.begin(), written_.end(), e,
                               [](const Span& x, std::uintptr_t v) { return x.begin < v; });
    if (it == written_.begin()) return o;
    --it;
    if (it->end > b) {
        o.found = true;
        o.entry_a = it->entry; o.segment_a = it->segment; o.slot_a = it->slot;
        o.entry_b = entry; o.segment_b = segment; o.slot_b = 1;
    }
    return o;
}

StepResult Batch::run(const StepOptions& opt, const KernelTable& k, const Exec& e) const {
    StepResult result;
    const bool clip_norm = opt.max_norm >= 0.0;
    int groups = 1;
    for (const BatchEntry& en : entries_) groups = std::max(groups, en.group + 1);
    std::vector<double> coef(static_cast<std::size_t>(groups), 1.0);

    if (clip_norm || opt.check_finite) {
        result.norm_computed = true;
        std::vector<std::vector<const ArraySet*>> by_group(opt.per_group_norm ? groups : 1);
        for (const BatchEntry& en : entries_)
            by_group[opt.per_group_norm ? en.group : 0].push_back(&en.arrays);
        double power_sum = 0.0;
        std::vector<double> norms;
        for (const auto& sets : by_group) {
            const NormResult r = total_norm(sets, 1, 2.0, k, e);
            result.nonfinite = result.nonfinite || r.nonfinite;
            power_sum += r.power_sum;
            norms.push_back(r.norm);
        }
        result.grad_norm = by_group.size() == 1 ? norms[0] : std::sqrt(power_sum);
        if (opt.per_group_norm) result.group_norms = norms;
        if (result.nonfinite && opt.abort_on_nonfinite) {
            result.aborted = true;
            return result;
        }
        if (clip_norm)
            for (int g = 0; g < groups; ++g) {
                // torch: clamp(max_norm / (norm + 1e-6), max=1); NaN stays NaN.
                const double c = opt.max_norm / (norms[opt.per_group_norm ? g : 0] + 1e-6);
                coef[static_cast<std::size_t>(g)] = c < 1.0 || c != c ? c : 1.0;
            }
    }
    for (const BatchEntry& en : entries_) {
        if (en.arrays.total() == 0) continue;
        GradTransform gt = en.grad;
        gt.scale *= coef[static_cast<std::size_t>(en.group)];
        if (opt.clip_value >= 0.0) {
            gt.lo = -opt.clip_value;
            gt.hi = opt.clip_value;
        }
        en.launch(k, en.arrays.list(), gt, e);
    }
    return result;
}

}  // namespace fusedopt
