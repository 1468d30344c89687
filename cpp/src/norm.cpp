#include "fusedopt/norm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace fusedopt {

namespace {

NormPartials run_norm(const std::vector<TypedList>& lists, int slot, NormKind kind, double p, NormScale scale,
                      const KernelTable& k, const Exec& e) {
    NormPartials total;
    total.min_abs = std::numeric_limits<double>::infinity();
    for (const TypedList& s : lists) {
        if (s.list.total == 0) continue;
        const NormPartials part = k.norm.get(s.dtype)(s.list, slot, kind, p, scale, e);
        total.sum += part.sum;
        total.max_abs = std::max(total.max_abs, part.max_abs);
        total.min_abs = std::min(total.min_abs, part.min_abs);
        total.nan = total.nan || part.nan;
    }
    return total;
}

// 2^e as two normal factors (NormScale), for any e float64's magnitudes call for.
NormScale power_of_two(int e) {
    const int first = std::clamp(e, -1000, 1000);
    return {std::ldexp(1.0, first), std::ldexp(1.0, e - first)};
}

const double kTiny = 0x1p-900, kHuge = 0x1p+900;  // a sum between them is plainly safe

}  // namespace

std::size_t norm_chunk_size(std::size_t total) {
    std::size_t c = 4096;
    while (c * kMaxNormChunks < total) c *= 2;
    return c;
}

NormPartials fold_norm_partials(const NormPartials* parts, std::size_t n) {
    NormPartials total;
    total.min_abs = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < n; ++c) {
        total.sum += parts[c].sum;
        total.max_abs = parts[c].max_abs > total.max_abs ? parts[c].max_abs : total.max_abs;
        total.min_abs = parts[c].min_abs < total.min_abs ? parts[c].min_abs : total.min_abs;
    }
    // Every term is >= 0, so the sum is NaN exactly when some element is NaN.
    total.nan = total.sum != total.sum;
    return total;
}

NormResult total_norm(const std::vector<TypedList>& lists, int slot, double p, const KernelTable& k, const Exec& e) {
    return norm_from_passes([&](NormKind kind, double q, NormScale scale) {
        return run_norm(lists, slot, kind, q, scale, k, e);
    }, p);
}

NormResult total_norm(const std::vector<const ArraySet*>& sets, int slot, double p, const KernelTable& k,
                      const Exec& e) {
    std::vector<TypedList> lists;
    for (const ArraySet* s : sets) lists.push_back({s->dtype, s->list()});
    return total_norm(lists, slot, p, k, e);
}

NormResult norm_from_passes(const NormPass& run, double p) {
    NormResult r;
    if (p == 2.0) {  // the common case: one pass of squares, unless the sum is not plainly finite
        const double sum = run(NormKind::l2_sum, 2.0, {}).sum;
        if (sum > kTiny && sum < kHuge) {
            r.power_sum = sum;
            r.norm = std::sqrt(sum);
            return r;
        }
    }
    const bool is_inf = std::isinf(p);
    const NormKind first = (p == 1.0) ? NormKind::l1 : NormKind::l2;
    NormPartials a = run(first, 2.0, {});
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
    if (plain && a.sum > kTiny && a.sum < kHuge) {
        r.power_sum = a.sum;
        r.norm = p == 2.0 ? std::sqrt(a.sum) : a.sum;
        return r;
    }
    // Rescale by the power of two that brings the largest magnitude into [0.5, 1): exact, so no
    // overflow and no lost underflow, from subnormal to the largest float64.
    int exponent = 0;
    std::frexp(a.max_abs, &exponent);
    const NormKind kind = p == 2.0 ? NormKind::l2 : (p == 1.0 ? NormKind::l1 : NormKind::pnorm);
    const NormPartials b = run(kind, p, power_of_two(-exponent));
    const double root = p == 2.0 ? std::sqrt(b.sum) : (p == 1.0 ? b.sum : std::pow(b.sum, 1.0 / p));
    r.norm = std::ldexp(root, exponent);
    r.power_sum = std::pow(r.norm, p);
    return r;
}

double combined_norm(const std::vector<NormResult>& parts) {
    double sum = 0.0, top = 0.0;
    for (const NormResult& n : parts) {
        sum += n.power_sum;
        top = std::max(top, n.norm);  // NaN never wins std::max's comparison: the sum keeps it
    }
    if (!(sum == sum) || top == 0.0 || std::isinf(top) || (sum > kTiny && sum < kHuge)) return std::sqrt(sum);
    // The squares under- or overflowed: sum them relative to the largest norm.
    double scaled = 0.0;
    for (const NormResult& n : parts) scaled += (n.norm / top) * (n.norm / top);
    return std::sqrt(scaled) * top;
}

}  // namespace fusedopt
