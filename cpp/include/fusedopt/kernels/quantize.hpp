// int8 optimizer state (state_dtype="int8"): block-wise dynamic quantization, as in Dettmers et
// al., "8-bit Optimizers via Block-wise Quantization" (2022). Every block of kQuantBlock elements
// keeps a float32 scale, its largest magnitude (absmax), and one byte per element: the code of
// the dynamic tree map's value nearest to x / absmax. The map is bitsandbytes' create_dynamic_map:
// decade i = 0..6 holds n_i values evenly spaced in [10^(i-7), 10^(i-6)) (the midpoints of
// n_i equal steps), n_i = 2^i for signed state (a sign bit and 128 magnitudes: zero, 1 and the
// decades, the last with 63 values) and 2^(i+1) for non-negative state (zero, 254 values, and 1).
// Both hold 1, so a block's largest value is stored exactly and a stored state quantizes to
// itself again (a conversion on load changes nothing). So entries 10^7 times smaller than
// their block's largest still keep a value (Adam's second moment: a zero there would turn the
// step into m / eps), with 1 to 2 significant digits; the largest keep 2 to 3.
// The same float32 arithmetic, without contractions, on every target; reference.py (quantize)
// computes the same bits. Included inside a per-target anonymous namespace.

constexpr int kDecades = 7;  // (kQuantBlock: kernel_table.hpp)

// One code book and the constants its quantizer compares with (all float32).
struct QuantMap {
    float value[256];          // code -> value in [-1, 1]
    float zero;                // below it: code 0
    float above[kDecades];     // above[i] (i >= 1): where decade i's values become nearer
    // In decade i, the code of a is min(trunc(a * scale[i] - offset[i]), end[i]): its values
    // are the midpoints of n_i equal bins of [10^(i-7), 10^(i-6)), so the bin holding a is its
    // nearest value; offset folds in the decade's first code, end is its last.
    float scale[kDecades], offset[kDecades];
    std::int32_t end[kDecades];
    std::int32_t base[kDecades];  // (the decade's first code)
    float one;                 // from here on, the top code (the value 1)
    std::int32_t top;          // 127 (signed: of the magnitude) or 255
    // AVX-512: the code as one formula min(trunc(a * scale - offset), end) on 9 levels: level 0
    // below `zero` (code 0), level 1 + i decade i, level 8 from `one` on (code top); the
    // constants of levels 0 and 8 are 0, 0, 0 and 0, -top, top. a in [2^e, 2^(e+1)), e = i - 31
    // (i = 0 also for anything smaller), is on level binade_level[i], or one more from
    // binade_above[i] on (the thresholds are at least 2x apart, so a binade holds at most one).
    static constexpr int kLevels = kDecades + 2;
    float level_scale[kLevels], level_offset[kLevels];
    std::int32_t level_end[kLevels];
    std::int32_t binade_level[32];
    float binade_above[32];
    // Byte b of value[c] at planes[b][c]: the code book for AVX512-VBMI's byte permutes.
    alignas(64) std::uint8_t planes[4][256];
};

