// The multi-tensor view a kernel walks: many arrays, seen as one concatenated element range.
// Pure data, shared by every SIMD target; no Python here.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fusedopt {

// Operand slots of a segment: 0 = parameter (read/write), 1 = gradient (read only),
// 2.. = optimizer state arrays (read/write): the rule's, in the order it documents (at most
// kMaxRuleSlots), then the engine's own (a master copy, int8 state's block scales).
constexpr int kMaxRuleSlots = 4;
constexpr int kMaxOperands = 2 + 2 * kMaxRuleSlots + 1;

struct Segment {
    void* data[kMaxOperands];
    std::size_t size;  // elements
    // The parameter's extents, for rules whose state is not shaped like it (rule.hpp, SlotShape):
    // >= 2-D: `matrices` of `rows` x `cols` (shape[:-2], shape[-2], shape[-1]); fewer
    // dimensions: one row of `size` elements (cols = size, 1 for 0-d).
    int ndim = 1;
    // Elements before the parameter's first 64-byte boundary, where its element updates are
    // independent of how the range is cut (0 otherwise): a team's pieces then start on cache
    // lines of the parameter, and a long first piece is cut there too, so the vector loop's
    // stores (and its state's, placed alike: state_arena.hpp) never straddle two lines.
    std::uint8_t lead = 0;
    std::size_t matrices = 1, rows = 1, cols = 0;
    // Where data[] start within the parameter, in elements: 0, but for a block of a 16-bit
    // parameter run on float32 scratch (kernels/scratch.hpp), whose operands start at the
    // block. State of another shape is not moved: a rule indexes it from offset + the element.
    std::size_t offset = 0;
};

// A piece from a segment's start this long or longer runs the segment's lead apart
// (kernels/parallel.hpp, PeelLead); a shorter one takes its lead in its vector loop.
constexpr std::size_t kPeelMinElements = 1024;

struct SegmentList {
    const Segment* segments;
    const std::size_t* starts;  // starts[i] = first element of segment i; starts[count] = total
    std::size_t count;
    std::size_t total;
    std::size_t align = 16;  // pieces of a team start at multiples of this many elements of a
                             // segment after its lead (a cache line of float32; int8 state:
                             // its 256-blocks)
};

// Elements of `item` bytes at `data` before its first 64-byte boundary (Segment::lead).
inline std::uint8_t lead_to_line(const void* data, std::size_t item) {
    const auto at = reinterpret_cast<std::uintptr_t>(data);
    return at % item ? 0 : static_cast<std::uint8_t>((64 - at % 64) % 64 / item);
}

// How a kernel call may use threads. Fixed by the caller so results never depend on it.
struct Exec {
    int threads;                 // upper bound on the OpenMP team size
    std::size_t min_parallel;    // below this many elements, run on the calling thread
    bool flush_denormals = false; // rule kernels: FTZ and DAZ on while they run (parallel.hpp)
};

// Whether work over `total` elements is split over the threads (else the calling thread runs it).
inline bool splits_work(std::size_t total, const Exec& e) { return e.threads > 1 && total >= e.min_parallel; }

// bf16 and f16: parameters and gradients stored in 16 bits (ml_dtypes.bfloat16, numpy.float16),
// updated in float32 (kernels/scratch.hpp); also compressed state (bf16). u8: the codes
// of int8 state (kernels/quantize.hpp), never a parameter.
enum class DType { f32 = 0, f64 = 1, bf16 = 2, f16 = 3, u8 = 4 };
constexpr int kDTypeCount = 4;  // the parameters' dtypes
inline constexpr std::size_t dtype_size(DType t) {
    return t == DType::f64 ? 8 : t == DType::f32 ? 4 : t == DType::u8 ? 1 : 2;
}
inline constexpr bool low_precision(DType t) { return t == DType::bf16 || t == DType::f16; }

}  // namespace fusedopt
