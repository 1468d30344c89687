// bfloat16 and float16 parameters and gradients: every rule's float32 kernel, run on float32
// scratch. A piece is taken in blocks of kLowBlock elements: the 16-bit parameter and gradient
// are widened into scratch on the stack (exact), the rule's float32 kernel updates the scratch
// (its float32 state in place), and the parameter is rounded back once, to nearest even. So no
// rule header knows about storage dtypes, and memory traffic stays the stored bytes (the
// scratch lives in L1). Included inside a per-target anonymous namespace.

// (kernels_target.cpp includes <immintrin.h> for the F16C intrinsics, outside the namespaces.)

// 2 KiB of float32 per scratch array. Smaller blocks interleave the operands' memory streams
// more finely: Adam on 32M parameters, 2 threads, bfloat16 state 0.37 -> 0.29 ns/element,
// int8 0.50 -> 0.46 against 1024 (in cache, each block's calls cost 0.02 ns/element more).
constexpr std::size_t kLowBlock = 512;

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

// The storage types, for the norm pass (static_cast<double>(x) reads one element).
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

// Elements [lo, hi) of a 16-bit operand 0 (dtype t) in blocks widened to float32 (exact), each
// block given to f(x, n), then rounded back once to nearest even.
template <class F>
void update_widened(const Segment& seg, std::size_t lo, std::size_t hi, DType t, F&& f) {
    alignas(64) float x[kLowBlock];
    std::uint16_t* a = operand<std::uint16_t>(seg, 0) + lo;
    for (std::size_t at = 0, n = 0; at < hi - lo; at += n) {
        n = hi - lo - at < kLowBlock ? hi - lo - at : kLowBlock;
        widen(t, a + at, x, n);
        f(x, n);
        narrow(t, x, a + at, n);
    }
}

// The standalone clipping on bfloat16/float16 arrays (`t`): float32 arithmetic (the factor and
// bounds as float32, as for float32 arrays), one rounding of each result, as torch's mul_ and
// clamp_ on such tensors compute.
void scale_low_kernel(const SegmentList& l, double factor, DType t, const Exec& e) {
    const float f = float(factor);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        update_widened(seg, lo, hi, t, [=](float* x, std::size_t n) { scale_elements(x, n, f); });
    });
}
void clamp_low_kernel(const SegmentList& l, double lo_, double hi_, DType t, const Exec& e) {
    const float lo_v = float(lo_), hi_v = float(hi_);
    parallel_walk(l, e, [=](const Segment& seg, std::size_t lo, std::size_t hi) {
        update_widened(seg, lo, hi, t, [=](float* x, std::size_t n) { clamp_elements(x, n, lo_v, hi_v); });
    });
}

// ---- stochastic rounding ------------------------------------------------------------------
// Counter-based: the random bits of element i are a hash of (key, i), key = hash(seed, step,
// parameter index), so they depend on nothing else (not threads, pieces or targets). The
// magnitude's float32 bits get `k` random low bits added and are then truncated to the stored
// precision: rounded up with probability equal to the dropped fraction (k = 16 for bfloat16;
// 13 for float16, more in its subnormal range). lowbias32 (C. Wellons) as the mixer.
inline std::uint32_t mix32(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}
inline std::uint32_t random_bits(std::uint32_t key, std::size_t i) {
    return mix32(key ^ mix32(static_cast<std::uint32_t>(i)));
}

inline std::uint16_t f32_to_bf16_stochastic(float x, std::uint32_t r) {
    const std::uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) >= 0x7f800000u) return f32_to_bf16(x);  // inf, NaN
    return static_cast<std::uint16_t>((u + (r & 0xffffu)) >> 16);
}

inline std::uint16_t f32_to_f16_stochastic(float x, std::uint32_t r) {
    const std::uint32_t u = f32_bits(x);
    const std::uint32_t mag = u & 0x7fffffffu, sign = u & 0x80000000u;
    if (mag >= 0x7f800000u) return f32_to_f16(x);  // inf, NaN
    const int e = static_cast<int>(mag >> 23) - 127;
    if (e < -24) {  // below float16's smallest subnormal 2^-24: 0 or 2^-24, P = |x| / 2^-24
        const float p = f32_from(mag) * 0x1p24f;
        return static_cast<std::uint16_t>((sign >> 16) | (static_cast<float>(r >> 8) * 0x1p-24f < p ? 1u : 0u));
    }
    const int k = e < -14 ? 13 + (-14 - e) : 13;  // float16 subnormals: a fixed spacing of 2^-24
    const std::uint32_t mask = (1u << k) - 1u;
    return f32_to_f16(f32_from(sign | ((mag + (r & mask)) & ~mask)));  // exact (or inf past 65504)
}