inline QuantMap make_quant_map(bool is_signed) {
    constexpr double kPower[kDecades] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
    QuantMap q{};
    std::int32_t code = 1;
    for (int i = 0; i < kDecades; ++i) {
        const std::int32_t n = is_signed ? (i + 1 < kDecades ? std::int32_t(1) << i : 63) : std::int32_t(2) << i;
        const double step = 0.9 / n;
        q.base[i] = code;
        q.end[i] = code + n - 1;
        q.scale[i] = static_cast<float>(1.0 / (kPower[i] * step));
        q.offset[i] = static_cast<float>(0.1 / step - code);
        for (std::int32_t j = 0; j < n; ++j) q.value[code + j] = static_cast<float>(kPower[i] * (0.1 + (j + 0.5) * step));
        code += n;
    }
    q.value[0] = 0.0f;
    q.top = is_signed ? 127 : 255;
    q.value[q.top] = 1.0f;
    if (is_signed) {
        for (int c = 1; c < 128; ++c) q.value[128 + c] = -q.value[c];
        q.value[128] = 0.0f;  // never written (a zero magnitude has no sign)
    }
    q.zero = static_cast<float>(0.5 * double(q.value[1]));
    for (int i = 1; i < kDecades; ++i)
        q.above[i] = static_cast<float>(0.5 * (double(q.value[q.base[i] - 1]) + double(q.value[q.base[i]])));
    q.above[0] = 0.0f;
    q.one = static_cast<float>(0.5 * (double(q.value[q.top - 1]) + 1.0));
    float level_from[QuantMap::kLevels] = {0.0f, q.zero};  // where each level starts
    for (int i = 0; i < kDecades; ++i) {
        level_from[i + 2] = i + 2 < QuantMap::kLevels - 1 ? q.above[i + 1] : q.one;
        q.level_scale[i + 1] = q.scale[i];
        q.level_offset[i + 1] = q.offset[i];
        q.level_end[i + 1] = q.end[i];
    }
    q.level_offset[QuantMap::kLevels - 1] = -static_cast<float>(q.top);
    q.level_end[QuantMap::kLevels - 1] = q.top;
    for (int c = 0; c < 256; ++c)
        for (int b = 0; b < 4; ++b) q.planes[b][c] = static_cast<std::uint8_t>(__builtin_bit_cast(std::uint32_t, q.value[c]) >> (8 * b));
    for (int i = 0; i < 32; ++i) {
        const float low = __builtin_ldexpf(1.0f, i - 31);
        q.binade_level[i] = 0;
        q.binade_above[i] = __builtin_inff();
        for (int k = 1; k < QuantMap::kLevels; ++k) {
            if (level_from[k] <= low) q.binade_level[i] = k;
            else if (q.binade_above[i] == __builtin_inff()) q.binade_above[i] = level_from[k];
        }
    }
    return q;
}

inline const QuantMap& quant_map(bool is_signed) {
    static const QuantMap signed_map = make_quant_map(true), nonnegative_map = make_quant_map(false);
    return is_signed ? signed_map : nonnegative_map;
}

// The codes of x[0, n) * inv: the decade by comparing with each threshold, then the nearest of
// its values. Plain float32 arithmetic (no contraction), vectorized by the compiler.
template <bool Signed>
void quantize_codes(const float* __restrict x, std::uint8_t* __restrict out, std::size_t n, float inv,
                    const QuantMap& q) {
    const float zero = q.zero, one = q.one;
    const std::int32_t top = q.top;
    float above[kDecades], scale[kDecades], offset[kDecades];
    std::int32_t end[kDecades];
    for (int k = 0; k < kDecades; ++k) {
        above[k] = q.above[k];
        scale[k] = q.scale[k];
        offset[k] = q.offset[k];
        end[k] = q.end[k];
    }
    for (std::size_t i = 0; i < n; ++i) {
        float a = __builtin_fabsf(x[i]) * inv;
        a = a == a ? a : 0.0f;  // (inv is 0 for a non-finite block: 0 * inf)
        float s = scale[0], o = offset[0];
        std::int32_t e = end[0];
        for (int k = 1; k < kDecades; ++k) {  // the decade: how many thresholds a reaches
            const bool ge = a >= above[k];
            s = ge ? scale[k] : s;
            o = ge ? offset[k] : o;
            e = ge ? end[k] : e;
        }
        std::int32_t c = static_cast<std::int32_t>(a * s - o);  // >= the decade's first code (a >= its threshold)
        c = c < e ? c : e;
        std::int32_t code = a < zero ? 0 : a >= one ? top : c;
        if (Signed) code = code != 0 && x[i] < 0.0f ? code | 128 : code;
        out[i] = static_cast<std::uint8_t>(code);
    }
}

#if defined(__AVX512F__)
// The same codes, 16 at a time, for a finite scale (so a <= 1 + 2 ulp): the level from the
// binary exponent and one comparison, its constants by permutes from registers (the compiler's
// version of the comparison chain spills them), then one formula for every level; the same
// float32 operations, so the same bits (checked against quantize_codes for every float32 a).
// The code book's constants in registers, loaded once per span.
struct QuantRegs {
    __m512 scale_t, offset_t, thr_lo, thr_hi;
    __m512i end_t, level_lo, level_hi;
    explicit QuantRegs(const QuantMap& q) {
        alignas(64) float scale[16] = {}, offset[16] = {};
        alignas(64) std::int32_t end[16] = {};
        for (int k = 0; k < QuantMap::kLevels; ++k) {
            scale[k] = q.level_scale[k];
            offset[k] = q.level_offset[k];
            end[k] = q.level_end[k];
        }
        scale_t = _mm512_load_ps(scale);
        offset_t = _mm512_load_ps(offset);
        end_t = _mm512_load_si512(end);
        level_lo = _mm512_loadu_si512(q.binade_level);
        level_hi = _mm512_loadu_si512(q.binade_level + 16);
        thr_lo = _mm512_loadu_ps(q.binade_above);
        thr_hi = _mm512_loadu_ps(q.binade_above + 16);
    }
};

