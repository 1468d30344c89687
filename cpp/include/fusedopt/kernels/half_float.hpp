// bfloat16 and float16 values: exact widening to float32, rounding to nearest even, and the
// two storage types the norm and sum-of-squares passes read. Included inside a per-target
// anonymous namespace, before lane_sum.hpp (stochastic rounding and the 16-bit kernels:
// low_precision.hpp).

// (kernels_target.cpp includes <immintrin.h> for the F16C intrinsics, outside the namespaces.)

inline std::uint32_t f32_bits(float x) { return __builtin_bit_cast(std::uint32_t, x); }
inline float f32_from(std::uint32_t u) { return __builtin_bit_cast(float, u); }

// bfloat16 -> float32 is exact (the top half of the bits).
inline float bf16_to_f32(std::uint16_t h) { return f32_from(std::uint32_t(h) << 16); }
// float32 -> bfloat16, round to nearest even; NaN becomes the quiet NaN of its sign, as
// ml_dtypes (Eigen) does, so the NumPy reference's astype() gives the same bits. Integer
// arithmetic, which every target vectorizes; AVX512-BF16's vcvtneps2bf16 is not used since it
// flushes denormal inputs, where ml_dtypes rounds them.
// All in 32 bits, narrowed once: GCC vectorizes this form (selecting between 16-bit values
// left the loop scalar, 7x slower than a float32 Adam step).
inline std::uint16_t f32_to_bf16(float x) {
    const std::uint32_t u = f32_bits(x);
    const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const std::uint32_t nan = ((u >> 16) & 0x8000u) | 0x7fc0u;
    return static_cast<std::uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

// float16: F16C's instructions where the target has them (GCC emits them for _Float16
// conversions too), else integer arithmetic with the same results, which the compiler
// vectorizes: GCC's software _Float16 is a libgcc call per value (the baseline target's float16
// Adam took 69 ms per 1M parameters). Checked once against F16C, bit for bit, for every float16
// and, narrowing, every float32, with FTZ/DAZ on and off (NaNs quieted as F16C does); the suite
// sends every 16-bit pattern through each target (test_every_16bit_value_survives_a_step_of_zero).
#if defined(__F16C__)
inline float f16_to_f32(std::uint16_t h) { return static_cast<float>(__builtin_bit_cast(_Float16, h)); }
inline std::uint16_t f32_to_f16(float x) { return __builtin_bit_cast(std::uint16_t, static_cast<_Float16>(x)); }
#else
// (Selections by masks: written with ?:, GCC made branches of them, the float additions moved
// inside, and the loops stayed scalar.)
inline std::uint32_t all_if(bool c) { return 0u - static_cast<std::uint32_t>(c); }
inline float f16_to_f32(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    const std::uint32_t em = std::uint32_t(h & 0x7fffu) << 13;  // exponent and mantissa, float32's places
    const std::uint32_t exp = em & 0x0f800000u;
    const std::uint32_t rebiased = em + (112u << 23);  // (127 - 15) << 23
    const std::uint32_t special = (rebiased + (112u << 23)) | (0x400000u & all_if(em & 0x7fffffu));  // inf, quiet NaN
    // a subnormal or zero: 2^-14 * (1 + m / 1024) - 2^-14, exactly m * 2^-24
    const std::uint32_t small = f32_bits(f32_from(rebiased + (1u << 23)) - f32_from(113u << 23));
    const std::uint32_t is_special = all_if(exp == 0x0f800000u), is_small = all_if(exp == 0);
    return f32_from(sign | (special & is_special) | (small & is_small) | (rebiased & ~(is_special | is_small)));
}
inline std::uint16_t f32_to_f16(float x) {
    const std::uint32_t u = f32_bits(x);
    const std::uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    // a normal float16: rebiased by -112 << 23, the 13 dropped bits rounded to nearest even
    const std::uint32_t normal = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;
    // below 2^-14: adding 0.5, whose spacing is float16's subnormal step 2^-24, rounds to it
    const std::uint32_t subnormal = f32_bits(f32_from(a) + 0.5f) - 0x3f000000u;
    const std::uint32_t nan = 0x7e00u | ((a >> 13) & 0x3ffu);
    // (a < 2^31: signed comparisons, which SSE2 has)
    const std::int32_t s = static_cast<std::int32_t>(a);
    const std::uint32_t is_nan = all_if(s > 0x7f800000), is_inf = all_if(s >= 0x477ff000) & ~is_nan;  // from 65520
    const std::uint32_t is_sub = all_if(s < 0x38800000);
    const std::uint32_t r = (nan & is_nan) | (0x7c00u & is_inf) | (subnormal & is_sub) |
                            (normal & ~(is_nan | is_inf | is_sub));
    return static_cast<std::uint16_t>(sign | r);
}
#endif

// The storage types, for the sums of squares (lane_sum.hpp) and the norm pass
// (static_cast<double>(x) reads one element).
struct Bf16 {
    std::uint16_t bits;
    explicit operator double() const { return static_cast<double>(bf16_to_f32(bits)); }
};
struct F16 {
    std::uint16_t bits;
    explicit operator double() const { return static_cast<double>(f16_to_f32(bits)); }
};

inline void widen_bf16(const std::uint16_t* __restrict in, float* __restrict out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}
inline void narrow_bf16(const float* __restrict in, std::uint16_t* __restrict out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(in[i]);
}

inline void widen_f16(const std::uint16_t* __restrict in, float* __restrict out, std::size_t n) {
    std::size_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
#endif
    for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}
inline void narrow_f16(const float* __restrict in, std::uint16_t* __restrict out, std::size_t n) {
    std::size_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < n; ++i) out[i] = f32_to_f16(in[i]);
}

inline void widen(DType t, const std::uint16_t* in, float* out, std::size_t n) {
    if (t == DType::bf16) widen_bf16(in, out, n); else widen_f16(in, out, n);
}
inline void narrow(DType t, const float* in, std::uint16_t* out, std::size_t n) {
    if (t == DType::bf16) narrow_bf16(in, out, n); else narrow_f16(in, out, n);
}