inline void narrow_stochastic(DType t, const float* __restrict in, std::uint16_t* __restrict out, std::size_t n,
                              std::uint32_t key, std::size_t first) {
    if (t == DType::bf16)
        for (std::size_t i = 0; i < n; ++i) out[i] = f32_to_bf16_stochastic(in[i], random_bits(key, first + i));
    else
        for (std::size_t i = 0; i < n; ++i) out[i] = f32_to_f16_stochastic(in[i], random_bits(key, first + i));
}

// bfloat16 state: stochastic rounding of two state arrays at once. One hash per element gives
// both their 16 random bits (low half: `a`, high half: `b`), a single mix of a Weyl sequence
// (key + i * golden ratio), so the random bits cost 1.5 multiplies per stored value instead of
// the parameter path's 4. Each pair has its own key (the unit's mixed once, then again per pair).
inline std::uint32_t state_bits(std::uint32_t key, std::uint32_t i) { return mix32(key + 0x9e3779b9u * i); }

#if defined(__AVX512F__)
// The same bits 32 at a time (GCC's vectorization of the loop below is 2.5x slower): mix32 of
// 16 lanes, and f32_to_bf16_stochastic's sum kept in 32 bits: the bfloat16 are its top halves,
// taken from two vectors by one word permute (no shifts or narrowing).
inline __m512i mix32_avx512(__m512i x) {
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7feb352d));
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(static_cast<int>(0x846ca68bu)));
    return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}
// The bits of x plus 16 random bits r (< 2^16); a NaN becomes the quiet NaN of its sign, as
// f32_to_bf16 does (an infinity needs nothing: its low half is 0).
inline __m512i add_random_bits(__m512 v, __m512i r) {
    const __m512i u = _mm512_castps_si512(v), sum = _mm512_add_epi32(u, r);
    const __mmask16 nan = _mm512_fpclass_ps_mask(v, 0x81);  // (quiet or signaling)
    if (__builtin_expect(nan == 0, 1)) return sum;
    return _mm512_mask_or_epi32(sum, nan, _mm512_and_si512(u, _mm512_set1_epi32(static_cast<int>(0x80000000u))),
                                _mm512_set1_epi32(0x7fc00000));
}
inline void store_top_halves(std::uint16_t* out, __m512i lo, __m512i hi) {
    const __m512i odd = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27,
                                         25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    _mm512_storeu_si512(out, _mm512_permutex2var_epi16(lo, odd, hi));
}
// The random bits of elements at, at + 1, ... (state_bits), 32 at a time: lanes of r0 are
// elements i .. i + 15, of r1 i + 16 .. i + 31; the Weyl sequence advanced by additions.
struct StateBits32 {
    __m512i w0, w1, step32;
    StateBits32(std::uint32_t key, std::uint32_t at) {
        const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        const __m512i golden = _mm512_set1_epi32(static_cast<int>(0x9e3779b9u));
        const __m512i step16 = _mm512_set1_epi32(static_cast<int>(0x9e3779b9u * 16u));
        w0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(key + 0x9e3779b9u * at)),
                              _mm512_mullo_epi32(golden, lane));
        w1 = _mm512_add_epi32(w0, step16);
        step32 = _mm512_add_epi32(step16, step16);
    }
    void next(__m512i& r0, __m512i& r1) {
        r0 = mix32_avx512(w0);
        r1 = mix32_avx512(w1);
        w0 = _mm512_add_epi32(w0, step32);
        w1 = _mm512_add_epi32(w1, step32);
    }
};
// 32 values (x0: the first 16) rounded stochastically with 16 random bits per lane, stored.
inline void store_rounded(std::uint16_t* out, __m512 x0, __m512 x1, __m512i r0, __m512i r1) {
    store_top_halves(out, add_random_bits(x0, r0), add_random_bits(x1, r1));
}
// Two arrays' 32 values rounded with one hash per element (r0, r1 from StateBits32): a's 16
// random bits its low half, b's its high half.
inline void store_rounded_pair(std::uint16_t* out_a, __m512 a0, __m512 a1, std::uint16_t* out_b, __m512 b0, __m512 b1,
                               __m512i r0, __m512i r1) {
    const __m512i low = _mm512_set1_epi32(0xffff);
    store_rounded(out_a, a0, a1, _mm512_and_si512(r0, low), _mm512_and_si512(r1, low));
    store_rounded(out_b, b0, b1, _mm512_srli_epi32(r0, 16), _mm512_srli_epi32(r1, 16));
}
// 32 bfloat16 widened (exact): x0 the first 16, x1 the next.
inline void widen_bf16_32(const std::uint16_t* in, __m512& x0, __m512& x1) {
    const __m512i h = _mm512_loadu_si512(in);
    x0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
    x1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
}
// Elements [0, n - n % 32); returns how many.
inline std::size_t narrow_state_pair_avx512(const float* __restrict a, std::uint16_t* __restrict out_a,
                                            const float* __restrict b, std::uint16_t* __restrict out_b, std::size_t n,
                                            std::uint32_t key, std::uint32_t at) {
    const __m512i low = _mm512_set1_epi32(0xffff);
    StateBits32 bits(key, at);
    const std::size_t end = n - n % 32;
    for (std::size_t i = 0; i < end; i += 32) {
        __m512i r0, r1;
        bits.next(r0, r1);
        if (out_b)
            store_rounded_pair(out_a + i, _mm512_loadu_ps(a + i), _mm512_loadu_ps(a + i + 16), out_b + i,
                               _mm512_loadu_ps(b + i), _mm512_loadu_ps(b + i + 16), r0, r1);
        else
            store_rounded(out_a + i, _mm512_loadu_ps(a + i), _mm512_loadu_ps(a + i + 16), _mm512_and_si512(r0, low),
                          _mm512_and_si512(r1, low));
    }
    return end;
}
#endif

