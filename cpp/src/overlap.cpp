#include "fusedopt/overlap.hpp"

#include <algorithm>
#include <utility>

namespace fusedopt {

Span make_span(const void* data, std::size_t size, DType dtype, bool written, std::size_t owner, int slot) {
    const auto b = reinterpret_cast<std::uintptr_t>(data);
    return {b, b + size * dtype_size(dtype), written, owner, slot};
}

Overlap first_overlap(std::vector<Span>& spans) {
    std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.begin < y.begin; });
    Overlap o;
    const Span* widest_written = nullptr;  // written span reaching furthest so far
    const Span* widest_any = nullptr;
    for (const Span& s : spans) {
        const Span* hit = nullptr;
        if (widest_written && s.begin < widest_written->end) hit = widest_written;
        else if (s.written && widest_any && s.begin < widest_any->end) hit = widest_any;
        if (hit) {
            o.found = true;
            o.a = *hit;
            o.b = s;
            return o;
        }
        if (s.written && (!widest_written || s.end > widest_written->end)) widest_written = &s;
        if (!widest_any || s.end > widest_any->end) widest_any = &s;
    }
    return o;
}

void WrittenSpans::assign(std::vector<Span> sorted) {
    spans_ = std::move(sorted);
    begins_.resize(spans_.size());
    ends_.resize(spans_.size());
    for (std::size_t i = 0; i < spans_.size(); ++i) {
        begins_[i] = spans_[i].begin;
        ends_[i] = spans_[i].end;
    }
}

const Span* WrittenSpans::find(std::uintptr_t begin, std::uintptr_t end) const {
    const std::size_t count = begins_.size();
    if (begin == end || count == 0 || begins_[0] >= end) return nullptr;
    // Disjoint: only the last span starting before `end` can overlap. Halving [first, first + n)
    // that holds it, with a conditional move rather than a branch.
    const std::uintptr_t* first = begins_.data();
    for (std::size_t n = count; n > 1;) {
        const std::size_t half = n / 2;
        first = first[half] < end ? first + half : first;
        n -= half;
    }
    const std::size_t i = static_cast<std::size_t>(first - begins_.data());
    return ends_[i] > begin ? &spans_[i] : nullptr;
}

}  // namespace fusedopt