// The codes of 16 values x * inv, as 32-bit lanes.
template <bool Signed>
inline __m512i quantize16(__m512 x, __m512 inv, const QuantRegs& r) {
    const __m512 a = _mm512_mul_ps(_mm512_abs_ps(x), inv);
    // (the permutes read the low 5 bits of the biased exponent, clamped below at 96: 2^-31)
    const __m512i idx = _mm512_srli_epi32(_mm512_max_epu32(_mm512_castps_si512(a), _mm512_set1_epi32(96 << 23)), 23);
    __m512i level = _mm512_permutex2var_epi32(r.level_lo, idx, r.level_hi);
    const __m512 thr = _mm512_permutex2var_ps(r.thr_lo, idx, r.thr_hi);
    level = _mm512_mask_add_epi32(level, _mm512_cmp_ps_mask(a, thr, _CMP_GE_OQ), level, _mm512_set1_epi32(1));
    const __m512 t = _mm512_sub_ps(_mm512_mul_ps(a, _mm512_permutexvar_ps(level, r.scale_t)),
                                   _mm512_permutexvar_ps(level, r.offset_t));
    const __m512i code = _mm512_min_epi32(_mm512_cvttps_epi32(t), _mm512_permutexvar_epi32(level, r.end_t));
    if (!Signed) return code;
    const __mmask16 neg = _mm512_mask_cmp_ps_mask(_mm512_test_epi32_mask(code, code), x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_or_epi32(code, neg, code, _mm512_set1_epi32(128));
}

template <bool Signed>
inline void quantize_simd(const float* __restrict x, std::uint8_t* __restrict out, std::size_t n, float inv,
                          const QuantRegs& r, const QuantMap&) {
    const __m512 invv = _mm512_set1_ps(inv);
    // 64 codes narrowed by two saturating packs (no-ops: codes are < 256) and one permute: the
    // packs interleave 4-byte groups of the four vectors, per 128-bit lane
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512i c0 = quantize16<Signed>(_mm512_loadu_ps(x + i), invv, r);
        const __m512i c1 = quantize16<Signed>(_mm512_loadu_ps(x + i + 16), invv, r);
        const __m512i c2 = quantize16<Signed>(_mm512_loadu_ps(x + i + 32), invv, r);
        const __m512i c3 = quantize16<Signed>(_mm512_loadu_ps(x + i + 48), invv, r);
        const __m512i bytes = _mm512_packus_epi16(_mm512_packus_epi32(c0, c1), _mm512_packus_epi32(c2, c3));
        _mm512_storeu_si512(out + i, _mm512_permutexvar_epi32(order, bytes));
    }
    for (; i < n; i += 16) {  // (narrowed in a register: the masked narrowing store is microcoded on AMD Zen 4)
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1u);
        _mm_mask_storeu_epi8(out + i, m, _mm512_cvtepi32_epi8(quantize16<Signed>(_mm512_maskz_loadu_ps(m, x + i), invv, r)));
    }
}
#elif FUSEDOPT_SIMD_LANES == 8
// AVX2: the level (as above) by counting the thresholds a reaches, 8 comparisons with no
// dependence between them (a lookup by binade takes 4 permutes of 8 and 3 blends per table
// here), its constants by permutes of 8 (level 8, from `one` on, by a blend), then the same
// formula: the same float32 operations, the same bits.
struct QuantRegs {
    __m256 threshold[QuantMap::kLevels - 1];  // where levels 1..8 start
    __m256 scale_t, offset_t;
    __m256i end_t, top;
    explicit QuantRegs(const QuantMap& q) {
        threshold[0] = _mm256_set1_ps(q.zero);
        for (int i = 1; i < kDecades; ++i) threshold[i] = _mm256_set1_ps(q.above[i]);
        threshold[kDecades] = _mm256_set1_ps(q.one);
        scale_t = _mm256_loadu_ps(q.level_scale);  // (levels 0..7)
        offset_t = _mm256_loadu_ps(q.level_offset);
        end_t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.level_end));
        top = _mm256_set1_epi32(q.top);
    }
};

