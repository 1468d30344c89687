// The table of kernels one SIMD target provides. Chosen once at import (dispatch.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "fusedopt/rule.hpp"
#include "fusedopt/segments.hpp"

namespace fusedopt {

// One pass over the gradients (operand 1): what global-norm clipping and the
// non-finite check need, accumulated in float64 over fixed chunks.
struct NormPartials {
    double sum = 0;         // sum of |g|^p (p = 2 unless a kernel says otherwise)
    double max_abs = 0;
    double min_abs = 0;     // +inf for an empty range
    bool nan = false;
};

// l2_sum: the sum of squares alone (no max, min or scale): the fast first pass of a 2-norm,
// enough whenever that sum is finite and far from float64's limits.
enum class NormKind { l2 = 0, l1 = 1, pnorm = 2, l2_sum = 3 };

// A power of two applied as two factors, (|g| * first) * second: float64's largest power of two
// is 2^1023, and bringing a subnormal maximum (down to 2^-1074) near 1 takes up to 2^1074.
struct NormScale {
    double first = 1.0, second = 1.0;
};

// The norm pass's fixed grid: a range of `total` elements is cut into chunks of this size (at most
// kMaxNormChunks of them), each reduced alone and the chunks' partials folded in order. Defined
// once (norm.cpp) for every target, so a sharded step can cut its shard on the same grid.
constexpr std::size_t kMaxNormChunks = 1024;
std::size_t norm_chunk_size(std::size_t total);
// The chunks' partials folded in chunk order: sums added, max and min taken, NaN from the sum.
NormPartials fold_norm_partials(const NormPartials* parts, std::size_t n);

struct NormKernels {
    // kind l2: sum of (|g|*scale)^2; l1: of |g|*scale; pnorm: of (|g|*scale)^p; each also max |g|,
    // min |g| and NaN presence. l2_sum: the sum of squares only. Operand `slot` is read.
    NormPartials (*f32)(const SegmentList&, int slot, NormKind, double p, NormScale scale, const Exec&);
    NormPartials (*f64)(const SegmentList&, int slot, NormKind, double p, NormScale scale, const Exec&);
    NormPartials (*bf16)(const SegmentList&, int slot, NormKind, double p, NormScale scale, const Exec&);
    NormPartials (*f16)(const SegmentList&, int slot, NormKind, double p, NormScale scale, const Exec&);
    auto get(DType t) const { return t == DType::f32 ? f32 : t == DType::f64 ? f64 : t == DType::bf16 ? bf16 : f16; }
    // The same pass's partials of each `chunk`-sized piece of the list, unfolded, into
    // out[0 .. ceil(total / chunk)): a shard on the grid of a larger range (fusedopt.distributed).
    using Chunks = void (*)(const SegmentList&, int slot, NormKind, double p, NormScale scale, std::size_t chunk,
                            NormPartials* out, const Exec&);
    Chunks chunks_f32;
    Chunks chunks_f64;
    Chunks chunks_bf16;
    Chunks chunks_f16;
    Chunks get_chunks(DType t) const {
        return t == DType::f32 ? chunks_f32 : t == DType::f64 ? chunks_f64 : t == DType::bf16 ? chunks_bf16 : chunks_f16;
    }
};

struct ElementwiseKernels {
    // x *= factor (operand 0), and x = clamp(x, lo, hi) (operand 0): standalone clipping.
    void (*scale_f32)(const SegmentList&, double factor, const Exec&);
    void (*scale_f64)(const SegmentList&, double factor, const Exec&);
    void (*clamp_f32)(const SegmentList&, double lo, double hi, const Exec&);
    void (*clamp_f64)(const SegmentList&, double lo, double hi, const Exec&);
    // The same on bfloat16 or float16 arrays: float32 arithmetic, each result rounded once.
    void (*scale_low)(const SegmentList&, double factor, DType, const Exec&);
    void (*clamp_low)(const SegmentList&, double lo, double hi, DType, const Exec&);
    // Arrays of dtype t, by the kernel for it.
    void scale(const SegmentList& l, double factor, DType t, const Exec& e) const {
        if (low_precision(t)) return scale_low(l, factor, t, e);
        (t == DType::f32 ? scale_f32 : scale_f64)(l, factor, e);
    }
    void clamp(const SegmentList& l, double lo, double hi, DType t, const Exec& e) const {
        if (low_precision(t)) return clamp_low(l, lo, hi, t, e);
        (t == DType::f32 ? clamp_f32 : clamp_f64)(l, lo, hi, e);
    }
};

// The wrappers' pass over pairs of arrays (kernels/blend.hpp): operand 0 = a, operand 1 = b.
//   lerp: a = lerp(a, b, w)   lerp_sync: a = b = lerp(a, b, w)   div: a = a + (b - a) / w   copy: a = b
enum class BlendOp { lerp = 0, lerp_sync = 1, div = 2, copy = 3 };
struct BlendKernels {
    void (*f32)(const SegmentList&, BlendOp, double w, const Exec&);
    void (*f64)(const SegmentList&, BlendOp, double w, const Exec&);
    // `a` bfloat16 or float16, `b` of its dtype or float32: float32 arithmetic, a rounded once.
    void (*low)(const SegmentList&, BlendOp, double w, DType a, DType b, const Exec&);
    auto get(DType t) const { return t == DType::f32 ? f32 : f64; }
};

// x . y over n elements of two arrays, in the fixed order of kernels/lane_dot.hpp (LBFGS).
struct DotKernels {
    float (*f32)(const float*, const float*, std::size_t n, const Exec&);
    double (*f64)(const double*, const double*, std::size_t n, const Exec&);
};

// Memory-traffic probe: `rw` read-write operands (slots 0.., skipping slot 1) and the
// read-only gradient (slot 1), with trivial arithmetic.
struct ProbeKernels {
    void (*f32)(const SegmentList&, int rw, const Exec&);
    void (*f64)(const SegmentList&, int rw, const Exec&);
    // Other storage: parameter and gradient of param_bytes (2, 4), state of state_bytes (1, 2, 4).
    void (*mixed)(const SegmentList&, int rw, int param_bytes, int state_bytes, const Exec&);
};

// How a unit's parameter and state are stored when the rule's float32 kernel cannot run on them
// in place: 16-bit parameters and gradients (kernels/scratch.hpp), compressed state
// (bfloat16, or int8 codes with float32 block scales: kernels/quantize.hpp). The kernel then
// runs on float32 scratch, block by block.
// (bf16: also a 16-bit parameter's dtype; scales: an int8 operand's, read and written with it;
// whole: float32 state of another shape than the parameter, per row or column, which a block
// does not move: Segment::offset.)
constexpr std::size_t kQuantBlock = 256;  // int8 state: elements per float32 scale
enum class SlotStorage : unsigned char { plain, bf16, q8_signed, q8_unsigned, scales, whole };
struct Storage {
    DType param = DType::f32;     // f32, bf16 or f16
    int master = -1;              // operand of the float32 master copy (updated; the parameter
                                  // written from it), or -1: the parameter itself is widened
    bool stochastic = false;      // stochastic rounding of the parameter
    std::uint32_t key = 0;        // random bits from this key (seed, step, parameter), the
                                  // operand and the element's index
    SlotStorage slot[kMaxOperands] = {};  // how each state operand is stored
    int scales[kMaxOperands] = {};        // an int8 operand's block scales: their operand
};

// Whether the AVX-512 kernels may use AVX512-VBMI's byte permutes where the CPU has them
// (int8 state, kernels/quantize.hpp); tests turn it off to check the other path (dispatch.cpp).
bool byte_permutes_allowed();
// Whether a rule's vector loop may take 16-bit storage in place of scratch_chunk
// (kernels/vector_storage.hpp, with_vector_storage); tests turn it off to compare the two.
bool vector_loops_allowed();
// Adds to the count of elements vector loops took, while tests count them (dispatch.hpp,
// take_vector_loop_count), so a loop that silently stopped taking its storages fails a test.
void count_vector_loop(std::size_t elements);

struct KernelTable {
    const char* name;
    const RuleInfo* rules;  // every rule under rules/, in the same order on every target
    int rule_count;
    NormKernels norm;
    ElementwiseKernels elementwise;
    ProbeKernels probe;
    BlendKernels blend;
    DotKernels dot;
};

}  // namespace fusedopt