inline void narrow_state_pair(const float* __restrict a, std::uint16_t* __restrict out_a, const float* __restrict b,
                              std::uint16_t* __restrict out_b, std::size_t n, std::uint32_t key, std::size_t first) {
    std::uint32_t at = static_cast<std::uint32_t>(first);
#if defined(__AVX512F__)
    const std::size_t done = narrow_state_pair_avx512(a, out_a, b, out_b, n, key, at);
    a += done, out_a += done, b += out_b ? done : 0, out_b += out_b ? done : 0;
    n -= done, at += static_cast<std::uint32_t>(done);
#endif
    if (!out_b) {
        for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n); ++i)
            out_a[i] = f32_to_bf16_stochastic(a[i], state_bits(key, at + i));
        return;
    }
    for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n); ++i) {
        const std::uint32_t r = state_bits(key, at + i);
        out_a[i] = f32_to_bf16_stochastic(a[i], r);
        out_b[i] = f32_to_bf16_stochastic(b[i], r >> 16);
    }
}

// (No software prefetch of the blocks ahead: one here never ran, deleted by GCC as parallel.hpp
// tells, and made to run it slowed Adam with bfloat16 state, 8M elements, 0.50 -> 0.93 ns per
// element at 1 thread and 0.35 -> 0.53 at 2.)