// The codes of 8 values x * inv, as 32-bit lanes.
template <bool Signed>
inline __m256i quantize8(__m256 x, __m256 inv, const QuantRegs& r) {
    const __m256 a = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), inv);
    __m256i level = _mm256_setzero_si256();
    for (int k = 0; k < kDecades; ++k)  // (a comparison is -1 where it holds)
        level = _mm256_sub_epi32(level, _mm256_castps_si256(_mm256_cmp_ps(a, r.threshold[k], _CMP_GE_OQ)));
    const __m256 t = _mm256_sub_ps(_mm256_mul_ps(a, _mm256_permutevar8x32_ps(r.scale_t, level)),
                                   _mm256_permutevar8x32_ps(r.offset_t, level));
    __m256i code = _mm256_min_epi32(_mm256_cvttps_epi32(t), _mm256_permutevar8x32_epi32(r.end_t, level));
    code = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(code), _mm256_castsi256_ps(r.top),
                                                _mm256_cmp_ps(a, r.threshold[kDecades], _CMP_GE_OQ)));
    if (!Signed) return code;
    // 128 where x is negative and its code is not 0 (a code > 0 means x is not 0 or NaN)
    const __m256i sign = _mm256_srli_epi32(_mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(INT32_MIN)), 24);
    return _mm256_or_si256(code, _mm256_andnot_si256(_mm256_cmpeq_epi32(code, _mm256_setzero_si256()), sign));
}

template <bool Signed>
inline void quantize_simd(const float* __restrict x, std::uint8_t* __restrict out, std::size_t n, float inv,
                          const QuantRegs& r, const QuantMap& q) {
    const __m256 invv = _mm256_set1_ps(inv);
    // 32 codes narrowed by two saturating packs (no-ops: codes are < 256), which interleave
    // 4-byte groups of the four vectors per 128-bit lane, and one permute that sorts them
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i c0 = quantize8<Signed>(_mm256_loadu_ps(x + i), invv, r);
        const __m256i c1 = quantize8<Signed>(_mm256_loadu_ps(x + i + 8), invv, r);
        const __m256i c2 = quantize8<Signed>(_mm256_loadu_ps(x + i + 16), invv, r);
        const __m256i c3 = quantize8<Signed>(_mm256_loadu_ps(x + i + 24), invv, r);
        const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(c0, c1), _mm256_packus_epi32(c2, c3));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permutevar8x32_epi32(bytes, order));
    }
    quantize_codes<Signed>(x + i, out + i, n - i, inv, q);  // (the tail of a segment)
}
#endif

// A block's scale, its largest magnitude, from the largest bits of its magnitudes (for
// non-negative floats the order of the bits is the order of the values, and any NaN is above
// infinity; a float max reduction is not vectorized without -ffast-math): NaN if it holds a NaN.
inline float block_absmax(std::uint32_t largest_bits) {
    return largest_bits > 0x7f800000u ? __builtin_nanf("") : __builtin_bit_cast(float, largest_bits);
}
inline float inverse_scale(float absmax) { return absmax > 0.0f && absmax <= __FLT_MAX__ ? 1.0f / absmax : 0.0f; }

#if FUSEDOPT_SIMD_LANES
// The codes of x[0, n) * inv (one block's run), vectorized where the scale is finite and nonzero
// (else all codes are 0, or absmax is below 2^-128).
template <bool Signed>
inline void quantize_run(const float* __restrict x, std::uint8_t* __restrict out, std::size_t n, float inv,
                         const QuantRegs& r, const QuantMap& q) {
    if (inv > 0.0f && inv <= __FLT_MAX__)
        quantize_simd<Signed>(x, out, n, inv, r, q);
    else
        quantize_codes<Signed>(x, out, n, inv, q);
}
#endif

