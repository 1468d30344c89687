#include "fusedopt/overlap.hpp"

#include <algorithm>

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

Overlap overlap_with_written(const std::vector<Span>& written, const Span& read) {
    Overlap o;
    if (read.begin == read.end) return o;
    // Sorted and disjoint: only the last span starting before read.end can overlap.
    auto it = std::lower_bound(written.begin(), written.end(), read.end,
                               [](const Span& x, std::uintptr_t v) { return x.begin < v; });
    if (it == written.begin()) return o;
    --it;
    if (it->end > read.begin) {
        o.found = true;
        o.a = *it;
        o.b = read;
    }
    return o;
}

}  // namespace fusedopt