// Elements [lo, hi) of a segment that the rule's float32 kernel `f32` cannot update in place
// (kernel_table.hpp, Storage): block by block, the 16-bit parameter and gradient and the
// compressed state are widened into float32 scratch on the stack (exact: a state value is what
// its stored bits mean), the kernel updates the scratch (float32 operands in place), and each
// stored value is rounded once: the parameter to nearest even (or stochastically), bfloat16
// state stochastically, int8 state to its blocks' codes (kernels/quantize.hpp). So no rule
// header knows about storage, and memory traffic stays the stored bytes (the scratch lives in
// L1). With int8 state, `lo` is a multiple of kQuantBlock (the plan's piece alignment).
void scratch_chunk(const Segment& seg, std::size_t lo, std::size_t hi, ChunkKernel f32, const void* scalars,
                   const double* values, const GradTransform& gt, const Storage& st) {
    static_assert(kLowBlock % kQuantBlock == 0, "scratch blocks hold whole int8 blocks");
    alignas(64) float scratch[2 + kMaxRuleSlots][kLowBlock];  // parameter, gradient, the rule's state
    const bool low = low_precision(st.param);
    for (std::size_t b = lo; b < hi; b += kLowBlock) {
        const std::size_t n = hi - b < kLowBlock ? hi - b : kLowBlock;
        Segment s = seg;
        s.size = n;
        s.offset = seg.offset + b;
        for (int k = 0; k < kMaxOperands; ++k) {
            if (!seg.data[k]) continue;
            switch (k < 2 ? (low ? SlotStorage::bf16 : SlotStorage::plain) : st.slot[k]) {
            case SlotStorage::plain:
                s.data[k] = static_cast<float*>(seg.data[k]) + b;
                break;
            case SlotStorage::scales:  // the engine's, not the rule's
                s.data[k] = nullptr;
                break;
            case SlotStorage::whole:  // (not moved: the rule indexes it from s.offset)
                break;
            case SlotStorage::bf16:  // (16-bit parameters and gradients: their own dtype)
                s.data[k] = scratch[k];
                if (k != 0 || st.master < 0)
                    widen(k < 2 ? st.param : DType::bf16, static_cast<const std::uint16_t*>(seg.data[k]) + b,
                          scratch[k], n);
                break;
            case SlotStorage::q8_signed:
            case SlotStorage::q8_unsigned: {
                const std::uint8_t* codes = static_cast<const std::uint8_t*>(seg.data[k]) + b;
                const float* scales = static_cast<const float*>(seg.data[st.scales[k]]) + b / kQuantBlock;
                if (st.slot[k] == SlotStorage::q8_signed)
                    dequantize<true>(codes, scratch[k], n, scales, quant_map(true));
                else
                    dequantize<false>(codes, scratch[k], n, scales, quant_map(false));
                s.data[k] = scratch[k];
                break;
            }
            }
        }
        float* w = scratch[0];  // what the rule updates as the parameter
        if (st.master >= 0) {
            w = static_cast<float*>(s.data[st.master]);
            s.data[0] = w;
            s.data[st.master] = nullptr;
        } else if (!low) {
            w = static_cast<float*>(s.data[0]);
        }
        f32(s, 0, n, scalars, values, gt);
        int pending = -1;  // a bfloat16 operand waiting for its pair
        std::uint32_t pair_key = mix32(st.key);
        for (int k = 2; k < kMaxOperands; ++k) {
            if (!seg.data[k]) continue;
            if (st.slot[k] == SlotStorage::bf16) {
                if (pending < 0) {
                    pending = k;
                    continue;
                }
                narrow_state_pair(scratch[pending], static_cast<std::uint16_t*>(seg.data[pending]) + b, scratch[k],
                                  static_cast<std::uint16_t*>(seg.data[k]) + b, n, pair_key, b);
                pending = -1;
                pair_key = mix32(pair_key);
            } else if (st.slot[k] == SlotStorage::q8_signed || st.slot[k] == SlotStorage::q8_unsigned) {
                float* scales = static_cast<float*>(seg.data[st.scales[k]]) + b / kQuantBlock;
                std::uint8_t* codes = static_cast<std::uint8_t*>(seg.data[k]) + b;
                if (st.slot[k] == SlotStorage::q8_signed)
                    quantize_span<true>(scratch[k], codes, scales, n, quant_map(true));
                else
                    quantize_span<false>(scratch[k], codes, scales, n, quant_map(false));
            }
        }
        if (pending >= 0)
            narrow_state_pair(scratch[pending], static_cast<std::uint16_t*>(seg.data[pending]) + b, nullptr, nullptr, n,
                              pair_key, b);
        if (!low) continue;
        std::uint16_t* const param = static_cast<std::uint16_t*>(seg.data[0]) + b;
        if (st.stochastic)
            narrow_stochastic(st.param, w, param, n, st.key, b);
        else
            narrow(st.param, w, param, n);
    }
}