// x[0, n) -> codes and the scales of its blocks of kQuantBlock (from x's start): each block's
// largest magnitude (NaN if it holds a NaN; a block with a NaN or an infinity reads back as
// NaN: its codes are 0 and its scale is not finite).
template <bool Signed>
void quantize_span(const float* __restrict x, std::uint8_t* __restrict out, float* __restrict scales, std::size_t n,
                   const QuantMap& q) {
#if FUSEDOPT_SIMD_LANES
    const QuantRegs regs(q);
#endif
    for (std::size_t b = 0; b < n; b += kQuantBlock) {
        const std::size_t m = n - b < kQuantBlock ? n - b : kQuantBlock;
        std::uint32_t bits = 0;
        for (std::size_t i = 0; i < m; ++i) {
            const std::uint32_t u = __builtin_bit_cast(std::uint32_t, x[b + i]) & 0x7fffffffu;
            bits = u > bits ? u : bits;
        }
        const float absmax = block_absmax(bits);
#if FUSEDOPT_SIMD_LANES
        quantize_run<Signed>(x + b, out + b, m, inverse_scale(absmax), regs, q);
#else
        quantize_codes<Signed>(x + b, out + b, m, inverse_scale(absmax), q);
#endif
        scales[b / kQuantBlock] = absmax;
    }
}

#if defined(__AVX512F__)
// 16 codes -> their values times `scale`: the values in registers, looked up 32 at a time by
// permutes and chosen by the code's bits 5 and 6 (and 7); signed codes look up their
// magnitude and flip its sign (value[128 + c] = -value[c], but value[128] = +0), so half the
// permutes (the compiler emulates a gather with 16 scalar loads instead).
template <bool Signed>
inline __m512 dequantize16(__m512i c, __m512 scale, const __m512* t) {
    __m512 r[Signed ? 4 : 8];
    for (int k = 0; k < (Signed ? 4 : 8); ++k) r[k] = _mm512_permutex2var_ps(t[2 * k], c, t[2 * k + 1]);
    const __mmask16 m5 = _mm512_test_epi32_mask(c, _mm512_set1_epi32(32));
    const __mmask16 m6 = _mm512_test_epi32_mask(c, _mm512_set1_epi32(64));
    const __mmask16 m7 = _mm512_test_epi32_mask(c, _mm512_set1_epi32(128));
    __m512 v = _mm512_mask_blend_ps(m6, _mm512_mask_blend_ps(m5, r[0], r[1]), _mm512_mask_blend_ps(m5, r[2], r[3]));
    if (Signed) {
        const __mmask16 neg = _mm512_mask_test_epi32_mask(m7, c, _mm512_set1_epi32(127));
        return _mm512_mul_ps(_mm512_mask_xor_ps(v, neg, v, _mm512_set1_ps(-0.0f)), scale);
    }
    const __m512 hi = _mm512_mask_blend_ps(m6, _mm512_mask_blend_ps(m5, r[4], r[5]), _mm512_mask_blend_ps(m5, r[6], r[7]));
    return _mm512_mul_ps(_mm512_mask_blend_ps(m7, v, hi), scale);
}
#endif

// codes[from, n) (blocks of kQuantBlock from codes' start, with their scales) -> float32 values.
template <bool Signed>
void dequantize_span(const std::uint8_t* __restrict codes, float* __restrict out, std::size_t n,
                     const float* __restrict scales, const QuantMap& q, std::size_t from = 0) {
#if defined(__AVX512F__)
    __m512 t[Signed ? 8 : 16];
    for (int k = 0; k < (Signed ? 8 : 16); ++k) t[k] = _mm512_loadu_ps(q.value + 16 * k);
    std::size_t i = from;
    for (; i + 16 <= n; i += 16) {  // (a masked store only for the tail: slow on AMD Zen 4)
        const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i)));
        _mm512_storeu_ps(out + i, dequantize16<Signed>(c, _mm512_set1_ps(scales[i / kQuantBlock]), t));
    }
    if (i < n) {
        const __mmask16 m = __mmask16((1u << (n - i)) - 1u);
        const __m512i c = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, codes + i));
        _mm512_mask_storeu_ps(out + i, m, dequantize16<Signed>(c, _mm512_set1_ps(scales[i / kQuantBlock]), t));
    }
#else
    std::size_t i = from;
