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

// float16 via _Float16 (GCC >= 12 on x86-64; software round-to-nearest-even without F16C),
// and the F16C vector instructions where the target has them.
inline float f16_to_f32(std::uint16_t h) { return static_cast<float>(__builtin_bit_cast(_Float16, h)); }
inline std::uint16_t f32_to_f16(float x) { return __builtin_bit_cast(std::uint16_t, static_cast<_Float16>(x)); }

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
