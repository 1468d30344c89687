// The target's float32 vector for the hand-vectorized loops (16-bit storage:
// vector_storage.hpp): 16 lanes on AVX-512, 8 on AVX2, and the operations they use, named once
// so a loop is written once for both. FUSEDOPT_SIMD_LANES is 0 on the baseline target, which has
// no such loops. Plain IEEE operations, each one rounding, as the scalar code they mirror. A VecF
// is a GCC vector type, so + - * / and `a < b ? x : y` work on it lane by lane, and the element
// functions of a rule (element_math.hpp, adam_common.hpp) take it as their T: splat, fmadd,
// sqrt_ and abs_ are its overloads, declared here, before those templates (a VecF has no namespace for
// argument-dependent lookup to find later ones in). Included inside a per-target
// anonymous namespace.

// A scalar hyperparameter as the element type T (a VecF: in every lane).
template <class T>
inline T splat(double x) {
    return static_cast<T>(x);
}

#if defined(__AVX512F__)
#define FUSEDOPT_SIMD_LANES 16
using VecF = __m512;
using VecI = __m512i;
using VecMask = __mmask16;
inline VecF vload(const float* a) { return _mm512_loadu_ps(a); }
inline void vstore(float* a, VecF x) { _mm512_storeu_ps(a, x); }
inline VecF vset(float x) { return _mm512_set1_ps(x); }
inline VecI vset_i(std::uint32_t x) { return _mm512_set1_epi32(static_cast<int>(x)); }
inline VecF sqrt_(VecF a) { return _mm512_sqrt_ps(a); }
inline VecF abs_(VecF a) { return _mm512_abs_ps(a); }
inline VecF fmadd(VecF a, VecF b, VecF c) { return _mm512_fmadd_ps(a, b, c); }
inline VecMask vnan(VecF a) { return _mm512_fpclass_ps_mask(a, 0x81); }  // quiet or signaling
inline VecMask vnan_either(VecF a, VecF b) { return _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q); }
inline bool vnone(VecMask m) { return m == 0; }
inline VecI vbits(VecF a) { return _mm512_castps_si512(a); }
inline VecF vfloat(VecI a) { return _mm512_castsi512_ps(a); }
inline VecI vadd_i(VecI a, VecI b) { return _mm512_add_epi32(a, b); }
inline VecI vmul_i(VecI a, VecI b) { return _mm512_mullo_epi32(a, b); }
inline VecI vand_i(VecI a, VecI b) { return _mm512_and_si512(a, b); }
inline VecI vor_i(VecI a, VecI b) { return _mm512_or_si512(a, b); }
inline VecI vxor_i(VecI a, VecI b) { return _mm512_xor_si512(a, b); }
inline VecI vshr_i(VecI a, int k) { return _mm512_srli_epi32(a, static_cast<unsigned>(k)); }
inline VecI vshl_i(VecI a, int k) { return _mm512_slli_epi32(a, static_cast<unsigned>(k)); }
inline VecI vselect_i(VecMask m, VecI if_clear, VecI if_set) { return _mm512_mask_blend_epi32(m, if_clear, if_set); }
inline VecI vlane_index() { return _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0); }
inline VecI vmax_u(VecI a, VecI b) { return _mm512_max_epu32(a, b); }  // (unsigned lanes)
inline std::uint32_t vlargest_u(VecI a) { return _mm512_reduce_max_epu32(a); }
// 2 x 16 bfloat16 or float16 <-> two vectors of float32 bits (the first 16 elements in lo).
inline void vwiden_u16(const std::uint16_t* a, VecI& lo, VecI& hi) {
    lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
    hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 16)));
}
// The top 16 bits of each lane of lo, then of hi, stored as 32 consecutive values.
inline void vstore_top_halves(std::uint16_t* out, VecI lo, VecI hi) {
    const __m512i odd = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27,
                                         25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    _mm512_storeu_si512(out, _mm512_permutex2var_epi16(lo, odd, hi));
}
// Each lane times r in float64, rounded back to float32 (DivideByConstant).
inline VecF vscale_f64(VecF x, double r) {
    const __m512d k = _mm512_set1_pd(r);
    const __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(x)), k));
    const __m256 hi = _mm512_cvtpd_ps(
        _mm512_mul_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))), k));
    const __m512d both = _mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1);
    return _mm512_castpd_ps(both);
}
inline VecF vload_f16(const std::uint16_t* a) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
}
inline void vstore_f16(std::uint16_t* a, VecF x) {  // to nearest even
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define FUSEDOPT_SIMD_LANES 8
using VecF = __m256;
using VecI = __m256i;
using VecMask = __m256;  // (all bits of a lane set or clear)
inline VecF vload(const float* a) { return _mm256_loadu_ps(a); }
inline void vstore(float* a, VecF x) { _mm256_storeu_ps(a, x); }
inline VecF vset(float x) { return _mm256_set1_ps(x); }
inline VecI vset_i(std::uint32_t x) { return _mm256_set1_epi32(static_cast<int>(x)); }
inline VecF sqrt_(VecF a) { return _mm256_sqrt_ps(a); }
inline VecF abs_(VecF a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
inline VecF fmadd(VecF a, VecF b, VecF c) { return _mm256_fmadd_ps(a, b, c); }
inline VecMask vnan(VecF a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
inline VecMask vnan_either(VecF a, VecF b) { return _mm256_cmp_ps(a, b, _CMP_UNORD_Q); }
inline bool vnone(VecMask m) { return _mm256_movemask_ps(m) == 0; }
inline VecI vbits(VecF a) { return _mm256_castps_si256(a); }
inline VecF vfloat(VecI a) { return _mm256_castsi256_ps(a); }
inline VecI vadd_i(VecI a, VecI b) { return _mm256_add_epi32(a, b); }
inline VecI vmul_i(VecI a, VecI b) { return _mm256_mullo_epi32(a, b); }
inline VecI vand_i(VecI a, VecI b) { return _mm256_and_si256(a, b); }
inline VecI vor_i(VecI a, VecI b) { return _mm256_or_si256(a, b); }
inline VecI vxor_i(VecI a, VecI b) { return _mm256_xor_si256(a, b); }
inline VecI vshr_i(VecI a, int k) { return _mm256_srli_epi32(a, k); }
inline VecI vshl_i(VecI a, int k) { return _mm256_slli_epi32(a, k); }
inline VecI vselect_i(VecMask m, VecI if_clear, VecI if_set) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(if_clear), _mm256_castsi256_ps(if_set), m));
}
inline VecI vlane_index() { return _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0); }
inline VecI vmax_u(VecI a, VecI b) { return _mm256_max_epu32(a, b); }  // (unsigned lanes)
inline std::uint32_t vlargest_u(VecI a) {
    __m128i m = _mm_max_epu32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4e));
    return static_cast<std::uint32_t>(_mm_cvtsi128_si32(_mm_max_epu32(m, _mm_shuffle_epi32(m, 0xb1))));
}
// Two 128-bit loads, each widened (vpmovzxwd from memory): one 256-bit load and an extract of
// its upper half made SGD momentum on bfloat16 1.3x slower on Zen 3.
inline void vwiden_u16(const std::uint16_t* a, VecI& lo, VecI& hi) {
    lo = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
    hi = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 8)));
}
inline void vstore_top_halves(std::uint16_t* out, VecI lo, VecI hi) {
    // (the pack interleaves 128-bit halves: lo 0-3, hi 0-3, lo 4-7, hi 4-7; the permute sorts them)
    const __m256i packed = _mm256_packus_epi32(_mm256_srli_epi32(lo, 16), _mm256_srli_epi32(hi, 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute4x64_epi64(packed, 0xd8));
}
inline VecF vscale_f64(VecF x, double r) {
    const __m256d k = _mm256_set1_pd(r);
    const __m128 lo = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)), k));
    const __m128 hi = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), k));
    return _mm256_set_m128(hi, lo);
}
inline VecF vload_f16(const std::uint16_t* a) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
}
inline void vstore_f16(std::uint16_t* a, VecF x) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

#else
#define FUSEDOPT_SIMD_LANES 0
#endif

#if FUSEDOPT_SIMD_LANES
template <>
inline VecF splat<VecF>(double x) {
    return vset(static_cast<float>(x));
}
#endif
