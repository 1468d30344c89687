// Buffers that share memory: a step must never update one buffer through two names, nor read a
// gradient that the same step writes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fusedopt/segments.hpp"

namespace fusedopt {

// One array's bytes, and who it is: `owner` (a parameter's index) and `slot` (0 parameter,
// 1 gradient, 2.. state) name it in messages.
struct Span {
    std::uintptr_t begin, end;
    bool written;
    std::size_t owner;
    int slot;
};

// The span of `size` elements of `dtype` at `data`.
Span make_span(const void* data, std::size_t size, DType dtype, bool written, std::size_t owner, int slot);

struct Overlap {
    bool found = false;
    Span a{}, b{};
};

// Sorts `spans` by address and returns the first pair sharing memory where one side is written.
Overlap first_overlap(std::vector<Span>& spans);

// `written` sorted and disjoint (first_overlap found nothing among written spans): the one that
// [begin, end) overlaps, if any.
Overlap overlap_with_written(const std::vector<Span>& written, const Span& read);

}  // namespace fusedopt
