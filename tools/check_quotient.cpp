// Exhaustive checks of the divisions by a constant of the step that avoid the divider
// (cpp/include/fusedopt/kernels/element_math.hpp), against the division itself:
//
// - QuotientByConstant (Adam's multiply-adds): every float32 x in [2^-75, 2^64] (the square
//   roots of positive floats), and 0, infinity and NaN, for c = 2^-27 (the least Adam meets:
//   sqrt(1 - beta2) with beta2 < 1 in float64), just below 1, bit patterns around 0.5,
//   sqrt(1 - 0.999) and random values in between (a few with every significand bit set).
// - with --divide, DivideByConstant<float> and its vector form (vscale_f64: x * (1/c) in
//   float64): every float32 bit pattern of either sign, for the same values of c, with denormals
//   kept and flushed (FTZ and DAZ, as fusedopt's flush_denormals sets them).
//
// Minutes on one core:
//
//   g++ -O3 -march=x86-64-v3 -ffp-contract=off -Icpp/include tools/check_quotient.cpp \
//       -o /tmp/check_quotient && /tmp/check_quotient [--divide] [count of c values, default 40]
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <type_traits>

#include "fusedopt/kernel_table.hpp"

namespace fusedopt::check {  // (as kernels_target.cpp includes them)
#include "fusedopt/kernels/simd.hpp"
#include "fusedopt/kernels/element_math.hpp"
}  // namespace fusedopt::check
using namespace fusedopt;

#ifndef FUSEDOPT_USE_FMA
#error "build for a target with FMA (-march=x86-64-v3): without it the function divides"
#endif

static float from_bits(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
static std::uint32_t bits_of(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// How many x give other bits than x / c (0x1a000000: 2^-75, 0x5f800000: 2^64).
static std::uint64_t mismatches(float c) {
    const check::QuotientByConstant<float> quotient(c);
    std::uint64_t bad = 0;
    const auto one = [&](float x) { bad += bits_of(quotient(x)) != bits_of(x / c); };
    for (std::uint32_t u = 0x1a000000u; u <= 0x5f800000u; ++u) one(from_bits(u));
    one(0.0f);
    one(from_bits(0x7f800000u));
    one(from_bits(0x7fc00000u));
    return bad;
}

// How many x give other bits than x / c through DivideByConstant<float>, in loops the compiler
// vectorizes (as it does the kernels') and FUSEDOPT_SIMD_LANES at a time: every bit pattern from
// +0 to -infinity (the negative NaNs after it but the last block's few left out: both forms are
// symmetric in the sign).
static std::uint64_t divide_mismatches(float c) {
    const check::DivideByConstant<float> scalar(c);
    const check::DivideByConstant<check::VecF> vector(c);
    constexpr std::uint32_t block = 4096;
    alignas(64) static std::uint32_t x[block], want[block], got[block], got_vector[block];  // (bits: NaN == NaN)
    const float* xf = reinterpret_cast<const float*>(x);
    float* wf = reinterpret_cast<float*>(want);
    float* gf = reinterpret_cast<float*>(got);
    std::uint64_t bad = 0;
    for (std::uint64_t u = 0; u < 0xff800001u; u += block) {
        for (std::uint32_t k = 0; k < block; ++k) x[k] = static_cast<std::uint32_t>(u + k);
        for (std::uint32_t k = 0; k < block; ++k) wf[k] = xf[k] / c;
        for (std::uint32_t k = 0; k < block; ++k) gf[k] = scalar(xf[k]);
        for (std::uint32_t k = 0; k < block; k += FUSEDOPT_SIMD_LANES)
            check::vstore(reinterpret_cast<float*>(got_vector) + k, vector(check::vload(xf + k)));
        std::uint32_t n = 0;
        for (std::uint32_t k = 0; k < block; ++k) n += (got[k] != want[k]) + (got_vector[k] != want[k]);
        bad += n;
    }
    return bad;
}

int main(int argc, char** argv) {
    const bool divide = argc > 1 && std::strcmp(argv[1], "--divide") == 0;
    if (divide) --argc, ++argv;
    const int count = argc > 1 ? std::atoi(argv[1]) : 40;
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> exponent(-27.0, 0.0);
    const float fixed[] = {from_bits(0x32000000u), from_bits(0x3f7fffffu), from_bits(0x3f000001u),
                           from_bits(0x3effffffu), static_cast<float>(std::sqrt(1 - 0.999))};
    const int nfixed = static_cast<int>(sizeof fixed / sizeof fixed[0]);
    std::uint64_t total = 0;
    for (int i = 0; i < count; ++i) {
        float c = i < nfixed ? fixed[i] : static_cast<float>(std::exp2(exponent(rng)));
        if (i >= nfixed && i % 4 == 0) c = from_bits(bits_of(c) | 0x7fffffu);  // every significand bit set
        if (!(c < 1.0f)) c = from_bits(0x3f7fffffu);
        if (!divide) {
            const std::uint64_t bad = mismatches(c);
            total += bad;
            std::printf("c = %a: %llu mismatches\n", static_cast<double>(c), static_cast<unsigned long long>(bad));
            continue;
        }
        const unsigned csr = _mm_getcsr();
        for (const unsigned flush : {0u, 0x8040u}) {  // FTZ and DAZ
            _mm_setcsr(csr | flush);
            const std::uint64_t bad = divide_mismatches(c);
            _mm_setcsr(csr);
            total += bad;
            std::printf("c = %a%s: %llu mismatches\n", static_cast<double>(c), flush ? ", denormals flushed" : "",
                        static_cast<unsigned long long>(bad));
        }
    }
    std::printf("%d values of c, %llu mismatches in all\n", count, static_cast<unsigned long long>(total));
    return total == 0 ? 0 : 1;
}
