// The kernel source, compiled once per SIMD target (see CMakeLists.txt). Everything lives in
// namespace fusedopt::<target> with internal linkage, so a lower target never runs code
// compiled for a higher one; only kernel_table() is visible to dispatch.cpp.
#include <cstddef>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fusedopt/kernel_table.hpp"

#ifndef FUSEDOPT_TARGET
#error "FUSEDOPT_TARGET must name the SIMD target (baseline, avx2, avx512)"
#endif
#define FUSEDOPT_STR2(x) #x
#define FUSEDOPT_STR(x) FUSEDOPT_STR2(x)

namespace fusedopt {
namespace FUSEDOPT_TARGET {
namespace {

#include "fusedopt/kernels/element_math.hpp"
#include "fusedopt/kernels/parallel.hpp"
#include "fusedopt/kernels/sgd.hpp"
#include "fusedopt/kernels/adagrad_rmsprop.hpp"
#include "fusedopt/kernels/adam_family.hpp"
#include "fusedopt/kernels/reduce.hpp"

template <class S>
constexpr RuleKernels<S> both(void (*f32)(const SegmentList&, const S&, const GradTransform&, const Exec&),
                              void (*f64)(const SegmentList&, const S&, const GradTransform&, const Exec&)) {
    return RuleKernels<S>{f32, f64};
}

}  // namespace

const KernelTable& kernel_table() {
    static const KernelTable table{
        FUSEDOPT_STR(FUSEDOPT_TARGET),
        both<SgdScalars>(&sgd_kernel<float>, &sgd_kernel<double>),
        both<AdagradScalars>(&adagrad_kernel<float>, &adagrad_kernel<double>),
        both<RmspropScalars>(&rmsprop_kernel<float>, &rmsprop_kernel<double>),
        both<AdamScalars>(&adam_kernel<float>, &adam_kernel<double>),
        both<AdamaxScalars>(&adamax_kernel<float>, &adamax_kernel<double>),
        both<NadamScalars>(&nadam_kernel<float>, &nadam_kernel<double>),
        both<RadamScalars>(&radam_kernel<float>, &radam_kernel<double>),
        both<LionScalars>(&lion_kernel<float>, &lion_kernel<double>),
        NormKernels{&norm_kernel<float>, &norm_kernel<double>},
        ElementwiseKernels{&scale_kernel<float>, &scale_kernel<double>, &clamp_kernel<float>,
                           &clamp_kernel<double>},
        ProbeKernels{&probe_kernel<float>, &probe_kernel<double>},
    };
    return table;
}

}  // namespace FUSEDOPT_TARGET
}  // namespace fusedopt
