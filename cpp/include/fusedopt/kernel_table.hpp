// The table of kernels one SIMD target provides. Chosen once at import (dispatch.cpp).
#pragma once
#include "fusedopt/scalars.hpp"
#include "fusedopt/segments.hpp"

namespace fusedopt {

template <class Scalars>
struct RuleKernels {
    void (*f32)(const SegmentList&, const Scalars&, const GradTransform&, const Exec&);
    void (*f64)(const SegmentList&, const Scalars&, const GradTransform&, const Exec&);
    auto get(DType t) const { return t == DType::f32 ? f32 : f64; }
};

enum class NormKind { l2 = 0, l1 = 1, pnorm = 2 };

struct NormKernels {
    // kind l2: sum of squares; l1: sum of |g|; pnorm: sum of (|g|*scale)^p.
    // Always also max |g|, min |g| and NaN presence. Operand `slot` of each segment is read.
    NormPartials (*f32)(const SegmentList&, int slot, NormKind, double p, double scale, const Exec&);
    NormPartials (*f64)(const SegmentList&, int slot, NormKind, double p, double scale, const Exec&);
    auto get(DType t) const { return t == DType::f32 ? f32 : f64; }
};

struct ElementwiseKernels {
    // x *= factor (operand 0), and x = clamp(x, lo, hi) (operand 0): standalone clipping.
    void (*scale_f32)(const SegmentList&, double factor, const Exec&);
    void (*scale_f64)(const SegmentList&, double factor, const Exec&);
    void (*clamp_f32)(const SegmentList&, double lo, double hi, const Exec&);
    void (*clamp_f64)(const SegmentList&, double lo, double hi, const Exec&);
};

// Memory-traffic probe: `rw` read-write operands (slots 0.., skipping slot 1) and the
// read-only gradient (slot 1), with trivial arithmetic.
struct ProbeKernels {
    void (*f32)(const SegmentList&, int rw, const Exec&);
    void (*f64)(const SegmentList&, int rw, const Exec&);
};

struct KernelTable {
    const char* name;
    RuleKernels<SgdScalars> sgd;
    RuleKernels<AdagradScalars> adagrad;
    RuleKernels<RmspropScalars> rmsprop;
    RuleKernels<AdamScalars> adam;
    RuleKernels<AdamaxScalars> adamax;
    RuleKernels<NadamScalars> nadam;
    RuleKernels<RadamScalars> radam;
    RuleKernels<LionScalars> lion;
    NormKernels norm;
    ElementwiseKernels elementwise;
    ProbeKernels probe;
};

}  // namespace fusedopt