#if defined(__AVX512F__)
// 32 consecutive values of an array as two float32 vectors (x0: the first 16), read exactly and
// stored with one rounding to nearest even, as widen and narrow do.
struct F32Lanes {
    using Elem = float;
    static void load(const float* a, __m512& x0, __m512& x1) {
        x0 = _mm512_loadu_ps(a);
        x1 = _mm512_loadu_ps(a + 16);
    }
    static void store(float* a, __m512 x0, __m512 x1) {
        _mm512_storeu_ps(a, x0);
        _mm512_storeu_ps(a + 16, x1);
    }
};
struct Bf16Lanes {
    using Elem = std::uint16_t;
    static void load(const std::uint16_t* a, __m512& x0, __m512& x1) { widen_bf16_32(a, x0, x1); }
    // f32_to_bf16 kept in 32 bits (its top half), 16 lanes
    static __m512i nearest(__m512 x) {
        const __m512i u = _mm512_castps_si512(x);
        const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        const __m512i sum = _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
        const __mmask16 nan = _mm512_fpclass_ps_mask(x, 0x81);
        if (__builtin_expect(nan == 0, 1)) return sum;
        return _mm512_mask_or_epi32(sum, nan, _mm512_and_si512(u, _mm512_set1_epi32(static_cast<int>(0x80000000u))),
                                    _mm512_set1_epi32(0x7fc00000));
    }
    static void store(std::uint16_t* a, __m512 x0, __m512 x1) { store_top_halves(a, nearest(x0), nearest(x1)); }
};
struct F16Lanes {
    using Elem = std::uint16_t;
    static void load(const std::uint16_t* a, __m512& x0, __m512& x1) {
        x0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
        x1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 16)));
    }
    static void store(std::uint16_t* a, __m512 x0, __m512 x1) {
        constexpr int nearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(a), _mm512_cvtps_ph(x0, nearest));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(a + 16), _mm512_cvtps_ph(x1, nearest));
    }
};

// The parameter as a vector loop reads and writes it, 32 elements from i on (load, then store):
// a float32 one in place; a 16-bit one (Lanes) in place, or from its float32 master copy
// (MASTER: the copy updated, the parameter written from it), rounded to nearest even or, for
// bfloat16, stochastically (STOCHASTIC: narrow_stochastic's random bits).
struct F32Param {
    using Grad = F32Lanes;
    float* p;
    void load(std::size_t i, __m512& x0, __m512& x1) const { F32Lanes::load(p + i, x0, x1); }
    void store(std::size_t i, __m512 x0, __m512 x1) const { F32Lanes::store(p + i, x0, x1); }
};
template <class Lanes, bool MASTER, bool STOCHASTIC>
struct LowParam {
    using Grad = Lanes;
    std::uint16_t* p;
    float* master;
    std::uint32_t key, at;  // STOCHASTIC: random_bits(key, at + i) for element i
    void load(std::size_t i, __m512& x0, __m512& x1) const {
        if (MASTER)
            F32Lanes::load(master + i, x0, x1);
        else
            Lanes::load(p + i, x0, x1);
    }
    void store(std::size_t i, __m512 x0, __m512 x1) const {
        if (MASTER) F32Lanes::store(master + i, x0, x1);
        if (!STOCHASTIC) return Lanes::store(p + i, x0, x1);
        const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(at + i)), lane);
        const __m512i k = _mm512_set1_epi32(static_cast<int>(key)), low = _mm512_set1_epi32(0xffff);
        const __m512i r0 = mix32_avx512(_mm512_xor_si512(k, mix32_avx512(index)));
        const __m512i r1 = mix32_avx512(_mm512_xor_si512(k, mix32_avx512(_mm512_add_epi32(index, _mm512_set1_epi32(16)))));
        store_rounded(p + i, x0, x1, _mm512_and_si512(r0, low), _mm512_and_si512(r1, low));
    }
};

