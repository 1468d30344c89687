// bfloat16 and float16 values (their conversions: half_float.hpp): stochastic rounding, the
// 16-bit standalone clipping, and the scratch path's block size (scratch.hpp: every rule's
// float32 kernel run on float32 copies of 16-bit or compressed storage, so no rule header knows
// about storage dtypes). Included inside a per-target anonymous namespace.

// 2 KiB of float32 per scratch array. Smaller blocks interleave the operands' memory streams
// more finely: Adam on 32M parameters, 2 threads, bfloat16 state 0.37 -> 0.29 ns/element,
// int8 0.50 -> 0.46 against 1024 (in cache, each block's calls cost 0.02 ns/element more).
constexpr std::size_t kLowBlock = 512;

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