#if FUSEDOPT_SIMD_LANES == 8
    // AVX2: 8 values by one gather from the code book (1.6x faster than one at a time on AMD Zen 3)
    for (; i + 8 <= n; i += 8) {
        const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i)));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_i32gather_ps(q.value, c, 4), _mm256_set1_ps(scales[i / kQuantBlock])));
    }
#endif
    for (; i < n; ++i) out[i] = q.value[codes[i]] * scales[i / kQuantBlock];
#endif
}

#if defined(__AVX512F__)
// The same values 64 at a time with AVX512-VBMI (Ice Lake, Zen 4 and later): each of a value's
// four bytes looked up for 64 codes by byte permutes from the code book's planes (a signed
// code's low 7 bits pick its magnitude), then interleaved into floats; the codes are put in the
// order the interleaving undoes. 3x faster than dequantize_span's 16 at a time (0.12 -> 0.04 ns
// per value, one core), the same bits (the table's own bytes).
template <bool Signed>
__attribute__((target("avx512vbmi"))) void dequantize_vbmi(const std::uint8_t* __restrict codes, float* __restrict out,
                                                           std::size_t n, const float* __restrict scales,
                                                           const QuantMap& q) {
    constexpr int kParts = Signed ? 2 : 4;  // registers of 64 bytes a plane
    __m512i plane[4][kParts];
    for (int b = 0; b < 4; ++b)
        for (int k = 0; k < kParts; ++k) plane[b][k] = _mm512_load_si512(q.planes[b] + 64 * k);
    // After the two rounds of unpacks, output float 16k + 4l + s comes from byte 16l + 4k + s.
    alignas(64) std::uint8_t order_bytes[64];
    for (int at = 0; at < 64; ++at) order_bytes[at] = static_cast<std::uint8_t>(16 * (at % 16 / 4) + 4 * (at / 16) + at % 4);
    const __m512i order = _mm512_load_si512(order_bytes);
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512i c = _mm512_permutexvar_epi8(order, _mm512_loadu_si512(codes + i));
        __m512i b[4];
        if (Signed) {
            for (int p = 0; p < 4; ++p) b[p] = _mm512_permutex2var_epi8(plane[p][0], c, plane[p][1]);
            // the sign, from bit 7 of the code, except for code 128 (its value is +0)
            const __mmask64 neg = _mm512_movepi8_mask(c) & _mm512_cmpneq_epi8_mask(c, _mm512_set1_epi8(char(0x80)));
            b[3] = _mm512_mask_blend_epi8(neg, b[3], _mm512_or_si512(b[3], _mm512_set1_epi8(char(0x80))));
        } else {
            const __mmask64 high = _mm512_movepi8_mask(c);
            for (int p = 0; p < 4; ++p)
                b[p] = _mm512_mask_blend_epi8(high, _mm512_permutex2var_epi8(plane[p][0], c, plane[p][1]),
                                              _mm512_permutex2var_epi8(plane[p][2], c, plane[p][3]));
        }
        const __m512i lo01 = _mm512_unpacklo_epi8(b[0], b[1]), hi01 = _mm512_unpackhi_epi8(b[0], b[1]);
        const __m512i lo23 = _mm512_unpacklo_epi8(b[2], b[3]), hi23 = _mm512_unpackhi_epi8(b[2], b[3]);
        const __m512 scale = _mm512_set1_ps(scales[i / kQuantBlock]);  // (64 codes share a block)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(lo01, lo23)), scale));
        _mm512_storeu_ps(out + i + 16, _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(lo01, lo23)), scale));
        _mm512_storeu_ps(out + i + 32, _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(hi01, hi23)), scale));
        _mm512_storeu_ps(out + i + 48, _mm512_mul_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(hi01, hi23)), scale));
    }
    dequantize_span<Signed>(codes, out, n, scales, q, i);
}

inline bool use_byte_permutes() {
    static const bool cpu = (__builtin_cpu_init(), __builtin_cpu_supports("avx512vbmi"));
    return cpu && byte_permutes_allowed();
}
#endif

// codes[0, n) -> values, by the fastest path this CPU has.
template <bool Signed>
void dequantize(const std::uint8_t* codes, float* out, std::size_t n, const float* scales, const QuantMap& q) {
#if defined(__AVX512F__)
    if (use_byte_permutes()) return dequantize_vbmi<Signed>(codes, out, n, scales, q);
#endif
    dequantize_span<Signed>(codes, out, n, scales, q);
}