// Two parameter-shaped state operands (a, b), 32 values of each at a time: float32 in place, or
// bfloat16 rounded stochastically with narrow_state_pair's bits (store in order: the bits advance).
struct F32StatePair {
    float* a;
    float* b;
    void load(std::size_t i, __m512& a0, __m512& a1, __m512& b0, __m512& b1) const {
        F32Lanes::load(a + i, a0, a1);
        F32Lanes::load(b + i, b0, b1);
    }
    void store(std::size_t i, __m512 a0, __m512 a1, __m512 b0, __m512 b1) const {
        F32Lanes::store(a + i, a0, a1);
        F32Lanes::store(b + i, b0, b1);
    }
};
struct Bf16StatePair {
    std::uint16_t* a;
    std::uint16_t* b;
    StateBits32 bits;
    void load(std::size_t i, __m512& a0, __m512& a1, __m512& b0, __m512& b1) const {
        widen_bf16_32(a + i, a0, a1);
        widen_bf16_32(b + i, b0, b1);
    }
    void store(std::size_t i, __m512 a0, __m512 a1, __m512 b0, __m512 b1) {
        __m512i r0, r1;
        bits.next(r0, r1);
        store_rounded_pair(a + i, a0, a1, b + i, b0, b1, r0, r1);
    }
};
#endif

// The storages a rule's vector loop takes (R::vector_loop; Adam: kernels/adam_vector.hpp) in
// place of scratch_chunk: the parameter and gradient float32, bfloat16 or float16 (with or
// without a master copy; stochastic rounding for bfloat16), and two state operands (2 and 3, no
// other) float32 or bfloat16. For elements [lo, ...) of `seg`: returns body(param, g, state)
// (the elements it did), or 0 for another storage or on a target without AVX-512.
template <class Body>
std::size_t with_vector_storage(const Segment& seg, std::size_t lo, const Storage& st, Body&& body) {
#if defined(__AVX512F__)
    if (!seg.data[3] || (st.stochastic && st.param != DType::bf16)) return 0;
    for (int k = 4; k < kMaxOperands; ++k)
        if (seg.data[k] && k != st.master) return 0;
    const bool bf16_state = st.slot[2] == SlotStorage::bf16;
    if (st.slot[3] != st.slot[2] || !(bf16_state || st.slot[2] == SlotStorage::plain)) return 0;
    const auto with_state = [&](auto param) {
        const auto* g = operand<typename decltype(param)::Grad::Elem>(seg, 1) + lo;
        if (!bf16_state) return body(param, g, F32StatePair{operand<float>(seg, 2) + lo, operand<float>(seg, 3) + lo});
        return body(param, g,
                    Bf16StatePair{operand<std::uint16_t>(seg, 2) + lo, operand<std::uint16_t>(seg, 3) + lo,
                                  StateBits32(mix32(st.key), static_cast<std::uint32_t>(lo))});
    };
    if (st.param == DType::f32) return bf16_state ? with_state(F32Param{operand<float>(seg, 0) + lo}) : 0;
    std::uint16_t* const p = operand<std::uint16_t>(seg, 0) + lo;
    float* const master = st.master >= 0 ? operand<float>(seg, st.master) + lo : nullptr;
    const std::uint32_t at = static_cast<std::uint32_t>(lo);
    if (st.param == DType::f16)
        return master ? with_state(LowParam<F16Lanes, true, false>{p, master, st.key, at})
                      : with_state(LowParam<F16Lanes, false, false>{p, master, st.key, at});
    if (st.stochastic)
        return master ? with_state(LowParam<Bf16Lanes, true, true>{p, master, st.key, at})
                      : with_state(LowParam<Bf16Lanes, false, true>{p, master, st.key, at});
    return master ? with_state(LowParam<Bf16Lanes, true, false>{p, master, st.key, at})
                  : with_state(LowParam<Bf16Lanes, false, false>{p, master, st.key, at});
#else
    static_cast<void>(seg), static_cast<void>(lo), static_cast<void>(st), static_cast<void>(body);
    return 0;
#endif
}

// A rule with a vector loop (R::vector_loop) runs it on what it takes, scratch_chunk the rest
// (its tail, other storages): the same bits either way.
template <class R>
void scratch_chunk_vector(const Segment& seg, std::size_t lo, std::size_t hi, ChunkKernel f32, const void* scalars,
                          const double* values, const GradTransform& gt, const Storage& st) {
    lo += R::vector_chunk(seg, lo, hi, *static_cast<const typename R::Scalars*>(scalars), gt, st);
    if (lo < hi) scratch_chunk(seg, lo, hi, f32, scalars, values, gt, st);
}
